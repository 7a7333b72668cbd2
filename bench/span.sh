#!/bin/sh
# The span benchmark (issue 5): bench/span's workloads raw, preloaded with
# placement off (SHMKEEPER_SPAN=off) and preloaded with placement on, both
# recording with backtraces off, interleaved round by round so that a noisy
# neighbour hits every variant alike. Prints the median ns per iteration,
# and the ratios on/off (the cost of placement; target for "at": <= 1.10)
# and on/raw.
#   bench/span.sh [ROUNDS] [N_AT] [N_CYCLE] [N_FILL]   (from the build directory)
# N_FILL > 0: the table first gets N_FILL live placements (bench/span fill:
# segments attached by helper processes that stay alive during the
# measurement), so that the cost of placement in a full table shows.
# SHMK_LIB_B=path: also runs "on" with that library ("onB", its own span and
# filler), e.g. a build from before a change, interleaved with the rest.
set -eu
rounds=${1:-11}
n_at=${2:-20000}
n_cycle=${3:-5000}
n_fill=${4:-0}
bin=${SPANBENCH:-$(pwd)/bench/span}
lib=${SHMK_LIB:-$(pwd)/.libs/libshmkeeper.so}
libb=${SHMK_LIB_B:-}
[ -x "$bin" ] || { echo "no $bin: run 'make bench' first" >&2; exit 1; }
[ -f "$lib" ] || { echo "no $lib" >&2; exit 1; }
[ -z "$libb" ] || [ -f "$libb" ] || { echo "no $libb" >&2; exit 1; }
logs=$(mktemp -d)
flogs=$(mktemp -d)
out=$(mktemp)
fillers=
stop_fillers() {
	for p in $fillers; do kill -TERM "$p" 2>/dev/null || :; done
	for p in $fillers; do wait "$p" 2>/dev/null || :; done
	fillers=
}
trap 'stop_fillers; rm -rf "$logs" "$flogs" "$out"' EXIT
trap 'exit 1' INT TERM
# A span of the benchmark's own, so that a table left by something else
# (or another run) is not measured.
span=$(printf '0x%x:4G' $(( 0x300000000000 + ($$ % 1024) * 0x100000000 )))
spanb=$(printf '0x%x:4G' $(( 0x300000000000 + (($$ + 512) % 1024) * 0x100000000 )))
fill() {   # library span: N_FILL live placements in that span's table
	[ "$n_fill" -gt 0 ] || return 0
	rm -f "$flogs/ready"
	SHMKEEPER_SPAN=$2 SHMKEEPER_LOG_DIR=$flogs SHMKEEPER_BACKTRACE_DEPTH=0 \
		LD_PRELOAD=$1 "$bin" fill "$n_fill" "$flogs/ready" &
	fillers="$fillers $!"
	i=0
	while [ ! -e "$flogs/ready" ]; do
		i=$((i + 1)); [ $i -lt 600 ] || { echo "span.sh: fill did not finish" >&2; exit 1; }
		kill -0 $! 2>/dev/null || { echo "span.sh: fill failed" >&2; exit 1; }
		sleep 0.1
	done
}
run() {   # variant workload n
	rm -f "$logs"/*
	case $1 in
	raw) "$bin" "$2" "$3" 2>/dev/null ;;
	off) SHMKEEPER_SPAN=off SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=0 \
		LD_PRELOAD=$lib "$bin" "$2" "$3" 2>/dev/null ;;
	on)  SHMKEEPER_SPAN=$span SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=0 \
		LD_PRELOAD=$lib "$bin" "$2" "$3" 2>"$logs.addr" ;;
	onB) SHMKEEPER_SPAN=$spanb SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=0 \
		LD_PRELOAD=$libb "$bin" "$2" "$3" 2>/dev/null ;;
	esac
}
variants="raw off on"
[ -z "$libb" ] || variants="$variants onB"
fill "$lib" "$span"
[ -z "$libb" ] || fill "$libb" "$spanb"
# Placement must really happen in "on": the last address is in the span.
run on at 10 >/dev/null
a=$(cat "$logs.addr"); rm -f "$logs.addr"
case $a in 0x3*) ;; *) echo "span.sh: placement did not happen (last attach at $a)" >&2; exit 1 ;; esac
for r in $(seq "$rounds"); do
	for w in at cycle posix; do
		n=$n_at; [ $w = cycle ] && n=$n_cycle
		for v in $variants; do
			echo "$w $v $(run $v $w $n)" >> "$out"
		done
	done
done
rm -f "$logs.addr"
stop_fillers
[ "$n_fill" -eq 0 ] || echo "table filled with $n_fill live placements"
awk -v rounds="$rounds" -v b="${libb:+1}" '
	function med(k,   m, j, x, y, z, a) {
		m = cnt[k]; for (j = 1; j <= m; j++) a[j] = v[k, j]
		for (x = 2; x <= m; x++) { y = a[x]; z = x - 1
			while (z > 0 && a[z] > y) { a[z + 1] = a[z]; z-- } a[z + 1] = y }
		return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
	{ k = $1 " " $2; v[k, ++cnt[k]] = $3 }
	END {
		printf "%-8s %10s %10s %10s %8s %8s", "workload", "raw ns", "off ns", "on ns", "on/off", "on/raw"
		if (b) printf " %10s %8s", "onB ns", "onB/off"
		printf "   (%d rounds, interleaved)\n", rounds
		split("at cycle posix", ws, " ")
		for (i = 1; i <= 3; i++) { w = ws[i]
			r = med(w " raw"); f = med(w " off"); o = med(w " on")
			printf "%-8s %10.1f %10.1f %10.1f %8.3f %8.3f", w, r, f, o, o / f, o / r
			if (b) { ob = med(w " onB"); printf " %10.1f %8.3f", ob, ob / f }
			printf "\n" }
	}' "$out"
