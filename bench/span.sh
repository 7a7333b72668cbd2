#!/bin/sh
# The span benchmark (issue 5): bench/span's workloads raw, preloaded with
# placement off (SHMKEEPER_SPAN=off) and preloaded with placement on, both
# recording with backtraces off, interleaved round by round so that a noisy
# neighbour hits every variant alike. Prints the median ns per iteration,
# and the ratios on/off (the cost of placement; target for "at": <= 1.10)
# and on/raw.
#   bench/span.sh [ROUNDS] [N_AT] [N_CYCLE]     (from the build directory)
set -eu
rounds=${1:-11}
n_at=${2:-20000}
n_cycle=${3:-5000}
bin=${SPANBENCH:-$(pwd)/bench/span}
lib=${SHMK_LIB:-$(pwd)/.libs/libshmkeeper.so}
[ -x "$bin" ] || { echo "no $bin: run 'make bench' first" >&2; exit 1; }
[ -f "$lib" ] || { echo "no $lib" >&2; exit 1; }
logs=$(mktemp -d)
out=$(mktemp)
trap 'rm -rf "$logs" "$out"' EXIT
# A span of the benchmark's own, so that a table left by something else
# (or another run) is not measured.
span=$(printf '0x%x:4G' $(( 0x300000000000 + ($$ % 1024) * 0x100000000 )))
run() {   # variant workload n
	rm -f "$logs"/*
	case $1 in
	raw) "$bin" "$2" "$3" 2>/dev/null ;;
	off) SHMKEEPER_SPAN=off SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=0 \
		LD_PRELOAD=$lib "$bin" "$2" "$3" 2>/dev/null ;;
	on)  SHMKEEPER_SPAN=$span SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=0 \
		LD_PRELOAD=$lib "$bin" "$2" "$3" 2>"$logs.addr" ;;
	esac
}
# Placement must really happen in "on": the last address is in the span.
run on at 10 >/dev/null
a=$(cat "$logs.addr"); rm -f "$logs.addr"
case $a in 0x3*) ;; *) echo "span.sh: placement did not happen (last attach at $a)" >&2; exit 1 ;; esac
for r in $(seq "$rounds"); do
	for w in at cycle posix; do
		n=$n_at; [ $w = cycle ] && n=$n_cycle
		for v in raw off on; do
			echo "$w $v $(run $v $w $n)" >> "$out"
		done
	done
done
rm -f "$logs.addr"
awk -v rounds="$rounds" '
	function med(k,   m, j, x, y, z, a) {
		m = cnt[k]; for (j = 1; j <= m; j++) a[j] = v[k, j]
		for (x = 2; x <= m; x++) { y = a[x]; z = x - 1
			while (z > 0 && a[z] > y) { a[z + 1] = a[z]; z-- } a[z + 1] = y }
		return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
	{ k = $1 " " $2; v[k, ++cnt[k]] = $3 }
	END {
		printf "%-8s %10s %10s %10s %8s %8s   (%d rounds, interleaved)\n", \
			"workload", "raw ns", "off ns", "on ns", "on/off", "on/raw", rounds
		split("at cycle posix", ws, " ")
		for (i = 1; i <= 3; i++) { w = ws[i]
			r = med(w " raw"); f = med(w " off"); o = med(w " on")
			printf "%-8s %10.1f %10.1f %10.1f %8.3f %8.3f\n", w, r, f, o, o / f, o / r }
	}' "$out"
