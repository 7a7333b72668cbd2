#!/bin/sh
# Bad input: a cut log, a log with a hole, a corrupt one, a newer format, a
# full one (records dropped), a file that is not a log, an empty file, an empty and a missing directory.
# One line each naming the file (and the offset), the rest still reported,
# the documented exit statuses, never a crash.
set -u
: "${SHMK_TOOL:?}" "${SHMK_TESTBIN:?}"
mklog="$SHMK_TESTBIN/tool_mklog"
dir=$(mktemp -d "${TMPDIR:-/tmp}/shmk-bad.XXXXXX") || exit 99
trap '"$mklog" --cleanup "$dir/logs"; rm -rf "$dir"' EXIT
fail=0
check() {
	desc=$1; shift
	if "$@"; then echo "ok: $desc"; else echo "FAIL: $desc"; fail=1; fi
}

"$mklog" "$dir/logs" damaged || exit 99
"$SHMK_TOOL" report "$dir/logs" >"$dir/out" 2>"$dir/err"
rc=$?
cat "$dir/err"
check "exit 3: report printed, some logs unusable" [ "$rc" = 3 ]
check "the good logs still reported" grep -q '^LEAK SUMMARY: 3 segments leaked, 12288 bytes$' "$dir/out"
L="$dir/logs"
check "cut log" grep -qx "shmkeeper: $L/shmk-9001-0.shmk: offset [0-9]*: file cut short inside a record" "$dir/err"
check "hole" grep -qx "shmkeeper: $L/shmk-9002-0.shmk: offset 4096: hole of 88 bytes (a record its writer did not commit: killed during a call)" "$dir/err"
check "corrupt head word" grep -qx "shmkeeper: $L/shmk-9003-0.shmk: offset 4096: bad record magic (head word 0xdeadbeef); skipped 24 bytes" "$dir/err"
check "corrupt name" grep -qx "shmkeeper: $L/shmk-9003-0.shmk: offset 4120: posix_unlink record: name not terminated" "$dir/err"
check "newer version" grep -qx "shmkeeper: $L/shmk-9004-0.shmk: offset 8: log format version 3 is not one this shmkeeper reads (1 to 2)" "$dir/err"
check "not a log" grep -qx "shmkeeper: $L/shmk-9005-0.shmk: offset 0: not a shmkeeper log (bad magic)" "$dir/err"
check "empty file" grep -qx "shmkeeper: $L/shmk-9006-0.shmk: offset 0: empty file, not a shmkeeper log" "$dir/err"
check "log full: records dropped" grep -qx "shmkeeper: $L/shmk-9007-0.shmk: 5 records were not written (log full): this process's events are incomplete" "$dir/err"
check "one line per problem" [ "$(wc -l <"$dir/err")" = 8 ]
check "records after a hole are read" grep -q 'shmk-9002-0.shmk' "$dir/err"

"$SHMK_TOOL" report --error-exitcode=9 "$dir/logs" >/dev/null 2>&1
check "leaks found outrank damaged logs" [ $? = 9 ]
"$SHMK_TOOL" report --format=json "$dir/logs" >"$dir/json" 2>/dev/null
check "JSON still produced (exit 3)" [ $? = 3 ]
if [ -n "${PYTHON3:-}" ]; then
	check "JSON parses and counts the bad logs" "$PYTHON3" -c "
import json,sys; r=json.load(open('$dir/json'))
assert r['summary']['logs_unreadable'] == 3 and r['summary']['logs_damaged'] == 3, r['summary']"
fi

mkdir "$dir/empty"
"$SHMK_TOOL" report "$dir/empty" >"$dir/eout" 2>"$dir/eerr"
check "empty directory: exit 3" [ $? = 3 ]
check "empty directory: one line" grep -qx "shmkeeper: $dir/empty: no shmkeeper logs (shmk-\*.shmk) in this directory" "$dir/eerr"
"$SHMK_TOOL" report "$dir/missing" >"$dir/mout" 2>"$dir/merr"
check "missing directory: exit 2" [ $? = 2 ]
check "missing directory: one line" grep -qx "shmkeeper: $dir/missing: No such file or directory" "$dir/merr"
check "missing directory: no report" [ ! -s "$dir/mout" ]
"$SHMK_TOOL" report >/dev/null 2>&1
check "usage error: exit 1" [ $? = 1 ]
"$SHMK_TOOL" report --format=xml "$dir/logs" >/dev/null 2>&1
check "bad option value: exit 1" [ $? = 1 ]
"$SHMK_TOOL" report --error-exitcode=0 "$dir/logs" >/dev/null 2>&1
check "--error-exitcode=0 refused" [ $? = 1 ]
"$SHMK_TOOL" report "$dir/logs/shmk-9002-0.shmk" >"$dir/one" 2>/dev/null
check "a single log file can be reported" grep -q '^LEAK SUMMARY' "$dir/one"
exit $fail
