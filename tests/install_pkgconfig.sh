#!/bin/sh
# What a C programmer gets from `make install`: the header, the library,
# shmkeeper.pc, the man pages; a program built with
# `pkg-config --cflags --libs shmkeeper` alone links and runs (installed
# into a scratch DESTDIR, found through PKG_CONFIG_SYSROOT_DIR).
set -u
. "$top_srcdir/tests/lib.sh"
need_lib
need_prog pkg-config
need_prog make
dest=$WORK/dest
MAKEFLAGS= MAKELEVEL= make -s -C "$top_builddir" install DESTDIR="$dest" >"$WORK/install.log" 2>&1 ||
	fail "make install DESTDIR: $(tail -5 "$WORK/install.log")"
pc=$(find "$dest" -name shmkeeper.pc | head -1)
[ -n "$pc" ] || fail "no shmkeeper.pc installed"
export PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_LIBDIR="$(dirname "$pc")"
flags=$(pkg-config --cflags --libs shmkeeper) || fail "pkg-config --cflags --libs shmkeeper failed"
want=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/config.h")
[ "$(pkg-config --modversion shmkeeper)" = "$want" ] || fail "pkg-config --modversion is not $want"
cat >"$WORK/p.c" <<'C'
#include <shmkeeper.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	shmk_shm_desc *d = shmk_shm_new(8192, NULL, SHMK_IMPL_AUTO);
	char b[8];
	size_t n = 0;
	int r;

	if (!d)
		return 2;
	r = shmk_msg_send(d, "hello", 5, 0);
	r |= shmk_msg_recv(d, b, sizeof b, &n, 0);
	shmk_shm_done(d);
	printf("%s %d %.*s\n", shmk_version(), r, (int)n, b);
	return r;
}
C
cc=${CC:-cc}
# shellcheck disable=SC2086 # pkg-config's words
$cc -std=c11 -Wall -Werror -o "$WORK/p" "$WORK/p.c" $flags 2>"$WORK/cc.err" ||
	fail "a program does not build with pkg-config's flags ($flags): $(cat "$WORK/cc.err")"
so=$(find "$dest" -name 'libshmkeeper.so.*' | head -1)
[ -n "$so" ] || fail "no libshmkeeper.so installed"
# A sanitized library needs its runtime loaded first (tests/lib.sh).
out=$(LD_PRELOAD=$SAN_RT LD_LIBRARY_PATH=$(dirname "$so") "$WORK/p" 2>&1) || fail "the program failed: $out"
[ "$out" = "$want 0 hello" ] || fail "the program said '$out'"
note "ok: built with '$flags' and ran: $out"
for m in man1/shmkeeper.1 man7/libshmkeeper.7 man3/shmk_shm_new.3 man3/shmk_msg_send.3 \
	man3/shmk_rsz_mk.3 man3/shmk_cleanup_register.3 man3/shmk_version.3; do
	[ -n "$(find "$dest" -path "*/man/$m" | head -1)" ] || fail "man page $m not installed"
done
[ -n "$(find "$dest" -path '*/bin/shmkeeper' | head -1)" ] || fail "the shmkeeper command is not installed"
note "ok: header, library, shmkeeper.pc, command and man pages installed"
