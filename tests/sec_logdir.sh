#!/bin/sh
# The log directory and files (issue 8): files 0600, created O_EXCL and
# O_NOFOLLOW (a planted symlink is neither followed nor replaced); a
# directory that is world writable without the sticky bit, or owned by
# another user, is refused with a message and the program goes on.
. "$top_srcdir/tests/lib.sh"
need_lib
prog=$SHMK_TESTBIN/wrap_calls
[ -x "$prog" ] || hard "tests/wrap_calls not built"

# 1. Files are 0600 whatever the umask.
log=$(new_logdir)
(umask 0; with_preload "$log" "$prog" >/dev/null 2>&1) || fail "wrap_calls failed under the library"
for f in "$log"/*.shmk; do
	[ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f")"
done

# 2. A symlink planted at the name the process will use: not followed.
log=$(new_logdir)
echo precious >"$WORK/target"
# exec keeps the pid, so the shell knows the name before the library does.
with_preload "$log" sh -c 'ln -s "$1" "$2/shmk-$$-0.shmk"; exec "$3"' sh "$WORK/target" "$log" "$prog" \
	>/dev/null 2>&1 || fail "wrap_calls failed with a planted symlink"
[ "$(cat "$WORK/target")" = precious ] || fail "the library wrote through a symlink"
n=$(find "$log" -name '*.shmk' -type f | wc -l)
[ "$n" -ge 1 ] || fail "no log beside the planted symlink"
find "$log" -name '*.shmk' -type l | grep -q . || fail "the planted symlink was removed"

# 3. World writable without the sticky bit: refused, said, the program runs.
bad=$(mktemp -d "$WORK/ww.XXXXXX"); chmod 0777 "$bad"
with_preload "$bad" "$prog" >/dev/null 2>"$WORK/err" || fail "the program failed (world-writable dir)"
grep -q "world-writable" "$WORK/err" || fail "no message for a world-writable dir: $(cat "$WORK/err")"
ls "$bad"/*.shmk >/dev/null 2>&1 && fail "logged into a world-writable directory"
# Once per process that made calls (wrap_calls, its fork child, its spawned child).
[ "$(grep -c shmkeeper: "$WORK/err")" -le 3 ] || fail "the refusal is repeated: $(cat "$WORK/err")"

# 4. Owned by another user: refused.
if [ "$(id -u)" = 0 ] && command -v useradd >/dev/null 2>&1; then
	ug=$(make_user shmkeeper-test)
	other=$(mktemp -d "$WORK/other.XXXXXX"); chown "$ug" "$other"; chmod 0755 "$other"
	with_preload "$other" "$prog" >/dev/null 2>"$WORK/err" || fail "the program failed (foreign dir)"
	grep -q "another user" "$WORK/err" || fail "no message for a directory of another user: $(cat "$WORK/err")"
	ls "$other"/*.shmk >/dev/null 2>&1 && fail "logged into another user's directory"
else
	note "not root: the other-owner case is left out"
fi

# 5. Relative and missing directories: said once, the program goes on.
with_preload "$WORK/missing" "$prog" >/dev/null 2>"$WORK/err" || fail "the program failed (missing dir)"
grep -q "does not exist" "$WORK/err" || fail "no message for a missing dir: $(cat "$WORK/err")"
echo ok
