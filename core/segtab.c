#include <errno.h>
#include <sched.h>
#include <string.h>

#include "core/segtab.h"
#include "core/logfmt.h"
#include "core/util.h"

uint64_t sk_fd_bitmap[SK_FD_BITS / 64];
SK_HOTDATA int sk_fd_overflow;
SK_HOTDATA uint64_t sk_att_lo = UINT64_MAX, sk_att_hi = 0;

/* Fixed arrays: the table is used from signal handlers (no malloc) and shm
 * programs hold few segments; bss pages cost nothing until touched. */
#define MAX_FDS    1024
#define MAX_ATT    8192
#define MAX_SYSV   4096
#define MAX_POSIX  1024

static struct { int fd; uint64_t dev, ino; char name[256]; } fds[MAX_FDS];
static SK_HOTDATA unsigned nfds;
static struct sk_attach att[MAX_ATT];
static SK_HOTDATA unsigned natt;
static struct sk_sysv sysv[MAX_SYSV];
static SK_HOTDATA unsigned nsysv;
static struct sk_posix posix[MAX_POSIX];
static SK_HOTDATA unsigned nposix;

static SK_HOTDATA int lock_owner;   /* tid holding the table, 0 when free */

SK_HOT int sk_tab_lock(void)
{
	int me = (int)sk_tid(), free_ = 0;
	while (!__atomic_compare_exchange_n(&lock_owner, &free_, me, 1,
					    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		if (free_ == me)
			return 0;
		free_ = 0;
		sched_yield();
	}
	return 1;
}

SK_HOT void sk_tab_unlock(void)
{
	__atomic_store_n(&lock_owner, 0, __ATOMIC_RELEASE);
}

static int forked_locked;
void sk_tab_atfork_prepare(void) { forked_locked = sk_tab_lock(); }
void sk_tab_atfork_parent(void) { if (forked_locked) sk_tab_unlock(); }
void sk_tab_atfork_child(void) { __atomic_store_n(&lock_owner, 0, __ATOMIC_RELEASE); }

/* ---- fds ---- */

SK_HOT_POSIX static void bit_set(int fd, int on)
{
	if ((unsigned)fd >= SK_FD_BITS) {
		if (on)
			__atomic_store_n(&sk_fd_overflow, 1, __ATOMIC_RELAXED);
		return;
	}
	uint64_t m = 1ull << ((unsigned)fd % 64);
	if (on)
		__atomic_fetch_or(&sk_fd_bitmap[(unsigned)fd / 64], m, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&sk_fd_bitmap[(unsigned)fd / 64], ~m, __ATOMIC_RELAXED);
}

SK_HOT_POSIX void sk_fd_mark(int fd, uint64_t dev, uint64_t ino, const char *name)
{
	if (fd < 0)
		return;
	unsigned i;
	for (i = 0; i < nfds && fds[i].fd != fd; i++)
		;
	if (i == nfds) {
		if (nfds == MAX_FDS)
			return;
		nfds++;
	}
	fds[i].fd = fd;
	fds[i].dev = dev;
	fds[i].ino = ino;
	sk_strlcpy(fds[i].name, name, sizeof fds[i].name);
	bit_set(fd, 1);
}

SK_HOT_POSIX void sk_fd_unmark(int fd)
{
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i].fd == fd) {
			fds[i] = fds[--nfds];
			bit_set(fd, 0);
			return;
		}
	bit_set(fd, 0);
}

void sk_fd_unmark_range(unsigned lo, unsigned hi)
{
	for (unsigned i = 0; i < nfds;) {
		if ((unsigned)fds[i].fd >= lo && (unsigned)fds[i].fd <= hi) {
			bit_set(fds[i].fd, 0);
			fds[i] = fds[--nfds];
		} else
			i++;
	}
}

SK_HOT_POSIX int sk_fd_lookup(int fd, uint64_t *dev, uint64_t *ino, char *name)
{
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i].fd == fd) {
			*dev = fds[i].dev;
			*ino = fds[i].ino;
			if (name)
				memcpy(name, fds[i].name, sizeof fds[i].name);
			return 1;
		}
	return 0;
}

SK_HOT_POSIX void sk_fd_dup(int oldfd, int newfd)
{
	uint64_t dev, ino;
	char name[256];
	if (sk_fd_lookup(oldfd, &dev, &ino, name))
		sk_fd_mark(newfd, dev, ino, name);
	else
		sk_fd_unmark(newfd);
}

/* ---- attachments ---- */

SK_HOT static void envelope_grow(uint64_t lo, uint64_t hi)
{
	/* Only under the lock; readers are lock-free and may see a stale, wider
	 * or narrower bound for a moment: a stale narrow bound can only hide an
	 * attachment that another thread is adding right now, whose address no
	 * other call can know yet. */
	if (lo < sk_att_lo)
		__atomic_store_n(&sk_att_lo, lo, __ATOMIC_RELAXED);
	if (hi > sk_att_hi)
		__atomic_store_n(&sk_att_hi, hi, __ATOMIC_RELAXED);
}

SK_HOT int sk_att_add(const struct sk_attach *a)
{
	if (natt == MAX_ATT)
		return -ENOSPC;
	att[natt++] = *a;
	envelope_grow(a->addr, a->addr + a->len);
	return 0;
}

/* The index of the attachment starting at addr, or -1. */
static int att_index(uint64_t addr)
{
	for (unsigned i = 0; i < natt; i++)
		if (att[i].addr == addr)
			return (int)i;
	return -1;
}

/* No attachment left: the fast paths' envelope is empty again. */
static void envelope_reset_if_empty(void)
{
	if (natt == 0) {
		__atomic_store_n(&sk_att_lo, UINT64_MAX, __ATOMIC_RELAXED);
		__atomic_store_n(&sk_att_hi, 0, __ATOMIC_RELAXED);
	}
}

SK_HOT int sk_att_find(uint64_t addr, struct sk_attach *out)
{
	int i = att_index(addr);
	if (i < 0)
		return 0;
	*out = att[i];
	return 1;
}

SK_HOT int sk_att_take(uint64_t addr, struct sk_attach *out)
{
	int i = att_index(addr);
	if (i < 0)
		return 0;
	*out = att[i];
	att[i] = att[--natt];
	envelope_reset_if_empty();
	return 1;
}

SK_HOT int sk_att_cut(uint64_t addr, uint64_t len, struct sk_attach *out, int max)
{
	uint64_t end = addr + len;
	int n = 0;
	for (unsigned i = 0; i < natt && n < max;) {
		struct sk_attach *a = &att[i];
		uint64_t aend = a->addr + a->len;
		if (aend <= addr || a->addr >= end) {
			i++;
			continue;
		}
		uint64_t cs = a->addr > addr ? a->addr : addr;
		uint64_t ce = aend < end ? aend : end;
		struct sk_attach piece = *a;
		piece.addr = cs;
		piece.len = ce - cs;
		piece.offset = a->offset + (cs - a->addr);
		int keep_left = a->addr < cs, keep_right = aend > ce;
		if (keep_left || keep_right)
			piece.flags |= SK_F_PARTIAL;
		out[n++] = piece;
		if (keep_left && keep_right) {
			/* A hole in the middle: the right part becomes a new entry. */
			struct sk_attach right = *a;
			right.addr = ce;
			right.len = aend - ce;
			right.offset = a->offset + (ce - a->addr);
			a->len = cs - a->addr;
			if (natt < MAX_ATT)
				att[natt++] = right;
			i++;
		} else if (keep_left) {
			a->len = cs - a->addr;
			i++;
		} else if (keep_right) {
			a->offset += ce - a->addr;
			a->addr = ce;
			a->len = aend - ce;
			i++;
		} else {
			att[i] = att[--natt];
		}
	}
	envelope_reset_if_empty();
	return n;
}

void sk_att_foreach(void (*fn)(const struct sk_attach *, void *), void *arg)
{
	for (unsigned i = 0; i < natt; i++)
		fn(&att[i], arg);
}

/* ---- SysV ---- */

SK_HOT_SYSV int sk_sysv_note(int32_t shmid, int32_t key, uint64_t size, int created)
{
	for (unsigned i = 0; i < nsysv; i++)
		if (sysv[i].shmid == shmid) {
			int was = sysv[i].created;
			sysv[i].key = key;
			if (size)
				sysv[i].size = size;
			sysv[i].created |= (uint8_t)!!created;
			return was;
		}
	if (nsysv == MAX_SYSV) {
		/* Forget a segment we only opened; created ones matter for cleanup. */
		unsigned i;
		for (i = 0; i < nsysv && sysv[i].created; i++)
			;
		if (i == nsysv)
			return 0;
		sysv[i] = sysv[--nsysv];
	}
	sysv[nsysv++] = (struct sk_sysv){ .shmid = shmid, .key = key, .size = size,
					  .created = (uint8_t)!!created };
	return 0;
}

SK_HOT_SYSV int sk_sysv_get(int32_t shmid, struct sk_sysv *out)
{
	for (unsigned i = 0; i < nsysv; i++)
		if (sysv[i].shmid == shmid) {
			*out = sysv[i];
			return 1;
		}
	return 0;
}

SK_HOT_SYSV int sk_sysv_take(int32_t shmid, struct sk_sysv *out)
{
	for (unsigned i = 0; i < nsysv; i++)
		if (sysv[i].shmid == shmid) {
			*out = sysv[i];
			sysv[i] = sysv[--nsysv];
			return 1;
		}
	return 0;
}

void sk_sysv_forget(int32_t shmid)
{
	struct sk_sysv s;
	sk_sysv_take(shmid, &s);
}

void sk_sysv_foreach(void (*fn)(const struct sk_sysv *, void *), void *arg)
{
	for (unsigned i = 0; i < nsysv; i++)
		fn(&sysv[i], arg);
}

/* ---- POSIX ---- */

SK_HOT_POSIX void sk_posix_created(const char *name, uint64_t dev, uint64_t ino)
{
	for (unsigned i = 0; i < nposix; i++)
		if (strcmp(posix[i].name, name) == 0) {
			posix[i].dev = dev;
			posix[i].ino = ino;
			return;
		}
	if (nposix == MAX_POSIX)
		return;
	posix[nposix].dev = dev;
	posix[nposix].ino = ino;
	sk_strlcpy(posix[nposix].name, name, sizeof posix[nposix].name);
	nposix++;
}

SK_HOT_POSIX void sk_posix_forget(const char *name)
{
	for (unsigned i = 0; i < nposix; i++)
		if (strcmp(posix[i].name, name) == 0) {
			posix[i] = posix[--nposix];
			return;
		}
}

void sk_posix_foreach(void (*fn)(const struct sk_posix *, void *), void *arg)
{
	for (unsigned i = 0; i < nposix; i++)
		fn(&posix[i], arg);
}

void sk_tab_reset(void)
{
	memset(sk_fd_bitmap, 0, sizeof sk_fd_bitmap);
	sk_fd_overflow = 0;
	nfds = natt = nsysv = nposix = 0;
	sk_att_lo = UINT64_MAX;
	sk_att_hi = 0;
	lock_owner = 0;
}

void sk_tab_fork_child(void)
{
	for (unsigned i = 0; i < nsysv; i++)
		sysv[i].created = 0;
	nposix = 0;
}

void sk_tab_ipcns_child(void)
{
	nsysv = 0;
	for (unsigned i = 0; i < natt;) {
		if (att[i].shmid >= 0)
			att[i] = att[--natt];
		else
			i++;
	}
	/* The envelope may stay wider than what is left: a hint only. */
	envelope_reset_if_empty();
}
