/* Termination: signal, sigaction, _exit and _Exit, the fatal-signal
 * dispatcher, and the public shmk_cleanup_* functions (registry:
 * core/cleanup.c).
 *
 * The library takes over a fatal signal only while it has something to run
 * (a registration, or SHMKEEPER_CLEANUP=owned): it then keeps the program's
 * disposition in a shadow table and puts its dispatcher in the kernel in its
 * place, with the program's sa_mask and SA_RESTART/SA_ONSTACK/SA_NODEFER, so
 * the kernel masks and restarts exactly as the program asked. SIG_IGN is put
 * in the kernel as it is (so it survives exec, as it would). The program sees
 * only its own dispositions: sigaction's old action comes from the shadow.
 *
 * The dispatcher calls the program's handler as the kernel would have; only
 * where the program has SIG_DFL (the default action, termination) does it
 * run the cleanups, then restore SIG_DFL, unblock, and raise the same signal
 * with the same siginfo, so the exit status and the core dump are the
 * kernel's own.
 *
 * Failure contract: sigaction and signal return what the real calls would
 * (their errors come from glibc's sigaction, which validates the same
 * arguments); _exit and _Exit do not return. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/span.h"
#include "core/util.h"
#include "include/shmkeeper.h"
#include "preload/real.h"
#include "preload/state.h"

#define NSIG_FATAL 32          /* every fatal signal number is below this */
_Static_assert(SHMK_CLEANUP_MAX == SK_CLEANUP_MAX && SHMK_CLEANUP_INHERIT == SK_CLEANUP_INHERIT,
	       "the public and the internal registry agree");
#define WAIT_MS    10000       /* a second terminator waits this long for the first */

/* The program's dispositions of the managed signals, under a sequence lock:
 * the dispatcher reads them from any thread, at any moment; the writers
 * (sigaction, arm, disarm, SA_RESETHAND) are serialised by wlock and hold
 * every signal blocked, so no handler can interrupt a writer on its own
 * thread and spin on an odd sequence. */
union act_words {
	struct sigaction sa;
	unsigned long w[sizeof(struct sigaction) / sizeof(unsigned long)];
};
_Static_assert(sizeof(struct sigaction) % sizeof(unsigned long) == 0, "words");

static union act_words shadow[NSIG_FATAL];
static unsigned shadow_seq[NSIG_FATAL];   /* odd while a writer is inside */
static int managed[NSIG_FATAL];           /* atomic: the shadow is the truth */
static int armed;                         /* atomic: handlers are in the kernel */
static int wlock;                         /* atomic: 0 or the writer's tid */

static int is_fatal(int sig)
{
	for (unsigned i = 0; i < SK_ARRAY_SIZE(sk_fatal_signals); i++)
		if (sk_fatal_signals[i] == sig)
			return 1;
	return 0;
}

static void wr_begin(sigset_t *old)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, old);
	int me = (int)sk_tid(), none = 0;
	while (!__atomic_compare_exchange_n(&wlock, &none, me, 1, __ATOMIC_ACQUIRE,
					    __ATOMIC_RELAXED)) {
		none = 0;
		sched_yield();
	}
}

static void wr_end(const sigset_t *old)
{
	__atomic_store_n(&wlock, 0, __ATOMIC_RELEASE);
	sigprocmask(SIG_SETMASK, old, NULL);
}

static void shadow_store(int sig, const struct sigaction *a)
{
	union act_words u;
	memset(&u, 0, sizeof u);
	u.sa = *a;
	__atomic_fetch_add(&shadow_seq[sig], 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);   /* odd before the words */
	for (unsigned i = 0; i < SK_ARRAY_SIZE(u.w); i++)
		__atomic_store_n(&shadow[sig].w[i], u.w[i], __ATOMIC_RELAXED);
	__atomic_fetch_add(&shadow_seq[sig], 1, __ATOMIC_RELEASE);  /* words before even */
}

static void shadow_load(int sig, struct sigaction *out)
{
	union act_words u;
	for (;;) {
		unsigned s1 = __atomic_load_n(&shadow_seq[sig], __ATOMIC_ACQUIRE);
		if (s1 & 1) {
			sched_yield();      /* a writer on another thread */
			continue;
		}
		for (unsigned i = 0; i < SK_ARRAY_SIZE(u.w); i++)
			u.w[i] = __atomic_load_n(&shadow[sig].w[i], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);   /* words before the re-check */
		if (__atomic_load_n(&shadow_seq[sig], __ATOMIC_RELAXED) == s1)
			break;
	}
	*out = u.sa;
}

static void dispatch(int sig, siginfo_t *info, void *uc);

/* What the kernel gets for the program's action a of a managed signal. */
static int kernel_install(int sig, const struct sigaction *a)
{
	if (a->sa_handler == SIG_IGN)
		return REAL(sigaction)(sig, a, NULL);
	struct sigaction k;
	memset(&k, 0, sizeof k);
	k.sa_sigaction = dispatch;
	if (a->sa_handler == SIG_DFL) {
		/* Our own handler: on the alternate stack if the program has
		 * one (a stack overflow is then still cleaned up). */
		sigemptyset(&k.sa_mask);
		k.sa_flags = SA_SIGINFO | SA_ONSTACK;
	} else {
		/* SA_RESETHAND is emulated (the dispatcher must stay to run the
		 * cleanups on the next one); the rest the kernel does itself. */
		k.sa_mask = a->sa_mask;
		k.sa_flags = SA_SIGINFO | (a->sa_flags & (SA_RESTART | SA_ONSTACK | SA_NODEFER));
	}
	return REAL(sigaction)(sig, &k, NULL);
}

/* Takes over the fatal signals; called when there is first something to run. */
static void arm(void)
{
	if (__atomic_load_n(&armed, __ATOMIC_ACQUIRE))
		return;
	sigset_t m;
	wr_begin(&m);
	if (!armed) {
		for (unsigned i = 0; i < SK_ARRAY_SIZE(sk_fatal_signals); i++) {
			int sig = sk_fatal_signals[i];
			struct sigaction cur;
			if (REAL(sigaction)(sig, NULL, &cur) < 0)
				continue;
			shadow_store(sig, &cur);
			__atomic_store_n(&managed[sig], 1, __ATOMIC_RELEASE);
			if (cur.sa_handler != SIG_IGN)
				kernel_install(sig, &cur);
		}
		__atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
	}
	wr_end(&m);
}

/* Gives the program's dispositions back to the kernel: nothing left to run. */
static void disarm(void)
{
	sigset_t m;
	wr_begin(&m);
	if (armed && !sk_cleanup_wanted()) {
		for (unsigned i = 0; i < SK_ARRAY_SIZE(sk_fatal_signals); i++) {
			int sig = sk_fatal_signals[i];
			if (!managed[sig])
				continue;
			struct sigaction cur;
			shadow_load(sig, &cur);
			REAL(sigaction)(sig, &cur, NULL);
			__atomic_store_n(&managed[sig], 0, __ATOMIC_RELEASE);
		}
		__atomic_store_n(&armed, 0, __ATOMIC_RELEASE);
	}
	wr_end(&m);
}

/* The default action of sig (terminate, core dump where it applies), as the
 * kernel would have taken it. */
static _Noreturn void default_action(int sig, siginfo_t *info)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	REAL(sigaction)(sig, &dfl, NULL);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	pid_t pid = (pid_t)syscall(SYS_getpid), tid = (pid_t)syscall(SYS_gettid);
	/* The same siginfo (si_code, si_addr) goes into the core dump; the
	 * kernel accepts a kernel si_code only when a thread group leader
	 * sends to itself, otherwise tgkill. */
	if (!info || syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, info) < 0)
		syscall(SYS_tgkill, pid, tid, sig);
	/* Not reached: the signal is unblocked and fatal. */
	syscall(SYS_exit_group, 128 + sig);
	__builtin_unreachable();
}

static void reset_hand(int sig)
{
	sigset_t m;
	wr_begin(&m);
	struct sigaction a;
	shadow_load(sig, &a);
	if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) {
		/* As the kernel: the handler becomes SIG_DFL, the flags stay. */
		a.sa_handler = SIG_DFL;
		shadow_store(sig, &a);
		kernel_install(sig, &a);
	}
	wr_end(&m);
}

static void dispatch(int sig, siginfo_t *info, void *uc)
{
	int saved = errno;
	/* A fault inside one of the cleanups belongs to it, not to the
	 * program: the runner goes on with the next one. */
	if (sk_signal_is_sync(sig))
		sk_cleanup_fault(sig);
	struct sigaction a;
	if ((unsigned)sig < NSIG_FATAL && __atomic_load_n(&managed[sig], __ATOMIC_ACQUIRE))
		shadow_load(sig, &a);
	else
		a.sa_handler = SIG_DFL;    /* not ours any more: raced with disarm */
	if (a.sa_handler == SIG_IGN) {
		errno = saved;
		return;                    /* raced with the program's SIG_IGN */
	}
	if (a.sa_handler != SIG_DFL) {
		if (a.sa_flags & SA_RESETHAND)
			reset_hand(sig);
		errno = saved;
		/* A synchronous fault re-executes the instruction when this
		 * returns: if the handler did not fix it, the program faults
		 * again and meets its (possibly reset) disposition, as it would
		 * without us. */
		if (a.sa_flags & SA_SIGINFO)
			a.sa_sigaction(sig, info, uc);
		else
			a.sa_handler(sig);
		return;
	}
	/* The default action: the process ends here. A vfork child runs on its
	 * parent's memory: the cleanups are the parent's. */
	if (sk_cleanup_in_owner()) {
		/* Another fatal signal pending now must not end the process in
		 * place of this one once the cleanups unblock it: it stays
		 * blocked until this one has been raised. */
		sigset_t async;
		sigemptyset(&async);
		for (unsigned i = 0; i < SK_ARRAY_SIZE(sk_fatal_signals); i++)
			if (!sk_signal_is_sync(sk_fatal_signals[i]))
				sigaddset(&async, sk_fatal_signals[i]);
		sigprocmask(SIG_BLOCK, &async, NULL);
		sk_cleanup_terminate(sig, WAIT_MS);
	}
	sk_span_exit();    /* what sk_span_fini would have done */
	default_action(sig, info);
}

/* ---- wrappers ------------------------------------------------------------ */

SK_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (!is_fatal(sig) || sk_unlikely(sk_busy))
		return REAL(sigaction)(sig, act, old);
	int saved = errno, ret = 0;
	struct sigaction a, prev;
	if (act)
		a = *act;             /* act and old may be the same struct */
	sigset_t m;
	wr_begin(&m);
	if (!__atomic_load_n(&managed[sig], __ATOMIC_ACQUIRE)) {
		ret = REAL(sigaction)(sig, act ? &a : NULL, old);
		saved = errno;
	} else {
		shadow_load(sig, &prev);
		if (act) {
			ret = kernel_install(sig, &a);
			if (ret == 0)
				shadow_store(sig, &a);
			else
				saved = errno;
		}
		if (ret == 0 && old)
			*old = prev;
	}
	wr_end(&m);
	errno = saved;
	return ret;
}

/* glibc's signal(): BSD semantics, through its internal sigaction (so not
 * through ours): the handler stays, the signal is masked while it runs,
 * and calls restart. */
SK_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	if (!is_fatal(sig) || sk_unlikely(sk_busy))
		return REAL(signal)(sig, handler);
	if (handler == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	struct sigaction a, old;
	memset(&a, 0, sizeof a);
	a.sa_handler = handler;
	sigemptyset(&a.sa_mask);
	sigaddset(&a.sa_mask, sig);
	a.sa_flags = SA_RESTART;
	if (sigaction(sig, &a, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* exit() reaches the cleanups and sk_span_fini through the library's
 * destructor (preload/state.c); _exit and _Exit skip destructors, so they run
 * the cleanups and leave the span's table here. glibc calls its
 * own _exit internally (not through here): that is exit's path, and
 * posix_spawn's child's. */
static _Noreturn void forward_exit(void (*real)(int), int status)
{
	if (!sk_unlikely(sk_busy)) {
		if (sk_cleanup_wanted() && sk_cleanup_in_owner())
			sk_cleanup_terminate(0, WAIT_MS);
		sk_span_exit();
	}
	if (real)
		real(status);
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

SK_EXPORT void _exit(int status)
{
	forward_exit(REAL(_exit), status);
}

SK_EXPORT void _Exit(int status)
{
	forward_exit(REAL(_Exit), status);
}

/* ---- the public API (include/shmkeeper.h): -errno becomes -1 and errno ---- */

static int ret_errno(int rc)
{
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	return rc;
}

SHMK_API int shmk_cleanup_register_flags(void (*fn)(void *data), void *data, unsigned flags)
{
	int h = sk_cleanup_add(fn, data, flags);
	if (h >= 0)
		arm();
	return ret_errno(h);
}

SHMK_API int shmk_cleanup_register(void (*fn)(void *data), void *data)
{
	return shmk_cleanup_register_flags(fn, data, 0);
}

SHMK_API int shmk_cleanup_unregister(int handle)
{
	int rc = sk_cleanup_remove(handle);
	if (rc == 0 && !sk_cleanup_wanted())
		disarm();
	return ret_errno(rc);
}

SHMK_API int shmk_cleanup_rm_sysv(int shmid)
{
	return ret_errno(sk_cleanup_rm_sysv(shmid));
}

SHMK_API int shmk_cleanup_rm_posix(const char *name)
{
	return ret_errno(sk_cleanup_rm_posix(name));
}

SHMK_API int shmk_cleanup_signal(void)
{
	return sk_cleanup_signo();
}

/* ---- load and fork -------------------------------------------------------- */

static void atfork_child(void)
{
	sk_tid_reset();
	sk_cleanup_fork_child();
}

__attribute__((constructor)) static void shmk_signal_init(void)
{
	sk_cleanup_init();
	/* The registry must follow fork whether or not this process records
	 * (the lead's atfork handler is installed only when it does). */
	pthread_atfork(NULL, NULL, atfork_child);
	sk_real_resolve();
	const char *pol = secure_getenv("SHMKEEPER_CLEANUP");
	if (!pol || !*pol || strcmp(pol, "none") == 0)
		return;
	if (strcmp(pol, "owned") != 0) {
		sk_say("SHMKEEPER_CLEANUP: not none or owned; nothing is cleaned up");
		return;
	}
	/* The policy reads the segment table, which only a recording process
	 * fills. */
	const char *dir = secure_getenv("SHMKEEPER_LOG_DIR");
	if (!dir || !*dir) {
		sk_say("SHMKEEPER_CLEANUP=owned needs SHMKEEPER_LOG_DIR; nothing is cleaned up");
		return;
	}
	sk_cleanup_set_owned(1);
	arm();
}
