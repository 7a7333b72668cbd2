#!/bin/sh
# SHMKEEPER_CLEANUP=owned on an unmodified program: what it created and did
# not remove is removed at exit, _exit and SIGTERM, and the report says so
# ("how": "cleanup"); SIGKILL runs nothing; the default (none) leaves it, and
# ipcmk under `run --cleanup=none` keeps the segment it makes for others.
P=${SHMK_TESTBIN:-tests}/cleanup_shmprog
test -x "$P" || { echo "SKIP: $P not built"; exit 77; }
test -f "$SHMK_LIB" || { echo "SKIP: $SHMK_LIB not built"; exit 77; }
# ipcs -m -i exits 0 for an id that does not exist: ask the kernel's table.
sysv_exists() { awk -v id="$1" 'NR > 1 && $2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm; }
fail=0
work=$(mktemp -d) || exit 99
trap 'rm -rf "$work"' EXIT

gone_sysv() { ! sysv_exists "$1"; }
gone_posix() { ! test -e "/dev/shm/$1"; }

run_case() {   # run_case HOW POLICY -> leaves $id $name $pid, status in $st
	how=$1 pol=$2
	logs=$work/logs-$how-$pol
	rm -rf "$logs"; mkdir "$logs"
	name=sk_owned_$$_$how
	rm -f "$work/ids"
	SHMKEEPER_LOG_DIR=$logs SHMKEEPER_CLEANUP=$pol LD_PRELOAD=$SHMK_LIB \
		"$P" "$how" "/$name" "$work/ids" &
	bg=$!
	n=0
	while [ ! -s "$work/ids" ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
	read -r id _ pid < "$work/ids" || { echo "FAIL $how: no ids"; fail=1; return 1; }
	case $how in wait) kill -TERM "$bg";; kill9) kill -KILL "$bg";; esac
	wait "$bg"; st=$?
}

for how in exit _exit wait; do
	run_case $how owned || continue
	if ! gone_sysv "$id" || ! gone_posix "$name"; then
		echo "FAIL owned/$how: segment left (status $st)"; fail=1
		ipcrm -m "$id" 2>/dev/null; rm -f "/dev/shm/$name"
	fi
	[ $how != wait ] || [ $st -eq 143 ] || { echo "FAIL owned/wait: status $st, not 143"; fail=1; }
	n=$("$SHMK_TOOL" report --format=json "$logs" 2>/dev/null | grep -c '"how": "cleanup"')
	[ "$n" = 2 ] || { echo "FAIL owned/$how: the report lists $n cleanup removals, not 2"; fail=1; }
done
run_case exit none && {
	if gone_sysv "$id" || gone_posix "$name"; then echo "FAIL none: removed"; fail=1; fi
	ipcrm -m "$id" 2>/dev/null; rm -f "/dev/shm/$name"
}
rm -f "$work/ids"
SHMKEEPER_LOG_DIR=$work SHMKEEPER_CLEANUP=owned LD_PRELOAD=$SHMK_LIB "$P" kill "/sk_owned_$$_k" "$work/ids"
read -r id _ pid < "$work/ids"
if gone_sysv "$id"; then echo "FAIL SIGKILL: a cleanup ran"; fail=1; fi
ipcrm -m "$id" 2>/dev/null; rm -f "/dev/shm/sk_owned_$$_k"

# The tool's option, and ipcmk's segment made on purpose for others.
rm -f "$work/ids"
"$SHMK_TOOL" run --cleanup=owned -- "$P" exit "/sk_owned_$$_t" "$work/ids" 2>/dev/null
read -r id _ pid < "$work/ids"
gone_sysv "$id" && gone_posix "sk_owned_$$_t" || { echo "FAIL run --cleanup=owned"; fail=1; }
if command -v ipcmk >/dev/null; then
	out=$("$SHMK_TOOL" run --cleanup=none -- ipcmk -M 4096 2>/dev/null)
	id=$(echo "$out" | sed -n 's/^Shared memory id: //p')
	if [ -z "$id" ] || gone_sysv "$id"; then
		echo "FAIL ipcmk under --cleanup=none: segment gone ($out)"; fail=1
	fi
	[ -n "$id" ] && ipcrm -m "$id"
fi
exit $fail
