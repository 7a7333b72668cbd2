#include <errno.h>
#include <sched.h>
#include <stdbool.h>
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
/* Attachments: slots of a pool (att, free ones stacked in att_free), and
 * their order by address (att_ord, natt of them), for the exact lookups of
 * shmdt and the range lookups of munmap in O(log n): a linear scan made a
 * cycle 1.3 x slower with 2000 segments attached. Kept disjoint, as the
 * kernel's mappings are (sk_att_add drops what a new one overlaps). */
static struct sk_attach att[MAX_ATT];
static uint16_t att_ord[MAX_ATT], att_free[MAX_ATT];
static SK_HOTDATA unsigned natt, att_hw, att_nfree;
/* SysV segments, and an index by shmid (open addressing, linear probing,
 * at most half full; index + 1, 0 empty). */
#define SYSV_HBITS 13
#define SYSV_HMASK ((1u << SYSV_HBITS) - 1)
static struct sk_sysv sysv[MAX_SYSV];
static uint16_t sysv_h[1u << SYSV_HBITS];
static SK_HOTDATA unsigned nsysv;
static struct sk_posix posix[MAX_POSIX];
static SK_HOTDATA unsigned nposix;
_Static_assert(MAX_ATT <= 65535 && MAX_SYSV <= 65535, "uint16_t indices");
_Static_assert(2 * MAX_SYSV <= (1u << SYSV_HBITS), "the index at most half full");

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

/* The first position in att_ord whose attachment starts at or above addr. */
SK_HOT static unsigned att_lower(uint64_t addr)
{
	unsigned lo = 0, hi = natt;
	while (lo < hi) {
		unsigned m = lo + (hi - lo) / 2;
		if (att[att_ord[m]].addr < addr)
			lo = m + 1;
		else
			hi = m;
	}
	return lo;
}

/* The first position whose attachment may overlap [addr, ...): the one
 * before att_lower(addr) if it reaches past addr (they are disjoint). */
SK_HOT static unsigned att_first_over(uint64_t addr)
{
	unsigned k = att_lower(addr);
	if (k > 0) {
		const struct sk_attach *p = &att[att_ord[k - 1]];
		if (p->addr + p->len > addr)
			k--;
	}
	return k;
}

/* A free slot of the pool, or -1. */
SK_HOT static int att_slot(void)
{
	if (att_nfree)
		return att_free[--att_nfree];
	if (att_hw < MAX_ATT)
		return (int)att_hw++;
	return -1;
}

/* Removes position k of the order, freeing its slot. */
SK_HOT static void att_drop(unsigned k)
{
	att_free[att_nfree++] = att_ord[k];
	for (unsigned j = k; j + 1 < natt; j++)   /* not memmove: a libc call */
		att_ord[j] = att_ord[j + 1];
	natt--;
}

/* Inserts slot i at position k of the order. */
SK_HOT static void att_insert(unsigned k, int i)
{
	for (unsigned j = natt; j > k; j--)
		att_ord[j] = att_ord[j - 1];
	att_ord[k] = (uint16_t)i;
	natt++;
}

SK_HOT int sk_att_add(const struct sk_attach *a)
{
	/* What the new one overlaps, or starts where it starts, is gone from
	 * the address space (an unmap we did not see: a raw syscall): it goes
	 * from the table too. */
	uint64_t end = a->addr + a->len;
	unsigned k = att_first_over(a->addr);
	while (k < natt) {
		const struct sk_attach *o = &att[att_ord[k]];
		if (o->addr == a->addr || (o->addr < end && o->addr + o->len > a->addr))
			att_drop(k);
		else
			break;
	}
	int i = att_slot();
	if (i < 0)
		return -ENOSPC;
	att[i] = *a;
	att_insert(k, i);
	envelope_grow(a->addr, a->addr + a->len);
	return 0;
}

/* No attachment left: the fast paths' envelope is empty again. */
static void envelope_reset_if_empty(void)
{
	if (natt == 0) {
		__atomic_store_n(&sk_att_lo, UINT64_MAX, __ATOMIC_RELAXED);
		__atomic_store_n(&sk_att_hi, 0, __ATOMIC_RELAXED);
	}
}

/* The position of the attachment starting at addr, or -1. */
SK_HOT static int att_index(uint64_t addr)
{
	unsigned k = att_lower(addr);
	return k < natt && att[att_ord[k]].addr == addr ? (int)k : -1;
}

SK_HOT int sk_att_find(uint64_t addr, struct sk_attach *out)
{
	int k = att_index(addr);
	if (k < 0)
		return 0;
	*out = att[att_ord[k]];
	return 1;
}

SK_HOT int sk_att_take(uint64_t addr, struct sk_attach *out)
{
	int k = att_index(addr);
	if (k < 0)
		return 0;
	*out = att[att_ord[k]];
	att_drop((unsigned)k);
	envelope_reset_if_empty();
	return 1;
}

SK_HOT int sk_att_cut(uint64_t addr, uint64_t len, struct sk_attach *out, int max)
{
	uint64_t end = addr + len;
	int n = 0;
	for (unsigned k = att_first_over(addr); k < natt && n < max;) {
		struct sk_attach *a = &att[att_ord[k]];
		uint64_t aend = a->addr + a->len;
		if (a->addr >= end)
			break;
		if (aend <= addr) {   /* a size-less one at addr */
			k++;
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
			/* A hole in the middle: the right part becomes a new entry,
			 * next in the order. */
			struct sk_attach right = *a;
			right.addr = ce;
			right.len = aend - ce;
			right.offset = a->offset + (ce - a->addr);
			a->len = cs - a->addr;
			int i = att_slot();
			if (i >= 0) {
				att[i] = right;
				att_insert(k + 1, i);
			}
			break;   /* nothing else lies inside it */
		} else if (keep_left) {
			a->len = cs - a->addr;
			k++;
		} else if (keep_right) {
			/* Its start moves up, still before the next one's. */
			a->offset += ce - a->addr;
			a->addr = ce;
			a->len = aend - ce;
			k++;
		} else {
			att_drop(k);
		}
	}
	envelope_reset_if_empty();
	return n;
}

void sk_att_foreach(void (*fn)(const struct sk_attach *, void *), void *arg)
{
	for (unsigned k = 0; k < natt; k++)
		fn(&att[att_ord[k]], arg);
}

/* ---- SysV ---- */

SK_HOT_SYSV static unsigned sysv_home(int32_t shmid)
{
	return ((uint32_t)shmid * 0x9E3779B1u) >> (32 - SYSV_HBITS);
}

/* The index position of shmid, or -1. */
SK_HOT_SYSV static int sysv_pos(int32_t shmid)
{
	for (unsigned p = sysv_home(shmid);; p = (p + 1) & SYSV_HMASK) {
		unsigned v = sysv_h[p];
		if (!v)
			return -1;
		if (sysv[v - 1].shmid == shmid)
			return (int)p;
	}
}

/* Removes entry i, the one at index position p: the index closes the gap
 * (backward shift: every entry stays reachable from its home without
 * tombstones) and the last entry moves into i. */
SK_HOT_SYSV static void sysv_remove(unsigned i, unsigned p)
{
	for (unsigned q = p;;) {
		q = (q + 1) & SYSV_HMASK;
		unsigned v = sysv_h[q];
		if (!v)
			break;
		unsigned home = sysv_home(sysv[v - 1].shmid);
		/* v stays where it is if its home lies cyclically in (p, q]. */
		bool stays = p <= q ? (home > p && home <= q) : (home > p || home <= q);
		if (!stays) {
			sysv_h[p] = (uint16_t)v;
			p = q;
		}
	}
	sysv_h[p] = 0;
	unsigned last = --nsysv;
	if (i != last) {
		sysv_h[sysv_pos(sysv[last].shmid)] = (uint16_t)(i + 1);
		sysv[i] = sysv[last];
	}
}

SK_HOT_SYSV int sk_sysv_note(int32_t shmid, int32_t key, uint64_t size, int created)
{
	int p = sysv_pos(shmid);
	if (p >= 0) {
		struct sk_sysv *s = &sysv[sysv_h[p] - 1];
		int was = s->created;
		s->key = key;
		if (size)
			s->size = size;
		s->created |= (uint8_t)!!created;
		return was;
	}
	if (nsysv == MAX_SYSV) {
		/* Forget a segment we only opened; created ones matter for cleanup. */
		unsigned i;
		for (i = 0; i < nsysv && sysv[i].created; i++)
			;
		if (i == nsysv)
			return 0;
		sysv_remove(i, (unsigned)sysv_pos(sysv[i].shmid));
	}
	unsigned q = sysv_home(shmid);
	while (sysv_h[q])
		q = (q + 1) & SYSV_HMASK;
	sysv[nsysv] = (struct sk_sysv){ .shmid = shmid, .key = key, .size = size,
					.created = (uint8_t)!!created };
	sysv_h[q] = (uint16_t)++nsysv;
	return 0;
}

SK_HOT_SYSV int sk_sysv_get(int32_t shmid, struct sk_sysv *out)
{
	int p = sysv_pos(shmid);
	if (p < 0)
		return 0;
	*out = sysv[sysv_h[p] - 1];
	return 1;
}

SK_HOT_SYSV int sk_sysv_take(int32_t shmid, struct sk_sysv *out)
{
	int p = sysv_pos(shmid);
	if (p < 0)
		return 0;
	unsigned i = sysv_h[p] - 1u;
	*out = sysv[i];
	sysv_remove(i, (unsigned)p);
	return 1;
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
	nfds = natt = att_hw = att_nfree = nsysv = nposix = 0;
	memset(sysv_h, 0, sizeof sysv_h);
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
	memset(sysv_h, 0, sizeof sysv_h);
	for (unsigned k = 0; k < natt;) {
		if (att[att_ord[k]].shmid >= 0)
			att_drop(k);
		else
			k++;
	}
	/* The envelope may stay wider than what is left: a hint only. */
	envelope_reset_if_empty();
}
