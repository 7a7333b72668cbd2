/* Unit tests of the per-process segment table (core/segtab.c). */
#include <criterion/criterion.h>
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
