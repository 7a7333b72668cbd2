#!/bin/sh
# The cost of the wrappers on calls that are not shared memory (mmap+munmap of
# anonymous memory, dup+close of an ordinary fd), raw and preloaded with
# recording on, interleaved; prints the medians and the ratios.
#   bench/fastpath.sh [ROUNDS] [N]     (from the build directory, after make bench)
set -eu
rounds=${1:-11}
n=${2:-200000}
bin=${FASTPATH:-$(pwd)/bench/fastpath}
lib=${SHMK_LIB:-$(pwd)/.libs/libshmkeeper.so}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for r in $(seq "$rounds"); do
	echo "raw $("$bin" "$n")"
	echo "pre $(SHMKEEPER_LOG_DIR=$logs LD_PRELOAD=$lib "$bin" "$n")"
done | awk '
	function med(k, c,   m, j, x, y, z, a) {
		m = cnt[k]; for (j = 1; j <= m; j++) a[j] = v[k, c, j]
		for (x = 2; x <= m; x++) { y = a[x]; z = x - 1
			while (z > 0 && a[z] > y) { a[z + 1] = a[z]; z-- } a[z + 1] = y }
		return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
	{ cnt[$1]++; v[$1, 1, cnt[$1]] = $2; v[$1, 2, cnt[$1]] = $3 }
	END {
		printf "%-14s %10s %10s %8s\n", "pair", "raw ns", "preload", "ratio"
		printf "%-14s %10.1f %10.1f %8.3f\n", "mmap+munmap", med("raw", 1), med("pre", 1), med("pre", 1) / med("raw", 1)
		printf "%-14s %10.1f %10.1f %8.3f\n", "dup+close", med("raw", 2), med("pre", 2), med("pre", 2) / med("raw", 2)
	}'
