/* Process facts and async-signal-safe helpers used on the record path. */
#ifndef SHMK_UTIL_H
#define SHMK_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "core/compiler.h"

/* clock_gettime straight into the vDSO, once sk_clock_init found it: glibc's
 * clock_gettime reaches the same code through its own text page, its GOT
 * and the loader's data, three pages that every record paid a page walk for
 * after each syscall (see SK_HOT). NULL before then, under valgrind (no
 * vDSO) and on architectures we do not know the symbol for: clock_gettime. */
typedef int (*sk_vdso_gettime_fn)(clockid_t, struct timespec *);
extern sk_vdso_gettime_fn sk_vdso_gettime SK_HIDDEN;
void sk_clock_init(void);
static inline int sk_clock(clockid_t clk, struct timespec *ts)
{
	/* relaxed: a word set once; a thread that still sees NULL uses libc */
	sk_vdso_gettime_fn f = __atomic_load_n(&sk_vdso_gettime, __ATOMIC_RELAXED);

	if (sk_likely(f != NULL) && f(clk, ts) == 0)
		return 0;
	return clock_gettime(clk, ts);
}

/* Record times: TSC ticks where they stand for CLOCK_MONOTONIC (x86-64 with
 * an invariant TSC that the kernel itself keeps time with), else
 * CLOCK_MONOTONIC in nanoseconds. clock_gettime through the vDSO costs 28 ns
 * a call here in a loop, rdtsc 11: it also loads the kernel's time data,
 * which the timer tick rewrites, and orders the TSC read with an lfence.
 * Four records a SysV cycle make that ~0.3% of it; bench/ab.sh said 0.991-
 * 0.992 in four runs of 41 rounds and 0.999-1.002 in two later ones (copies
 * of one library differ by that much here). A tick record is turned
 * into nanoseconds by the reader (core/logread.c) from the pairs of the
 * header and of SK_EV_CLOCK records (core/log.c). Decided once, by
 * sk_ticks_init, before the first record time is taken. */
extern int sk_ticks_on SK_HIDDEN;
void sk_ticks_init(void);

static inline uint64_t sk_tick(void)
{
#if defined(__x86_64__)
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
#else
	return 0;
#endif
}

/* A (tick, CLOCK_MONOTONIC) pair for the reader's conversion: *mono, and
 * the TSC read just after it, kept when one just before lies within
 * SK_TICK_PAIR_MAX ticks (~200 ns; the clock read takes ~100), tried a few
 * times. */
#define SK_TICK_PAIR_MAX 512u
uint64_t sk_tick_pair(struct timespec *mono) SK_HIDDEN;

/* CLOCK_MONOTONIC in nanoseconds (vDSO, ~26 ns). */
static inline uint64_t sk_now_mono(void)
{
	struct timespec ts;
	sk_clock(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A record's time: see sk_ticks_on. */
static inline uint64_t sk_stamp(void)
{
	return sk_likely(sk_ticks_on) ? sk_tick() : sk_now_mono();
}

/* The calling thread's errno, without a call into libc on every use
 * (__errno_location is one more libc page after each syscall): its address,
 * asked once per thread and kept in our TLS. Correct for any thread, even
 * one made by a raw clone that shares its parent's TLS, since the address
 * is the one __errno_location returns for the same thread pointer. */
extern SK_TLS int *sk_errno_at SK_HIDDEN;
static inline int *sk_errno_p(void)
{
	int *p = sk_errno_at;

	if (sk_unlikely(p == NULL))
		p = sk_errno_at = __errno_location();
	return p;
}
#define SK_ERRNO (*sk_errno_p())

/* The calling thread's id, cached per thread (gettid is a syscall, ~1 us
 * here); inline: the record path asks several times a call. With the
 * generation it was read in: a new process (fork, or a raw clone that runs
 * no atfork handler, preload/state.c) bumps sk_tid_gen, which retires the
 * cache of every thread at once, including one the new process's reset
 * does not run on. Two words, not one packed: the compare then needs no
 * shift (callgrind: 3 instructions fewer a call than the packed form). The
 * generation starts at 1 so that a new thread's zeroed cache is never
 * current. */
struct sk_tid_tls {
	uint32_t gen;
	pid_t tid;
};
extern SK_TLS struct sk_tid_tls sk_tid_cache SK_HIDDEN;
extern uint32_t sk_tid_gen SK_HIDDEN;
pid_t sk_tid_slow(void);
static inline pid_t sk_tid(void)
{
	/* relaxed: bumped only by a new process's reset, before its first
	 * record (the other threads of a raw clone's child wait for it) */
	if (sk_likely(sk_tid_cache.gen == __atomic_load_n(&sk_tid_gen, __ATOMIC_RELAXED)))
		return sk_tid_cache.tid;
	return sk_tid_slow();
}
/* Forget every thread's cached tid: called in a new process. */
void sk_tid_reset(void);

/* Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or 0.
 * pid 0 means the calling process. Async-signal-safe. */
uint64_t sk_proc_start_ticks(pid_t pid);
/* State (field 3) and start time (field 22) of /proc/<pid>/stat, pid 0 for
 * the calling process. Returns 0 or -1. Async-signal-safe. */
int sk_proc_stat(pid_t pid, char *state, uint64_t *start);
/* Inode of /proc/self/ns/<name>, or 0. */
uint64_t sk_ns_inode(const char *name);

/* Read up to len-1 bytes of a small file into buf, NUL-terminate; returns the
 * byte count or -errno. Async-signal-safe. */
ssize_t sk_read_file(const char *path, char *buf, size_t len);

/* Bounded string helpers that never call into stdio. */
size_t sk_strlcpy(char *dst, const char *src, size_t size);
/* Appends the decimal form of v; returns the new length (bounded by size). */
size_t sk_fmt_u64(char *dst, size_t at, size_t size, uint64_t v);
size_t sk_fmt_str(char *dst, size_t at, size_t size, const char *s);

/* Remembers which file stderr is (at library start). */
void sk_say_init(void);
/* Writes "shmkeeper: <msg>\n" to stderr with one write(2), if fd 2 is still
 * the file it was at sk_say_init(). */
void sk_say(const char *msg);

#endif
