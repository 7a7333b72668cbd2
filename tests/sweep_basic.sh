#!/bin/sh
# `shmkeeper sweep` in a private IPC namespace, pid namespace and /dev/shm (a
# sweep of the real machine would take other tests' segments): a creator
# killed with SIGKILL leaves a SysV segment and a POSIX object; --dry-run
# lists them and removes nothing; sweep removes them and keeps, saying why,
# what a live process created and holds; without logs a POSIX object is kept;
# the span table is kept while mapped, removed once its users were killed.
P=${SHMK_TESTBIN:-tests}/cleanup_shmprog
test -x "$P" || { echo "SKIP: $P not built"; exit 77; }
test -x "$SHMK_TOOL" && test -f "$SHMK_LIB" || { echo "SKIP: tool or library not built"; exit 77; }
if [ -z "$SHMK_IN_NS" ]; then
	unshare -ipmf --mount-proc true 2>/dev/null ||
		{ echo "SKIP: cannot make private IPC, pid and mount namespaces (unshare)"; exit 77; }
	SHMK_IN_NS=1 exec unshare -ipmf --mount-proc "${SHELL:-/bin/sh}" "$0" "$@"
fi
mount -t tmpfs -o mode=1777 shmkeeper-test /dev/shm ||
	{ echo "SKIP: cannot mount a private /dev/shm"; exit 77; }
fail=0
sysv_exists() { awk -v id="$1" 'NR > 1 && $2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm; }
work=$(mktemp -d) || exit 99
logs=$work/logs
mkdir "$logs"
live=
trap '[ -n "$live" ] && kill -KILL $live 2>/dev/null; rm -rf "$work"' EXIT

SHMKEEPER_LOG_DIR=$logs LD_PRELOAD=$SHMK_LIB "$P" kill /sk_dead "$work/dead"
read -r dead_id _ dead_pid < "$work/dead"
SHMKEEPER_LOG_DIR=$logs LD_PRELOAD=$SHMK_LIB "$P" wait /sk_live "$work/live" &
live=$!
n=0; while [ ! -s "$work/live" ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
read -r live_id _ live_pid < "$work/live"

out=$("$SHMK_TOOL" sweep --dry-run --log-dir="$logs")
echo "$out"
echo "$out" | grep -q "^stale .*SysV shmid $dead_id .*creator pid $dead_pid is dead" ||
	{ echo "FAIL: dry run does not list the dead creator's SysV segment"; fail=1; }
echo "$out" | grep -q "^stale .*POSIX /sk_dead.*created by pid $dead_pid" ||
	{ echo "FAIL: dry run does not list the dead creator's POSIX object with its origin"; fail=1; }
echo "$out" | grep -q "^kept .*SysV shmid $live_id.*attached by 1 process" ||
	{ echo "FAIL: the live SysV segment is not kept with its reason"; fail=1; }
echo "$out" | grep -q "^kept .*POSIX /sk_live.*creator pid $live_pid is alive" ||
	{ echo "FAIL: the live POSIX object is not kept with its reason"; fail=1; }
sysv_exists "$dead_id" && test -e /dev/shm/sk_dead || { echo "FAIL: --dry-run removed"; fail=1; }

out=$("$SHMK_TOOL" sweep)
echo "$out" | grep -q "^kept .*POSIX /sk_dead.*no log records its creator" ||
	{ echo "FAIL: without logs a POSIX object must be kept"; fail=1; }

out=$("$SHMK_TOOL" sweep --log-dir="$logs")
echo "$out"
! sysv_exists "$dead_id" && ! test -e /dev/shm/sk_dead ||
	{ echo "FAIL: sweep left the dead creator's segments"; fail=1; }
sysv_exists "$live_id" && test -e /dev/shm/sk_live ||
	{ echo "FAIL: sweep removed a live process's segments"; fail=1; }

# The library's span table: both processes placed in it, the live one still
# maps it (kept); once that one is SIGKILLed too, nobody unlinks it, and
# sweep does.
ls /dev/shm | grep -q '^shmkeeper\.span\.' ||
	{ echo "FAIL: no span table (the programs attach without an address)"; fail=1; }
echo "$out" | grep -q "^kept .*span table /dev/shm/shmkeeper\.span\..*in use by pid $live_pid" ||
	{ echo "FAIL: the span table in use is not kept with its reason"; fail=1; }
kill -KILL $live; wait $live 2>/dev/null; live=
test -n "$(ls /dev/shm | grep '^shmkeeper\.span\.')" ||
	{ echo "FAIL: a SIGKILLed last user removed the span table (test broken)"; fail=1; }
out=$("$SHMK_TOOL" sweep)
echo "$out"
echo "$out" | grep -q "^removed  span table /dev/shm/shmkeeper\.span\..*no process maps it" ||
	{ echo "FAIL: sweep did not say it removed the span table"; fail=1; }
test -z "$(ls /dev/shm | grep '^shmkeeper\.span\.')" ||
	{ echo "FAIL: sweep left the span table of SIGKILLed users"; fail=1; }
exit $fail
