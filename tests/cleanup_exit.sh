#!/bin/sh
# Normal termination: return from main, exit, _exit, _Exit; unregister;
# fork (inherited or not); exec (nothing runs).
P=${SHMK_TESTBIN:-tests}/signal_prog
test -x "$P" || { echo "SKIP: $P not built"; exit 77; }
fail=0

check() {   # check NAME EXPECTED -- ARGS...
	name=$1 want=$2
	shift 3
	got=$(timeout 20 "$P" wait "$@" 2>/dev/null)
	if [ "$got" != "$want" ]; then
		printf 'FAIL %s: %s\n--- want\n%s\n--- got\n%s\n' "$name" "$*" "$want" "$got"
		fail=1
	fi
}

check "return from main" "cleanup 3
cleanup 2
cleanup 1
exit 5" -- reg:1 reg:2 reg:3 return:5
check "exit" "cleanup 2
cleanup 1
exit 4" -- reg:1 reg:2 exit:4
check "_exit" "cleanup 2
cleanup 1
exit 6" -- reg:1 reg:2 _exit:6
check "_Exit" "cleanup 1
exit 7" -- reg:1 _Exit:7
check "unregister" "cleanup 3
cleanup 1
exit 0" -- reg:1 reg:2 reg:3 unreg:2 exit:0
check "unregister all, then a signal" "signal 15 core 0" -- reg:1 unreg:1 raise:15
check "fork: only the inherited one runs in the child" "child
cleanup 2 in child
parent
cleanup 2
cleanup 1
exit 0" -- reg:1 regi:2 fork exit:0
check "exec: nothing runs" "execd
exit 0" -- reg:1 exec
# Also preloaded (the way unmodified programs get the library).
got=$(LD_PRELOAD=$SHMK_LIB "$P" wait reg:1 raise:15 2>/dev/null)
[ "$got" = "cleanup 1
signal 15 core 0" ] || { printf 'FAIL preloaded:\n%s\n' "$got"; fail=1; }
exit $fail
