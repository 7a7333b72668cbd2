#!/bin/sh
# Signals on other threads, two at once, twice, inside a cleanup; real faults
# with and without a handler that repairs them; a cleanup that faults.
P=${SHMK_TESTBIN:-tests}/signal_prog
test -x "$P" || { echo "SKIP: $P not built"; exit 77; }
fail=0
dir=$(mktemp -d) && cd "$dir" || exit 99
trap 'cd /; rm -rf "$dir"' EXIT
ulimit -c 0

check() {   # check NAME EXPECTED -- ARGS...
	name=$1 want=$2
	shift 3
	got=$(timeout 20 "$P" wait "$@" 2>/dev/null)
	if [ "$got" != "$want" ]; then
		printf 'FAIL %s: %s\n--- want\n%s\n--- got\n%s\n' "$name" "$*" "$want" "$got"
		fail=1
	fi
}

for S in 15 2 1 11; do
	check "process signal taken by another thread $S" "cleanup 2
cleanup 1
signal $S core 0" -- reg:1 reg:2 thread:$S
	check "thread-directed $S" "cleanup 1
signal $S core 0" -- reg:1 tkill:$S
done
# Two threads, two signals at the same moment: each cleanup exactly once, and
# the process dies of one of them.
i=0
while [ $i -lt 30 ]; do
	got=$("$P" wait reg:1 reg:2 two:15:2 2>/dev/null)
	case $got in
	"cleanup 2
cleanup 1
signal 15 core 0"|"cleanup 2
cleanup 1
signal 2 core 0") ;;
	*) printf 'FAIL two signals (run %d):\n%s\n' $i "$got"; fail=1; break;;
	esac
	got=$("$P" wait reg:1 two:15:15 2>/dev/null)
	[ "$got" = "cleanup 1
signal 15 core 0" ] || { printf 'FAIL same signal twice:\n%s\n' "$got"; fail=1; break; }
	i=$((i + 1))
done
check "real SIGSEGV" "cleanup 1
signal 11 core 0" -- reg:1 segv
check "SIGSEGV repaired by the program's handler" "handler 11 fixes
touched
cleanup 1
exit 0" -- reg:1 handler:11:fix touch
check "SIGSEGV handler with SA_RESETHAND, then the fault again" "handler 11
cleanup 1
signal 11 core 0" -- reg:1 handler:11:reset segv
check "a cleanup that faults" "cleanup 3
cleanup faults
cleanup 1
signal 15 core 0" -- reg:1 cfault reg:3 raise:15
check "a cleanup that faults, at exit" "cleanup faults
cleanup 1
exit 0" -- reg:1 cfault exit:0
# A signal sent while a cleanup runs waits: the first one decides.
check "signal during a cleanup" "cleanup 1 sends 2
cleanup 1
signal 15 core 0" -- creg:1:2 raise:15
check "signal during the exit cleanups" "cleanup 1 sends 15
cleanup 1
signal 15 core 0" -- creg:1:15 exit:0
exit $fail
