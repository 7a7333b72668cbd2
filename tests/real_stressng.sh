#!/bin/sh
# stress-ng's shared-memory stressors, unmodified, under `shmkeeper run`: a
# program that forks a worker per stressor and a child per round, attaches
# each segment again read-only, with SHM_RND, SHM_REMAP and at explicit
# addresses, probes SHM_HUGETLB sizes and bad arguments on purpose, and
# removes everything it made. The run must succeed as it does without the
# library, the logs must read without damage, and the report must find the
# hundreds of segments created and removed, and no leak.
set -eu
. "$top_srcdir/tests/lib.sh"
command -v stress-ng >/dev/null || { echo "SKIP: stress-ng not installed"; exit 77; }
PY=${PYTHON3:-python3}
logs=$(mktemp -d)
out=$(mktemp)
cleanup() { rm -rf "$logs" "$out"; }
CLEANUP=cleanup   # run by tests/lib.sh at exit

set +e
"$SHMK_TOOL" run --log-dir="$logs" --error-exitcode=9 -- \
	stress-ng --shm-sysv 1 --shm 1 --timeout 3s >"$out" 2>&1
rc=$?
set -e
[ $rc = 0 ] || { echo "FAIL: exit $rc"; tail -20 "$out"; exit 1; }
grep -q "successful run completed" "$out" || { echo "FAIL: stress-ng did not complete"; tail -20 "$out"; exit 1; }
grep -q "LEAK SUMMARY: 0 segments leaked" "$out" || { echo "FAIL: report"; tail -20 "$out"; exit 1; }

"$SHMK_TOOL" report --format=json "$logs" > "$logs/r.json"
"$PY" - "$logs/r.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
assert s["leaks"] == 0 and s["leaks_unknown_status"] == 0, s
assert s["logs_damaged"] == 0 and s["logs_unreadable"] == 0, s
# Both stressors make a segment per round, tens of rounds in 3 s.
assert s["segments_created"] >= 20, s
assert s["segments_removed"] + s["gone"] == s["segments_created"], s
assert s["processes"] >= 3, s
PYEOF
echo ok
