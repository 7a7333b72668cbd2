#!/bin/sh
# Creation that shmget's flags do not announce: IPC_PRIVATE without
# IPC_CREAT creates (and leaks here), and of two threads racing
# shmget(key, IPC_CREAT) only one is the creator (each round's segment is
# created once and removed once, not counted twice with a phantom
# "removed by an unrecorded process"); and an attachment a fork child
# inherited and detached is listed once; an exec that logs nothing ends
# attachments at exec; a segment of an unrecorded creator has its size.
. "$top_srcdir/tests/lib.sh"
need_lib
prog=$SHMK_TESTBIN/sysv_create
[ -x "$prog" ] || hard "not built: $prog"

"$SHMK_TOOL" run --log-dir="$WORK/p" -- "$prog" private >"$WORK/p.out" 2>"$WORK/p.err"
rc=$?
id=$(cat "$WORK/p.out")
[ -n "$id" ] && CLEANUP="ipcrm -m $id"
[ $rc = 0 ] || { cat "$WORK/p.err"; fail "private: exit status $rc"; }
grep -q "SysV shmid $id key IPC_PRIVATE, 8192 bytes" "$WORK/p.err" ||
	{ cat "$WORK/p.err"; fail "private: IPC_PRIVATE without IPC_CREAT not reported as a leak"; }
grep -q '^LEAK SUMMARY: 1 segment leaked, 8192 bytes$' "$WORK/p.err" ||
	{ cat "$WORK/p.err"; fail "private: summary"; }
note "ok: IPC_PRIVATE without IPC_CREAT is a creation"

n=150
"$SHMK_TOOL" run --log-dir="$WORK/r" -- "$prog" race $n >"$WORK/r.out" 2>"$WORK/r.err"
rc=$?
[ $rc = 0 ] || { cat "$WORK/r.err"; fail "race: exit status $rc"; }
grep -q "^== shmkeeper: 1 process, $n segments created, $n removed (0 by another process), 0 leaked" "$WORK/r.err" ||
	{ cat "$WORK/r.err"; fail "race: each racing round is one creation and one removal"; }
grep -q "unrecorded process" "$WORK/r.err" && { cat "$WORK/r.err"; fail "race: phantom removal"; }
note "ok: racing shmget(IPC_CREAT) threads make one creation"
# A fork child's log lists the attachment it inherited, which the parent's
# fork record also gives: one inherited use, its explicit detach, and no
# second attach or implicit detach at exit (found running real programs).
"$SHMK_TOOL" run --log-dir="$WORK/f" -- "$prog" forkdt >"$WORK/f.out" 2>"$WORK/f.err"
rc=$?
id=$(cat "$WORK/f.out")
[ -n "$id" ] && CLEANUP="$CLEANUP; ipcrm -m $id"
[ $rc = 0 ] || { cat "$WORK/f.err"; fail "forkdt: exit status $rc"; }
sed -n '/Leak 1/,/created at/p' "$WORK/f.err" >"$WORK/f.block"
grep -q "SysV shmid $id key IPC_PRIVATE, 4096 bytes, perms 0600, 1 attach$" "$WORK/f.block" ||
	{ cat "$WORK/f.err"; fail "forkdt: one attach call"; }
[ "$(grep -c 'inherited by pid' "$WORK/f.block")" = 1 ] &&
[ "$(grep -c 'attached  by pid' "$WORK/f.block")" = 1 ] &&
[ "$(grep -c 'detached  by pid' "$WORK/f.block")" = 2 ] &&
! grep -q 'implicitly' "$WORK/f.block" ||
	{ cat "$WORK/f.err"; fail "forkdt: the child's inherited attachment counted twice"; }
note "ok: an inherited attachment is listed once"

# An exec whose new image records nothing still ends the attachments at
# exec, not at exit (found with perl: shmat, then exec).
"$SHMK_TOOL" run --log-dir="$WORK/e" -- "$prog" execdt >"$WORK/e.out" 2>"$WORK/e.err"
id=$(cat "$WORK/e.out")
[ -n "$id" ] && CLEANUP="$CLEANUP; ipcrm -m $id"
grep -q "detached  by pid .* implicitly at exec" "$WORK/e.err" ||
	{ cat "$WORK/e.err"; fail "execdt: the attachment dropped by exec is said to go at exit"; }
note "ok: an exec ends the attachments at exec"

# A segment made by an unrecorded process (ipcmk without the library) and
# attached by a recorded one has the size the attach saw, not 0.
if command -v ipcmk >/dev/null 2>&1; then
	id=$(ipcmk -M 40960 | sed -n 's/^Shared memory id: //p')
	[ -n "$id" ] || hard "ipcmk -M failed"
	CLEANUP="$CLEANUP; ipcrm -m $id"
	"$SHMK_TOOL" run --log-dir="$WORK/a" --format=json -- "$prog" attach "$id" 2>"$WORK/a.json" ||
		{ cat "$WORK/a.json"; fail "attach: exit status"; }
	grep -q "\"shmid\": $id, .*\"size\": 40960" "$WORK/a.json" ||
		{ cat "$WORK/a.json"; fail "attach: an unrecorded creator's segment has size 0"; }
	note "ok: an unrecorded creator's segment has its attached size"
fi
exit 0
