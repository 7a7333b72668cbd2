/* Process facts and async-signal-safe helpers used on the record path. */
#ifndef SHMK_UTIL_H
#define SHMK_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "core/compiler.h"

/* CLOCK_MONOTONIC in nanoseconds (vDSO, ~26 ns). */
static inline uint64_t sk_now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The calling thread's id, cached per thread (gettid is a syscall, ~1 us
 * here); inline: the record path asks several times a call. */
extern SK_TLS pid_t sk_tid_cache SK_HIDDEN;
pid_t sk_tid_slow(void);
static inline pid_t sk_tid(void)
{
	pid_t t = sk_tid_cache;
	return sk_likely(t != 0) ? t : sk_tid_slow();
}
/* Forget the cached tid: called in a fork child. */
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
