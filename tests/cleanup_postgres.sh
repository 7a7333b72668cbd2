#!/bin/sh
# PostgreSQL's postmaster, killed with SIGKILL under `shmkeeper run --reap`,
# leaves its SysV segment and its POSIX dynamic shared memory behind; the
# reap removes them once the postmaster and all its backends are gone.
# Runs as a user the test creates (postgres refuses root), on a unix socket
# in a temporary directory, no TCP. Skipped when PostgreSQL is not installed
# (.ci/run: apt-get install -y postgresql).
test -x "$SHMK_TOOL" && test -f "$SHMK_LIB" || { echo "SKIP: tool or library not built"; exit 77; }
bin=
for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/postgres" ] && [ -x "$d/initdb" ] && bin=$d
done
[ -n "$bin" ] || { echo "SKIP: PostgreSQL is not installed (apt-get install postgresql)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to create the user postgres runs as"; exit 77; }
# PostgreSQL 15 hangs at start-up (in bindtextdomain, on glibc's _nl_state_lock)
# with the ASan runtime preloaded, shmkeeper or not: the plain build runs this.
if ldd "$SHMK_LIB" 2>/dev/null | grep -q 'libasan\|libtsan'; then
	echo "SKIP: sanitizer build: postgres does not start with the ASan runtime preloaded"
	exit 77
fi
command -v runuser >/dev/null && command -v useradd >/dev/null ||
	{ echo "SKIP: runuser or useradd missing"; exit 77; }
# A private pid namespace: the reap must prove no process outside the run
# maps the POSIX objects, and the host may have processes nobody can read.
if [ -z "$SHMK_IN_NS" ] && unshare -pf --mount-proc true 2>/dev/null; then
	SHMK_IN_NS=1 exec unshare -pf --mount-proc "${SHELL:-/bin/sh}" "$0" "$@"
fi
# A span (and so a table) of this test's own: processes of another pid
# namespace that die here would look alive forever in the machine's default
# table (liveness is not judged across pid namespaces). Removed at exit.
span_hex=$(printf '%x' $(( 0x2e0000000000 + ($$ % 256) * 0x100000000 )))
export SHMKEEPER_SPAN=0x$span_hex:1G
sysv_of() { awk -v p="$1" 'NR > 1 && $5 == p { print $2 }' /proc/sysvipc/shm; }

user=shmk_pg_test
id "$user" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /bin/sh "$user" ||
	{ echo "SKIP: useradd $user failed"; exit 77; }
work=$(mktemp -d) || exit 99
chmod 755 "$work"
chown "$user" "$work"
pm=
trap '[ -n "$pm" ] && kill -KILL $pm 2>/dev/null; rm -rf "$work" /dev/shm/shmkeeper.span.v*.$span_hex.*' EXIT
as() { runuser -u "$user" -- "$@"; }
# The tool and the library must be readable by that user.
[ -r "$SHMK_LIB" ] && as test -x "$SHMK_TOOL" && as test -r "$SHMK_LIB" ||
	{ echo "SKIP: the build tree is not readable by $user"; exit 77; }

as "$bin/initdb" -A trust -D "$work/data" >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log"; echo "FAIL: initdb"; exit 1; }
mkdir "$work/sock" "$work/logs" && chown "$user" "$work/sock" && chmod 1777 "$work/logs"
before=$(ls /dev/shm | grep '^PostgreSQL\.' | sort)
# The tool as root, so that it can read every process's mappings; postgres
# as the user (LD_PRELOAD and SHMKEEPER_LOG_DIR pass through runuser).
"$SHMK_TOOL" run --reap --log-dir="$work/logs" -- runuser -u "$user" -- "$bin/postgres" -D "$work/data" \
	-k "$work/sock" -c listen_addresses= -c dynamic_shared_memory_type=posix \
	>"$work/pg.log" 2>"$work/report" &
tool=$!
n=0
while [ ! -S "$work/sock/.s.PGSQL.5432" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
[ -S "$work/sock/.s.PGSQL.5432" ] || { cat "$work/report"; echo "FAIL: postgres did not start"; exit 1; }
pm=$(head -1 "$work/data/postmaster.pid")
sleep 0.5
segs=$(sysv_of "$pm")
objs=$(ls /dev/shm | grep '^PostgreSQL\.' | sort)
new=$(printf '%s\n' "$objs" | while read -r o; do
	printf '%s\n' "$before" | grep -qxF "$o" || echo "$o"; done)
[ -n "$segs" ] || { echo "FAIL: no SysV segment of the postmaster ($pm) to test with"; exit 1; }
[ -n "$new" ] || echo "note: the postmaster made no POSIX object"
kill -KILL "$pm"
wait "$tool"
pm=
fail=0
for s in $segs; do
	awk -v id="$s" 'NR > 1 && $2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm &&
		{ echo "FAIL: SysV segment $s of the killed postmaster is left"; fail=1; }
done
for o in $new; do
	test -e "/dev/shm/$o" && { echo "FAIL: /dev/shm/$o is left"; fail=1; }
done
grep -q ': reaped$' "$work/report" || { echo "FAIL: the report lists nothing reaped"; fail=1; }
[ $fail = 0 ] || { cat "$work/report"; tail -20 "$work/pg.log"; }
exit $fail
