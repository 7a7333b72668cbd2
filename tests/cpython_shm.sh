#!/bin/sh
# CPython's own shared-memory tests, unchanged (issue 8): the fork,
# forkserver and spawn variants of WithProcessesTestSharedMemory pass under
# the library exactly as without it, and the report shows no leak.
# Needs Debian's libpython3.11-testsuite (.ci/run installs it).
. "$top_srcdir/tests/lib.sh"
need_lib
py=/usr/bin/python3
[ -x $py ] || skip "Debian's /usr/bin/python3 is not installed"
$py -c 'import test.test_multiprocessing_fork' 2>/dev/null ||
	skip "CPython's test suite is not installed (apt-get install libpython3.11-testsuite)"
[ "$SANITIZED" = 1 ] && skip "not under sanitizers (CPython's own allocations drown the report)"

failed=0
for v in fork forkserver spawn; do
	t=test_multiprocessing_$v
	$py -m test $t -m WithProcessesTestSharedMemory >"$WORK/raw.$v" 2>&1
	raw=$?
	log=$(new_logdir)
	with_preload "$log" $py -m test $t -m WithProcessesTestSharedMemory >"$WORK/pre.$v" 2>&1
	pre=$?
	# The same verdict and the same tests run (durations differ).
	sum() { grep -E '^(Tests result|[0-9]+ tests? (OK|failed)|Ran [0-9]+ tests)' "$1" | sort; }
	if [ $raw != $pre ] || [ "$(sum "$WORK/raw.$v")" != "$(sum "$WORK/pre.$v")" ]; then
		echo "$t: raw exit $raw, preloaded exit $pre"
		diff "$WORK/raw.$v" "$WORK/pre.$v" | head -20
		failed=1
	fi
	grep -q "shmkeeper:" "$WORK/pre.$v" && { echo "$t: the library spoke:"; grep "shmkeeper:" "$WORK/pre.$v" | head -3; failed=1; }
	ls "$log"/*.shmk >/dev/null 2>&1 || { echo "$t: no logs"; failed=1; continue; }
	"$SHMK_TOOL" report --color=never "$log" >"$WORK/report.$v" 2>&1
	rc=$?
	if ! grep -q "LEAK SUMMARY: 0 segments leaked" "$WORK/report.$v"; then
		echo "$t: the report (exit $rc) shows a leak or none at all:"
		head -30 "$WORK/report.$v"
		failed=1
	fi
	note "$t: raw $raw, preloaded $pre, $(ls "$log" | wc -l) logs, $(grep -h 'LEAK SUMMARY' "$WORK/report.$v")"
	rm -rf "$log"
done
[ $failed = 0 ] || fail "CPython's shared-memory tests differ under the library"
echo ok
