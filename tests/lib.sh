# tests/lib.sh - helpers for the shell tests. Source it:  . "$top_srcdir/tests/lib.sh"
#
# The environment comes from AM_TESTS_ENVIRONMENT (Makefile.am): SHMK_LIB,
# SHMK_TOOL, SHMK_TESTBIN, top_builddir, top_srcdir. Exit statuses follow
# automake: 0 pass, 77 skip (always with a reason), 99 hard error, else fail.

set -u

: "${top_builddir:=$(pwd)}"
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${SHMK_LIB:=$top_builddir/.libs/libshmkeeper.so}"
: "${SHMK_TOOL:=$top_builddir/shmkeeper}"
: "${SHMK_TESTBIN:=$top_builddir/tests}"

TEST_NAME=$(basename "$0" .sh)

skip() { echo "SKIP: $TEST_NAME: $*" >&2; exit 77; }
fail() { echo "FAIL: $TEST_NAME: $*" >&2; exit 1; }
hard() { echo "ERROR: $TEST_NAME: $*" >&2; exit 99; }
note() { echo "$TEST_NAME: $*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || skip "needs root: $*"; }
need_prog() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed${2:+ ($2)}"; }
need_lib() { [ -f "$SHMK_LIB" ] || hard "library not built: $SHMK_LIB"; }

# A scratch directory, removed at exit (with whatever the test registered in
# CLEANUP, a list of commands).
CLEANUP=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shmk-$TEST_NAME.XXXXXX") || hard "mktemp"
chmod 755 "$WORK"
on_exit() {
	rc=$?
	eval "$CLEANUP" 2>/dev/null
	rm -rf "$WORK"
	exit $rc
}
trap on_exit EXIT
trap 'exit 99' INT TERM HUP

# remove_leaks FILE...: removes what the files list, one "sysv ID" or
# "posix NAME" a line (tests/leakmix writes them).
remove_leaks() {
	cat "$@" 2>/dev/null | while read -r kind what; do
		case $kind in
		sysv) ipcrm -m "$what" 2>/dev/null ;;
		posix) rm -f "/dev/shm/${what#/}" ;;
		esac
	done
}

# make_user NAME: creates (if needed) a system user for permission tests and
# prints "UID:GID". Root only. The user is left in place: tests run in
# parallel and share it; it has no shell and no home.
make_user() {
	need_root "creating the test user $1"
	if ! id -u "$1" >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin "$1" 2>/dev/null ||
			id -u "$1" >/dev/null 2>&1 || skip "cannot create user $1 (useradd)"
	fi
	echo "$(id -u "$1"):$(id -g "$1")"
}

# run_as UID:GID CMD...: runs CMD with those ids (setpriv from util-linux).
run_as() {
	ug=$1; shift
	need_prog setpriv "util-linux"
	setpriv --reuid="${ug%%:*}" --regid="${ug#*:}" --clear-groups -- "$@"
}

# Is the library built with AddressSanitizer? Then the ASan runtime must be
# loaded before it: LD_PRELOAD=libasan.so:libshmkeeper.so.
asan_runtime() {
	if command -v ldd >/dev/null 2>&1; then
		ldd "$SHMK_LIB" 2>/dev/null | awk '/libasan\.so/ { print $3; exit }'
	fi
}
tsan_runtime() {
	if command -v ldd >/dev/null 2>&1; then
		ldd "$SHMK_LIB" 2>/dev/null | awk '/libtsan\.so/ { print $3; exit }'
	fi
}
PRELOAD=$SHMK_LIB
_rt=$(asan_runtime)
[ -n "$_rt" ] || _rt=$(tsan_runtime)
# SAN_RT: what a program linked with the library preloads ("" unsanitized).
SAN_RT=$_rt
if [ -n "$_rt" ]; then
	PRELOAD="$_rt:$SHMK_LIB"
	SANITIZED=1
	# The programs under test are not ours to check for leaks; ours are in
	# the library, which LSan would report at exit of every host.
	export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:exitcode=86}"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=87}"
	export TSAN_OPTIONS="${TSAN_OPTIONS:-exitcode=88:report_signal_unsafe=0}"
else
	SANITIZED=0
fi

# with_preload LOGDIR CMD...: runs CMD recorded into LOGDIR.
# Assignments before the command, not env(1): under TSan the runtime cannot
# be preloaded into uninstrumented programs (env, sh), only into ours.
with_preload() {
	_d=$1; shift
	SHMKEEPER_LOG_DIR="$_d" LD_PRELOAD="$PRELOAD${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
}
TSAN=0
[ -n "$(tsan_runtime)" ] && TSAN=1

# A log directory: mode 1777 so that a process that dropped privileges can
# log there too (a shared directory must work, LESSONS.md).
new_logdir() {
	_d=$(mktemp -d "$WORK/log.XXXXXX") || hard "mktemp"
	chmod 1777 "$_d"
	echo "$_d"
}

# logdump DIR|FILE...: the logs, one event a line (tests/logdump.c).
logdump() { "$SHMK_TESTBIN/logdump" "$@"; }

# count_events DIR TYPE [PATTERN]: how many TYPE lines (matching PATTERN).
count_events() {
	logdump "$1" 2>/dev/null | grep -E "^$2 " | grep -cE -- "${3:-.}" || true
}

# A prefix unique to this test run, for keys and /dev/shm names.
UNIQ="shmkt$$"
