/* The preloaded library's state: configuration from the environment, the
 * recursion guard, lazy initialisation, and the process events (fork, exec,
 * exit) that decide which log a record goes to. */
#ifndef SHMK_STATE_H
#define SHMK_STATE_H

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/compiler.h"
#include "core/logfmt.h"
#include "core/util.h"

/* Set while this thread initialises the library or runs its exit path: a
 * wrapped call made from there is forwarded untouched. The wrappers do not
 * set it around their bookkeeping: that calls no wrapped function (raw
 * syscalls, the real functions), and a signal handler that interrupts it and
 * calls a wrapped function is the program's call, to be recorded like any
 * other (each shared structure detects its own re-entry: the segment table's
 * lock knows its owner, the log is lock-free, the span returns -EDEADLK). */
extern SK_TLS int sk_busy;

enum { SK_UNINIT, SK_INITING, SK_ON, SK_OFF };
extern int sk_state;

extern uint64_t sk_page_size;
extern uint32_t sk_euid;     /* at initialisation */

/* This process's pid, cached (refreshed in a fork child). */
pid_t sk_pid(void);

static inline uint64_t sk_page_round(uint64_t n)
{
	return (n + sk_page_size - 1) & ~(sk_page_size - 1);
}

/* Slow path of sk_on(): initialises on first use, and resets a new process
 * that no atfork handler told us about (see sk_proc_mark). */
int sk_on_slow(void);

/* Is this still the process the library's state belongs to? A child made
 * by the raw clone or clone3 syscall without CLONE_VM (LTP's SAFE_CLONE,
 * glibc's clone()) runs no atfork handler, and kept its parent's pid, tid
 * caches and log mapping, into which it wrote with its parent's identity.
 * sk_proc_mark points to a word in a private anonymous page marked
 * MADV_WIPEONFORK (Linux 4.14): the kernel gives any child made without
 * CLONE_VM a zero-filled page there, so a word that is not SK_MARK_MINE
 * means "a new process, not reset yet". Threads, vfork and posix_spawn's
 * child (CLONE_VM) share the page and see SK_MARK_MINE. Where the kernel
 * refuses the advice, it points to a constant SK_MARK_MINE: fork children
 * are still reset by the atfork handler, raw clone children are not (as
 * before). */
enum { SK_MARK_NEW = 0, SK_MARK_RESETTING = 1, SK_MARK_MINE = 2 };
extern const uint32_t *sk_proc_mark SK_HIDDEN;

/* Should this process record? Initialises on first use. On the way: the
 * marker's load and compare (a new process goes to sk_on_slow). */
static inline int sk_on(void)
{
	int s = __atomic_load_n(&sk_state, __ATOMIC_ACQUIRE);
	/* acquire: what the new process's reset wrote, on another thread of
	 * it, is seen by whoever sees SK_MARK_MINE */
	if (sk_likely(s == SK_ON) &&
	    sk_likely(__atomic_load_n(sk_proc_mark, __ATOMIC_ACQUIRE) == SK_MARK_MINE))
		return 1;
	if (s == SK_OFF)
		return 0;
	return sk_on_slow();
}

/* Opens the log if it is not open yet. Returns 1 if records can be written.
 * The open log is one load here; everything else is out of line. */
extern int sk_log_state SK_HIDDEN;   /* 0 not tried, 1 open, 2 failed */
int sk_log_ready_slow(void);
static inline int sk_log_ready(void)
{
	if (sk_likely(__atomic_load_n(&sk_log_state, __ATOMIC_ACQUIRE) == 1))
		return 1;
	return sk_log_ready_slow();
}

/* A call failed: count it (opens the log: a failing shm call is still a
 * process that uses shared memory). */
void sk_count_failed(enum sk_fn fn);

/* A new process's reset: a fork child's (through pthread_atfork, and from
 * _Fork's wrapper) and a raw clone child's (sk_on_slow). Once a process:
 * a signal handler that recorded in a fork child before the atfork handler
 * ran has done it already. */
void sk_child_after_fork(void);

/* Each wrapper brackets its bookkeeping with these: errno as the real call
 * left it is what the caller sees. */
#define SK_ENTER() int sk_errno_ = SK_ERRNO
#define SK_LEAVE() do { SK_ERRNO = sk_errno_; } while (0)

#endif
