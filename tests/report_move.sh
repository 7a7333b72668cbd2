#!/bin/sh
# A POSIX attachment that mremap moves: the report shows the move (text
# "remapped ... from OLD to NEW", JSON a "move" event with "from" and
# "address"), and the detach that follows is at the new address, the
# attachment's length the new one; HTML keeps it one attach bar.
set -u
tool=${SHMK_TOOL:?}; bin=${SHMK_TESTBIN:?}
[ -x "$bin/leakmix" ] || { echo "SKIP: tests/leakmix is not built"; exit 77; }
[ -r "${SHMK_LIB:-}" ] || { echo "SKIP: libshmkeeper.so is not built"; exit 77; }
. "$top_srcdir/tests/lib.sh"
tmp=$WORK
CLEANUP='remove_leaks "$tmp"/*.leaks'

SHMKEEPER_LIB=$SHMK_LIB "$tool" run --log-dir="$tmp/l" "$bin/leakmix" m \
	>"$tmp/l.leaks" 2>"$tmp/run.err" || fail "run failed: $(cat "$tmp/run.err")"
set -- $(sed -n 's/^moved //p' "$tmp/l.leaks")
old=${1:-}; new=${2:-}
[ -n "$old" ] && [ -n "$new" ] && [ "$old" != "$new" ] || fail "leakmix m: $(cat "$tmp/l.leaks")"

grep -q "remapped  by pid [0-9]* ([^)]*leakmix) from $old to $new, 65536 bytes" "$tmp/run.err" ||
	fail "text: no move from $old to $new: $(grep -E 'attached|remapped|detached' "$tmp/run.err")"
grep -q "detached  by pid [0-9]* ([^)]*leakmix) at $new" "$tmp/run.err" ||
	fail "text: the detach is not at $new: $(grep -E 'detached' "$tmp/run.err")"
note "ok: text shows the move"

"$tool" report --format=json "$tmp/l" >"$tmp/r.json" || fail "report --format=json: status $?"
if [ -n "${PYTHON3:-}" ]; then
	"$PYTHON3" - "$tmp/r.json" "$old" "$new" <<'PY' || fail "json: see above"
import json, sys
r = json.load(open(sys.argv[1]))
old, new = sys.argv[2], sys.argv[3]
segs = [s for s in r["segments"] if s.get("name", "").startswith("/shmk-leakmix-move-")]
assert len(segs) == 1, segs
ev = [(e["type"], e.get("from"), e.get("address"), e.get("length")) for e in segs[0]["events"]
      if e["type"] in ("attach", "move", "detach")]
want = [("attach", None, old, 4096), ("move", old, new, 65536), ("detach", None, new, 65536)]
if ev != want:
    sys.exit("events %s, want %s" % (ev, want))
assert segs[0]["attaches"] == 1, segs[0]["attaches"]
PY
	"$PYTHON3" "$top_srcdir/tests/report_schema_check.py" --builtin "$top_srcdir/doc/report.schema.json" \
		"$tmp/r.json" >/dev/null || fail "json: the move breaks the schema"
	note "ok: json shows the move, and keeps to the schema"
fi
"$tool" report --format=html "$tmp/l" >"$tmp/r.html" || fail "report --format=html: status $?"
grep -q "e.type==='move'" "$tmp/r.html" || fail "html: the timeline does not follow a move"
note "ok: html follows a move"
