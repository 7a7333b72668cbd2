#!/bin/sh
# Distinct pages touched between two syscalls, per SysV call, for the
# shmcycle workload preloaded (see DEVELOPERS.md, "The fast paths"): on
# machines whose TLB is emptied by every syscall, each one is a page walk.
# valgrind's lackey traces every access; a gap is what runs after one
# syscall returns and before the next starts (clock_gettime, which valgrind
# runs as a syscall, does not end a gap). valgrind has no vDSO, so the
# clock's pages do not show. Instructions per cycle: valgrind --tool=callgrind.
#   bench/pages.sh [LIB] [CYCLES]      (from the build directory; BT=16 for
#                                      16-frame backtraces)
set -eu
lib=${1:-$(pwd)/.libs/libshmkeeper.so}
cycles=${2:-300}
bin=${SHMCYCLE:-$(pwd)/bench/shmcycle}
[ -x "$bin" ] || { echo "no $bin: run 'make bench' first" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/logs"
SHMKEEPER_LOG_DIR="$tmp/logs" SHMKEEPER_BACKTRACE_DEPTH=${BT:-0} LD_PRELOAD="$lib" \
	valgrind --tool=lackey --trace-mem=yes --trace-syscalls=yes \
	--log-file="$tmp/trace" "$bin" "$cycles" >/dev/null 2>&1
python3 - "$tmp/trace" <<'PY'
import collections, re, sys
gaps = collections.defaultdict(list)
pages, code, last = set(), set(), None
for line in open(sys.argv[1], errors='replace'):
    if line.startswith('SYSCALL'):
        m = re.search(r'\)\s+(sys_\w+)', line)
        if m and m.group(1) != 'sys_clock_gettime':
            if last:
                gaps[last].append((len(pages), len(code)))
            last, pages, code = m.group(1), set(), set()
        continue
    kind = line[:2]
    if kind in ('I ', ' L', ' S', ' M'):
        try:
            page = int(line[3:].split(',')[0], 16) >> 12
        except ValueError:
            continue
        pages.add(page)
        if kind == 'I ':
            code.add(page)
total = 0
for name in ('sys_shmget', 'sys_shmat', 'sys_shmdt', 'sys_shmctl'):
    v = gaps.get(name, [])[len(gaps.get(name, [])) // 3:]   # past start-up
    if not v:
        sys.exit('no %s in the trace' % name)
    p = sorted(x[0] for x in v)[len(v) // 2]
    c = sorted(x[1] for x in v)[len(v) // 2]
    total += p
    print('after %-11s median %3d pages (%d of code)' % (name[4:], p, c))
print('a cycle: %d pages' % total)
PY
