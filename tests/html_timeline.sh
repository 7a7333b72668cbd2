#!/bin/sh
# --format=html: one self-contained page (no network), rendered by headless
# Chromium; the DOM after its scripts ran must show one row per segment, the
# leaked ones marked, the backtraces' text, and a POSIX name that is markup
# ("<!--<script>&") as text, not as elements.
set -u
tool=${SHMK_TOOL:?}; bin=${SHMK_TESTBIN:?}
[ -x "$bin/leakmix" ] || { echo "SKIP: tests/leakmix is not built"; exit 77; }
[ -r "${SHMK_LIB:-}" ] || { echo "SKIP: libshmkeeper.so is not built"; exit 77; }
chromium=${CHROMIUM:-}
[ -n "$chromium" ] || chromium=$(command -v chromium || command -v chromium-browser || true)
tmp=$(mktemp -d)
cleanup() {
	cat "$tmp"/*.leaks 2>/dev/null | while IFS= read -r line; do
		case $line in
		"sysv "*) ipcrm -m "${line#sysv }" 2>/dev/null ;;
		"posix "*) n=${line#posix /}; rm -f "/dev/shm/$n" ;;
		esac
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

SHMKEEPER_LIB=$SHMK_LIB "$tool" run --log-dir="$tmp/l" "$bin/leakmix" a r x \
	>"$tmp/l.leaks" 2>"$tmp/run.err" || fail "run failed: $(cat "$tmp/run.err")"
"$tool" report --format=html --output="$tmp/r.html" "$tmp/l" || fail "report --format=html: status $?"
"$tool" report --format=json "$tmp/l" >"$tmp/r.json"

# Self-contained: no URL a browser would fetch; the data's '<' is escaped, so
# only our two scripts end, and the markup in the name never reaches the HTML.
grep -Eiq '(src|href)=|https?://|@import|url\(' "$tmp/r.html" && fail "the page refers to something outside it"
[ "$(grep -c '</script>' "$tmp/r.html")" -eq 2 ] || fail "'</script>' appears other than twice"
grep -q '<!--<script>' "$tmp/r.html" && fail "the name's markup is in the page raw"
grep -q 'shmk-leakmix-[0-9]*\\u003c!--\\u003cscript\\u003e\\u0026' "$tmp/r.html" ||
	fail "the name is not in the embedded JSON, escaped"

[ -n "$chromium" ] || { echo "SKIP: chromium is not installed (apt-get install chromium); the static checks passed"; exit 77; }
home=$(mktemp -d "$tmp/chromium.XXXXXX")
HOME=$home timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
	--disable-component-update --disable-sync --no-first-run --disable-extensions \
	--user-data-dir="$home" --dump-dom "file://$tmp/r.html" >"$tmp/dom.html" 2>"$tmp/chromium.err"
rc=$?
[ $rc -eq 0 ] && [ -s "$tmp/dom.html" ] || {
	echo "SKIP: chromium could not render (status $rc): $(tail -3 "$tmp/chromium.err")"; exit 77; }

nseg=$(grep -o '"id": [0-9]*, "kind"' "$tmp/r.json" | wc -l)
[ "$nseg" -eq 3 ] || fail "want 3 segments in the report, got $nseg"
grep -q "data-rendered=\"$nseg\"" "$tmp/dom.html" || fail "the script did not run to the end"
rows=$(grep -o 'class="row [a-z_ ]*"' "$tmp/dom.html" | wc -l)
[ "$rows" -eq "$nseg" ] || fail "want $nseg rows, the page shows $rows"
leaked=$(grep -o 'class="row leaked"' "$tmp/dom.html" | wc -l)
[ "$leaked" -eq 2 ] || fail "want 2 rows marked leaked, got $leaked"
[ "$(grep -o 'class="row removed"' "$tmp/dom.html" | wc -l)" -eq 1 ] || fail "want 1 removed row"
[ "$(grep -o '<span class="tag">LEAKED</span>' "$tmp/dom.html" | wc -l)" -eq 2 ] || fail "want 2 LEAKED tags"
# Backtraces: the creating functions, with file:line, in the details.
for fn in 'leak_a .*leakmix.c:[0-9]' 'leak_markup .*leakmix.c:[0-9]' 'tidy .*leakmix.c:[0-9]' '#[0-9] main '; do
	grep -q "$fn" "$tmp/dom.html" || fail "backtrace text '$fn' is not on the page"
done
# The hostile name as text: escaped by the DOM serialiser, no element made.
grep -q 'shmk-leakmix-[0-9]*&lt;!--&lt;script&gt;&amp;' "$tmp/dom.html" || fail "the name is not shown as text"
[ "$(grep -o '<script' "$tmp/dom.html" | wc -l)" -eq 2 ] || fail "a script element was injected"
# Leaks run to the end: their bar reaches the right edge of the track.
if [ -n "${PYTHON3:-}" ]; then
	"$PYTHON3" - "$tmp/dom.html" <<'PY' || fail "leak bars do not run to the end"
import re, sys
dom = open(sys.argv[1]).read()
for row in re.findall(r'<div class="row leaked".*?</div></div></div>', dom, re.S):
    m = re.search(r'class="life" style="left: ([0-9.]+)%; width: ([0-9.]+)%', row)
    assert m and abs(float(m.group(1)) + float(m.group(2)) - 100.0) < 0.01, row[:400]
PY
fi
echo "PASS ($rows rows, $leaked leaked)"
