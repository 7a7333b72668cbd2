#!/bin/sh
# Symbol collisions (STYLE.md, libfiu's tests/collisions): a program with its
# own sk_* functions keeps them under the library, and the library still
# records it.
. "$top_srcdir/tests/lib.sh"
need_lib
"$SHMK_TESTBIN/collide" >/dev/null || fail "the program fails without the library"
log=$WORK/logs
mkdir "$log"
out=$(SHMKEEPER_LOG_DIR=$log LD_PRELOAD=$PRELOAD "$SHMK_TESTBIN/collide") ||
	fail "under the library the program's own sk_* functions were not called ($out)"
[ "$out" = 165 ] || fail "unexpected output $out"
"$SHMK_TOOL" report --format=json "$log" > "$WORK/r.json" 2>/dev/null
grep -q '"segments_created": 1' "$WORK/r.json" || fail "the library did not record the program"
echo "ok: the program's sk_* functions ran, and it was recorded"
