#!/bin/sh
# Suppressions (doc/suppressions.md): matching by kind, key, name, exe and
# stack (fun:, obj:, ...), counting in the summary, --error-exitcode with
# everything suppressed, --gen-suppressions round trip, errors with FILE:LINE,
# and `run` refusing a bad file before it starts the program.
set -u
tool=${SHMK_TOOL:?}; bin=${SHMK_TESTBIN:?}
[ -x "$bin/leakmix" ] || { echo "SKIP: tests/leakmix is not built"; exit 77; }
[ -r "${SHMK_LIB:-}" ] || { echo "SKIP: libshmkeeper.so is not built"; exit 77; }
. "$top_srcdir/tests/lib.sh"
tmp=$WORK
CLEANUP='remove_leaks "$tmp"/*.leaks'
summary() { grep '^LEAK SUMMARY' "$1"; }

SHMKEEPER_LIB=$SHMK_LIB "$tool" run --log-dir="$tmp/l" "$bin/leakmix" a k p \
	>"$tmp/l.leaks" 2>"$tmp/run.err" || fail "run failed: $(cat "$tmp/run.err")"
[ "$(wc -l <"$tmp/l.leaks")" -eq 3 ] || fail "leakmix did not leak 3 segments"

"$tool" report "$tmp/l" >"$tmp/r0" 2>&1
summary "$tmp/r0" | grep -q '3 segments leaked' || fail "no suppressions: $(summary "$tmp/r0")"

cat >"$tmp/s1.supp" <<'S'
# The IPC_PRIVATE segment of leak_a, by its full stack.
{
   the-a-leak
   shmkeeper:Leak
   kind:sysv
   key:IPC_PRIVATE
   exe:*/leakmix
   fun:sysv
   fun:leak_a
   ...
   fun:main
}

{
   keyed
   shmkeeper:Leak
   key:0x5348*
}
S
"$tool" report --suppressions="$tmp/s1.supp" "$tmp/l" >"$tmp/r1" 2>&1
summary "$tmp/r1" | grep -q '1 segment leaked, 65536 bytes; 2 suppressed, 8192 bytes' ||
	fail "s1: $(summary "$tmp/r1")"
grep -q '^ *1  the-a-leak ' "$tmp/r1" || fail "s1: the-a-leak not listed as used"
grep -q '^ *1  keyed ' "$tmp/r1" || fail "s1: keyed not listed as used"
grep -q 'Leak 1 of 1: POSIX' "$tmp/r1" || fail "s1: the POSIX leak is not the one reported"

# Blocks that must not match: other exe, other function, wrong kind, frames
# that are not a prefix of the stack.
cat >"$tmp/s2.supp" <<'S'
{
   other-exe
   shmkeeper:Leak
   exe:*/not-leakmix
}
{
   other-fun
   shmkeeper:Leak
   fun:sysv
   fun:leak_b
}
{
   posix-by-key
   shmkeeper:Leak
   kind:posix
   key:IPC_PRIVATE
}
{
   not-a-prefix
   shmkeeper:Leak
   fun:leak_a
}
S
"$tool" report --suppressions="$tmp/s2.supp" "$tmp/l" >"$tmp/r2" 2>&1
summary "$tmp/r2" | grep -q '^LEAK SUMMARY: 3 segments leaked, [0-9]* bytes$' || fail "s2: $(summary "$tmp/r2")"

# name:, obj: and a leading "...", from two files (repeatable); the status
# with everything suppressed is 0 even with --error-exitcode.
cat >"$tmp/s3.supp" <<'S'
{
   posix-by-name
   shmkeeper:Leak
   kind:posix
   name:/shmk-leakmix-*
   ...
   fun:leak_posix
}
{
   any-sysv-from-leakmix
   shmkeeper:Leak
   kind:sysv
   obj:*/leakmix
   obj:*leakmix
}
S
"$tool" report --error-exitcode=9 --suppressions="$tmp/s1.supp" --suppressions="$tmp/s3.supp" \
	"$tmp/l" >"$tmp/r3" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "s1+s3: status $rc, want 0: $(summary "$tmp/r3")"
summary "$tmp/r3" | grep -q '0 segments leaked, 0 bytes; 3 suppressed' || fail "s1+s3: $(summary "$tmp/r3")"
"$tool" report --error-exitcode=9 --suppressions="$tmp/s3.supp" "$tmp/l" >"$tmp/r3b" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "s3 alone: status $rc, want 0 (obj: should match the sysv leaks)"

# Options from SHMKEEPER_OPTIONS, as on a CI machine.
SHMKEEPER_OPTIONS="--suppressions=$tmp/s1.supp --error-exitcode=9" "$tool" report "$tmp/l" >"$tmp/r4" 2>&1
rc=$?
[ $rc -eq 9 ] || fail "SHMKEEPER_OPTIONS: status $rc, want 9"
summary "$tmp/r4" | grep -q '2 suppressed' || fail "SHMKEEPER_OPTIONS: $(summary "$tmp/r4")"

# --gen-suppressions: paste what it prints, and every leak is suppressed.
"$tool" report --gen-suppressions "$tmp/l" >"$tmp/r5" 2>&1
sed -n '/^{$/,/^}$/p' "$tmp/r5" >"$tmp/gen.supp"
[ "$(grep -c '^{$' "$tmp/gen.supp")" -eq 3 ] || fail "gen: want 3 blocks, got: $(cat "$tmp/gen.supp")"
grep -q '^   fun:leak_posix$' "$tmp/gen.supp" || fail "gen: no fun:leak_posix"
grep -q '^   name:/shmk-leakmix-\*$' "$tmp/gen.supp" || fail "gen: the name's pid is not a glob"
"$tool" report --error-exitcode=9 --suppressions="$tmp/gen.supp" "$tmp/l" >"$tmp/r6" 2>&1 ||
	fail "gen: status $?, want 0: $(summary "$tmp/r6")"
# JSON: counted in the summary, named on the segment, blocks on stderr.
"$tool" report --format=json --gen-suppressions --suppressions="$tmp/gen.supp" "$tmp/l" \
	>"$tmp/r7.json" 2>"$tmp/r7.err"
grep -q '"suppressed": 3, "suppressed_bytes": 73728' "$tmp/r7.json" || fail "json: summary"
grep -q '"leaks": \[\]' "$tmp/r7.json" || fail "json: suppressed leaks are listed as leaks"
grep -q '"suppressed": "leak-posix-posix"' "$tmp/r7.json" || fail "json: no suppressed name on the segment"
if [ -n "${PYTHON3:-}" ]; then
	"$PYTHON3" -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/r7.json" || fail "json does not parse"
fi

# Errors name the file and the line, status 1; run refuses before PROG runs.
printf '{\n   x\n   shmkeeper:Leak\n   fun:main\n' >"$tmp/bad1.supp"
printf '{\n   x\n   shmkeeper:Leak\n   fun:main\n   color:red\n}\n' >"$tmp/bad2.supp"
printf '{\n   x\n   memcheck:Leak\n}\n' >"$tmp/bad3.supp"
for b in bad1:4 bad2:5 bad3:3; do
	f=${b%:*}; line=${b#*:}
	"$tool" report --suppressions="$tmp/$f.supp" "$tmp/l" >"$tmp/$f.out" 2>&1
	rc=$?
	[ $rc -eq 1 ] || fail "$f: status $rc, want 1"
	grep -q "$f.supp:$line:" "$tmp/$f.out" || fail "$f: no FILE:$line in: $(cat "$tmp/$f.out")"
done
"$tool" report --suppressions="$tmp/missing.supp" "$tmp/l" >/dev/null 2>&1
[ $? -eq 1 ] || fail "missing file: want status 1"
SHMKEEPER_LIB=$SHMK_LIB "$tool" run --suppressions="$tmp/bad2.supp" --log-dir="$tmp/l2" \
	"$bin/leakmix" a >"$tmp/l2.leaks" 2>/dev/null
rc=$?
[ $rc -eq 1 ] || fail "run with a bad file: status $rc, want 1"
[ ! -s "$tmp/l2.leaks" ] || fail "run with a bad file started the program"

# run: suppressions apply to its report too (the key of "k" has the pid in
# it, so a generated key: line matches only its own run: not used here).
SHMKEEPER_LIB=$SHMK_LIB "$tool" run --error-exitcode=9 --suppressions="$tmp/gen.supp" \
	--log-dir="$tmp/l3" "$bin/leakmix" a p >"$tmp/l3.leaks" 2>"$tmp/r8"
rc=$?
[ $rc -eq 0 ] || fail "run with gen.supp: status $rc, want 0: $(summary "$tmp/r8")"
summary "$tmp/r8" | grep -q '2 suppressed' || fail "run: $(summary "$tmp/r8")"
echo "PASS"
