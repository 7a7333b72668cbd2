#!/bin/sh
# `shmkeeper run --reap`: a daemon that double-forks away from PROG creates a
# SysV segment and a POSIX object and is killed with SIGKILL; the tool waits
# for it (subreaper), reports, and removes both. A segment that a process
# outside the run still holds is kept, and said so.
P=${SHMK_TESTBIN:-tests}/cleanup_shmprog
test -x "$P" || { echo "SKIP: $P not built"; exit 77; }
test -x "$SHMK_TOOL" || { echo "SKIP: $SHMK_TOOL not built"; exit 77; }
# Another pid namespace with its own /proc: the tool must prove that no
# process outside the run maps a POSIX object, and a process it may not read
# (a non-dumpable container init) makes that impossible on the host.
if [ -z "$SHMK_IN_NS" ] && unshare -pf --mount-proc true 2>/dev/null; then
	SHMK_IN_NS=1 exec unshare -pf --mount-proc "${SHELL:-/bin/sh}" "$0" "$@"
fi
# A span (and so a table) of this test's own: processes of another pid
# namespace that die here would look alive forever in the machine's default
# table (liveness is not judged across pid namespaces). Removed at exit.
span_hex=$(printf '%x' $(( 0x2e0000000000 + ($$ % 256) * 0x100000000 )))
export SHMKEEPER_SPAN=0x$span_hex:1G
# ipcs -m -i exits 0 for an id that does not exist: ask the kernel's table.
sysv_exists() { awk -v id="$1" 'NR > 1 && $2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm; }
fail=0
work=$(mktemp -d) || exit 99
holder=
trap '[ -n "$holder" ] && kill -KILL $holder 2>/dev/null; rm -rf "$work" /dev/shm/shmkeeper.span.v*.$span_hex.*' EXIT


for outside in no yes; do
	name=sk_reap_$$_$outside
	rm -f "$work/ids" "$work/ids.held"
	"$SHMK_TOOL" run --reap -- "$P" daemon "/$name" "$work/ids" 2>"$work/report" &
	tool=$!
	n=0; while [ ! -s "$work/ids" ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
	read -r id _ pid < "$work/ids" || { echo "FAIL: the daemon did not start"; exit 1; }
	if [ $outside = yes ]; then
		"$P" hold "/$name" "$work/ids" &
		holder=$!
		n=0; while [ ! -e "$work/ids.held" ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
	fi
	kill -0 "$tool" 2>/dev/null || { echo "FAIL: the tool did not wait for the daemon"; fail=1; }
	kill -KILL "$pid"
	wait "$tool"
	if [ $outside = no ]; then
		if [ -z "$SHMK_IN_NS" ] && grep -q 'mappings could not be read' "$work/report"; then
			echo "note: no private pid namespace, and an unreadable process here: POSIX kept"
			grep -q 'SysV.*: reaped$' "$work/report" || { echo "FAIL: SysV not reaped"; fail=1; }
		else
			[ "$(grep -c ': reaped$' "$work/report")" = 2 ] ||
				{ echo "FAIL: the report does not list 2 reaped segments"; fail=1; }
			if sysv_exists "$id" || test -e "/dev/shm/$name"; then
				echo "FAIL: a leak of the killed daemon is left"; fail=1
			fi
		fi
	else
		if ! sysv_exists "$id" || ! test -e "/dev/shm/$name"; then
			echo "FAIL: a segment held outside the run was removed"; fail=1
		fi
		[ "$(grep -c 'kept: .*outside the run' "$work/report")" = 2 ] ||
			{ echo "FAIL: the report does not say why it kept them"; fail=1; }
		kill -KILL $holder; wait $holder 2>/dev/null; holder=
	fi
	[ $fail = 0 ] || cat "$work/report"
	ipcrm -m "$id" 2>/dev/null; rm -f "/dev/shm/$name"
done
exit $fail
