/* The registry (core/cleanup.c) in-process, without preloading: order,
 * handles, capacity, exactly once under two racing terminators, fork, and
 * the removal helpers' errors. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cleanup.h"

static char order[SK_CLEANUP_MAX + 1];
static int norder;
static int runs[SK_CLEANUP_MAX];

static void rec(void *p)
{
	char c = (char)(long)p;
	order[norder++] = c;
}

static void count(void *p)
{
	__atomic_fetch_add(&runs[(long)p], 1, __ATOMIC_RELAXED);
}

static void setup(void)
{
	sk_cleanup_reset();
	sk_cleanup_init();
	norder = 0;
	memset(order, 0, sizeof order);
	memset(runs, 0, sizeof runs);
}

TestSuite(cleanup, .init = setup);

Test(cleanup, reverse_order_and_unregister)
{
	int a = sk_cleanup_add(rec, (void *)'a', 0);
	int b = sk_cleanup_add(rec, (void *)'b', 0);
	int c = sk_cleanup_add(rec, (void *)'c', 0);
	cr_assert(a >= 0 && b >= 0 && c >= 0);
	cr_assert_eq(sk_cleanup_remove(b), 0);
	cr_assert_eq(sk_cleanup_remove(b), -EINVAL, "a handle dies with its registration");
	cr_assert_eq(sk_cleanup_count(), 2);
	cr_assert_eq(sk_cleanup_terminate(0, 0), SK_TERM_RAN);
	cr_assert_str_eq(order, "ca");
	cr_assert_eq(sk_cleanup_terminate(0, 0), SK_TERM_DONE, "exactly once");
	cr_assert_str_eq(order, "ca");
	cr_assert_eq(sk_cleanup_remove(a), -EBUSY);
	cr_assert_eq(sk_cleanup_add(rec, NULL, 0), -EBUSY);
}

Test(cleanup, bad_arguments_and_capacity)
{
	cr_assert_eq(sk_cleanup_add(NULL, NULL, 0), -EINVAL);
	cr_assert_eq(sk_cleanup_add(rec, NULL, 2), -EINVAL);
	cr_assert_eq(sk_cleanup_remove(-1), -EINVAL);
	cr_assert_eq(sk_cleanup_remove(12345 << 8), -EINVAL);
	for (int i = 0; i < SK_CLEANUP_MAX; i++)
		cr_assert(sk_cleanup_add(count, (void *)(long)i, 0) >= 0);
	cr_assert_eq(sk_cleanup_add(count, NULL, 0), -ENOSPC);
}

Test(cleanup, stale_handle_after_reuse)
{
	int h = sk_cleanup_add(rec, (void *)'x', 0);
	cr_assert_eq(sk_cleanup_remove(h), 0);
	int h2 = sk_cleanup_add(rec, (void *)'y', 0);
	cr_assert_neq(h, h2, "same slot, new generation");
	cr_assert_eq(sk_cleanup_remove(h), -EINVAL, "the old handle cannot cancel the new one");
	cr_assert_eq(sk_cleanup_count(), 1);
}

static void *terminator(void *arg)
{
	(void)arg;
	return (void *)(long)sk_cleanup_terminate(SIGTERM, 5000);
}

Test(cleanup, two_terminators_run_each_once)
{
	for (int round = 0; round < 200; round++) {
		setup();
		for (long i = 0; i < 8; i++)
			sk_cleanup_add(count, (void *)i, 0);
		pthread_t t1, t2;
		void *r1, *r2;
		pthread_create(&t1, NULL, terminator, NULL);
		pthread_create(&t2, NULL, terminator, NULL);
		pthread_join(t1, &r1);
		pthread_join(t2, &r2);
		cr_assert((long)r1 == SK_TERM_RAN || (long)r2 == SK_TERM_RAN);
		cr_assert((long)r1 != (long)r2, "one ran, the other waited or found it done");
		for (int i = 0; i < 8; i++)
			cr_assert_eq(runs[i], 1);
		cr_assert_eq(sk_cleanup_signo(), SIGTERM);
	}
}

Test(cleanup, fork_keeps_only_inherited)
{
	int keep = sk_cleanup_add(rec, (void *)'k', SK_CLEANUP_INHERIT);
	int drop = sk_cleanup_add(rec, (void *)'d', 0);
	pid_t p = fork();
	if (p == 0) {
		sk_cleanup_fork_child();
		int ok = sk_cleanup_count() == 1 && sk_cleanup_remove(drop) == -EINVAL &&
			 sk_cleanup_in_owner();
		sk_cleanup_terminate(0, 0);
		_exit(ok && strcmp(order, "k") == 0 ? 0 : 1);
	}
	int st;
	waitpid(p, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(sk_cleanup_count(), 2, "the parent keeps both");
	cr_assert_eq(sk_cleanup_remove(keep), 0);
}

Test(cleanup, removal_helpers)
{
	cr_assert_eq(sk_cleanup_rm_posix(NULL), -EINVAL);
	cr_assert_eq(sk_cleanup_rm_posix("/"), -EINVAL);
	cr_assert_eq(sk_cleanup_rm_posix("/a/b"), -EINVAL);
	cr_assert_eq(sk_cleanup_rm_posix("/.."), -EINVAL);
	cr_assert_eq(sk_cleanup_rm_posix("/shmk-unit-no-such"), -ENOENT);
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	cr_assert(id >= 0);
	cr_assert_eq(sk_cleanup_rm_sysv(id), 0);
	cr_assert(sk_cleanup_rm_sysv(id) < 0, "removed already");
}
