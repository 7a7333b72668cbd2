#!/bin/sh
# The program's fd budget is its own (tests/fd_budget.c): libunwind's pipe,
# which the library cannot close, sits at or above the soft RLIMIT_NOFILE,
# where the program cannot allocate. With and without the library, at a
# soft limit of 256: the same fds below the limit, the same F_DUPFD at
# limit-16, the same number of open() calls before EMFILE, the same fds
# after close_range(3, ~0U, 0), the same soft limit; and backtraces still
# work afterwards. Then the hazards: close() and close_range over the
# library's fds (put back above the limit, the limit restored), a program
# that raises its limit and opens past them or dup2s over them, threads
# that open while the library raises the limit around a re-creation.
. "$top_srcdir/tests/lib.sh"
need_lib
prog=$SHMK_TESTBIN/fd_budget
[ -x "$prog" ] || hard "$prog not built"
hard_lim=$(ulimit -H -n)
[ "$hard_lim" = unlimited ] || [ "$hard_lim" -ge 512 ] ||
	skip "the hard RLIMIT_NOFILE ($hard_lim) is below 512: no room to raise a soft limit of 256"
n1="/${UNIQ}_a"
n2="/${UNIQ}_b"
CLEANUP="rm -f /dev/shm/${UNIQ}_*"

"$prog" budget "/${UNIQ}_plain" >"$WORK/plain" 2>"$WORK/plain.err"
rc=$?
rm -f "/dev/shm/${UNIQ}_plain"
[ $rc = 77 ] && skip "$(cat "$WORK/plain.err")"
[ $rc = 0 ] || hard "plain run: $(cat "$WORK/plain.err")"
log=$(new_logdir)
with_preload "$log" "$prog" budget "$n1" >"$WORK/pre" 2>"$WORK/pre.err" ||
	fail "preloaded run: $(cat "$WORK/pre.err")"
sed 's/^/  plain:     /' "$WORK/plain" >&2
sed 's/^/  preloaded: /' "$WORK/pre" "$WORK/pre.err" >&2
cmp -s "$WORK/plain" "$WORK/pre" || fail "the program sees another fd budget with the library (above)"
# The library's fds are there (libunwind's pipe), above the limit, before
# and after the close_range.
[ "$(grep -c '^lib [0-9]*$' "$WORK/pre.err")" = 2 ] || fail "libunwind's pipe not above the limit"
[ "$(grep -c '^lib [0-9]* (after close_range)$' "$WORK/pre.err")" = 2 ] ||
	fail "libunwind's pipe not put back above the limit after close_range"

# Backtraces after the close_range: the leak is symbolised to its creator.
"$SHMK_TOOL" report "$log" >"$WORK/report" 2>&1
grep -q "POSIX $n1," "$WORK/report" || fail "the leak of $n1 is not reported: $(cat "$WORK/report")"
grep -q 'fdb_after_closerange .*fd_budget.c:[0-9]' "$WORK/report" ||
	fail "no backtrace to fdb_after_closerange after close_range: $(cat "$WORK/report")"

log=$(new_logdir)
with_preload "$log" "$prog" raise "$n2" >"$WORK/raise" 2>&1 || fail "raise: $(cat "$WORK/raise")"
note "raise: $(grep opened "$WORK/raise")"
# Said once, though the program dup2s over both numbers.
[ "$(grep -c 'took the unwinder' "$WORK/raise")" = 1 ] ||
	fail "raise: the dup2s over the library's fds not said once: $(grep -c 'took the unwinder' "$WORK/raise")"
"$SHMK_TOOL" report "$log" >"$WORK/report2" 2>&1
grep -q 'fdb_after_raise .*fd_budget.c:[0-9]' "$WORK/report2" ||
	fail "no backtrace to fdb_after_raise after the program raised its limit: $(cat "$WORK/report2")"

# The program lowers its hard limit under the pipe, then closes every fd:
# the pipe cannot be put back, and need not be (the program cannot have
# those numbers); backtraces go on.
log=$(new_logdir)
with_preload "$log" "$prog" lower "/${UNIQ}_c" >"$WORK/lower" 2>&1 || fail "lower: $(cat "$WORK/lower")"
! grep -q 'without backtraces' "$WORK/lower" || fail "lower: backtraces stopped: $(cat "$WORK/lower")"
"$SHMK_TOOL" report "$log" >"$WORK/report3" 2>&1
grep -q 'fdb_after_lower .*fd_budget.c:[0-9]' "$WORK/report3" ||
	fail "no backtrace to fdb_after_lower after the pipe was lost: $(cat "$WORK/report3")"

# Hard limit == soft limit: no room above, the pipe goes below the limit,
# as before; close_range still puts it back and backtraces go on.
log=$(new_logdir)
(ulimit -n 256 && with_preload "$log" "$prog" budget "/${UNIQ}_d") >"$WORK/flat" 2>&1 ||
	fail "hard == soft: $(cat "$WORK/flat")"
"$SHMK_TOOL" report "$log" >"$WORK/report4" 2>&1
grep -q 'fdb_after_closerange .*fd_budget.c:[0-9]' "$WORK/report4" ||
	fail "hard == soft: no backtrace after close_range: $(cat "$WORK/report4")"

log=$(new_logdir)
with_preload "$log" "$prog" threads >"$WORK/threads" 2>&1 || fail "threads: $(cat "$WORK/threads")"
echo ok
