/* Unit tests of the per-process segment table (core/segtab.c). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/logfmt.h"
#include "core/segtab.h"

TestSuite(segtab, .init = sk_tab_reset);

Test(segtab, fd_marks_follow_dup_and_close)
{
	cr_assert_not(sk_fd_maybe_shm(5));
	sk_fd_mark(5, 1, 2, "/a");
	cr_assert(sk_fd_maybe_shm(5));
	sk_fd_dup(5, 9);
	uint64_t dev, ino;
	char name[256];
	cr_assert(sk_fd_lookup(9, &dev, &ino, name));
	cr_assert_eq(dev, 1);
	cr_assert_eq(ino, 2);
	cr_assert_str_eq(name, "/a");
	sk_fd_dup(3, 9);   /* dup2 of a plain fd over a shm one */
	cr_assert_not(sk_fd_maybe_shm(9));
	sk_fd_unmark(5);
	cr_assert_not(sk_fd_maybe_shm(5));
	cr_assert_not(sk_fd_maybe_shm(-1));
}

Test(segtab, fd_ranges_and_large_fds)
{
	for (int fd = 10; fd < 20; fd++)
		sk_fd_mark(fd, 1, (uint64_t)fd, "/r");
	sk_fd_mark(100000, 1, 1, "/big");
	cr_assert(sk_fd_maybe_shm(100000));
	sk_fd_unmark_range(12, 15);
	for (int fd = 10; fd < 20; fd++)
		cr_assert_eq(sk_fd_maybe_shm(fd), fd < 12 || fd > 15, "fd %d", fd);
}

Test(segtab, cut_splits_and_clips)
{
	struct sk_attach a = { .addr = 0x10000, .len = 0x4000, .shmid = -1, .dev = 1, .ino = 2 };
	cr_assert_eq(sk_att_add(&a), 0);
	cr_assert(sk_att_maybe(0x11000, 0x1000));
	cr_assert_not(sk_att_maybe(0x20000, 0x1000));
	struct sk_attach out[4];
	/* A hole in the middle leaves two pieces. */
	cr_assert_eq(sk_att_cut(0x11000, 0x1000, out, 4), 1);
	cr_assert_eq(out[0].addr, 0x11000);
	cr_assert_eq(out[0].len, 0x1000);
	cr_assert_eq(out[0].offset, 0x1000);
	cr_assert(out[0].flags & SK_F_PARTIAL);
	/* Unmapping everything returns both remaining pieces, whole. */
	int n = sk_att_cut(0x0, 0x100000, out, 4);
	cr_assert_eq(n, 2);
	uint64_t total = out[0].len + out[1].len;
	cr_assert_eq(total, 0x3000);
	cr_assert_not(sk_att_maybe(0x10000, 0x4000), "the envelope empties");
}

Test(segtab, exact_find_for_shmdt)
{
	struct sk_attach a = { .addr = 0x40000, .len = 0x2000, .shmid = 77 }, got;
	sk_att_add(&a);
	cr_assert(sk_att_find(0x40000, &got));
	cr_assert_eq(got.shmid, 77);
	cr_assert_not(sk_att_find(0x41000, &got));
}

Test(segtab, take_for_shmdt)
{
	struct sk_attach a = { .addr = 0x40000, .len = 0x2000, .shmid = 77 },
			 b = { .addr = 0x50000, .len = 0x1000, .shmid = 78 },
			 z = { .addr = 0x60000, .len = 0, .shmid = 79 }, got;
	sk_att_add(&a);
	sk_att_add(&b);
	sk_att_add(&z);
	cr_assert_not(sk_att_take(0x41000, &got), "not at an attachment's start");
	cr_assert(sk_att_take(0x40000, &got));
	cr_assert_eq(got.shmid, 77);
	cr_assert_eq(got.len, 0x2000);
	cr_assert_not(sk_att_find(0x40000, &got), "gone from the table");
	cr_assert(sk_att_find(0x50000, &got), "the other one stays");
	cr_assert(sk_att_take(0x60000, &got), "a size-less attachment goes too");
	cr_assert_eq(got.shmid, 79);
	cr_assert(sk_att_take(0x50000, &got));
	cr_assert_eq(sk_att_lo, UINT64_MAX, "empty table: envelope reset");
	cr_assert_eq(sk_att_hi, 0);
}

static int created_count;
static void count_created(const struct sk_sysv *s, void *arg)
{
	(void)arg;
	created_count += s->created;
}

Test(segtab, sysv_ownership_and_fork)
{
	sk_sysv_note(1, 0, 4096, 1);
	sk_sysv_note(2, 5, 8192, 0);
	struct sk_sysv s;
	cr_assert(sk_sysv_get(2, &s));
	cr_assert_eq(s.size, 8192);
	created_count = 0;
	sk_sysv_foreach(count_created, NULL);
	cr_assert_eq(created_count, 1);
	sk_tab_fork_child();
	created_count = 0;
	sk_sysv_foreach(count_created, NULL);
	cr_assert_eq(created_count, 0, "a fork child owns nothing its parent created");
	sk_sysv_forget(1);
	cr_assert_not(sk_sysv_get(1, &s));
}

Test(segtab, lock_detects_reentry)
{
	cr_assert_eq(sk_tab_lock(), 1);
	cr_assert_eq(sk_tab_lock(), 0, "a signal handler on the holding thread must not spin");
	sk_tab_unlock();
	cr_assert_eq(sk_tab_lock(), 1);
	sk_tab_unlock();
}

/* ---- the indexed tables against plain lists ---------------------------- */

#define PG 0x1000ull
#define MODEL_MAX 4096
static struct sk_attach model[MODEL_MAX];
static unsigned nmodel;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* The reference: a list, scanned whole. */
static void model_add(const struct sk_attach *a)
{
	uint64_t end = a->addr + a->len;
	for (unsigned i = 0; i < nmodel;) {
		const struct sk_attach *o = &model[i];
		if (o->addr == a->addr || (o->addr < end && o->addr + o->len > a->addr))
			model[i] = model[--nmodel];
		else
			i++;
	}
	model[nmodel++] = *a;
}

static int model_take(uint64_t addr, struct sk_attach *out)
{
	for (unsigned i = 0; i < nmodel; i++)
		if (model[i].addr == addr) {
			*out = model[i];
			model[i] = model[--nmodel];
			return 1;
		}
	return 0;
}

/* Bytes of [addr, addr+len) covered, the reference's cut. */
static uint64_t model_cut(uint64_t addr, uint64_t len)
{
	uint64_t end = addr + len, cut = 0;
	for (unsigned i = 0; i < nmodel;) {
		struct sk_attach *a = &model[i];
		uint64_t aend = a->addr + a->len;
		if (aend <= addr || a->addr >= end) {
			i++;
			continue;
		}
		uint64_t cs = a->addr > addr ? a->addr : addr, ce = aend < end ? aend : end;
		cut += ce - cs;
		if (a->addr < cs && aend > ce) {
			struct sk_attach r = *a;
			r.addr = ce;
			r.len = aend - ce;
			r.offset = a->offset + (ce - a->addr);
			a->len = cs - a->addr;
			model[nmodel++] = r;
			i++;
		} else if (a->addr < cs) {
			a->len = cs - a->addr;
			i++;
		} else if (aend > ce) {
			a->offset += ce - a->addr;
			a->addr = ce;
			a->len = aend - ce;
			i++;
		} else {
			model[i] = model[--nmodel];
		}
	}
	return cut;
}

static struct sk_attach seen[MODEL_MAX];
static unsigned nseen;
static void collect(const struct sk_attach *a, void *arg)
{
	(void)arg;
	seen[nseen++] = *a;
}

static int by_addr(const void *x, const void *y)
{
	const struct sk_attach *a = x, *b = y;
	return a->addr < b->addr ? -1 : a->addr > b->addr;
}

Test(segtab, attachments_against_a_list)
{
	struct sk_attach got, want, out[8];
	nmodel = 0;
	for (int step = 0; step < 20000; step++) {
		uint64_t addr = (uint64_t)(1 + rnd(600)) * PG;
		unsigned op = rnd(10);
		if (op < 4 && nmodel < 1500) {
			struct sk_attach a = { .addr = addr, .len = rnd(12) * PG,
					       .offset = rnd(4) * PG, .shmid = (int32_t)step };
			model_add(&a);
			cr_assert_eq(sk_att_add(&a), 0);
		} else if (op < 7) {
			/* Mostly at a start that exists. */
			if (nmodel && rnd(4))
				addr = model[rnd(nmodel)].addr;
			int m = model_take(addr, &want), t = sk_att_take(addr, &got);
			cr_assert_eq(t, m, "step %d: take %#llx", step, (unsigned long long)addr);
			if (m)
				cr_assert_eq(got.shmid, want.shmid, "step %d", step);
		} else {
			uint64_t len = (uint64_t)rnd(24) * PG;
			uint64_t mc = model_cut(addr, len), cut = 0;
			int n = sk_att_cut(addr, len, out, 8);
			for (int i = 0; i < n; i++) {
				cr_assert(out[i].addr >= addr && out[i].addr + out[i].len <= addr + len);
				cut += out[i].len;
			}
			cr_assert_eq(cut, mc, "step %d: cut %#llx+%#llx", step,
				     (unsigned long long)addr, (unsigned long long)len);
		}
		if (step % 97 == 0 || step == 19999) {
			nseen = 0;
			sk_att_foreach(collect, NULL);
			cr_assert_eq(nseen, nmodel, "step %d", step);
			for (unsigned i = 1; i < nseen; i++)
				cr_assert(seen[i - 1].addr + seen[i - 1].len <= seen[i].addr,
					  "in order and disjoint");
			qsort(model, nmodel, sizeof *model, by_addr);
			for (unsigned i = 0; i < nseen; i++) {
				cr_assert_eq(seen[i].addr, model[i].addr, "step %d #%u", step, i);
				cr_assert_eq(seen[i].len, model[i].len);
				cr_assert_eq(seen[i].offset, model[i].offset);
				cr_assert_eq(seen[i].shmid, model[i].shmid);
				cr_assert_eq(sk_att_find(seen[i].addr, &got), 1);
				cr_assert_eq(got.shmid, seen[i].shmid);
			}
		}
	}
}

Test(segtab, sysv_index_against_a_list)
{
	/* Keys that collide in the index: multiples of its size, and dense. */
	static int32_t ids[4096];
	static uint8_t present[4096];
	for (int i = 0; i < 4096; i++)
		ids[i] = i < 2048 ? (int32_t)(i * 8192) : (int32_t)(1000000 + i);
	/* And 64 whose home (the index's hash, core/segtab.c) is one of its
	 * last 8 positions, whose probes wrap round to the start, and 64 whose
	 * home is one of its first 8, which those wrapped ones then meet. */
	for (int32_t id = 5000000, i = 0, j = 0; i < 64 || j < 64; id++) {
		uint32_t home = ((uint32_t)id * 0x9E3779B1u) >> 19;
		if (home >= 8184 && i < 64)
			ids[i++] = id;
		else if (home < 8 && j < 64)
			ids[64 + j++] = id;
	}
	unsigned n = 0;
	for (int step = 0; step < 100000; step++) {
		int j = (int)rnd(4096);
		struct sk_sysv s;
		switch (rnd(3)) {
		case 0:
			if (!present[j] && n == 4096)
				break;
			sk_sysv_note(ids[j], j, (uint64_t)j * 4096 + 1, 1);
			n += !present[j];
			present[j] = 1;
			break;
		case 1:
			cr_assert_eq(sk_sysv_get(ids[j], &s), present[j], "step %d", step);
			if (present[j])
				cr_assert_eq(s.size, (uint64_t)j * 4096 + 1);
			break;
		default:
			cr_assert_eq(sk_sysv_take(ids[j], &s), present[j], "step %d", step);
			n -= present[j];
			present[j] = 0;
			break;
		}
	}
	for (int j = 0; j < 4096; j++) {
		struct sk_sysv s;
		cr_assert_eq(sk_sysv_get(ids[j], &s), present[j], "id %d", ids[j]);
	}
}
