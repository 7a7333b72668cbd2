#!/bin/sh
# The report at scale, small (issue 4): logs written by bench/reportscale.c
# (built as tests/report_scalegen), ten processes, 100k and then 400k events
# over the same 50 segments. The report's peak RSS must not grow with the
# events (its memory follows the segments: a bounded history per segment and
# process, no copy of the events), the histories it cut must say so in the
# text and JSON reports, and the JSON must still match the schema.
# Every log is larger than the reader's window in both runs, so the windows
# cost the same and the comparison sees the model alone.
set -u
: "${SHMK_TOOL:?}" "${SHMK_TESTBIN:?}" "${top_srcdir:?}"
gen="$SHMK_TESTBIN/report_scalegen"
[ -x "$gen" ] || { echo "SKIP: $gen not built"; exit 77; }
[ -x /usr/bin/time ] || { echo "SKIP: needs /usr/bin/time (apt-get install time)"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/shmk-scale.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0
check() {
	desc=$1; shift
	if "$@"; then echo "ok: $desc"; else echo "FAIL: $desc"; fail=1; fi
}

run() {   # run EVENTS -> $dir/N.txt, N.json; prints "rss_kb cpu_s"
	"$gen" "$dir/l$1" 10 "$1" 5 8 >/dev/null || exit 99
	SHMKEEPER_NO_PROGRESS=1 /usr/bin/time -f '%M %U %S' -o "$dir/t$1" \
		"$SHMK_TOOL" report --show-all "$dir/l$1" >"$dir/$1.txt" 2>"$dir/$1.err"
	"$SHMK_TOOL" report --format=json "$dir/l$1" >"$dir/$1.json" 2>/dev/null
	rm -rf "$dir/l$1"
	awk '{ printf "%d %.2f\n", $1, $2 + $3 }' "$dir/t$1"
}
set -- $(run 100000) $(run 400000)
small=$1 cpu1=$2 big=$3 cpu2=$4
echo "peak RSS: $small KB at 100k events ($cpu1 s cpu), $big KB at 400k events ($cpu2 s cpu)"
check "the report ran (100k)" grep -q '^LEAK SUMMARY' "$dir/100000.txt"
check "the report ran (400k)" grep -q '^LEAK SUMMARY' "$dir/400000.txt"
# 4x the events; allow 4 MB of noise (malloc's arenas), not 4x.
check "peak RSS does not grow with the events" [ "$big" -le $((small + 4096)) ]
check "cut histories say so (text)" grep -q '^     \.\.\. and [0-9]* more uses by pid 100000 (/opt/bench/server)$' "$dir/400000.txt"
check "attaches are all counted" grep -q 'SysV shmid 0 key IPC_PRIVATE, 4096 bytes, perms 0600, [0-9]\{4,\} attaches' "$dir/400000.txt"
if [ -n "${PYTHON3:-}" ]; then
	check "JSON: events_omitted, summary, schema" "$PYTHON3" - "$dir/400000.json" \
		"$top_srcdir/tests/report_schema_check.py" "$top_srcdir/doc/report.schema.json" <<'PY'
import json, subprocess, sys
r = json.load(open(sys.argv[1]))
cut = [s for s in r["segments"] if s.get("events_omitted")]
assert len(cut) == 50, len(cut)
s = cut[0]
assert len(s["events"]) == 64, len(s["events"])
om = s["events_omitted"][0]
assert om["count"] > 1000 and om["pid"] == r["processes"][om["process"]]["pid"], om
assert r["summary"]["events_omitted"] == sum(o["count"] for s in cut for o in s["events_omitted"])
subprocess.check_call([sys.executable, sys.argv[2], "--builtin", sys.argv[3], sys.argv[1]])
PY
fi
exit $fail
