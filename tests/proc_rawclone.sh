#!/bin/sh
# Children that no atfork handler announces (LTP's SAFE_CLONE, clone3,
# glibc's clone()): each is a process of its own, with its own log naming its
# parent, its own pid and tids in its records, the attachments it inherited,
# and a slot of its own in the span; the report gives it what it created,
# attached, detached and removed. Before the marker page (preload/state.c)
# its records went into its parent's log under its parent's pid, and the
# segment it created read "not created by a recorded process". A thread, and
# a CLONE_VM clone without a TLS of its own, stay the same process.
. "$top_srcdir/tests/lib.sh"
need_lib
prog="$SHMK_TESTBIN/proc_rawclone"
[ -x "$prog" ] || hard "not built: $prog"
command -v ipcrm >/dev/null 2>&1 || skip "ipcrm (util-linux) is not installed"
CLEANUP='for f in "$WORK"/out.*; do ipcrm -m $(sed -n "s/^p*shmid //p" "$f") 2>/dev/null; done'

n=0
bad=0
check() {
	what=$1; shift
	if ! "$@"; then
		note "FAIL: $case: $what"
		[ $bad = 1 ] || { note "its logs:"; cat "$D" >&2; }
		bad=1
	fi
}
has() { grep -qE -- "$1" "$2"; }
hasnt() { ! grep -qE -- "$1" "$2"; }

# section PID DUMP: the records of the log of PID.
section() { awk -v p="pid=$1" '$1 == "file" { on = ($3 == p); next } on && $1 != "end"' "$2"; }

# run HOW END PRIOR: one run in a log directory of its own; sets P, C, I,
# T, KEY, L, D (the dump) and R (the report).
run() {
	n=$((n + 1))
	case="$1 $2 prior=$3"
	KEY=$(( (0x5c000000 + ($$ % 4096) * 4096 + n * 8) ))
	L=$(new_logdir)
	out="$WORK/out.$n"
	with_preload "$L" "$prog" "$1" "$2" "$3" "$KEY" >"$out" 2>"$WORK/err.$n"
	rc=$?
	[ $rc = 77 ] && { note "$case: skipped: $(cat "$WORK/err.$n")"; return 1; }
	[ $rc = 0 ] || { note "FAIL: $case: exited $rc: $(cat "$WORK/err.$n")"; bad=1; return 1; }
	P=$(sed -n 's/^parent //p' "$out")
	C=$(sed -n 's/^child //p' "$out")
	I=$(sed -n 's/^shmid //p' "$out")
	T=$(sed -n 's/^thread //p' "$out")
	D="$WORK/dump.$n"
	R="$WORK/report.$n"
	logdump "$L" >"$D" 2>&1
	"$SHMK_TOOL" report --show-all "$L" >"$R" 2>&1
	[ -n "$P" ] && [ -n "$C" ] && [ -n "$I" ] || { note "FAIL: $case: output: $(cat "$out")"; bad=1; return 1; }
	return 0
}

# A child process: created, attached, detached (and removed) by it, in its
# own log; nothing of it in its parent's.
for how in raw clone3 glibc; do
	for end in rm leak; do
		for prior in 0 1; do
			run $how $end $prior || continue
			section "$C" "$D" >"$D.child"
			section "$P" "$D" >"$D.parent"
			check "a log of the child's own, naming its parent" \
				has "^file .* pid=$C ppid=$P parent=$P " "$D"
			check "created by the child (its pid, its tid)" \
				has "^sysv_get tid=$C key=$KEY shmid=$I .* flags=1 " "$D.child"
			check "attached by the child" has "^sysv_at tid=$C shmid=$I " "$D.child"
			check "detached by the child" has "^sysv_dt tid=$C shmid=$I " "$D.child"
			check "nothing of the child's in the parent's log" \
				hasnt " shmid=$I " "$D.parent"
			check "report: attached by the child" \
				has "attached  by pid $C " "$R"
			if [ $end = rm ]; then
				check "removed by the child" \
					has "^sysv_ctl tid=$C shmid=$I cmd=0 " "$D.child"
				check "report: removed by its creator" \
					has "SysV shmid $I key .*: removed by its creator" "$R"
				check "report: nothing leaked" \
					has "^LEAK SUMMARY: 0 segments leaked" "$R"
			else
				check "report: the leak, created by the child" \
					has "created by pid $C " "$R"
				check "report: one leak" \
					has "^LEAK SUMMARY: 1 segment leaked" "$R"
			fi
			# A parent that never recorded has no log to be shown in.
			[ $prior = 1 ] &&
				check "report: the child under its parent" has "\`- $C " "$R"
		done
	done
done

# The child's first call made by a thread it started: the thread runs the
# reset, and the child's first thread still records its own tid, not the
# one its parent's thread had cached.
if run mt rm 1; then
	section "$C" "$D" >"$D.child"
	check "the thread's tid" [ -n "$T" ]
	check "the thread's records under its tid" has "^sysv_get tid=$T key=$((KEY + 2)) " "$D.child"
	check "the first thread's records under the child's pid" \
		has "^sysv_get tid=$C key=$KEY shmid=$I " "$D.child"
	check "no other tid in the child's log" \
		sh -c "! grep -vE '^[a-z_]+ tid=($C|$T) ' '$D.child' | grep -q ."
fi

# What came through the clone: recorded as inherited in the child's log
# (SK_F_INHERITED, 64), detached by the child.
for prior in 0 1; do
	run inherit rm $prior || continue
	section "$C" "$D" >"$D.child"
	fl=$(sed -n "s/^sysv_at tid=$C shmid=$I .* flags=\([0-9]*\) .*/\1/p" "$D.child")
	check "the inherited attachment in the child's log" [ -n "$fl" ]
	check "marked inherited" [ $(( ${fl:-0} & 64 )) = 64 ]
	check "detached by the child" has "^sysv_dt tid=$C shmid=$I " "$D.child"
	check "report: detached by the child" has "detached  by pid $C " "$R"
done

# CLONE_NEWIPC: the parent's shmids name nothing in the child's namespace.
# The child does not record the SysV attachment it inherited (it would be a
# segment of its namespace with the parent's shmid in the report), and
# places in its namespace's span table, not as a user of its parent's.
# That table outlives the namespace (the child _exits): removed here.
ns_tables() { ls /dev/shm 2>/dev/null | grep '^shmkeeper\.span\.' | sort; }
ns_tables >"$WORK/tables.before"
if run newipc rm 1; then
	PI=$(sed -n 's/^pshmid //p' "$out")
	section "$C" "$D" >"$D.child"
	check "created by the child in its namespace" \
		has "^sysv_get tid=$C key=$KEY shmid=$I .* flags=1 " "$D.child"
	check "removed by the child" has "^sysv_ctl tid=$C shmid=$I cmd=0 " "$D.child"
	check "the parent's segment not in the child's log" hasnt " shmid=$PI " "$D.child"
	check "report: the parent's segment not the child's" \
		sh -c "! grep -A3 'SysV shmid $PI ' '$R' | grep -q 'by pid $C '"
fi
own=$(printf '%x' "$(stat -L -c %i /proc/self/ns/ipc)")
ns_tables | comm -13 "$WORK/tables.before" - | grep -v "\.v[0-9]*\.$own\." |
	while read -r t; do rm -f "/dev/shm/$t"; done

# Threads share the marker page: one process, one log.
for how in thread vmthread; do
	for prior in 0 1; do
		run $how rm $prior || continue
		check "one log" [ "$(grep -c '^file ' "$D")" = 1 ]
		check "the parent's" has "^file .* pid=$P " "$D"
		check "the thread's calls in it" has "^sysv_ctl tid=[0-9]* shmid=$I cmd=0 " "$D"
		[ $how = thread ] &&
			check "under the thread's tid" has "^sysv_get tid=$C key=$KEY shmid=$I " "$D"
		check "report: one process" has "^== shmkeeper: 1 process," "$R"
	done
done

[ $bad = 0 ] || fail "children of a raw clone or threads not recorded as their own process (see above)"
echo ok
