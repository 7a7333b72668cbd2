#!/bin/sh
# The log reader under seeded random mutations of real logs, for a bounded
# time (issue 8): SHMK_FUZZ_SECONDS (default 5), SHMK_FUZZ_SEED replays.
. "$top_srcdir/tests/lib.sh"
"$SHMK_TESTBIN/fuzz_logread" "$top_srcdir/tests/corpus/log" "${SHMK_FUZZ_SECONDS:-5}" \
	${SHMK_FUZZ_SEED:+"$SHMK_FUZZ_SEED"} || fail "the log reader failed under fuzzing (see above)"

# The libFuzzer target (tests/fuzz_logread_lf.c), coverage-guided, under ASan
# and UBSan, when clang with libFuzzer is here: built into a scratch dir so the
# plain build's compiler does not matter. SHMK_LIBFUZZER_SECONDS (default 10).
CLANG=${CLANG:-clang}
if command -v "$CLANG" >/dev/null 2>&1; then
	bin=$WORK/fuzz_logread_lf
	if "$CLANG" -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined \
		-I"$top_srcdir" -I"$top_srcdir/include" -include "$top_builddir/config.h" \
		"$top_srcdir/tests/fuzz_logread_lf.c" "$top_srcdir/core/logread.c" \
		-o "$bin" 2>"$WORK/clang.err"; then
		mkdir -p "$WORK/corpus"
		cp "$top_srcdir"/tests/corpus/log/* "$WORK/corpus/"
		"$bin" -max_total_time="${SHMK_LIBFUZZER_SECONDS:-10}" -max_len=65536 \
			-print_final_stats=1 "$WORK/corpus" >"$WORK/lf.out" 2>&1 ||
			{ tail -40 "$WORK/lf.out"; fail "libFuzzer found a crash in the log reader"; }
		note "libFuzzer: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$WORK/lf.out")"
	else
		note "libFuzzer target not built: $(head -1 "$WORK/clang.err")"
	fi
else
	note "no clang: the libFuzzer target did not run (the seeded fuzzer above did)"
fi
echo ok
