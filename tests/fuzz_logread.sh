#!/bin/sh
# The log reader under seeded random mutations of real logs, for a bounded
# time (issue 8): SHMK_FUZZ_SECONDS (default 5), SHMK_FUZZ_SEED replays.
. "$top_srcdir/tests/lib.sh"
"$SHMK_TESTBIN/fuzz_logread" "$top_srcdir/tests/corpus/log" "${SHMK_FUZZ_SECONDS:-5}" \
	${SHMK_FUZZ_SEED:+"$SHMK_FUZZ_SEED"} || fail "the log reader failed under fuzzing (see above)"
