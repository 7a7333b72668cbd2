#!/bin/sh
# The whole report (reader, model, symbolisation, both formats) over randomly
# damaged logs: never a crash, always a documented exit status, JSON that
# parses. SHMK_FUZZ_SEED replays a run; SHMK_FUZZ_ITER sets its length.
set -u
: "${SHMK_TOOL:?}" "${SHMK_TESTBIN:?}" "${top_srcdir:?}"
[ -n "${PYTHON3:-}" ] || { echo "SKIP: python3 not found"; exit 77; }
mklog="$SHMK_TESTBIN/tool_mklog"
dir=$(mktemp -d "${TMPDIR:-/tmp}/shmk-fuzz.XXXXXX") || exit 99
trap '"$mklog" --cleanup "$dir/base"; rm -rf "$dir"' EXIT
"$mklog" "$dir/base" damaged || exit 99
seed=${SHMK_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "seed $seed"
"$PYTHON3" "$top_srcdir/tests/report_fuzz.py" "$SHMK_TOOL" "$dir/base" "$dir/work" \
	"${SHMK_FUZZ_ITER:-60}" "$seed"
