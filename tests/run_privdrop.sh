#!/bin/sh
# `shmkeeper run` as root, PROG dropping privileges before its calls (a
# server's workers): util-linux's setpriv runs ipcmk as another user, which
# leaks a SysV segment. The run's own temporary log directory must let that
# process log (it was root's 0700 directory: "not writable", and the report
# said 0 leaked), without letting other users list it; it is gone after.
# The report names the user the leak's creator ran as.
. "$top_srcdir/tests/lib.sh"
need_lib
need_root "running PROG as another user"
need_prog setpriv "util-linux"
need_prog ipcmk "util-linux"
ug=$(make_user shmkeeper-test)
id=
CLEANUP='[ -n "$id" ] && ipcrm -m "$id"'

tmp=$WORK/tmp
mkdir "$tmp" && chmod 755 "$tmp"
# PROG records where its log directory is, and how it is made.
TMPDIR=$tmp "$SHMK_TOOL" run --error-exitcode=9 -- \
	setpriv --reuid="${ug%%:*}" --regid="${ug#*:}" --clear-groups -- \
	sh -c 'd=$SHMKEEPER_LOG_DIR; stat -c "mode %a %U" "$d" "${d%/*}"; exec ipcmk -M 4096' \
	>"$WORK/out" 2>"$WORK/err"
rc=$?
id=$(sed -n 's/^Shared memory id: \([0-9]*\)$/\1/p' "$WORK/out")
[ -n "$id" ] || fail "ipcmk made no segment: $(cat "$WORK/out" "$WORK/err")"
[ "$(ipcs -m -i "$id" | sed -n 's/^uid=\([0-9]*\).*/\1/p')" = "${ug%%:*}" ] ||
	fail "the segment is not the other user's: $(ipcs -m -i "$id")"

grep -q "not writable\|not recording" "$WORK/err" && fail "the dropped process could not log: $(cat "$WORK/err")"
grep -q "LEAK SUMMARY: 1 segment leaked, 4096 bytes" "$WORK/err" ||
	fail "the leak is not reported: $(cat "$WORK/err")"
grep -q "SysV shmid $id " "$WORK/err" || fail "shmid $id not named: $(cat "$WORK/err")"
grep -q "(/usr/bin/ipcmk)\|/ipcmk)" "$WORK/err" || fail "creator not named: $(cat "$WORK/err")"
grep -q "created by pid [0-9]* (.*ipcmk) at .*, uid ${ug%%:*} (shmkeeper-test)\$" "$WORK/err" ||
	fail "the creator's user is not named: $(cat "$WORK/err")"
[ "$rc" = 9 ] || fail "exit status $rc, not 9 (--error-exitcode)"

# Writable by all, sticky, listable by none but root; inside a directory
# others may only pass through.
grep '^mode ' "$WORK/out" >"$WORK/modes"
[ "$(sed -n 1p "$WORK/modes")" = "mode 1733 root" ] || fail "log directory: $(sed -n 1p "$WORK/modes")"
[ "$(sed -n 2p "$WORK/modes")" = "mode 711 root" ] || fail "its parent: $(sed -n 2p "$WORK/modes")"
[ -z "$(ls -A "$tmp")" ] || fail "the temporary directory is left: $(ls -lA "$tmp")"

ipcrm -m "$id" && id=
echo ok
