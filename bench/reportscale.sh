#!/bin/sh
# The report at scale (issue 4): logs of EVENTS events from PROCESSES
# processes, written by bench/reportscale with the structs of core/logfmt.h,
# then `shmkeeper report` timed on them. Prints events/s (by wall-clock and by
# CPU time, since these 2-CPU machines are often shared) and the peak RSS,
# for two sizes, so that growth with events shows apart from the base cost.
#
#   make bench && bench/reportscale.sh [PROCESSES [EVENTS [SEGMENTS_PER_PROCESS]]]
#
# Goal: >= 1,000,000 events/s, and a peak RSS that follows the segments
# (PROCESSES x SEGMENTS), not the events. Environment: BUILDDIR (default .),
# TMPDIR for the logs (about 120 bytes an event; removed afterwards).
#
# Measured here (2 vCPU, shared; 1000 processes, 5000 segments), CPU time:
#   model with a copy of every event, sorted:  1M 0.65M ev/s 264 MB;
#                                              10M 0.42M ev/s 2430 MB
#   streamed k-way merge, bounded histories:   1M 1.56M ev/s 66 MB;
#                                              10M 0.79M ev/s 1029 MB
#   ... with the reader's window at 16 KiB:    1M 2.0M ev/s 31 MB;
#                                              10M 2.7M ev/s 44 MB
# The 1 GB left at 10M is the log reader's window, 1 MiB per open log
# (core/logread.c, WINDOW) times 1000 logs merged at once; the last line is
# with a window that starts at 16 KiB and grows only for a larger record.
set -eu
builddir=${BUILDDIR:-.}
procs=${1:-1000}; events=${2:-10000000}; segs=${3:-5}
gen=$builddir/bench/reportscale; tool=$builddir/shmkeeper
[ -x "$gen" ] || { echo "build it first: make bench" >&2; exit 2; }
[ -x "$tool" ] || { echo "no $tool" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/reportscale.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

one() {   # one EVENTS: generate, drop nothing from the cache, time the report
	n=$1
	rm -rf "$tmp/logs"
	"$gen" "$tmp/logs" "$procs" "$n" "$segs" >"$tmp/gen.out"
	ev=$(cut -d' ' -f1 "$tmp/gen.out")
	bytes=$(cut -d' ' -f3 "$tmp/gen.out")
	cat "$tmp"/logs/* >/dev/null   # page cache warm: the report, not the disk, is timed
	SHMKEEPER_NO_PROGRESS=1 /usr/bin/time -f '%e %U %S %M' -o "$tmp/time" \
		"$tool" report "$tmp/logs" >"$tmp/report" 2>"$tmp/err" || true
	grep -q '^LEAK SUMMARY' "$tmp/report" || { echo "the report failed:"; cat "$tmp/err"; exit 1; }
	read -r wall user sys rss <"$tmp/time"
	awk -v ev="$ev" -v b="$bytes" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
	    -v p="$procs" -v sg="$segs" 'BEGIN {
		cpu = u + s; if (w <= 0) w = 0.01; if (cpu <= 0) cpu = 0.01
		printf "%10d events  %5d processes  %6d segments  %7.1f MB of logs: " \
		       "%6.2f s wall %6.2f s cpu  %9.0f events/s (wall)  %9.0f events/s (cpu)  " \
		       "peak RSS %7.1f MB (%.0f bytes/event)\n",
		       ev, p, p * sg, b / 1e6, w, cpu, ev / w, ev / cpu, r / 1024, r * 1024 / ev }'
}

echo "shmkeeper report at scale: $procs processes, $segs segments each; load $(cut -d' ' -f1-3 /proc/loadavg)"
one $((events / 10))
one "$events"
