#!/bin/sh
# `report --format=json` against the schema doc/report.schema.json, with
# python3's jsonschema when installed and always with the small checker in
# tests/report_schema_check.py; and a document that breaks the schema must be
# refused (the checker checks).
set -u
: "${SHMK_TOOL:?}" "${SHMK_TESTBIN:?}" "${top_srcdir:?}"
[ -n "${PYTHON3:-}" ] || { echo "SKIP: python3 not found"; exit 77; }
mklog="$SHMK_TESTBIN/tool_mklog"
schema="$top_srcdir/doc/report.schema.json"
checker="$top_srcdir/tests/report_schema_check.py"
dir=$(mktemp -d "${TMPDIR:-/tmp}/shmk-json.XXXXXX") || exit 99
trap '"$mklog" --cleanup "$dir/leaks"; "$mklog" --cleanup "$dir/damaged"; rm -rf "$dir"' EXIT
fail=0

"$mklog" "$dir/leaks" leaks && "$mklog" "$dir/damaged" damaged && mkdir "$dir/empty" || exit 99
for d in leaks damaged empty; do
	"$SHMK_TOOL" report --format=json "$dir/$d" >"$dir/$d.json" 2>/dev/null
done
"$PYTHON3" "$checker" "$schema" "$dir/leaks.json" "$dir/damaged.json" "$dir/empty.json" || fail=1
"$PYTHON3" "$checker" --builtin "$schema" "$dir/leaks.json" "$dir/damaged.json" "$dir/empty.json" || fail=1

# The checkers must see a broken document.
"$PYTHON3" - "$dir/leaks.json" "$dir/broken.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["leaks"][0]["kind"] = "mmap"
del r["leaks"][1]["backtrace"]
r["processes"][0]["pid"] = "1"
json.dump(r, open(sys.argv[2], "w"))
PY
for how in "" --builtin; do
	if "$PYTHON3" "$checker" $how "$schema" "$dir/broken.json" >"$dir/broken.out"; then
		echo "FAIL: a broken document passed ${how:-the default checker}"; fail=1
	else
		echo "ok: broken document refused ${how:-}"
	fi
done
exit $fail
