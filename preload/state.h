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

/* Slow path of sk_on(): initialises on first use. */
int sk_on_slow(void);

/* Should this process record? Initialises on first use. */
static inline int sk_on(void)
{
	int s = __atomic_load_n(&sk_state, __ATOMIC_ACQUIRE);
	if (sk_likely(s == SK_ON))
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

/* The fork child's side, for fork (through pthread_atfork) and _Fork. */
void sk_child_after_fork(void);

/* Each wrapper brackets its bookkeeping with these: errno as the real call
 * left it is what the caller sees. */
#define SK_ENTER() int sk_errno_ = SK_ERRNO
#define SK_LEAVE() do { SK_ERRNO = sk_errno_; } while (0)

#endif
