#!/bin/sh
# report --diff OLD NEW: leaks matched by kind and creating stack across two
# runs (different pids, shmids and addresses): new, gone and unchanged, per
# stack; --error-exitcode only for new leaks; JSON; suppressions on both.
set -u
tool=${SHMK_TOOL:?}; bin=${SHMK_TESTBIN:?}
[ -x "$bin/leakmix" ] || { echo "SKIP: tests/leakmix is not built"; exit 77; }
[ -r "${SHMK_LIB:-}" ] || { echo "SKIP: libshmkeeper.so is not built"; exit 77; }
. "$top_srcdir/tests/lib.sh"
tmp=$WORK
CLEANUP='remove_leaks "$tmp"/*.leaks'
record() {   # record NAME LETTERS...
	n=$1; shift
	SHMKEEPER_LIB=$SHMK_LIB "$tool" run --log-dir="$tmp/$n" "$bin/leakmix" "$@" \
		>"$tmp/$n.leaks" 2>"$tmp/$n.err" || fail "run $n failed: $(cat "$tmp/$n.err")"
}
sum() { grep '^DIFF SUMMARY' "$1"; }

record old a p       # leaks from leak_a and leak_posix
record new a a b p   # two from leak_a now, a new one from leak_b; leak_posix as before
record none r        # no leak

"$tool" report --diff "$tmp/old" "$tmp/new" >"$tmp/d1" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "d1: status $rc without --error-exitcode"
sum "$tmp/d1" | grep -q '^DIFF SUMMARY: 2 new, 0 gone, 2 unchanged$' || fail "d1: $(sum "$tmp/d1")"
grep -A4 '^== New leaks' "$tmp/d1" | grep -q '+1 SysV segment (1 in old, 2 in new' || fail "d1: leak_a's extra one"
grep -A20 '^== New leaks' "$tmp/d1" | grep -q 'leak_b leakmix.c:' || fail "d1: leak_b's stack not shown"
"$tool" report --error-exitcode=7 --diff "$tmp/old" "$tmp/new" >/dev/null 2>&1
rc=$?
[ $rc -eq 7 ] || fail "d1: status $rc with new leaks, want 7"

# The other way: nothing new, so --error-exitcode does not fire.
"$tool" report --error-exitcode=7 --diff "$tmp/new" "$tmp/old" >"$tmp/d2" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "d2: status $rc with only gone leaks, want 0"
sum "$tmp/d2" | grep -q '^DIFF SUMMARY: 0 new, 2 gone, 2 unchanged$' || fail "d2: $(sum "$tmp/d2")"

# A run against itself, and against a clean run.
"$tool" report --error-exitcode=7 --diff "$tmp/old" "$tmp/old" >"$tmp/d3" 2>&1 || fail "d3: status $?"
sum "$tmp/d3" | grep -q '^DIFF SUMMARY: 0 new, 0 gone, 2 unchanged$' || fail "d3: $(sum "$tmp/d3")"
"$tool" report --error-exitcode=7 --diff "$tmp/none" "$tmp/old" >"$tmp/d4" 2>&1
[ $? -eq 7 ] || fail "d4: want 7"
sum "$tmp/d4" | grep -q '^DIFF SUMMARY: 2 new, 0 gone, 0 unchanged$' || fail "d4: $(sum "$tmp/d4")"

# JSON.
"$tool" report --format=json --diff "$tmp/old" "$tmp/new" >"$tmp/d5.json" 2>"$tmp/d5.err" || fail "d5: status $?"
grep -q '"summary": {"new": 2, "gone": 0, "unchanged": 2}' "$tmp/d5.json" || fail "d5: summary"
grep -q '"status": "new", "kind": "sysv", "old": 0, "new": 1' "$tmp/d5.json" || fail "d5: leak_b"
grep -q '"status": "more", "kind": "sysv", "old": 1, "new": 2, "added": 1, "removed": 0, "unchanged": 1' \
	"$tmp/d5.json" || fail "d5: leak_a"
if [ -n "${PYTHON3:-}" ]; then
	"$PYTHON3" -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/d5.json" || fail "d5 does not parse"
fi

# Suppressions apply to both runs: leak_b suppressed, nothing new but leak_a's.
printf '{\n   b\n   shmkeeper:Leak\n   fun:sysv\n   fun:leak_b\n}\n' >"$tmp/b.supp"
"$tool" report --suppressions="$tmp/b.supp" --diff "$tmp/old" "$tmp/new" >"$tmp/d6" 2>&1
sum "$tmp/d6" | grep -q '^DIFF SUMMARY: 1 new, 0 gone, 2 unchanged$' || fail "d6: $(sum "$tmp/d6")"

# Usage errors: a missing directory is status 2, html is refused.
"$tool" report --diff "$tmp/missing" "$tmp/new" >/dev/null 2>&1
[ $? -eq 2 ] || fail "missing OLD: want status 2"
"$tool" report --format=html --diff "$tmp/old" "$tmp/new" >/dev/null 2>&1
[ $? -eq 1 ] || fail "--format=html --diff: want status 1"
echo PASS
