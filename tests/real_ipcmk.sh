#!/bin/sh
# util-linux's ipcmk and ipcrm, unmodified, under the library:
#  - `ipcmk -M 4096` leaks one SysV segment with no attach;
#  - `ipcrm -m ID` in another recorded process removes it: not a leak, and the
#    report says who removed it;
#  - `shmkeeper run --error-exitcode` turns the leak into the exit status.
set -eu
. "$top_srcdir/tests/lib.sh"
command -v ipcmk >/dev/null && command -v ipcrm >/dev/null ||
	{ echo "SKIP: ipcmk/ipcrm (util-linux) not installed"; exit 77; }
PY=${PYTHON3:-python3}
logs=$(mktemp -d)
id=
cleanup() { [ -n "$id" ] && ipcrm -m "$id" 2>/dev/null; rm -rf "$logs"; }
CLEANUP=cleanup   # run by tests/lib.sh at exit

out=$(SHMKEEPER_LOG_DIR=$logs LD_PRELOAD=$PRELOAD ipcmk -M 4096)
id=$(printf '%s\n' "$out" | sed -n 's/^Shared memory id: \([0-9]*\)$/\1/p')
[ -n "$id" ] || { echo "FAIL: ipcmk printed: $out"; exit 1; }

"$SHMK_TOOL" report --format=json "$logs" > "$logs/r1.json"
"$PY" - "$logs/r1.json" "$id" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); shmid = int(sys.argv[2])
leaks = r["leaks"]
assert len(leaks) == 1, leaks
l = leaks[0]
assert l["kind"] == "sysv" and l["shmid"] == shmid, l
assert l["size"] == 4096 and l["attaches"] == 0, l
assert l["creator"]["exe"].endswith("/ipcmk"), l["creator"]
assert isinstance(l["key"], int) and l["key"] != 0, l
assert l["backtrace"] and all("address" in f and "module" in f for f in l["backtrace"]), l
PYEOF
"$SHMK_TOOL" report "$logs" > "$logs/r1.txt" 2>&1 || true
grep -q "LEAK SUMMARY: 1 segment leaked, 4096 bytes" "$logs/r1.txt" ||
	{ echo "FAIL: text summary"; cat "$logs/r1.txt"; exit 1; }
grep -q "shmid $id" "$logs/r1.txt" || { echo "FAIL: shmid not named"; exit 1; }

# --error-exitcode on report: the leak makes the status.
set +e
"$SHMK_TOOL" report --error-exitcode=42 "$logs" > /dev/null 2>&1
rc=$?
set -e
[ "$rc" = 42 ] || { echo "FAIL: report --error-exitcode=42 gave $rc"; exit 1; }

# Removed by another process: no leak, and the remover is named.
SHMKEEPER_LOG_DIR=$logs LD_PRELOAD=$PRELOAD ipcrm -m "$id"
removed=$id
id=
"$SHMK_TOOL" report --format=json "$logs" > "$logs/r2.json"
"$PY" - "$logs/r2.json" "$removed" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); shmid = int(sys.argv[2])
assert r["leaks"] == [], r["leaks"]
assert r["summary"]["removed_by_other"] == 1, r["summary"]
seg = [s for s in r["segments"] if s.get("shmid") == shmid]
assert len(seg) == 1 and seg[0]["status"] != "leaked", seg
PYEOF
"$SHMK_TOOL" report "$logs" 2>&1 | grep -q "removed by pid" ||
	{ echo "FAIL: the remover is not named"; exit 1; }

# shmkeeper run: the program's own status without leaks, N with them.
set +e
"$SHMK_TOOL" run --error-exitcode=7 -- ipcmk -M 8192 > "$logs/run.out" 2>&1
rc=$?
set -e
id=$(sed -n 's/^Shared memory id: \([0-9]*\)$/\1/p' "$logs/run.out")
[ "$rc" = 7 ] || { echo "FAIL: run --error-exitcode=7 gave $rc"; cat "$logs/run.out"; exit 1; }
ipcrm -m "$id"
id=
"$SHMK_TOOL" run --error-exitcode=7 -- true || { echo "FAIL: run of a clean program"; exit 1; }
echo "ok: ipcmk leak found, ipcrm removal attributed, exit codes right"
