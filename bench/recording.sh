#!/bin/sh
# The recording benchmark (issue 3): the shmcycle workload raw, preloaded
# with backtraces off, preloaded with 16-frame backtraces (each with the span
# placement on, the default, and off), and under strace,
# interleaved round by round so that a noisy neighbour hits every variant
# alike. Prints the median ns per cycle and its ratio to raw.
#   bench/recording.sh [ROUNDS] [CYCLES]     (from the build directory)
set -eu
rounds=${1:-11}
cycles=${2:-20000}
bin=${SHMCYCLE:-$(pwd)/bench/shmcycle}
lib=${SHMK_LIB:-$(pwd)/.libs/libshmkeeper.so}
[ -x "$bin" ] || { echo "no $bin: run 'make bench' first" >&2; exit 1; }
[ -f "$lib" ] || { echo "no $lib" >&2; exit 1; }
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
out=$(mktemp)
variants="raw bt0 bt16 bt0-nospan bt16-nospan"
command -v strace >/dev/null 2>&1 && variants="$variants strace"
nv=$(echo $variants | wc -w)
for r in $(seq "$rounds"); do
	# Each round starts one variant later: none always follows another.
	order=$(echo $variants $variants | tr ' ' '\n' | sed -n "$((r % nv + 1)),$((r % nv + nv))p")
	for v in $order; do
		rm -f "$logs"/*
		case $v in
		raw)    t=$("$bin" "$cycles") ;;
		bt0)    t=$(SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=0 LD_PRELOAD=$lib "$bin" "$cycles") ;;
		bt16)   t=$(SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=16 LD_PRELOAD=$lib "$bin" "$cycles") ;;
		# The same without placement in the span (issue 5): what recording
		# alone costs.
		bt0-nospan)  t=$(SHMKEEPER_SPAN=off SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=0 LD_PRELOAD=$lib "$bin" "$cycles") ;;
		bt16-nospan) t=$(SHMKEEPER_SPAN=off SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=16 LD_PRELOAD=$lib "$bin" "$cycles") ;;
		strace) t=$(strace -f -qq -e trace=%ipc -o /dev/null "$bin" $((cycles / 10))) ;;
		esac
		echo "$v $t" >> "$out"   # wall ns, cpu ns per cycle
	done
done
# Ratios are paired: each round's variant over the same round's raw, then
# the median of those. This machine runs in a fast and a slow phase (runs of
# the same binary land near 25 us or 33 us a cycle) lasting longer than a
# round, and a ratio of two medians mixes phases where a paired ratio
# cancels them. The medians of the times themselves are printed as well,
# and the ratio of the fastest run of each variant to the fastest raw run
# ("min ratio"): interference from the rest of the machine only ever adds
# time, so the fastest runs are the closest to what the code itself costs.
awk -v rounds="$rounds" '
	function med(a, m,   x, y, z) {
		for (x = 2; x <= m; x++) { y = a[x]; z = x - 1
			while (z > 0 && a[z] > y) { a[z + 1] = a[z]; z-- } a[z + 1] = y }
		return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
	function col(k, c,   j, a) { for (j = 1; j <= n[k]; j++) a[j] = v[k, c, j]; return med(a, n[k]) }
	function mn(k, c,   j, m) { m = v[k, c, 1]; for (j = 2; j <= n[k]; j++) if (v[k, c, j] < m) m = v[k, c, j]; return m }
	function ratio(k, c,   j, a, m) {
		m = 0; for (j = 1; j <= n[k] && j <= n["raw"]; j++) a[++m] = v[k, c, j] / v["raw", c, j]
		return med(a, m) }
	{ n[$1]++; v[$1, 1, n[$1]] = $2; v[$1, 2, n[$1]] = $3; names[$1] = 1 }
	END {
		split("raw bt0 bt16 bt0-nospan bt16-nospan strace", order, " ")
		printf "%-12s %12s %8s %12s %8s %10s   (%d rounds, interleaved; ratio: median of per-round ratios)\n", "variant", "wall ns", "ratio", "cpu ns", "ratio", "min ratio", rounds
		for (i = 1; i <= 6; i++) { k = order[i]; if (!(k in names)) continue
			if (k == "strace")   # the tracee waits on strace: its CPU time says nothing
				printf "%-12s %12.1f %8.3f %12s %8s %10.3f\n", k, col(k, 1), ratio(k, 1), "-", "-", mn(k, 1) / mn("raw", 1)
			else
				printf "%-12s %12.1f %8.3f %12.1f %8.3f %10.3f\n", k, col(k, 1), ratio(k, 1), col(k, 2), ratio(k, 2), mn(k, 1) / mn("raw", 1)
		}
	}' "$out"
rm -f "$out"
