#!/bin/sh
# Record times (issue 3): where the writer stamps records with TSC ticks
# (SK_HF_TICKS), the reader's nanoseconds for each record lie between the
# CLOCK_MONOTONIC readings the program took just before and just after the
# call, over 1000 rounds with idle gaps longer than the writer goes between
# two (tick, ns) pairs; and the log holds such pairs. Without ticks (not an
# x86-64 with an invariant TSC the kernel keeps time with) the same holds of
# the clock_gettime times, and the test says which it checked.
. "$top_srcdir/tests/lib.sh"
need_lib
log=$(new_logdir)
SHMKEEPER_BACKTRACE_DEPTH=0 with_preload "$log" "$SHMK_TESTBIN/clock_prog" 1000 >"$WORK/calls" ||
	fail "clock_prog failed"
logdump -t "$log" >"$WORK/dump" || fail "logdump: $(cat "$WORK/dump")"
flags=$(sed -n 's/^file .* flags=\([0-9]*\) .*/\1/p' "$WORK/dump")
[ -n "$flags" ] || hard "no file line in the dump"
if [ $((flags & 16)) != 0 ]; then
	n=$(grep -c '^clock ' "$WORK/dump")
	[ "$n" -ge 3 ] || fail "a ticks log with $n clock records"
	note "ticks: $n clock records"
else
	note "no ticks on this machine: clock_gettime times checked"
fi
grep -E '^sysv_(get|at|dt|ctl) ' "$WORK/dump" | sed 's/^\([a-z_]*\) t=\([0-9]*\) .*/\1 \2/' >"$WORK/times"
[ "$(wc -l <"$WORK/times")" = 4000 ] || fail "$(wc -l <"$WORK/times") records, not 4000"
paste -d ' ' "$WORK/calls" "$WORK/times" | awk '
	$1 != $4 { print "order: " $0; bad++; next }
	$5 < $2 || $5 > $3 { print "outside: " $1 " " $5 " not in [" $2 ", " $3 "] (" ($5 < $2 ? $5 - $2 : $5 - $3) " ns)"; bad++ }
	END { exit bad > 0 }' >"$WORK/bad" || fail "$(wc -l <"$WORK/bad") record times off, first: $(head -n 3 "$WORK/bad")"
echo ok
