#!/bin/sh
# SIGKILL at random points, 200 times: every call the child saw return is in
# its log; the report reads the logs of killed processes (issues 3 and 8).
#   SHMK_KILL_SEED=N replays a run; SHMK_KILL_ROUNDS (default 200).
. "$top_srcdir/tests/lib.sh"
need_lib
seed=${SHMK_KILL_SEED:-$(date +%s)}
rounds=${SHMK_KILL_ROUNDS:-200}
log=$(new_logdir)
note "seed $seed, $rounds rounds (replay: SHMK_KILL_SEED=$seed)"
with_preload "$log" "$SHMK_TESTBIN/fault_kill" "$log" "$rounds" "$seed" ||
	fail "completed calls missing from the logs of killed processes (seed $seed)"
ls "$log"/*.shmk >/dev/null 2>&1 || fail "no log kept for the report"
"$SHMK_TOOL" report "$log" >"$WORK/report" 2>"$WORK/report.err"
rc=$?
[ $rc -lt 64 ] || fail "report exited $rc on the logs of killed processes: $(head -3 "$WORK/report.err")"
grep -q "LEAK SUMMARY" "$WORK/report" || fail "no LEAK SUMMARY in the report: $(head -5 "$WORK/report")"
"$SHMK_TOOL" report --format=json "$log" >"$WORK/report.json" 2>/dev/null
rc=$?
[ $rc -lt 64 ] || fail "report --format=json exited $rc"
echo ok
