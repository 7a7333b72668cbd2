/* The registry of termination cleanups (the seed: Cedar's
 * RegisterUNTHREADEDTerminationCleanupProc), and the "owned" policy that
 * removes what this process created.
 *
 * Everything here may run inside a signal handler: fixed arrays, no malloc,
 * no lock that a handler could find held by the thread it interrupted. A slot
 * is claimed and released with compare-and-swap on one word that holds its
 * generation and its state, so a stale handle can never release a slot that
 * was reused. Termination is one atomic state, IDLE -> RUNNING -> DONE,
 * claimed by the first thread that terminates: whatever else arrives (a
 * second signal, on this thread or another, exit() in another thread) finds
 * the cleanups running or done and never runs them again.
 *
 * Errors: -errno, like the rest of core/. Installing signal handlers is not
 * done here (preload/signal.c does it): core/ knows nothing of interposition.
 */
#ifndef SHMK_CLEANUP_H
#define SHMK_CLEANUP_H

#include <stdint.h>

#define SK_CLEANUP_MAX     128     /* registrations at a time */
#define SK_CLEANUP_INHERIT 1u      /* = SHMK_CLEANUP_INHERIT: kept by a fork child */

/* sk_cleanup_add - register fn(data).
 * Returns: a handle >= 0, -EINVAL (fn NULL, unknown flag), -ENOSPC (all
 * SK_CLEANUP_MAX slots used), -EBUSY (termination has begun). */
int sk_cleanup_add(void (*fn)(void *), void *data, unsigned flags);

/* sk_cleanup_remove - unregister a handle.
 * Returns: 0, -EINVAL (not a live handle: never issued, removed already, or
 * dropped by fork), -EBUSY (it is running or has run). */
int sk_cleanup_remove(int handle);

/* Registrations live now. */
unsigned sk_cleanup_count(void);

/* The owned policy (SHMKEEPER_CLEANUP=owned): at termination, after the
 * registered cleanups, remove every segment that the segment table says this
 * process created and has not removed. */
void sk_cleanup_set_owned(int on);
int sk_cleanup_owned(void);

/* Does termination have anything to do? (registrations or the policy) */
int sk_cleanup_wanted(void);

/* Results of sk_cleanup_terminate. */
enum sk_term {
	SK_TERM_RAN,        /* this call ran the cleanups */
	SK_TERM_DONE,       /* they had run already */
	SK_TERM_WAITED,     /* another thread ran them; this one waited for it */
	SK_TERM_NESTED,     /* this thread is running them (a signal inside one) */
	SK_TERM_TIMEOUT,    /* another thread still runs them after the wait */
};

/* sk_cleanup_terminate - run every registered cleanup once, newest first,
 * then the owned policy. signo: the fatal signal, or 0 at exit.
 * Async-signal-safe. While they run, the asynchronous fatal signals are
 * blocked in this thread (they stay pending, and are delivered afterwards);
 * a synchronous fault inside a cleanup ends that cleanup only (see
 * sk_cleanup_fault). A thread that finds another one running them waits up
 * to wait_ms for it to finish. Registrations made after termination began
 * do not run. */
enum sk_term sk_cleanup_terminate(int signo, unsigned wait_ms);

/* sk_cleanup_fault - called by the signal dispatcher first: if this thread is
 * inside a cleanup, abandon that cleanup (the runner goes on with the next
 * one) and do not return. Returns 0 otherwise. */
int sk_cleanup_fault(int signo);

/* The fatal signal of the termination under way, 0 at exit or before. */
int sk_cleanup_signo(void);

/* Removal helpers for cleanups, async-signal-safe: raw system calls, one
 * SK_EV_CLEANUP record each (when a log is open), the segment forgotten by
 * the segment table. Return 0 or -errno. A POSIX name is "/name" or "name". */
int sk_cleanup_rm_sysv(int shmid);
int sk_cleanup_rm_posix(const char *name);

/* The cleanup helpers' signal set: the asynchronous fatal signals (blocked
 * while cleanups run) and the synchronous ones (never blocked: a fault while
 * blocked kills at once). */
extern const int sk_fatal_signals[13];
int sk_signal_is_sync(int signo);

/* In a fork child: drop every registration not marked SK_CLEANUP_INHERIT,
 * and forget a termination that another thread of the parent had begun. */
void sk_cleanup_fork_child(void);

/* Is the caller the process whose registry this is, and not a vfork child
 * running on its memory? One getpid system call; async-signal-safe.
 * sk_cleanup_init notes the pid at load (sk_cleanup_fork_child again). */
void sk_cleanup_init(void);
int sk_cleanup_in_owner(void);

/* Tests: forget everything. */
void sk_cleanup_reset(void);

#endif
