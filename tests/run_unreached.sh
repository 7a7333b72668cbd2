#!/bin/sh
# `shmkeeper run` says when LD_PRELOAD cannot reach PROG itself, instead of
# reporting "0 leaked" as if it had watched it: a statically linked program
# (it leaks a segment that goes unrecorded), and, as root, a set-user-ID copy
# of a dynamic one owned by a test user. A dynamic program gets no warning.
. "$top_srcdir/tests/lib.sh"
need_lib
cat > "$WORK/st.c" <<'C'
#include <stdio.h>
#include <sys/shm.h>
int main(void) { printf("%d\n", shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600)); return 0; }
C
# Plain cc, not the build's CC: a sanitizer build cannot link statically.
cc -static -o "$WORK/st" "$WORK/st.c" 2>"$WORK/cc.err" ||
	skip "cannot link a static program here: $(head -n 1 "$WORK/cc.err")"
id=$("$SHMK_TOOL" run -- "$WORK/st" 2>"$WORK/err")
rc=$?
[ "$id" -ge 0 ] 2>/dev/null && CLEANUP="$CLEANUP
ipcrm -m $id"
[ $rc = 0 ] || fail "static program: exit $rc: $(cat "$WORK/err")"
grep -q "^shmkeeper: warning: $WORK/st: it is statically linked" "$WORK/err" ||
	fail "no warning for a static program: $(cat "$WORK/err")"
[ "$(grep -c warning "$WORK/err")" = 1 ] || fail "not said once: $(cat "$WORK/err")"
# A dynamic program, found through PATH: nothing to say.
"$SHMK_TOOL" run -- true 2>"$WORK/err" ||
	fail "true failed: $(cat "$WORK/err")"
grep -q warning "$WORK/err" && fail "warning for a dynamic program: $(cat "$WORK/err")"
if [ "$(id -u)" = 0 ]; then
	ug=$(make_user shmkeeper-test)
	cp "$(command -v env)" "$WORK/suenv" && chown "$ug" "$WORK/suenv" &&
		chmod u+s,a+rx "$WORK/suenv" || hard "cannot make a setuid copy of env"
	"$SHMK_TOOL" run -- "$WORK/suenv" true 2>"$WORK/err" || fail "setuid env failed: $(cat "$WORK/err")"
	grep -q "set-user-ID" "$WORK/err" || fail "no warning for a setuid program: $(cat "$WORK/err")"
else
	note "the set-user-ID case needs root: not checked"
fi
echo ok
