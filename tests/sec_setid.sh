#!/bin/sh
# In setuid or setgid programs the library records nothing and changes
# nothing (issue 8): a copy of tests/sec_prog (linked against the library)
# owned by a test user, setuid, then setgid, run by root with
# SHMKEEPER_LOG_DIR set: it must run as without the library, leave no log
# and say nothing.
. "$top_srcdir/tests/lib.sh"
need_lib
need_root "making a setuid program of another user"
ug=$(make_user shmkeeper-test)
prog=$SHMK_TESTBIN/.libs/sec_prog
[ -x "$prog" ] || prog=$SHMK_TESTBIN/sec_prog
# Control: not setid, the library records.
log=$(new_logdir)
SHMKEEPER_LOG_DIR=$log "$prog" >/dev/null 2>&1 || fail "sec_prog fails"
ls "$log"/*.shmk >/dev/null 2>&1 || fail "control: sec_prog linked with the library left no log"
for bit in u g; do
	cp "$prog" "$WORK/prog-$bit" && chown "$ug" "$WORK/prog-$bit" && chmod "$bit+s,a+rx" "$WORK/prog-$bit" ||
		hard "cannot make a set${bit}id copy"
	log=$(new_logdir)
	out=$(SHMKEEPER_LOG_DIR=$log "$WORK/prog-$bit" 2>"$WORK/err")
	rc=$?
	case $bit in
	u) echo "$out" | grep -q "euid=${ug%%:*} " || skip "the set-user-id bit had no effect here (nosuid mount?): $out" ;;
	g) echo "$out" | grep -q "egid=${ug#*:}" || skip "the set-group-id bit had no effect here: $out" ;;
	esac
	[ $rc = 0 ] || fail "set${bit}id program failed under the library: $out $(cat "$WORK/err")"
	[ -s "$WORK/err" ] && fail "set${bit}id: the library spoke: $(cat "$WORK/err")"
	ls "$log"/* >/dev/null 2>&1 && fail "set${bit}id: a log was written: $(ls "$log")"
done
echo ok
