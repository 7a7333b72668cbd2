#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/logfmt.h"
#include "core/record.h"
#include "core/segtab.h"
#include "core/util.h"

/* Slot word: generation << 8 | state. One CAS moves both, so a handle (which
 * carries the generation) can only ever act on the registration it named. */
enum { SLOT_FREE, SLOT_CLAIMED, SLOT_LIVE, SLOT_RUNNING, SLOT_DONE };
#define W_STATE(w)  ((w) & 0xffu)
#define W_GEN(w)    ((w) >> 8)
#define W(gen, st)  (((gen) << 8) | (st))
#define GEN_MASK    0x7fffffu      /* handle = gen << 8 | index stays positive */

struct slot {
	uint32_t word;                 /* atomic */
	uint32_t flags;
	uint64_t seq;                  /* registration order */
	void (*fn)(void *);
	void *data;
};

static struct slot slots[SK_CLEANUP_MAX];
static uint64_t next_seq = 1;          /* atomic */
static unsigned live;                  /* atomic: registrations */
static int owned;                      /* atomic: the owned policy */

enum { RUN_IDLE, RUN_RUNNING, RUN_DONE };
static int run_state;                  /* atomic */
static pid_t run_owner;                /* atomic: tid running the cleanups */
static int run_signo;                  /* atomic */
static pid_t owner_pid;                /* the process the registry belongs to */

/* The cleanup running now, for sk_cleanup_fault: only the owner thread
 * reads or writes these. */
static sigjmp_buf fault_jb;
static volatile sig_atomic_t in_cleanup;

_Static_assert(SK_CLEANUP_MAX <= 256, "the index is 8 bits of a handle");

const int sk_fatal_signals[13] = {
	SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV,
	SIGPIPE, SIGTERM, SIGXCPU, SIGXFSZ, SIGSYS,
};

int sk_signal_is_sync(int signo)
{
	return signo == SIGILL || signo == SIGBUS || signo == SIGFPE ||
	       signo == SIGSEGV || signo == SIGSYS;
}

int sk_cleanup_add(void (*fn)(void *), void *data, unsigned flags)
{
	if (!fn || (flags & ~SK_CLEANUP_INHERIT))
		return -EINVAL;
	if (__atomic_load_n(&run_state, __ATOMIC_ACQUIRE) != RUN_IDLE)
		return -EBUSY;
	for (unsigned i = 0; i < SK_CLEANUP_MAX; i++) {
		struct slot *s = &slots[i];
		uint32_t w = __atomic_load_n(&s->word, __ATOMIC_RELAXED);
		if (W_STATE(w) != SLOT_FREE)
			continue;
		uint32_t gen = (W_GEN(w) + 1) & GEN_MASK;
		if (!__atomic_compare_exchange_n(&s->word, &w, W(gen, SLOT_CLAIMED), 0,
						 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			continue;
		__atomic_store_n(&s->fn, fn, __ATOMIC_RELAXED);
		__atomic_store_n(&s->data, data, __ATOMIC_RELAXED);
		__atomic_store_n(&s->flags, flags, __ATOMIC_RELAXED);
		__atomic_store_n(&s->seq, __atomic_fetch_add(&next_seq, 1, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
		__atomic_fetch_add(&live, 1, __ATOMIC_RELAXED);
		/* Release: a runner that sees LIVE sees fn, data and seq. */
		__atomic_store_n(&s->word, W(gen, SLOT_LIVE), __ATOMIC_RELEASE);
		return (int)(gen << 8 | i);
	}
	return -ENOSPC;
}

int sk_cleanup_remove(int handle)
{
	if (handle < 0)
		return -EINVAL;
	unsigned i = (unsigned)handle & 0xffu, gen = (unsigned)handle >> 8;
	if (i >= SK_CLEANUP_MAX)
		return -EINVAL;
	struct slot *s = &slots[i];
	uint32_t w = W(gen, SLOT_LIVE);
	if (__atomic_compare_exchange_n(&s->word, &w, W(gen, SLOT_FREE), 0,
					__ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
		__atomic_fetch_sub(&live, 1, __ATOMIC_RELAXED);
		return 0;
	}
	if (W_GEN(w) == gen && (W_STATE(w) == SLOT_RUNNING || W_STATE(w) == SLOT_DONE))
		return -EBUSY;
	return -EINVAL;
}

unsigned sk_cleanup_count(void)
{
	return __atomic_load_n(&live, __ATOMIC_RELAXED);
}

void sk_cleanup_set_owned(int on)
{
	__atomic_store_n(&owned, !!on, __ATOMIC_RELEASE);
}

int sk_cleanup_owned(void)
{
	return __atomic_load_n(&owned, __ATOMIC_ACQUIRE);
}

int sk_cleanup_wanted(void)
{
	return sk_cleanup_count() > 0 || sk_cleanup_owned();
}

int sk_cleanup_signo(void)
{
	return __atomic_load_n(&run_signo, __ATOMIC_RELAXED);
}

/* ---- removal helpers ---------------------------------------------------- */

int sk_cleanup_rm_sysv(int shmid)
{
	/* Raw: the shmctl wrapper would record an ordinary removal, and a
	 * cleanup may run while that wrapper holds its guard. */
	int err = 0;
	if (syscall(SYS_shmctl, shmid, IPC_RMID, 0) < 0)
		err = errno;
	if (!err && sk_tab_lock()) {
		sk_sysv_forget(shmid);
		sk_tab_unlock();
	}
	sk_ev_cleanup(NULL, 0, 0, shmid, err, sk_cleanup_signo());
	return -err;
}

int sk_cleanup_rm_posix(const char *name)
{
	char cn[SK_NAME_MAX], path[SK_NAME_MAX + 16];
	if (!name)
		return -EINVAL;
	/* As glibc's shm_unlink: leading slashes skipped, no other slash. */
	while (*name == '/')
		name++;
	size_t n = 0;
	while (name[n] && n < SK_NAME_MAX - 1)
		n++;
	if (n >= SK_NAME_MAX - 1)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/')
			return -EINVAL;
	if (n == 0 || (name[0] == '.' && (n == 1 || (n == 2 && name[1] == '.'))))
		return -EINVAL;
	cn[0] = '/';
	sk_strlcpy(cn + 1, name, sizeof cn - 1);
	sk_fmt_str(path, sk_fmt_str(path, 0, sizeof path, "/dev/shm"), sizeof path, cn);
	struct stat st;
	int have = fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
	int err = 0;
	if (unlinkat(AT_FDCWD, path, 0) < 0)   /* not wrapped; async-signal-safe */
		err = errno;
	if (!err && sk_tab_lock()) {
		sk_posix_forget(cn);
		sk_tab_unlock();
	}
	sk_ev_cleanup(cn, have ? st.st_dev : 0, have ? st.st_ino : 0, -1, err,
		      sk_cleanup_signo());
	return -err;
}

/* ---- the owned policy ----------------------------------------------------- */

/* Copies out of the table first: a removal forgets its entry, which would
 * move entries under a foreach. Static, not on the stack: termination may
 * run on a small sigaltstack, and only the one runner thread is here. */
static int32_t own_sysv[4096];
static unsigned n_own_sysv;
static struct sk_posix own_posix[1024];
static unsigned n_own_posix;

static void collect_sysv(const struct sk_sysv *s, void *arg)
{
	(void)arg;
	if (s->created && n_own_sysv < SK_ARRAY_SIZE(own_sysv))
		own_sysv[n_own_sysv++] = s->shmid;
}

static void collect_posix(const struct sk_posix *p, void *arg)
{
	(void)arg;
	if (n_own_posix < SK_ARRAY_SIZE(own_posix))
		own_posix[n_own_posix++] = *p;
}

static void run_owned(int signo)
{
	n_own_sysv = n_own_posix = 0;
	/* 0: this thread was interrupted inside a table update; the table may
	 * be half-written, and a torn name could remove another's object. */
	if (!sk_tab_lock()) {
		sk_say("cleanup=owned: interrupted inside the segment table; nothing removed");
		return;
	}
	sk_sysv_foreach(collect_sysv, NULL);
	sk_posix_foreach(collect_posix, NULL);
	sk_tab_unlock();
	for (unsigned i = 0; i < n_own_sysv; i++)
		sk_cleanup_rm_sysv(own_sysv[i]);
	for (unsigned i = 0; i < n_own_posix; i++) {
		const struct sk_posix *p = &own_posix[i];
		char path[SK_NAME_MAX + 16];
		const char *nm = p->name;
		while (*nm == '/')
			nm++;
		sk_fmt_str(path, sk_fmt_str(path, 0, sizeof path, "/dev/shm/"), sizeof path, nm);
		struct stat st;
		/* The name may have been unlinked by another process and reused:
		 * remove it only if it is still the object we created. */
		if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    p->ino && (st.st_ino != p->ino || st.st_dev != p->dev)) {
			sk_ev_cleanup(p->name, p->dev, p->ino, -1, ESTALE, signo);
			continue;
		}
		sk_cleanup_rm_posix(p->name);
	}
}

/* ---- termination ---------------------------------------------------------- */

static SK_NOINLINE int call_guarded(void (*fn)(void *), void *data)
{
	int sig = sigsetjmp(fault_jb, 1);
	if (sig == 0) {
		in_cleanup = 1;
		fn(data);
	}
	in_cleanup = 0;
	return sig;
}

int sk_cleanup_fault(int signo)
{
	if (__atomic_load_n(&run_state, __ATOMIC_ACQUIRE) != RUN_RUNNING ||
	    __atomic_load_n(&run_owner, __ATOMIC_RELAXED) != sk_tid() || !in_cleanup)
		return 0;
	in_cleanup = 0;
	siglongjmp(fault_jb, signo);
}

static void say_fault(int sig)
{
	char msg[96];
	size_t n = sk_fmt_str(msg, 0, sizeof msg, "a cleanup was ended by signal ");
	n = sk_fmt_u64(msg, n, sizeof msg, (uint64_t)sig);
	sk_fmt_str(msg, n, sizeof msg, "; the others run");
	sk_say(msg);
}

static void run_all(int signo)
{
	/* Registrations from now on (a cleanup registering another) wait for a
	 * termination that never comes: they do not run. */
	uint64_t bound = __atomic_load_n(&next_seq, __ATOMIC_ACQUIRE);
	for (;;) {
		int best = -1;
		uint64_t best_seq = 0;
		uint32_t best_w = 0;
		for (unsigned i = 0; i < SK_CLEANUP_MAX; i++) {
			uint32_t w = __atomic_load_n(&slots[i].word, __ATOMIC_ACQUIRE);
			if (W_STATE(w) != SLOT_LIVE)
				continue;
			uint64_t seq = __atomic_load_n(&slots[i].seq, __ATOMIC_RELAXED);
			if (seq < bound && seq > best_seq) {
				best = (int)i;
				best_seq = seq;
				best_w = w;
			}
		}
		if (best < 0)
			break;
		struct slot *s = &slots[best];
		void (*fn)(void *) = __atomic_load_n(&s->fn, __ATOMIC_RELAXED);
		void *data = __atomic_load_n(&s->data, __ATOMIC_RELAXED);
		/* Claim it: fails if it was unregistered (or reused) meanwhile. */
		if (!__atomic_compare_exchange_n(&s->word, &best_w,
						 W(W_GEN(best_w), SLOT_RUNNING), 0,
						 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			continue;
		int sig = call_guarded(fn, data);
		if (sig)
			say_fault(sig);
		__atomic_store_n(&s->word, W(W_GEN(best_w), SLOT_DONE), __ATOMIC_RELEASE);
		__atomic_fetch_sub(&live, 1, __ATOMIC_RELAXED);
	}
	if (sk_cleanup_owned())
		run_owned(signo);
}

enum sk_term sk_cleanup_terminate(int signo, unsigned wait_ms)
{
	int saved = errno;
	int st = RUN_IDLE;
	pid_t me = sk_tid();
	if (!__atomic_compare_exchange_n(&run_state, &st, RUN_RUNNING, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		enum sk_term r = SK_TERM_DONE;
		if (st == RUN_RUNNING) {
			if (__atomic_load_n(&run_owner, __ATOMIC_RELAXED) == me) {
				r = SK_TERM_NESTED;
			} else {
				/* The first terminator's outcome decides; it is
				 * dying or exiting: wait for its cleanups. */
				struct timespec ms = { 0, 1000000 };
				r = SK_TERM_TIMEOUT;
				for (unsigned t = 0; t < wait_ms; t++) {
					if (__atomic_load_n(&run_state, __ATOMIC_ACQUIRE) == RUN_DONE) {
						r = SK_TERM_WAITED;
						break;
					}
					nanosleep(&ms, NULL);
				}
			}
		}
		errno = saved;
		return r;
	}
	__atomic_store_n(&run_owner, me, __ATOMIC_RELAXED);
	__atomic_store_n(&run_signo, signo, __ATOMIC_RELAXED);
	/* Another fatal signal now would cut the cleanups short: the
	 * asynchronous ones wait, pending, until they are done. */
	sigset_t block, old;
	sigemptyset(&block);
	for (unsigned i = 0; i < SK_ARRAY_SIZE(sk_fatal_signals); i++)
		if (!sk_signal_is_sync(sk_fatal_signals[i]))
			sigaddset(&block, sk_fatal_signals[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	run_all(signo);
	__atomic_store_n(&run_state, RUN_DONE, __ATOMIC_RELEASE);
	sigprocmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return SK_TERM_RAN;
}

void sk_cleanup_init(void)
{
	__atomic_store_n(&owner_pid, (pid_t)syscall(SYS_getpid), __ATOMIC_RELAXED);
}

int sk_cleanup_in_owner(void)
{
	return (pid_t)syscall(SYS_getpid) == __atomic_load_n(&owner_pid, __ATOMIC_RELAXED);
}

void sk_cleanup_fork_child(void)
{
	sk_cleanup_init();
	unsigned n = 0;
	for (unsigned i = 0; i < SK_CLEANUP_MAX; i++) {
		struct slot *s = &slots[i];
		uint32_t w = __atomic_load_n(&s->word, __ATOMIC_RELAXED);
		if (W_STATE(w) == SLOT_FREE)
			continue;
		if (W_STATE(w) == SLOT_LIVE && (s->flags & SK_CLEANUP_INHERIT)) {
			n++;
			continue;
		}
		/* A new generation: the parent's handle is stale here. */
		__atomic_store_n(&s->word, W((W_GEN(w) + 1) & GEN_MASK, SLOT_FREE),
				 __ATOMIC_RELAXED);
	}
	__atomic_store_n(&live, n, __ATOMIC_RELAXED);
	__atomic_store_n(&run_state, RUN_IDLE, __ATOMIC_RELEASE);
	__atomic_store_n(&run_owner, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&run_signo, 0, __ATOMIC_RELAXED);
	in_cleanup = 0;
}

void sk_cleanup_reset(void)
{
	for (unsigned i = 0; i < SK_CLEANUP_MAX; i++) {
		uint32_t w = slots[i].word;
		slots[i].word = W((W_GEN(w) + 1) & GEN_MASK, SLOT_FREE);
	}
	live = 0;
	owned = 0;
	run_state = RUN_IDLE;
	run_owner = 0;
	run_signo = 0;
	in_cleanup = 0;
}
