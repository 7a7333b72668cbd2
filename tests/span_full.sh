#!/bin/sh
# A full span (issue 5): a process holding more SysV attachments than the
# span places (512 a table, 256 a process) goes on attaching. Every attach
# succeeds, at the kernel's address once the span is full, and each one
# costs a lookup, not a read of the whole table plus an IPC_STAT of every
# entry in it (which made a shmget+shmat+shmdt+RMID cycle 8.3 x raw with
# 2000 segments attached): strace counts the IPC_STATs.
. "$top_srcdir/tests/lib.sh"
need_lib
need_prog strace
prog=$SHMK_TESTBIN/span_full
[ -x "$prog" ] || hard "tests/span_full not built"
n=600 m=300
[ "$(cat /proc/sys/kernel/shmmni 2>/dev/null || echo 4096)" -gt $((n + 50)) ] ||
	skip "kernel.shmmni is below $((n + 50))"
span=0x500000000000
log=$(new_logdir)
SHMKEEPER_SPAN=$span:64G with_preload "$log" strace -f -qq -e trace=shmctl -o "$WORK/trace" \
	"$prog" $n $m $span >"$WORK/out" 2>"$WORK/err" || fail "span_full failed: $(cat "$WORK/err")"
# The span is full before the cycles begin: none of them is placed.
grep -q "^placed 0 elsewhere $m\$" "$WORK/out" || fail "unexpected placements: $(cat "$WORK/out")"
stats=$(grep -c "IPC_STAT" "$WORK/trace")
# Before: ~330 a cycle (99584 for these 300). Now: the wrappers' own (sizes the
# table does not know), and a collection at most once a second.
[ "$stats" -lt $((n + m + 1000)) ] || fail "$stats IPC_STATs for $m cycles"
n_warn=$(count_events "$log" warn)
[ "$n_warn" -ge "$m" ] || fail "$n_warn warnings: the fallback to the kernel's address is not recorded"
echo ok
