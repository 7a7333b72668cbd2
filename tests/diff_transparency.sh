#!/bin/sh
# Differential transparency (issue 8): seeded random sequences of SysV and
# POSIX shared-memory calls (tests/diff_gen.c) run raw and under the library;
# every return value, errno and the final namespace must be identical.
#
#   SHMK_DIFF_SEED=N   first seed (default: from the clock, printed)
#   SHMK_DIFF_RUNS=N   sequences (default 10)
#   SHMK_DIFF_COUNT=N  calls per sequence (default 10000)
# Each sequence runs three times: raw, preloaded (defaults), preloaded with
# SHMKEEPER_SPAN=off (recording alone). A failing seed is printed with the
# command that replays it.
. "$top_srcdir/tests/lib.sh"
need_lib

seed0=${SHMK_DIFF_SEED:-$(date +%s)}
runs=${SHMK_DIFF_RUNS:-10}
count=${SHMK_DIFF_COUNT:-10000}
gen=$SHMK_TESTBIN/diff_gen

uopt=
if [ "$(id -u)" = 0 ] && command -v useradd >/dev/null 2>&1; then
	ug=$(make_user shmkeeper-test) && uopt="-u $ug"
else
	note "not root: the permission-denied cases are left out"
fi

note "seeds $seed0..$((seed0 + runs - 1)), $count calls each, 3 runs each"
failed=0
s=$seed0
while [ "$s" -lt $((seed0 + runs)) ]; do
	pfx="${UNIQ}s$s"
	"$gen" $uopt -p "$pfx" "$s" "$count" >"$WORK/raw" 2>"$WORK/raw.err" ||
		hard "diff_gen failed raw (seed $s): $(cat "$WORK/raw.err")"
	for mode in default off; do
		log=$(new_logdir)
		if [ $mode = off ]; then span=off; else span=${SHMKEEPER_SPAN:-}; fi
		SHMKEEPER_SPAN=$span with_preload "$log" "$gen" $uopt -p "$pfx" "$s" "$count" \
			>"$WORK/pre" 2>"$WORK/pre.err" ||
			{ echo "seed $s ($mode): diff_gen failed preloaded: $(head -5 "$WORK/pre.err")"; failed=1; continue; }
		if ! cmp -s "$WORK/raw" "$WORK/pre"; then
			echo "FAIL seed $s (SHMKEEPER_SPAN=${span:-default}): outputs differ; first differences:"
			diff "$WORK/raw" "$WORK/pre" | head -12
			echo "replay: $gen $uopt $s $count   (raw, then with LD_PRELOAD=$SHMK_LIB" \
			     "SHMKEEPER_LOG_DIR=DIR SHMKEEPER_SPAN=$span)"
			failed=1
		fi
		if [ -s "$WORK/pre.err" ]; then
			echo "seed $s ($mode): the library wrote to stderr:"; head -5 "$WORK/pre.err"
			failed=1
		fi
		# The logs it left must read back without damage.
		if ! logdump "$log" >"$WORK/dump" 2>"$WORK/dump.err"; then
			echo "seed $s ($mode): damaged log:"; head -5 "$WORK/dump.err"
			failed=1
		fi
		nev=$(grep -cE '^(sysv_|posix_|unmap|remap|resize)' "$WORK/dump" || true)
		[ "$nev" -gt 0 ] || { echo "seed $s ($mode): no events recorded"; failed=1; }
		rm -rf "$log"
	done
	s=$((s + 1))
done
[ $failed = 0 ] || fail "transparency broken (see above)"
echo "ok: $((runs * count)) calls, raw and preloaded twice, identical"
