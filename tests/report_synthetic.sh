#!/bin/sh
# The report over synthetic logs (tests/tool_mklog.c): a run of four process
# images with leaks, a segment removed by another process (Python's
# resource_tracker), one removed by its creator, one removed outside the
# recording, the library's own object, a fork and an exec.
set -u
: "${SHMK_TOOL:?}" "${SHMK_TESTBIN:?}"
mklog="$SHMK_TESTBIN/tool_mklog"
dir=$(mktemp -d "${TMPDIR:-/tmp}/shmk-report.XXXXXX") || exit 99
trap '"$mklog" --cleanup "$dir/logs"; rm -rf "$dir"' EXIT
fail=0
check() {   # check DESCRIPTION COMMAND...
	desc=$1; shift
	if "$@"; then echo "ok: $desc"; else echo "FAIL: $desc"; fail=1; fi
}

"$mklog" "$dir/logs" leaks || exit 99
pid=$(sed -n 's/^posix \/shmk-test-\([0-9]*\)-0$/\1/p' "$dir/logs/objects")

"$SHMK_TOOL" report "$dir/logs" >"$dir/out" 2>"$dir/err"
rc=$?
cat "$dir/out" "$dir/err"
check "exit 0 without --error-exitcode" [ "$rc" = 0 ]
check "no diagnostics" [ ! -s "$dir/err" ]
check "summary first" sh -c "head -1 '$dir/out' | grep -q '4 processes, 8 segments created, 4 removed (1 by another process), 3 leaked (12288 bytes)'"
check "final summary line" grep -q '^LEAK SUMMARY: 3 segments leaked, 12288 bytes$' "$dir/out"
check "merged leaks, largest first" sh -c "grep '^== Leak' '$dir/out' | head -1 | grep -q '2 POSIX segments of 4096 bytes leaked from the same stack (8192 bytes)'"
check "POSIX names" grep -q "POSIX /shmk-test-$pid-1, 4096 bytes, perms 0600, 1 attach" "$dir/out"
check "SysV leak with id and key" grep -q 'SysV shmid [0-9]* key IPC_PRIVATE, 4096 bytes, perms 0600, 1 attach' "$dir/out"
check "creator pid and exe" grep -q "created by pid $pid (.*tool_mklog) at " "$dir/out"
check "creator argv" grep -q 'argv: leaky --twice' "$dir/out"
check "symbolised: function, file, line" grep -q '#0  0x[0-9a-f]* make_posix_leak .*tests/tool_mklog.c:[0-9][0-9]* (.*tool_mklog+0x[0-9a-f]*)' "$dir/out"
check "symbolised: caller" grep -q '#1  0x[0-9a-f]* scenario .*tool_mklog.c:[0-9]' "$dir/out"
check "attach inherited by the fork child" grep -q "inherited by pid $((pid + 100001))" "$dir/out"
check "implicit detach at exec" grep -q 'implicitly at exec' "$dir/out"
check "resource_tracker removal is not a leak" grep -q "POSIX /psm_$pid, 65536 bytes: created by pid $pid (.*), removed by pid $((pid + 100000)) (/usr/bin/python3.11)" "$dir/out"
check "removed outside the recording" grep -q 'removed by an unrecorded process' "$dir/out"
check "own objects never reported" sh -c "! grep -q shmkeeper.span '$dir/out'"
check "process tree with exec" grep -q "\`- $((pid + 100001)) .* -> exec /usr/bin/true, exit 0" "$dir/out"
check "plain when piped" sh -c "! grep -q \"$(printf '\033')\" '$dir/out'"

"$SHMK_TOOL" report --color=always "$dir/logs" >"$dir/color" 2>&1
check "--color=always colours" grep -q "$(printf '\033')\[1;31m" "$dir/color"

"$SHMK_TOOL" report --error-exitcode=42 "$dir/logs" >/dev/null 2>&1
check "--error-exitcode=42 with leaks exits 42" [ $? = 42 ]
SHMKEEPER_OPTIONS='--error-exitcode=43 --format=json' "$SHMK_TOOL" report "$dir/logs" >"$dir/envjson" 2>&1
check "SHMKEEPER_OPTIONS is read" [ $? = 43 ]
check "SHMKEEPER_OPTIONS --format=json" grep -q '"version": 1' "$dir/envjson"
SHMKEEPER_OPTIONS='--error-exitcode=43' "$SHMK_TOOL" report --error-exitcode=44 "$dir/logs" >/dev/null 2>&1
check "the command line wins over SHMKEEPER_OPTIONS" [ $? = 44 ]
"$SHMK_TOOL" report "$dir/logs" --format=json >"$dir/json" 2>&1
check "options after LOGDIR" [ $? = 0 ]

# The JSON report: what the recording issue asked for.
if [ -n "${PYTHON3:-}" ]; then
	"$PYTHON3" - "$dir/json" "$pid" <<'PY' || fail=1
import json, sys
r = json.load(open(sys.argv[1])); pid = int(sys.argv[2])
leaks = r["leaks"]
assert len(leaks) == 3, leaks
kinds = sorted(l["kind"] for l in leaks)
assert kinds == ["posix", "posix", "sysv"], kinds
for l in leaks:
    assert l["creator"]["pid"] == pid and l["creator"]["exe"].endswith("tool_mklog")
    assert l["size"] == 4096
    if l["kind"] == "sysv":
        assert isinstance(l["shmid"], int) and l["key"] == 0
    else:
        assert l["name"].startswith("/shmk-test-")
    bt = l["backtrace"]
    assert bt[0]["function"] in ("make_posix_leak", "make_sysv_leak"), bt
    assert bt[0]["file"].endswith("tool_mklog.c") and bt[0]["line"] > 0
    assert bt[0]["address"].startswith("0x") and bt[0]["module"].endswith("tool_mklog")
segs = r["segments"]
psm = [s for s in segs if s.get("name") == "/psm_%d" % pid][0]
assert psm["status"] == "removed_by_other" and psm["removed"]["pid"] == pid + 100000
assert not any(s.get("name", "").startswith("/shmkeeper.") for s in segs)
procs = r["processes"]
child = [p for p in procs if p["pid"] == pid + 100001 and p["exec_prev"] is None][0]
assert procs[child["parent"]]["pid"] == pid and child["forked"]
assert procs[child["exec_next"]]["exe"] == "/usr/bin/true"
assert r["summary"]["leaked_bytes"] == 12288
# dlopen: a frame in libm while it is loaded, the same address after dlclose
by_key = {s["key"]: s for s in segs if s["kind"] == "sysv"}
f = by_key[0x5eee]["created"]["backtrace"][0]
assert f["module"].endswith("libm.so.6") and "cos" in f.get("function", ""), f
f = by_key[0x5eef]["created"]["backtrace"][0]
assert "module" not in f and "function" not in f, f
print("ok: JSON report content, dlopen'd module mapped and gone")
PY
fi

# Stripped binaries: module+offset; with a debug file found by build-id:
# function, file and line again.
if command -v strip >/dev/null && command -v objcopy >/dev/null && command -v readelf >/dev/null; then
	cp "$mklog" "$dir/mklog-stripped" && strip --strip-all "$dir/mklog-stripped" || exit 99
	"$dir/mklog-stripped" "$dir/stripped" leaks || exit 99
	"$SHMK_TOOL" report "$dir/stripped" >"$dir/sout" 2>&1
	check "stripped: module+offset" grep -q '#0  0x[0-9a-f]* mklog-stripped+0x[0-9a-f]* (.*/mklog-stripped+0x[0-9a-f]*)' "$dir/sout"
	check "stripped: no function names made up" sh -c "! grep -q make_posix_leak '$dir/sout'"
	bid=$(readelf -n "$mklog" | sed -n 's/.*Build ID: *\([0-9a-f]*\).*/\1/p')
	sub=$(printf %s "$bid" | cut -c1-2)
	rest=$(printf %s "$bid" | cut -c3-)
	mkdir -p "$dir/debug/.build-id/$sub" &&
	objcopy --only-keep-debug "$mklog" "$dir/debug/.build-id/$sub/$rest.debug" || exit 99
	SHMKEEPER_DEBUGINFO_PATH="$dir/debug" "$SHMK_TOOL" report "$dir/stripped" >"$dir/dout" 2>&1
	check "stripped + build-id debug file: function, file, line" grep -q '#0  0x[0-9a-f]* make_posix_leak .*tool_mklog.c:[0-9]* (.*/mklog-stripped+0x' "$dir/dout"
	"$mklog" --cleanup "$dir/stripped"
fi

# Without the leaks: no leak, exit 0 even with --error-exitcode.
"$mklog" "$dir/clean" clean || exit 99
"$SHMK_TOOL" report --error-exitcode=42 "$dir/clean" >"$dir/cout" 2>&1
check "clean run: exit 0" [ $? = 0 ]
check "clean run: nothing leaked" grep -q '^LEAK SUMMARY: 0 segments leaked, 0 bytes$' "$dir/cout"
check "clean run: tracker removal listed" grep -q 'removed by pid' "$dir/cout"
"$mklog" --cleanup "$dir/clean"
exit $fail
