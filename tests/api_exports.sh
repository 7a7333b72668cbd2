#!/bin/sh
# Every function <shmkeeper.h> declares is defined and exported by
# libshmkeeper.so (a declaration without a definition links nowhere), and the
# library exports no shmk_ name the header does not declare.
set -u
. "$top_srcdir/tests/lib.sh"
need_lib
need_prog nm "binutils"
hdr=$top_srcdir/include/shmkeeper.h
sed -n 's/^SHMK_API[^(]*[ *]\(shmk_[a-z0-9_]*\)(.*/\1/p' "$hdr" | sort -u >"$WORK/declared"
[ -s "$WORK/declared" ] || hard "no SHMK_API declarations found in $hdr"
nm -D --defined-only "$SHMK_LIB" | awk '$2 == "T" && $3 ~ /^shmk_/ { print $3 }' | sort -u >"$WORK/exported"
missing=$(comm -23 "$WORK/declared" "$WORK/exported")
extra=$(comm -13 "$WORK/declared" "$WORK/exported")
[ -z "$missing" ] || fail "declared in shmkeeper.h, not exported: $(echo $missing)"
[ -z "$extra" ] || fail "exported, not declared in shmkeeper.h: $(echo $extra)"
note "ok: $(wc -l <"$WORK/declared") functions declared and exported"

# shmk_version says what configure was told.
cat >"$WORK/v.c" <<'C'
#include <stdio.h>
#include <shmkeeper.h>
int main(void) { puts(shmk_version()); return 0; }
C
cc=${CC:-cc}
$cc -I"$top_srcdir/include" -o "$WORK/v" "$WORK/v.c" "$SHMK_LIB" 2>"$WORK/cc.err" ||
	hard "cannot build the version probe: $(cat "$WORK/cc.err")"
want=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/config.h")
# A sanitized library needs its runtime loaded first (tests/lib.sh).
got=$(LD_PRELOAD=$SAN_RT LD_LIBRARY_PATH=$(dirname "$SHMK_LIB") "$WORK/v") || fail "the version probe failed"
[ "$got" = "$want" ] || fail "shmk_version() says '$got', configure says '$want'"
note "ok: shmk_version() is $got"
