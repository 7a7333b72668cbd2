#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "core/log.h"
#include "core/record.h"
#include "core/util.h"

SK_HOTDATA struct sk_rec_cfg sk_rec_cfg = { .bt_depth = 16 };

/* ---- modules loaded since the last event ------------------------------ */

static unsigned long long seen_adds, seen_subs;
static int dl_counts(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	unsigned long long *c = arg;
	c[0] = info->dlpi_adds;
	c[1] = info->dlpi_subs;
	return 1;   /* the counters are in every entry: stop at the first */
}

/* Return addresses seen since the module list last changed: a stack whose
 * every frame is here needs no look at the module list. Direct-mapped,
 * racy on purpose (a lost or overwritten entry only means one more look);
 * each entry holds pc ^ tag(gen), so that a change of the list (gen + 1)
 * retires them all at once. */
#define VPC_SIZE 512
static uint64_t vpc[VPC_SIZE];
static SK_HOTDATA uint64_t vpc_gen = 1;
static SK_HOTDATA uint64_t vpc_full_ns;      /* last look at the module list */
/* A library dlclose'd and another dlopen'ed at the same address between
 * two looks keeps the first one's frames known: the list is looked at
 * anyway at least this often. */
#define VPC_RECHECK_NS 100000000ull   /* in record time: 100 ms, or ~35 ms of ticks */

static inline uint64_t vpc_tag(void)
{
	return __atomic_load_n(&vpc_gen, __ATOMIC_ACQUIRE) * 0x9e3779b97f4a7c15ull;
}

static inline unsigned vpc_slot(uint64_t pc)
{
	return (unsigned)((pc ^ (pc >> 9) ^ (pc >> 23)) % VPC_SIZE);
}

/* A frame in a library dlopen'ed after the log opened needs that library's
 * load address in the log before the event. dl_iterate_phdr tells (its
 * counters), but asking it on every event cost 5% of a shmget+shmat+shmdt+
 * RMID cycle with 16-frame stacks (bench/recording.sh, 11 rounds: 1.151 ->
 * 1.102 without it): it takes the loader's recursive lock twice. So it is
 * asked when a frame is not among those seen since the list last changed,
 * and every VPC_RECHECK_NS. Inside the fork gate (it takes the loader lock). */
void sk_rec_modules_changed(void)
{
	__atomic_fetch_add(&vpc_gen, 1, __ATOMIC_RELEASE);
}

SK_HOT static void modules_check(void **pcs, int from, int n, uint64_t now)
{
	uint64_t tag = vpc_tag();
	int known = now - __atomic_load_n(&vpc_full_ns, __ATOMIC_RELAXED) < VPC_RECHECK_NS;
	for (int i = from; known && i < n; i++)
		known = __atomic_load_n(&vpc[vpc_slot((uint64_t)pcs[i])], __ATOMIC_RELAXED) ==
			((uint64_t)pcs[i] ^ tag);
	if (sk_likely(known))
		return;
	unsigned long long c[2] = { 0, 0 };
	dl_iterate_phdr(dl_counts, c);
	if (sk_unlikely(c[0] != __atomic_load_n(&seen_adds, __ATOMIC_RELAXED) ||
			c[1] != __atomic_load_n(&seen_subs, __ATOMIC_RELAXED))) {
		__atomic_store_n(&seen_adds, c[0], __ATOMIC_RELAXED);
		__atomic_store_n(&seen_subs, c[1], __ATOMIC_RELAXED);
		sk_log_modules();
		__atomic_fetch_add(&vpc_gen, 1, __ATOMIC_RELEASE);
		tag = vpc_tag();
	}
	__atomic_store_n(&vpc_full_ns, now, __ATOMIC_RELAXED);
	for (int i = from; i < n; i++)
		__atomic_store_n(&vpc[vpc_slot((uint64_t)pcs[i])], (uint64_t)pcs[i] ^ tag,
				 __ATOMIC_RELAXED);
}

/* libunwind's first use makes a pipe (mem_validate_pipe, x86_64 Ginit.c)
 * through which it validates addresses, at the lowest free fds, and keeps
 * it: it would shift every fd number the program gets afterwards
 * (tests/diff_transparency.sh found it) and sit where the program closes or
 * dup2s. The flag is set around every call into libunwind; the pipe2 wrapper
 * (preload/posix.c) moves a pipe made then at or above the soft
 * RLIMIT_NOFILE, where the program gets no fd (below it, at limit-16, only
 * where the limit cannot be raised), and notes it in sk_unw_fd ({lo, hi},
 * INT_MAX until known). */
SK_TLS int sk_rec_in_unwind;
int sk_unw_fd[2] = { INT_MAX, INT_MAX };
static SK_TLS int bt_mine;   /* this thread is inside libunwind (see below) */

void sk_rec_init(void)
{
	static int done;          /* a fork child inherits the pipe and this */
	if (sk_rec_cfg.bt_depth == 0 || done)
		return;
	done = 1;
	void *pc[1];
	/* Inside the stack walk as any other: a signal handler that records
	 * on this thread now goes without a stack. Its own unw_backtrace
	 * waited for ever on the pthread_once that libunwind's first call,
	 * this one, holds (tests/fault_host.sh signalopen). */
	bt_mine++;
	sk_rec_in_unwind = 1;
	unw_backtrace(pc, 1);
	sk_rec_in_unwind = 0;
	bt_mine--;
}

/* The log's first module records, at its opening. Inside a stack walk as
 * far as a signal handler can tell: sk_log_modules holds its mutex and
 * glibc's loader lock, and a handler's own backtrace would wait on them for
 * ever (tests/fault_host.sh signalopen, with a lower fd limit: 3 of 7). */
void sk_rec_modules(void)
{
	bt_mine++;
	sk_log_modules();
	bt_mine--;
}

/* Raw return addresses, innermost first, without the library's own frames.
 * unw_backtrace: ~6 ns a frame; glibc's backtrace() is 20x slower and not
 * async-signal-safe on first use (LESSONS.md). */
/* Fork gate. dl_iterate_phdr (modules_check, and libunwind inside
 * unw_backtrace) holds glibc's dl_load_write_lock, which glibc 2.36 does not
 * reset in a fork child: a thread inside a backtrace at the fork left the
 * child deadlocked at its first event (tests/fault_host.sh forkmt). The
 * prepare handler closes the gate and waits until no other thread is
 * inside; meanwhile events are recorded without a stack. */
static SK_HOTDATA int bt_users, bt_forking;

void sk_rec_atfork_prepare(void)
{
	__atomic_store_n(&bt_forking, 1, __ATOMIC_SEQ_CST);
	/* A fork from a signal handler that interrupted a backtrace of this
	 * thread: do not wait for ourselves. */
	while (__atomic_load_n(&bt_users, __ATOMIC_SEQ_CST) > bt_mine)
		sched_yield();
}

void sk_rec_atfork_parent(void)
{
	__atomic_store_n(&bt_forking, 0, __ATOMIC_RELEASE);
}

void sk_rec_atfork_child(void)
{
	__atomic_store_n(&bt_users, bt_mine, __ATOMIC_RELAXED);
	__atomic_store_n(&bt_forking, 0, __ATOMIC_RELEASE);
}

/* Inlined into each sk_ev_*: unw_backtrace starts in its caller, and every
 * frame of ours it walks is ~95 instructions (callgrind) thrown away. */
static SK_ALWAYS_INLINE unsigned backtrace_raw(uint64_t *out, uint64_t now)
{
	unsigned depth = sk_rec_cfg.bt_depth;
	if (depth == 0)
		return 0;
	if (depth > SK_MAX_FRAMES)
		depth = SK_MAX_FRAMES;
	/* A signal handler that interrupted this thread's own stack walk:
	 * dl_iterate_phdr and libunwind hold glibc's loader lock there, and a
	 * second walk would wait on it for ever. The event goes without a
	 * stack. */
	if (sk_unlikely(bt_mine))
		return 0;
	if (sk_unlikely(__atomic_load_n(&bt_forking, __ATOMIC_ACQUIRE)))
		return 0;
	/* Seq-cst pair with the prepare handler: either it sees us inside, or
	 * we see its flag. */
	__atomic_fetch_add(&bt_users, 1, __ATOMIC_SEQ_CST);
	bt_mine++;
	if (sk_unlikely(__atomic_load_n(&bt_forking, __ATOMIC_SEQ_CST))) {
		bt_mine--;
		__atomic_fetch_sub(&bt_users, 1, __ATOMIC_RELEASE);
		return 0;
	}
	void *pcs[SK_MAX_FRAMES + 8];
	sk_rec_in_unwind = 1;
	int n = unw_backtrace(pcs, (int)depth + 8);
	sk_rec_in_unwind = 0;
	int i = 0;
	while (i < n && (uint64_t)pcs[i] >= sk_rec_cfg.self_lo &&
	       (uint64_t)pcs[i] < sk_rec_cfg.self_hi)
		i++;
	if (n > i + (int)depth)
		n = i + (int)depth;
	modules_check(pcs, i, n, now);
	bt_mine--;
	__atomic_fetch_sub(&bt_users, 1, __ATOMIC_RELEASE);
	unsigned k = 0;
	for (; i < n && k < depth; i++)
		out[k++] = (uint64_t)pcs[i];
	return k;
}

/* Reserves an event of fixed size `fixed`, plus `extra` bytes of variable
 * data, plus the frames; returns the record and its length. */
#define BEGIN(T, extra)                                                        \
	uint64_t now_ = sk_stamp();                                            \
	uint64_t fr_[SK_MAX_FRAMES];                                           \
	unsigned nf_ = backtrace_raw(fr_, now_);                                     \
	size_t len_ = sizeof(T) + (extra) + (size_t)nf_ * 8;                   \
	T *e = (T *)(void *)sk_log_reserve_at(len_, now_);                     \
	if (!e)                                                                \
		return;                                                        \
	e->nframes = (uint16_t)nf_;

#define END(type, extra)                                                       \
	if (nf_)                                                               \
		memcpy((char *)(e + 1) + (extra), fr_, (size_t)nf_ * 8);       \
	sk_log_commit(&e->r, type, len_, now_);

SK_HOT_SYSV void sk_ev_sysv_get(int32_t key, int32_t shmid, uint64_t size, int32_t shmflg,
		    unsigned flags, uint32_t mode, uint32_t cuid)
{
	BEGIN(struct sk_ev_sysv_get, 0);
	e->key = key;
	e->shmid = shmid;
	e->size = size;
	e->shmflg = shmflg;
	e->flags = (uint16_t)flags;
	e->mode = mode;
	e->cuid = cuid;
	END(SK_EV_SYSV_GET, 0);
}

SK_HOT_SYSV void sk_ev_sysv_at(int32_t shmid, int32_t shmflg, uint64_t addr, uint64_t req,
		   uint64_t size, unsigned flags)
{
	BEGIN(struct sk_ev_sysv_at, 0);
	e->shmid = shmid;
	e->shmflg = shmflg;
	e->addr = addr;
	e->req_addr = req;
	e->size = size;
	e->flags = (uint16_t)flags;
	END(SK_EV_SYSV_AT, 0);
}

SK_HOT_SYSV void sk_ev_sysv_dt(int32_t shmid, uint64_t addr, uint64_t size, unsigned flags)
{
	BEGIN(struct sk_ev_sysv_dt, 0);
	e->shmid = shmid;
	e->flags = (uint16_t)flags;
	e->addr = addr;
	e->size = size;
	END(SK_EV_SYSV_DT, 0);
}

SK_HOT_SYSV void sk_ev_sysv_ctl(int32_t shmid, int32_t cmd, uint32_t uid, uint32_t gid,
		    uint32_t mode, int32_t key, uint64_t size, unsigned flags)
{
	BEGIN(struct sk_ev_sysv_ctl, 0);
	e->shmid = shmid;
	e->cmd = cmd;
	e->uid = uid;
	e->gid = gid;
	e->mode = mode;
	e->flags = (uint16_t)flags;
	e->key = key;
	e->size = size;
	END(SK_EV_SYSV_CTL, 0);
}

SK_HOT_POSIX static size_t bounded_len(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && s[n])
		n++;
	return n;
}

SK_HOT_POSIX void sk_ev_posix_open(const char *name, int32_t fd, int32_t oflag, uint64_t dev,
		      uint64_t ino, uint64_t size, uint32_t mode, uint32_t uid,
		      unsigned flags)
{
	size_t nl = bounded_len(name, SK_NAME_MAX - 1), pad = SK_ALIGN8(nl + 1);
	BEGIN(struct sk_ev_posix_open, pad);
	e->dev = dev;
	e->ino = ino;
	e->size = size;
	e->fd = fd;
	e->oflag = oflag;
	e->mode = mode;
	e->flags = (uint16_t)flags;
	e->uid = uid;
	e->name_len = (uint16_t)nl;
	e->pad = 0;
	memcpy(e + 1, name, nl);    /* the rest of the padding is still zero */
	END(SK_EV_POSIX_OPEN, pad);
}

SK_HOT_POSIX void sk_ev_posix_unlink(const char *name, uint64_t dev, uint64_t ino)
{
	size_t nl = bounded_len(name, SK_NAME_MAX - 1), pad = SK_ALIGN8(nl + 1);
	BEGIN(struct sk_ev_posix_unlink, pad);
	e->dev = dev;
	e->ino = ino;
	e->flags = 0;
	e->name_len = (uint16_t)nl;
	e->pad = 0;
	memcpy(e + 1, name, nl);
	END(SK_EV_POSIX_UNLINK, pad);
}

SK_HOT_POSIX void sk_ev_map(unsigned type, const struct sk_attach *a, int32_t prot, int32_t mflags)
{
	BEGIN(struct sk_ev_map, 0);
	e->dev = a->dev;
	e->ino = a->ino;
	e->addr = a->addr;
	e->len = a->len;
	e->offset = a->offset;
	e->shmid = a->shmid;
	e->prot = prot;
	e->mflags = mflags;
	e->flags = a->flags;
	END(type, 0);
}

void sk_ev_remap(const struct sk_attach *old, uint64_t new_addr, uint64_t new_len,
		 int32_t mflags)
{
	BEGIN(struct sk_ev_remap, 0);
	e->dev = old->dev;
	e->ino = old->ino;
	e->old_addr = old->addr;
	e->old_len = old->len;
	e->new_addr = new_addr;
	e->new_len = new_len;
	e->shmid = old->shmid;
	e->mflags = mflags;
	e->flags = old->flags;
	END(SK_EV_REMAP, 0);
}

SK_HOT_POSIX void sk_ev_resize(uint64_t dev, uint64_t ino, int32_t fd, uint64_t size, int32_t how)
{
	BEGIN(struct sk_ev_resize, 0);
	e->dev = dev;
	e->ino = ino;
	e->size = size;
	e->fd = fd;
	e->how = how;
	e->flags = 0;
	END(SK_EV_RESIZE, 0);
}

void sk_ev_proc(unsigned type, uint32_t child_pid, uint32_t how)
{
	BEGIN(struct sk_ev_proc, 0);
	e->child_pid = child_pid;
	e->how = how;
	e->flags = 0;
	END(type, 0);
}

void sk_ev_exec(unsigned type, const char *path, int32_t err)
{
	size_t pl = path ? bounded_len(path, 4095) : 0, pad = SK_ALIGN8(pl + 1);
	BEGIN(struct sk_ev_exec, pad);
	e->err = err;
	e->flags = 0;
	e->path_len = (uint16_t)pl;
	if (pl)
		memcpy(e + 1, path, pl);
	END(type, pad);
}

void sk_ev_warn(uint32_t code, int64_t arg1, int64_t arg2, const char *text)
{
	size_t tl = text ? bounded_len(text, 1023) : 0, pad = SK_ALIGN8(tl + 1);
	BEGIN(struct sk_ev_warn, pad);
	e->code = code;
	e->flags = 0;
	e->arg1 = arg1;
	e->arg2 = arg2;
	e->text_len = (uint16_t)tl;
	if (tl)
		memcpy(e + 1, text, tl);
	END(SK_EV_WARN, pad);
}

void sk_ev_place(uint64_t dev, uint64_t ino, int32_t shmid, uint64_t addr,
		 uint64_t len, unsigned flags)
{
	BEGIN(struct sk_ev_place, 0);
	e->dev = dev;
	e->ino = ino;
	e->addr = addr;
	e->len = len;
	e->shmid = shmid;
	e->flags = (uint16_t)flags;
	END(SK_EV_PLACE, 0);
}

void sk_ev_cleanup(const char *name, uint64_t dev, uint64_t ino, int32_t shmid,
		   int32_t err, int32_t signo)
{
	/* No stack: cleanups run at termination, the stack says nothing. */
	size_t nl = name ? bounded_len(name, SK_NAME_MAX - 1) : 0, pad = SK_ALIGN8(nl + 1);
	size_t len = sizeof(struct sk_ev_cleanup) + pad;
	uint64_t now = sk_stamp();
	struct sk_ev_cleanup *e = (struct sk_ev_cleanup *)(void *)sk_log_reserve_at(len, now);
	if (!e)
		return;
	e->dev = dev;
	e->ino = ino;
	e->shmid = shmid;
	e->err = err;
	e->signo = signo;
	e->name_len = (uint16_t)nl;
	if (nl)
		memcpy(e + 1, name, nl);
	sk_log_commit(&e->r, SK_EV_CLEANUP, len, now);
}
