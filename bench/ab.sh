#!/bin/sh
# Two builds of the library against each other on the shmcycle workload:
# every round runs raw, A and B, and A and B swap places every other round
# (raw A B, then B A raw). With a fixed order the third run of a round was
# ~3% slower here whatever it was (an A/A run said 1.029), which is larger
# than most changes worth measuring. Prints the medians of the per-round
# ratios to raw, and of B/A.
#   bench/ab.sh LIB_A LIB_B [ROUNDS] [DEPTH]     (from the build directory)
set -eu
a=$1 b=$2 rounds=${3:-31} depth=${4:-0}
bin=${SHMCYCLE:-$(pwd)/bench/shmcycle}
[ -x "$bin" ] || { echo "no $bin: run 'make bench' first" >&2; exit 1; }
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run() {
	rm -f "$logs"/*
	if [ "$1" = raw ]; then "$bin" 20000
	else SHMKEEPER_LOG_DIR=$logs SHMKEEPER_BACKTRACE_DEPTH=$depth LD_PRELOAD=$1 "$bin" 20000
	fi
}
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then set -- raw "$a" "$b"; else set -- "$b" "$a" raw; fi
	for v in "$@"; do
		case $v in raw) k=raw ;; "$a") k=a ;; *) k=b ;; esac
		echo "$r $k $(run "$v")"
	done
done | python3 -c '
import statistics, sys
t = {}
for line in sys.stdin:
    r, k, ns = line.split()[:3]
    t.setdefault(r, {})[k] = float(ns)
rows = [(v["a"] / v["raw"], v["b"] / v["raw"], v["b"] / v["a"]) for v in t.values()]
print("A %.3f  B %.3f  B/A %.3f  (medians of %d rounds)" %
      tuple([statistics.median(x[i] for x in rows) for i in range(3)] + [len(rows)]))'
