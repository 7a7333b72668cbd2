#!/bin/sh
# The span end to end under LD_PRELOAD with a plain program (tests/span_prog,
# no shmkeeper API), issue 5:
#  1. two unrelated processes (both started by this shell, neither the
#     other's parent) attach one SysV segment and one POSIX object, meet
#     through a key and a name, get identical addresses inside the span and
#     walk lists of raw pointers built by the other;
#  2. warn and strict with a span too small for the segment: warn attaches
#     where the kernel puts it and logs SK_W_SPAN_FULL; strict fails shmat
#     with EINVAL and mmap with ENOMEM and logs SK_W_PLACE_REFUSED;
#  3. the span taken at start-up (pointed at the non-PIE program's own text,
#     0x400000): one message on stderr, the program runs, SK_W_SPAN_TAKEN;
#  4. an explicit address inside the span: honoured with SK_W_ADDR_IN_SPAN
#     (warn), refused with EINVAL (strict), and a later placement does not
#     land on it;
#  5. no placement table of these spans is left in /dev/shm.
# Warnings are read from the log with tests/logdump (the text report does not
# list them; the JSON report counts them per process: checked too).
set -u
prog="${SHMK_TESTBIN:-$(dirname "$0")}/span_prog"
dump="${SHMK_TESTBIN:-$(dirname "$0")}/logdump"
lib="${SHMK_LIB:-}"
tool="${SHMK_TOOL:-}"
[ -x "$prog" ] || { echo "SKIP: $prog not built"; exit 77; }
[ -x "$dump" ] || { echo "SKIP: $dump not built"; exit 77; }
[ -n "$lib" ] && [ -f "$lib" ] || { echo "SKIP: no library (SHMK_LIB)"; exit 77; }
[ -d /dev/shm ] || { echo "SKIP: no /dev/shm"; exit 77; }
dir=$(mktemp -d) || exit 99
key=$(( 0x5d000000 + $$ ))
name="/span_preload_$$"
cleanup() {
	# Whatever a failed step left: the segment, the objects, our tables.
	ipcrm -M "$key" 2>/dev/null
	rm -f "/dev/shm${name}" "/dev/shm${name}"_*
	for a in $spans; do rm -f /dev/shm/shmkeeper.span.*."$a".*; done
	rm -rf "$dir"
}
spans=""
trap cleanup EXIT
fails=0
check() {   # what, then the command
	what=$1; shift
	if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}
# Spans of our own (clear of the default, of tests/span_table's and of
# tests/span_peers.sh's), 4 GiB apart, shifted by our pid.
base=$(( 0x2d0000000000 + ($$ % 256) * 0x1000000000 ))
span_at() { printf '%x' $(( base + $1 * 0x100000000 )); }
for i in 0 1 2 3; do spans="$spans $(span_at $i)"; done
run() {   # log-subdir span policy, then the program's arguments
	sub=$dir/$1 span=$2 pol=$3; shift 3
	mkdir -p "$sub"
	SHMKEEPER_LOG_DIR=$sub SHMKEEPER_SPAN=$span SHMKEEPER_SPAN_POLICY=$pol \
		LD_PRELOAD=$lib "$prog" "$@" >"$sub.out" 2>"$sub.err"
}
warns() {   # log-subdir code: how many SK_EV_WARN records with that code
	"$dump" "$1" | grep -c "^warn .*code=$2 "
}
in_span() {   # addr span-hex size
	[ $(( $1 >= 0x$2 && $1 < 0x$2 + $3 )) -eq 1 ]
}

# 1. Two unrelated processes.
s=$(span_at 0)
mkdir -p "$dir/peers"
SHMKEEPER_LOG_DIR=$dir/peers SHMKEEPER_SPAN=0x$s:1G LD_PRELOAD=$lib \
	"$prog" make "$key" "$name" "$dir/peers" >"$dir/make.out" 2>&1 & maker=$!
i=0
while [ ! -s "$dir/peers/make" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
SHMKEEPER_LOG_DIR=$dir/peers SHMKEEPER_SPAN=0x$s:1G LD_PRELOAD=$lib \
	"$prog" join "$key" "$name" "$dir/peers" >"$dir/join.out" 2>&1; joined=$?
wait $maker; made=$?
cat "$dir/make.out" "$dir/join.out"
check "maker and joiner ran (make=$made join=$joined)" [ $made -eq 0 ] && [ $joined -eq 0 ]
check "identical addresses" cmp -s "$dir/peers/make" "$dir/peers/join"
set -- $(cat "$dir/peers/make" 2>/dev/null) x x
check "SysV segment inside the span ($1)" in_span "$1" "$s" 0x40000000
check "POSIX object inside the span ($2)" in_span "$2" "$s" 0x40000000
check "no span warning" [ "$("$dump" "$dir/peers" | grep -c '^warn ')" -eq 0 ]

# 2. A span too small for the segment (64 KiB, segment 1 MiB).
s=$(span_at 1)
run small-warn 0x$s:64K warn one 1048576 "${name}_w"; rc=$?
cat "$dir/small-warn.out"
check "warn: both attached (rc=$rc)" [ $rc -eq 0 ]
check "warn: outside the span" sh -c "! grep -q ' 0x$s' '$dir/small-warn.out'"
check "warn: SK_W_SPAN_FULL logged twice" [ "$(warns "$dir/small-warn" 2)" -eq 2 ]
run small-strict 0x$s:64K strict one 1048576 "${name}_s"; rc=$?
cat "$dir/small-strict.out"
check "strict: both refused (rc=$rc)" [ $rc -eq 3 ]
check "strict: shmat EINVAL" grep -qx "sysv error 22" "$dir/small-strict.out"
check "strict: mmap ENOMEM" grep -qx "posix error 12" "$dir/small-strict.out"
check "strict: SK_W_PLACE_REFUSED logged twice" [ "$(warns "$dir/small-strict" 3)" -eq 2 ]
if [ -n "$tool" ] && [ -x "$tool" ]; then
	"$tool" report --format=json "$dir/small-warn" >"$dir/report.json" 2>&1
	check "JSON report counts the warnings" grep -q '"warnings": 2' "$dir/report.json"
fi

# 3. The span taken at start-up: the program's own text (non-PIE: 0x400000).
if [ "$(od -An -tu2 -j16 -N2 "$prog" | tr -d ' ')" = 2 ]; then
	run taken 0x400000:4K warn one 4096 "${name}_t"; rc=$?
	cat "$dir/taken.err"
	check "taken: the program runs (rc=$rc)" [ $rc -eq 0 ]
	check "taken: one message on stderr" [ "$(grep -c 'span.s address range is taken' "$dir/taken.err")" -eq 1 ]
	check "taken: nothing else on stderr" [ "$(wc -l <"$dir/taken.err")" -eq 1 ]
	check "taken: SK_W_SPAN_TAKEN logged" [ "$(warns "$dir/taken" 1)" -eq 1 ]
	run taken-strict 0x400000:4K strict one 4096 "${name}_u"; rc=$?
	check "taken, strict: attaches refused (rc=$rc)" [ $rc -eq 3 ]
else
	echo "note: $prog is not a non-PIE executable: 'span taken at start-up' not run"
fi

# 4. An explicit address inside the span (32 KiB in).
s=$(span_at 2)
a=$(printf '0x%x' $(( 0x$s + 0x8000 )))
run fixed-warn 0x$s:1G warn fixed "$a"; rc=$?
cat "$dir/fixed-warn.out"
check "explicit, warn: attached (rc=$rc)" [ $rc -eq 0 ]
check "explicit, warn: at $a" grep -qx "fixed $a" "$dir/fixed-warn.out"
check "explicit, warn: SK_W_ADDR_IN_SPAN logged" [ "$(warns "$dir/fixed-warn" 4)" -eq 1 ]
set -- $(sed -n 's/^other //p' "$dir/fixed-warn.out") x
check "explicit, warn: the next placement is in the span, elsewhere ($1)" \
	sh -c "[ \$(( $1 >= 0x$s && $1 < 0x$s + 0x40000000 )) -eq 1 ] && [ '$1' != '$a' ]"
run fixed-strict 0x$s:1G strict fixed "$a"; rc=$?
cat "$dir/fixed-strict.out"
check "explicit, strict: refused (rc=$rc)" [ $rc -eq 3 ]
check "explicit, strict: EINVAL" grep -qx "fixed error 22" "$dir/fixed-strict.out"

# 5. Placement goes on without a log (directory missing): 600 cycles in a
# span of 64 KiB (16 pages) all land on the same address, hole reused, so
# the table's entries go at removal as they do when recording.
s=$(span_at 3)
mkdir -p "$dir/nolog"
SHMKEEPER_LOG_DIR=$dir/nolog/missing SHMKEEPER_SPAN=0x$s:64K LD_PRELOAD=$lib \
	"$prog" cycle 600 "${name}_c" >"$dir/nolog.out" 2>"$dir/nolog.err"; rc=$?
cat "$dir/nolog.out"
check "no log: ran (rc=$rc)" [ $rc -eq 0 ]
check "no log: said so once" [ "$(grep -c 'not recording' "$dir/nolog.err")" -eq 1 ]
set -- $(cat "$dir/nolog.out") x x x x x x
check "no log: SysV placed in the span ($2), one address ($3)" sh -c "[ \$(( $2 >= 0x$s && $2 < 0x$s + 0x10000 )) -eq 1 ] && [ '$3' = 1 ]"
check "no log: POSIX placed in the span ($5), one address ($6)" sh -c "[ \$(( $5 >= 0x$s && $5 < 0x$s + 0x10000 )) -eq 1 ] && [ '$6' = 1 ]"

# 5b. The table's last user ends with _exit (no destructor runs), as the
# process itself or as a fork child that alone used the span: it still
# removes the table (found running LTP: the file stayed in /dev/shm).
for who in self child; do
	s=$(span_at 2)
	run "quit-$who" 0x$s:1G warn quit $who; rc=$?
	set -- $(sed -n 's/^quit //p' "$dir/quit-$who.out") x
	check "_exit ($who): placed in the span ($1), rc=$rc" sh -c "[ $rc -eq 0 ] && [ \$(( $1 >= 0x$s && $1 < 0x$s + 0x40000000 )) -eq 1 ]"
	check "_exit ($who): its table removed" sh -c "! ls /dev/shm | grep -q '^shmkeeper\.span\..*\.$s\.'"
done

# 6. Nothing left: our segments, objects and the tables of our spans.
check "no SysV segment left" sh -c "! ipcs -m | grep -q \"$(printf '0x%08x' "$key")\""
check "no POSIX object left" sh -c "! ls /dev/shm | grep -q '^span_preload_$$'"
for s in $spans; do
	check "no table left for span 0x$s" sh -c "! ls /dev/shm | grep -q '^shmkeeper\.span\..*\.$s\.'"
done
[ $fails -eq 0 ] || { echo "span_preload: $fails failed"; exit 1; }
exit 0
