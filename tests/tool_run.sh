#!/bin/sh
# `shmkeeper run` end to end, with the library preloaded on real programs:
# examples/leaky's report, the exit statuses (PROG's, 128+signal, N with
# --error-exitcode, 125/126/127), LD_PRELOAD order, the temporary log
# directory removed, --log-dir kept, SHMKEEPER_OPTIONS.
set -u
: "${SHMK_TOOL:?}" "${SHMK_LIB:?}" "${top_builddir:?}"
[ -e "$SHMK_LIB" ] || { echo "SKIP: $SHMK_LIB not built"; exit 77; }
leaky="$top_builddir/examples/leaky"
[ -x "$leaky" ] || { echo "SKIP: $leaky not built"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/shmk-run.XXXXXX") || exit 99
mkdir "$dir/tmp"
# Remove what the runs of leaky leaked, as the reports (text or JSON) name it.
cleanup_leaky() {
	sed -n -e 's/^   SysV shmid \([0-9]*\) key .*, perms .*/sysv \1/p' \
	       -e 's/^   POSIX \(\/leaky-[0-9]*\), .*/posix \1/p' \
	       -e 's/^    {"kind": "sysv", "shmid": \([0-9]*\),.*/sysv \1/p' \
	       -e 's/^    {"kind": "posix", "name": "\(\/leaky-[0-9]*\)",.*/posix \1/p' "$1" |
	while read -r kind what; do
		case $kind in
		sysv) ipcrm -m "$what" 2>/dev/null ;;
		posix) rm -f "/dev/shm/${what#/}" ;;
		esac
	done
}
trap 'for f in "$dir"/*.err; do cleanup_leaky "$f"; done; rm -rf "$dir"' EXIT
fail=0
check() {
	desc=$1; shift
	if "$@"; then echo "ok: $desc"; else echo "FAIL: $desc"; fail=1; fi
}
run() { TMPDIR="$dir/tmp" "$SHMK_TOOL" run "$@"; }

run -- "$leaky" >"$dir/leaky.out" 2>"$dir/leaky.err"
rc=$?
cat "$dir/leaky.err"
check "leaky: its exit status (0)" [ "$rc" = 0 ]
check "leaky: report on stderr, not stdout" sh -c "! grep -q 'LEAK SUMMARY' '$dir/leaky.out'"
check "leaky: summary line" grep -q '^LEAK SUMMARY: 2 segments leaked, 73728 bytes$' "$dir/leaky.err"
check "leaky: the POSIX leak, named" grep -q 'POSIX /leaky-[0-9]*, 65536 bytes, perms 0600' "$dir/leaky.err"
check "leaky: the SysV leak" grep -q 'SysV shmid [0-9]* key IPC_PRIVATE, 8192 bytes, perms 0600, 1 attach' "$dir/leaky.err"
check "leaky: symbolised to function and line" grep -q 'publish_stats .*examples/leaky.c:[0-9]' "$dir/leaky.err"
check "leaky: inlined frames" grep -q 'open_cache (inlined) .*leaky.c:[0-9]' "$dir/leaky.err"
check "leaky: the child's removal is not a leak" grep -q 'removed by pid' "$dir/leaky.err"
check "leaky: temporary log directory removed" [ -z "$(ls -A "$dir/tmp")" ]

run --error-exitcode=5 -- "$leaky" >/dev/null 2>"$dir/ec.err"
check "--error-exitcode=5 with leaks" [ $? = 5 ]
SHMKEEPER_OPTIONS="--error-exitcode=6" run "$leaky" >/dev/null 2>"$dir/env.err"
check "SHMKEEPER_OPTIONS, and PROG without --" [ $? = 6 ]
run --log-dir="$dir/logs" --format=json -- "$leaky" >/dev/null 2>"$dir/json.err"
check "--log-dir keeps the logs" sh -c "ls '$dir/logs'/shmk-*.shmk >/dev/null"
check "--format=json on run" grep -q '"leaks": \[' "$dir/json.err"
"$SHMK_TOOL" report --error-exitcode=7 "$dir/logs" >/dev/null 2>&1
check "report of a kept directory finds the leaks" [ $? = 7 ]

run -- sh -c 'exit 7' 2>"$dir/seven.rep"
check "PROG's exit status" [ $? = 7 ]
check "no leaks, no noise" grep -q '^LEAK SUMMARY: 0 segments leaked, 0 bytes$' "$dir/seven.rep"
run --error-exitcode=9 -- sh -c 'exit 3' 2>/dev/null
check "PROG's status when no leaks, even with --error-exitcode" [ $? = 3 ]
run -- sh -c 'kill -TERM $$' 2>/dev/null
check "killed by SIGTERM: 143" [ $? = 143 ]
run -- "$dir/no-such-program" 2>"$dir/nf.rep"
check "PROG not found: 127" [ $? = 127 ]
check "PROG not found: one line" grep -qx "shmkeeper: $dir/no-such-program: No such file or directory" "$dir/nf.rep"
run -- "$dir" 2>/dev/null
check "PROG not executable: 126" [ $? = 126 ]
SHMKEEPER_LIB=/nonexistent/lib.so run -- true 2>/dev/null
check "library missing: 125" [ $? = 125 ]
run 2>/dev/null
check "usage error: 1" [ $? = 1 ]

# The remover is not the creator: ipcrm, and Python's resource_tracker (an
# exec'd python3 that unlinks after the program has exited: run waits for it).
if command -v ipcmk >/dev/null && command -v ipcrm >/dev/null; then
	run --error-exitcode=5 -- sh -c 'id=$(ipcmk -M 4096 | sed "s/[^0-9]//g"); ipcrm -m "$id"' \
		>/dev/null 2>"$dir/ipcrm.err"
	check "ipcmk then ipcrm: not a leak" [ $? = 0 ]
	check "ipcmk then ipcrm: removed by ipcrm" grep -q 'SysV shmid [0-9]* key 0x[0-9a-f]*, 4096 bytes: created by pid [0-9]* (.*ipcmk), removed by pid [0-9]* (.*ipcrm)' "$dir/ipcrm.err"
fi
if [ -n "${PYTHON3:-}" ] && "$PYTHON3" -c 'from multiprocessing import shared_memory' 2>/dev/null; then
	py=$("$PYTHON3" -c 'import sys; print(sys.executable)')
	run --error-exitcode=5 -- "$py" -c 'from multiprocessing import shared_memory
s = shared_memory.SharedMemory(create=True, size=4096)' >/dev/null 2>"$dir/py.err"
	check "resource_tracker: not a leak" [ $? = 0 ]
	check "resource_tracker: removed by another process" grep -q 'POSIX /psm_[0-9a-f]*, 4096 bytes: created by pid [0-9]* (.*python.*), removed by pid' "$dir/py.err"
	# Not checked: that the tree shows the tracker under the program. Python
	# starts it with vfork+exec, which logs no FORK, so the link is by ppid,
	# which is the tool's when the program exits before the tracker loads.
fi

lib=$(readlink -f "$SHMK_LIB")
libc=$(ldd /bin/sh | sed -n 's/.*libc.so.6 => \([^ ]*\).*/\1/p')
# A sanitizer's runtime refuses to start behind an LD_PRELOAD of the tool's own.
if ldd "$SHMK_TOOL" 2>/dev/null | grep -q 'lib[at]san'; then
	echo "skipped under a sanitizer: LD_PRELOAD: ours first, then the one set"
else
	got=$(LD_PRELOAD="$libc" run -- sh -c 'printf %s "$LD_PRELOAD"' 2>/dev/null)
	check "LD_PRELOAD: ours first, then the one set" [ "$got" = "$lib:$libc" ]
fi
got=$(run -- sh -c 'printf %s "$SHMKEEPER_LOG_DIR"' 2>/dev/null)
case $got in /*) r=0 ;; *) r=1 ;; esac
check "SHMKEEPER_LOG_DIR is absolute" [ $r = 0 ]
# Orphans are the tool's children (it is a subreaper, to wait for Python's
# resource_tracker): it reaps them as they end, while PROG still runs, not
# all at its end. 40 helpers daemonised by a double fork, which exit at once;
# then PROG counts the zombies whose parent is the tool ($PPID of sh -c).
zombies=$(run -- sh -c '
	i=0
	while [ $i -lt 40 ]; do (true &) ; i=$((i + 1)); done
	sleep 1
	n=0
	for f in /proc/[0-9]*/stat; do
		read -r line < "$f" 2>/dev/null || continue
		set -- ${line##*) }
		[ "$1" = Z ] && [ "$2" = "$PPID" ] && n=$((n + 1))
	done
	echo $n' 2>/dev/null)
check "orphans reaped while PROG runs (zombies left: $zombies)" [ "$zombies" = 0 ]
exit $fail
