#!/bin/sh
# shmkeeper ls: the segments that exist now, SysV and /dev/shm, in lsipc -m's
# columns; --json; --log-dir joins them with their recorded creator and stack.
set -u
tool=${SHMK_TOOL:?}; bin=${SHMK_TESTBIN:?}
[ -x "$bin/leakmix" ] || { echo "SKIP: tests/leakmix is not built"; exit 77; }
[ -r "${SHMK_LIB:-}" ] || { echo "SKIP: libshmkeeper.so is not built"; exit 77; }
[ -r /proc/sysvipc/shm ] || { echo "SKIP: no /proc/sysvipc/shm"; exit 77; }
. "$top_srcdir/tests/lib.sh"
tmp=$WORK
CLEANUP='remove_leaks "$tmp"/*.leaks'

SHMKEEPER_LIB=$SHMK_LIB "$tool" run --log-dir="$tmp/l" "$bin/leakmix" a k p \
	>"$tmp/l.leaks" 2>"$tmp/run.err" || fail "run failed: $(cat "$tmp/run.err")"
ida=$(sed -n '1s/^sysv //p' "$tmp/l.leaks")
idk=$(sed -n '2s/^sysv //p' "$tmp/l.leaks")
name=$(sed -n '3s/^posix //p' "$tmp/l.leaks")
[ -n "$ida" ] && [ -n "$idk" ] && [ -n "$name" ] || fail "leakmix: $(cat "$tmp/l.leaks")"

"$tool" ls >"$tmp/ls1" || fail "ls: status $?"
head -1 "$tmp/ls1" | grep -q '^KEY  *ID PERMS  *OWNER  *SIZE NATTCH STATUS  *CTIME  *CPID  *LPID COMMAND$' ||
	fail "ls: columns: $(head -1 "$tmp/ls1")"
grep -Eq "^0x00000000 +$ida rw------- +root +4K +0 " "$tmp/ls1" || fail "ls: no row for shmid $ida"
grep -Eq "^0x5348[0-9a-f]{4} +$idk " "$tmp/ls1" || fail "ls: no row for the keyed $idk"
grep -Eq "^$name +- rw------- +root +64K +0 " "$tmp/ls1" || fail "ls: no row for $name"
# The same as lsipc's, where there is one.
if command -v lsipc >/dev/null; then
	l=$(lsipc -m -n --raw -o KEY,ID,PERMS,SIZE,NATTCH --bytes 2>/dev/null | awk -v id="$ida" '$2 == id')
	[ -z "$l" ] || echo "$l" | grep -q "^0x00000000 $ida rw------- 4096 0$" ||
		fail "lsipc says otherwise: $l"
fi

# JSON, lsipc's shape.
"$tool" ls --json >"$tmp/ls2.json" || fail "ls --json: status $?"
grep -q '^   "sharedmemory": \[' "$tmp/ls2.json" || fail "ls --json: not lsipc's shape"
grep -q "\"type\": \"sysv\", \"key\": \"0x00000000\", \"id\": $ida, \"owner\": \"root\", \"uid\": 0, \"perms\": \"rw-------\", \"mode\": 384, \"size\": 4096, \"nattch\": 0" \
	"$tmp/ls2.json" || fail "ls --json: shmid $ida"
grep -q "\"name\": \"$name\"" "$tmp/ls2.json" || fail "ls --json: $name"
if [ -n "${PYTHON3:-}" ]; then
	"$PYTHON3" -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/ls2.json" || fail "ls --json does not parse"
fi

# Joined with the logs: creator and stack.
"$tool" ls --log-dir="$tmp/l" >"$tmp/ls3" || fail "ls --log-dir: status $?"
head -1 "$tmp/ls3" | grep -q ' COMMAND  *ORIGIN$' || fail "ls --log-dir: no ORIGIN column"
grep -E "^0x00000000 +$ida " "$tmp/ls3" | grep -q 'pid [0-9]*: sysv < leak_a < main$' ||
	fail "ls --log-dir: $(grep -E " $ida " "$tmp/ls3")"
grep -E "^$name " "$tmp/ls3" | grep -q 'pid [0-9]*: posix < leak_posix < main$' ||
	fail "ls --log-dir: $(grep -E "^$name " "$tmp/ls3")"
"$tool" ls --json --log-dir="$tmp/l" >"$tmp/ls4.json" || fail "ls --json --log-dir: status $?"
grep -q '"stack": "sysv < leak_key < main"' "$tmp/ls4.json" || fail "ls --json --log-dir: leak_key"

# Errors; a removed segment is no longer listed.
"$tool" ls --log-dir="$tmp/missing" >/dev/null 2>&1
[ $? -eq 2 ] || fail "ls --log-dir=missing: want status 2"
"$tool" ls --bogus >/dev/null 2>&1
[ $? -eq 1 ] || fail "ls --bogus: want status 1"
ipcrm -m "$ida"
"$tool" ls | grep -Eq " $ida " && fail "ls: shmid $ida still listed after ipcrm"
echo PASS
