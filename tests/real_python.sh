#!/bin/sh
# Python's multiprocessing.shared_memory, unmodified, under the library:
#  - clean use (close + unlink): no leak;
#  - unlink forgotten: the resource_tracker (a separate python process) unlinks
#    it at exit: not a leak, and the report says another process removed it;
#  - unlink forgotten and the tracker told to forget it: one leak, named.
set -eu
. "$top_srcdir/tests/lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=${PYTHON3:-python3}
"$PY" -c 'import multiprocessing.shared_memory' 2>/dev/null ||
	{ echo "SKIP: python3 with multiprocessing.shared_memory not available"; exit 77; }
work=$(mktemp -d)
leftover=
cleanup() {
	[ -n "$leftover" ] && rm -f "/dev/shm/$leftover"
	rm -rf "$work"
}
CLEANUP=cleanup   # run by tests/lib.sh at exit

scenario() {   # scenario NAME SHM-NAME-TO-WAIT-FOR PYTHON-CODE -> logs in $work/NAME
	mkdir "$work/$1"
	SHMKEEPER_LOG_DIR=$work/$1 LD_PRELOAD=$PRELOAD "$PY" -c "$3" > "$work/$1.out" 2> "$work/$1.err"
	# The resource_tracker outlives the program by a moment: wait for it.
	n=0
	while [ -n "$2" ] && [ -e "/dev/shm/$2" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	sleep 0.2   # its record lands just after the object goes
	"$SHMK_TOOL" report --format=json "$work/$1" > "$work/$1.json"
}

tag=shmk$$
scenario clean "${tag}a" "
from multiprocessing import shared_memory
s = shared_memory.SharedMemory(name='${tag}a', create=True, size=10000)
s.buf[0] = 1
s.close(); s.unlink()"
scenario forgot "${tag}b" "
from multiprocessing import shared_memory
s = shared_memory.SharedMemory(name='${tag}b', create=True, size=20000)
s.buf[0] = 1
s.close()"
leftover=${tag}c
scenario untracked "" "
from multiprocessing import shared_memory, resource_tracker
s = shared_memory.SharedMemory(name='${tag}c', create=True, size=30000)
s.buf[0] = 1
resource_tracker.unregister(s._name, 'shared_memory')
s.close()"

"$PY" - "$work" "$tag" <<'PYEOF'
import json, sys, os
work, tag = sys.argv[1], sys.argv[2]
def load(n): return json.load(open(os.path.join(work, n + ".json")))

r = load("clean")
assert r["leaks"] == [], ("clean", r["leaks"])
segs = [s for s in r["segments"] if s.get("name") == "/" + tag + "a"]
assert len(segs) == 1 and segs[0]["size"] >= 10000, segs

r = load("forgot")
assert r["leaks"] == [], ("forgot", r["leaks"])
assert r["summary"]["removed_by_other"] == 1, r["summary"]
segs = [s for s in r["segments"] if s.get("name") == "/" + tag + "b"]
assert len(segs) == 1, segs
assert r["summary"]["processes"] >= 2, r["summary"]  # the tracker was recorded

r = load("untracked")
leaks = r["leaks"]
assert len(leaks) == 1, ("untracked", leaks)
l = leaks[0]
assert l["kind"] == "posix" and l["name"] == "/" + tag + "c", l
assert l["size"] >= 30000, l
assert "python" in l["creator"]["exe"], l["creator"]
PYEOF
"$SHMK_TOOL" report "$work/forgot" 2>&1 | grep -q "removed by pid" ||
	{ echo "FAIL: the resource_tracker's removal is not named"; exit 1; }
echo "ok: clean, forgotten (tracker removed it) and untracked (one leak) come out right"
