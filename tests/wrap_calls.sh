#!/bin/sh
# Each wrapped call, flag and error case (issue 3): tests/wrap_calls checks
# the results and errno itself, and says which events its log must hold, in
# order; this script reads the log back (tests/logdump) and checks them.
. "$top_srcdir/tests/lib.sh"
need_lib

check_log() {  # $1: expectations from the program, $2: the log dir
	pid=$(awk '$1 == "pid" { print $2 }' "$1")
	log="$2/shmk-$pid-0.shmk"
	[ -f "$log" ] || { echo "no log $log"; return 1; }
	logdump "$log" >"$WORK/dump" 2>"$WORK/dump.err" || { cat "$WORK/dump.err"; return 1; }
	st=0
	# In order: each "expect" is matched by a later event line than the one before.
	awk -v dump="$WORK/dump" '
		BEGIN { n = 0; while ((getline l < dump) > 0) ev[++n] = l; at = 1 }
		# "never": not between the events matched by the expects around it.
		function nevers(lo, hi,   i, k) {
			for (k = 1; k <= nn; k++)
				for (i = lo; i <= hi; i++)
					if (ev[i] ~ nv[k]) { print "unexpected: " ev[i]; bad = 1 }
			nn = 0
		}
		$1 == "expect" {
			re = substr($0, 8); found = 0
			for (i = at; i <= n; i++) if (ev[i] ~ re) { found = i; break }
			if (!found) { print "missing (after event " at "): " re; bad = 1 }
			else { nevers(at, found - 1); at = found + 1 }
		}
		$1 == "never" { nv[++nn] = substr($0, 7) }
		$1 == "failed" {
			split($2, want, ","); split("", got)
			for (i = 1; i <= n; i++) if (ev[i] ~ /^file /) {
				match(ev[i], /failed=[0-9,]+/); split(substr(ev[i], RSTART + 7, RLENGTH - 7), got, ",")
			}
			for (k in want) if (got[k] + 0 < want[k] + 0) {
				print "failed[" k - 1 "] = " got[k] ", want at least " want[k]; bad = 1
			}
		}
		END { nevers(at, n); exit bad }' "$1" || st=1
	# The fork child, the spawned child: logs of their own, naming the parent.
	nchild=$(logdump "$2" 2>/dev/null | grep -c "^file .* parent=$pid " || true)
	[ "$nchild" -ge 1 ] || { echo "no log names $pid as its fork parent"; st=1; }
	[ $st = 0 ] || { echo "--- log:"; cat "$WORK/dump"; }
	return $st
}

for depth in 16 0; do
	log=$(new_logdir)
	SHMKEEPER_BACKTRACE_DEPTH=$depth with_preload "$log" "$SHMK_TESTBIN/wrap_calls" \
		>"$WORK/out" 2>"$WORK/err"
	rc=$?
	grep '^# FAIL' "$WORK/out"
	[ $rc = 0 ] || fail "wrap_calls (depth $depth) exited $rc: $(head -3 "$WORK/err")"
	[ -s "$WORK/err" ] && fail "the library wrote to stderr: $(head -3 "$WORK/err")"
	check_log "$WORK/out" "$log" || fail "the log (depth $depth) does not hold the calls"
	if [ $depth = 16 ]; then
		grep -q '^sysv_get .*nframes=0$' "$WORK/dump" && fail "no stack on an event at depth 16"
	else
		grep -Eq 'nframes=[1-9]' "$WORK/dump" && fail "a stack at depth 0"
	fi
done
# The same program without the library: the checks in the program alone.
"$SHMK_TESTBIN/wrap_calls" >"$WORK/out" 2>&1 || fail "wrap_calls fails without the library: $(grep FAIL "$WORK/out")"
echo ok
