#!/bin/sh
# What the report says beyond lifetimes (issues 5 and 6), from real runs of
# plain programs under LD_PRELOAD:
#  1. span warnings: a span too small (SK_W_SPAN_FULL, warn policy) and an
#     explicit address inside the span (SK_W_ADDR_IN_SPAN): a "Warnings"
#     section in text, by code and process, with the text and arguments;
#     a "warnings" array in JSON (schema-checked);
#  2. placed attaches: marked in text and JSON;
#  3. termination cleanups (SHMKEEPER_CLEANUP=owned) at exit and at SIGTERM:
#     a "Removed by termination cleanup" section in text, "signal" in JSON.
set -u
: "${SHMK_TOOL:?}" "${SHMK_TESTBIN:?}" "${top_srcdir:?}"
lib=${SHMK_LIB:-}
span_prog="$SHMK_TESTBIN/span_prog"
shmprog="$SHMK_TESTBIN/cleanup_shmprog"
[ -n "$lib" ] && [ -f "$lib" ] || { echo "SKIP: no library (SHMK_LIB)"; exit 77; }
[ -x "$span_prog" ] && [ -x "$shmprog" ] || { echo "SKIP: test programs not built"; exit 77; }
[ -d /dev/shm ] || { echo "SKIP: no /dev/shm"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/shmk-warn.XXXXXX") || exit 99
name=report_warn_$$
# Spans of our own, clear of the other tests' (shifted by our pid).
base=$(( 0x2f0000000000 + ($$ % 256) * 0x1000000000 ))
s1=$(printf '%x' $base); s2=$(printf '%x' $((base + 0x100000000)))
trap 'rm -rf "$dir" /dev/shm/${name}_*; rm -f /dev/shm/shmkeeper.span.*.$s1.* /dev/shm/shmkeeper.span.*.$s2.*' EXIT
fail=0
check() {
	desc=$1; shift
	if "$@"; then echo "ok: $desc"; else echo "FAIL: $desc"; fail=1; fi
}
schema() {
	[ -z "${PYTHON3:-}" ] || "$PYTHON3" "$top_srcdir/tests/report_schema_check.py" --builtin \
		"$top_srcdir/doc/report.schema.json" "$1" >/dev/null
}

# 1. A span of 64 KiB, a segment of 1 MiB: not placed, the kernel's address used.
mkdir "$dir/full"
SHMKEEPER_LOG_DIR=$dir/full SHMKEEPER_SPAN=0x$s1:64K SHMKEEPER_SPAN_POLICY=warn \
	LD_PRELOAD=$lib "$span_prog" one 1048576 "/${name}_f" >/dev/null 2>&1 || exit 99
"$SHMK_TOOL" report "$dir/full" >"$dir/full.txt" 2>&1
"$SHMK_TOOL" report --format=json "$dir/full" >"$dir/full.json" 2>/dev/null
cat "$dir/full.txt"
check "text: a Warnings section" grep -qx '== Warnings:' "$dir/full.txt"
check "text: by code, with the count" grep -q '^   span_full: not placed in the span, the kernel.s address was used: 2 in 1 process$' "$dir/full.txt"
check "text: by process" grep -q '^     pid [0-9]* (.*span_prog):$' "$dir/full.txt"
check "text: shmat, with its error and shmid" grep -q '^       shmat not placed in the span: kernel.s address used: error ENOSPC, shmid [0-9]* ' "$dir/full.txt"
check "text: mmap, with its error and fd" grep -q '^       mmap not placed in the span: kernel.s address used: error ENOSPC, fd [0-9]* ' "$dir/full.txt"
check "JSON: schema" schema "$dir/full.json"
if [ -n "${PYTHON3:-}" ]; then
	check "JSON: warnings array" "$PYTHON3" -c "
import json; r = json.load(open('$dir/full.json'))
w = r['warnings']
assert [x['code'] for x in w] == ['span_full', 'span_full'], w
assert all(x['error'] == 'ENOSPC' and x['arg1'] == 28 and x['pid'] == r['processes'][0]['pid'] for x in w), w
assert w[0]['text'].startswith('shmat') and w[1]['text'].startswith('mmap'), w
assert r['summary']['warnings'] == 2 and r['processes'][0]['warnings'] == 2"
fi

# 2. An explicit address inside the span (honoured, warned), then a placement.
mkdir "$dir/fixed"
a=$(printf '0x%x' $((0x$s2 + 0x8000)))
SHMKEEPER_LOG_DIR=$dir/fixed SHMKEEPER_SPAN=0x$s2:1G SHMKEEPER_SPAN_POLICY=warn \
	LD_PRELOAD=$lib "$span_prog" fixed "$a" >"$dir/fixed.out" 2>&1 || exit 99
other=$(sed -n 's/^other //p' "$dir/fixed.out")
"$SHMK_TOOL" report --show-all "$dir/fixed" >"$dir/fixed.txt" 2>&1
"$SHMK_TOOL" report --format=json "$dir/fixed" >"$dir/fixed.json" 2>/dev/null
cat "$dir/fixed.txt"
check "text: the explicit address" grep -q "^       shmat at an explicit address inside the span: address $a, shmid [0-9]* " "$dir/fixed.txt"
check "text: the placed attach, at its address" grep -q "attached  by pid [0-9]* (.*span_prog) at $other, placed in the span " "$dir/fixed.txt"
check "text: the explicit one is not marked placed" sh -c "! grep -q 'at $a, placed' '$dir/fixed.txt'"
check "JSON: schema" schema "$dir/fixed.json"
if [ -n "${PYTHON3:-}" ]; then
	check "JSON: addr_in_span with its address; placed attach" "$PYTHON3" -c "
import json; r = json.load(open('$dir/fixed.json'))
w = r['warnings']
assert len(w) == 1 and w[0]['code'] == 'addr_in_span' and w[0]['address'] == '$a', w
placed = [e for s in r['segments'] for e in s['events'] if e.get('placed')]
assert [e['address'] for e in placed] == ['$other'], placed
assert sum(s.get('placed', 0) for s in r['segments']) == 1"
fi

# 3. Termination cleanups: at exit, and at SIGTERM.
for how in exit wait; do
	mkdir "$dir/$how"
	rm -f "$dir/ids"
	SHMKEEPER_LOG_DIR=$dir/$how SHMKEEPER_CLEANUP=owned LD_PRELOAD=$lib \
		"$shmprog" $how "/${name}_$how" "$dir/ids" >/dev/null 2>&1 &
	bg=$!
	n=0; while [ ! -s "$dir/ids" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done
	[ $how = wait ] && kill -TERM $bg
	wait $bg
	"$SHMK_TOOL" report "$dir/$how" >"$dir/$how.txt" 2>&1
	"$SHMK_TOOL" report --format=json "$dir/$how" >"$dir/$how.json" 2>/dev/null
	cat "$dir/$how.txt"
	[ $how = exit ] && when='at exit' || when='at signal 15 (SIGTERM)'
	check "$how: a cleanup section" grep -qx '== Removed by termination cleanup:' "$dir/$how.txt"
	check "$how: SysV listed" grep -q "^   SysV shmid [0-9]* key IPC_PRIVATE, 8192 bytes: created by pid [0-9]* (.*cleanup_shmprog), removed by pid [0-9]* (.*cleanup_shmprog) $when\$" "$dir/$how.txt"
	check "$how: POSIX listed" grep -q "^   POSIX /${name}_$how, 4096 bytes: .* $when\$" "$dir/$how.txt"
	check "$how: no leak" grep -q '^LEAK SUMMARY: 0 segments leaked' "$dir/$how.txt"
	check "$how: JSON schema" schema "$dir/$how.json"
	if [ $how = wait ]; then
		check "wait: JSON signal" [ "$(grep -c '"how": "cleanup", "signal": 15' "$dir/$how.json")" = 2 ]
	fi
done
exit $fail
