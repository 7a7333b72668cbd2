#!/bin/sh
# Frames in dlopen'ed code are symbolised: the module is in the log before
# the event even though events look at the module list only when a frame is
# new (core/record.c), and a library loaded where a dlclose'd one was (the
# dlclose wrapper) is not taken for the first.
. "$top_srcdir/tests/lib.sh"
need_lib
[ -n "${PYTHON3:-}" ] || skip "python3 not found"
one=$SHMK_TESTBIN/.libs/dlplug1.so
two=$SHMK_TESTBIN/.libs/dlplug2.so
[ -f "$one" ] && [ -f "$two" ] || skip "plugins not built"
log=$(new_logdir)
with_preload "$log" "$SHMK_TESTBIN/dlhost" "$one" "$two" >"$WORK/out" 2>"$WORK/err" ||
	fail "dlhost: $(cat "$WORK/err")"
# The two leaked segments go at exit (CLEANUP is eval'ed: one command a line).
for id in $(awk '{print $2}' "$WORK/out"); do
	CLEANUP="$CLEANUP
ipcrm -m $id"
done
a1=$(awk '$1 == "plug_one" {print $3}' "$WORK/out")
a2=$(awk '$1 == "plug_two" {print $3}' "$WORK/out")
note "plug_one at $a1, plug_two at $a2"
"$SHMK_TOOL" report --format=json "$log" >"$WORK/report.json" 2>/dev/null
"$PYTHON3" - "$WORK/report.json" "$WORK/out" <<'PY' || fail "frames not attributed (see above)"
import json, sys
rep = json.load(open(sys.argv[1]))
ids = {l.split()[0]: int(l.split()[1]) for l in open(sys.argv[2])}
ok = True
for fn, want_mod in (("plug_one", "dlplug1.so"), ("plug_two", "dlplug2.so")):
    leak = [l for l in rep["leaks"] if l.get("shmid") == ids[fn]]
    if not leak:
        print("no leak for", fn); ok = False; continue
    frames = leak[0].get("backtrace", [])
    hit = [f for f in frames if f.get("function") == fn]
    if not hit:
        print(fn, ": no frame names it:", [(f.get("function"), f.get("module")) for f in frames])
        ok = False
    elif not hit[0].get("module", "").endswith(want_mod):
        print(fn, ": frame in", hit[0].get("module")); ok = False
sys.exit(0 if ok else 1)
PY
echo ok
