#!/bin/sh
# Two unrelated processes (both children of this shell, neither of the
# other) place the same SysV segment and POSIX object at one address in the
# span and share linked lists of raw pointers. See tests/span_peer.c.
set -u
bin="${SHMK_TESTBIN:-$(dirname "$0")}/span_peer"
[ -x "$bin" ] || { echo "span_peers: $bin not built"; exit 77; }
[ -d /dev/shm ] || { echo "span_peers: no /dev/shm"; exit 77; }
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
# A span of the test's own (middle of the address space, clear of the
# default one), shifted by our pid so that parallel runs do not meet.
export SHMKEEPER_SPAN=$(printf '0x%x:1G' $(( 0x280000000000 + ($$ % 256) * 0x40000000 * 4 )))
name="/span_peers_$$"
"$bin" make "$dir" "$name" & maker=$!
i=0
while [ ! -s "$dir/shmid" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
"$bin" join "$dir" "$name"; joined=$?
wait $maker; made=$?
[ $made -eq 77 ] || [ $joined -eq 77 ] && { echo "span_peers: span taken, skipped"; exit 77; }
[ $made -eq 0 ] && [ $joined -eq 0 ] || { echo "span_peers: make=$made join=$joined"; exit 1; }
# The table went with its last user.
ls /dev/shm | grep -q "^shmkeeper\.span\..*\.$(printf '%x' $(( 0x280000000000 + ($$ % 256) * 0x40000000 * 4 )))\." &&
	{ echo "span_peers: table left behind"; exit 1; }
exit 0
