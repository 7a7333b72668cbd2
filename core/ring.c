/* Shared-memory segments with a header, a common-data area and a byte ring
 * (the shmk_shm_* and shmk_rbuf_* API of <shmkeeper.h>).
 *
 * The plain libc calls below (shm_open, shmget, mmap, ...) resolve to the
 * library's own wrappers when this runs inside libshmkeeper.so, so these
 * segments are recorded like any other.
 *
 * Locks are kernel objects, not words in the segment. A process-shared robust
 * pthread mutex would put glibc's robust-list pointers (__list.__next/__prev)
 * in memory the peer writes, and pthread_mutex_unlock stores through them
 * (DEQUEUE_MUTEX, nptl/descr.h): a peer that rewrites them gets a write to an
 * address of its choosing in this process (tried: SIGSEGV on unlock). An OFD
 * lock (POSIX) or a SEM_UNDO semaphore (SysV) is released by the kernel when
 * its holder dies, and the peer cannot forge it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>

#include "core/ring.h"

/* ---- addresses mapped here, so that the seed-shaped rbuf calls, which get
 * only shmaddr, know the size to check against ------------------------- */

#define SK_REG_MAX 128

static struct {
	_Atomic uintptr_t base;
	_Atomic size_t size;
} sk_reg[SK_REG_MAX];
static pthread_mutex_t sk_reg_lock = PTHREAD_MUTEX_INITIALIZER;

static int sk_reg_add(void *base, size_t size)
{
	int rc = -EMFILE;

	pthread_mutex_lock(&sk_reg_lock);
	for (size_t i = 0; i < SK_REG_MAX; i++) {
		if (atomic_load_explicit(&sk_reg[i].base, memory_order_relaxed))
			continue;
		atomic_store_explicit(&sk_reg[i].size, size, memory_order_relaxed);
		/* release: a reader that sees base also sees its size */
		atomic_store_explicit(&sk_reg[i].base, (uintptr_t)base, memory_order_release);
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&sk_reg_lock);
	return rc;
}

static void sk_reg_del(void *base)
{
	pthread_mutex_lock(&sk_reg_lock);
	for (size_t i = 0; i < SK_REG_MAX; i++)
		if (atomic_load_explicit(&sk_reg[i].base, memory_order_relaxed) == (uintptr_t)base) {
			atomic_store_explicit(&sk_reg[i].base, 0, memory_order_relaxed);
			break;
		}
	pthread_mutex_unlock(&sk_reg_lock);
}

static size_t sk_reg_size(const void *base)
{
	if (!base)
		return 0;
	for (size_t i = 0; i < SK_REG_MAX; i++)
		/* acquire: pairs with sk_reg_add's release of base */
		if (atomic_load_explicit(&sk_reg[i].base, memory_order_acquire) == (uintptr_t)base)
			return atomic_load_explicit(&sk_reg[i].size, memory_order_relaxed);
	return 0;
}

/* The size of the mapping that holds rb, for the calls that get no shmaddr;
 * SIZE_MAX for a ring description kept outside any segment (then the call
 * touches no memory but *rb, so no size is needed). */
static size_t sk_reg_size_around(const shmk_rbuf *rb)
{
	uintptr_t p = (uintptr_t)rb;

	for (size_t i = 0; i < SK_REG_MAX; i++) {
		/* acquire: pairs with sk_reg_add's release of base */
		uintptr_t b = atomic_load_explicit(&sk_reg[i].base, memory_order_acquire);
		size_t sz = atomic_load_explicit(&sk_reg[i].size, memory_order_relaxed);

		if (b && p >= b && p - b < sz)
			return sz;
	}
	return SIZE_MAX;
}

/* ---- fork: an OFD lock belongs to the open file description, which a fork
 * child shares with its parent, so the child reopens before it locks ------ */

static _Atomic unsigned sk_fork_gen;
static pthread_once_t sk_atfork_once = PTHREAD_ONCE_INIT;

static void sk_atfork_child(void)
{
	atomic_fetch_add_explicit(&sk_fork_gen, 1, memory_order_relaxed);
}

static void sk_atfork_init(void)
{
	pthread_atfork(NULL, NULL, sk_atfork_child);
}

/* ---- small helpers -------------------------------------------------------- */

int sk_ring_snap(const shmk_rbuf *rbuf, size_t size, size_t align, struct sk_ring_snap *s)
{
	/* acquire on head and tail: the other side's copy into or out of the
	 * ring happened before it moved the index we read */
	s->begin = atomic_load_explicit(SK_ATOMIC_SZ(&rbuf->begin), memory_order_relaxed);
	s->end = atomic_load_explicit(SK_ATOMIC_SZ(&rbuf->end), memory_order_relaxed);
	s->head = atomic_load_explicit(SK_ATOMIC_SZ(&rbuf->head), memory_order_acquire);
	s->tail = atomic_load_explicit(SK_ATOMIC_SZ(&rbuf->tail), memory_order_acquire);
	if (s->begin < SHMK_SHM_RESERVED || s->begin >= s->end || s->end > size)
		return -EINVAL;
	if (s->head < s->begin || s->head >= s->end || s->tail < s->begin || s->tail >= s->end)
		return -EINVAL;
	if (((s->begin | s->end | s->head | s->tail) & (align - 1)) != 0)
		return -EINVAL;
	return 0;
}

int sk_futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t deadline_ns)
{
	struct timespec ts, *tp = NULL;

	if (deadline_ns) {
		ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
		ts.tv_nsec = (long)(deadline_ns % 1000000000u);
		tp = &ts;
	}
	/* WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a wait
	 * interrupted and restarted does not stretch the timeout. */
	if (syscall(SYS_futex, word, FUTEX_WAIT_BITSET, val, tp, NULL, FUTEX_BITSET_MATCH_ANY) == 0)
		return 0;
	return -errno;
}

void sk_futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static size_t sk_page_round(size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	if (size > SIZE_MAX - pg)
		return 0;
	return (size + pg - 1) & ~(pg - 1);
}

static void sk_header_init(shmk_shm_header *h, size_t size)
{
	struct sk_ctrl *c = (struct sk_ctrl *)((char *)h + SK_CTRL_OFF);

	memset(h, 0, SHMK_SHM_RESERVED);
	h->size = size;
	h->cdata_begin = h->cdata_end = SHMK_SHM_RESERVED;
	h->rbuf.begin = h->rbuf.head = h->rbuf.tail = SHMK_SHM_RESERVED;
	h->rbuf.end = size;
	c->magic = SK_SEG_MAGIC;
	c->version = SK_SEG_VERSION;
	/* the segment is not shared yet; size >= SHMK_SHM_RESERVED + 64 */
	sk_msg_reset(c, h, SHMK_SHM_RESERVED);
}

static struct sk_seg *sk_seg_alloc(enum shmk_impl impl, size_t size, int master)
{
	struct sk_seg *s = calloc(1, sizeof(*s));
	pthread_mutexattr_t a;

	if (!s)
		return NULL;
	s->desc.impl = impl;
	s->desc.is_master = master;
	s->desc.orig_size = size;
	s->fd = s->shmid = s->semid = -1;
	atomic_init(&s->refcnt, 1);
	/* ERRORCHECK: unlock by a thread that does not hold it is EPERM, not UB */
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&s->tlock, &a);
	pthread_mutexattr_destroy(&a);
	s->fork_gen = atomic_load_explicit(&sk_fork_gen, memory_order_relaxed);
	return s;
}

/* Grants uid read-write through a POSIX ACL (system.posix_acl_access, the
 * xattr layout of include/uapi/linux/posix_acl_xattr.h): user::rw,
 * user:uid:rw, group::---, mask::rw, other::---. */
static int sk_acl_grant(int fd, uid_t uid)
{
	struct {
		uint32_t version;
		struct { uint16_t tag, perm; uint32_t id; } e[5];
	} acl = {
		2,
		{ { 0x01, 6, (uint32_t)-1 }, { 0x02, 6, (uint32_t)uid },
		  { 0x04, 0, (uint32_t)-1 }, { 0x10, 6, (uint32_t)-1 },
		  { 0x20, 0, (uint32_t)-1 } }
	};

	if (fsetxattr(fd, "system.posix_acl_access", &acl, sizeof(acl), 0) < 0)
		return errno == EOPNOTSUPP ? -ENOTSUP : -errno;
	return 0;
}

static int sk_new_posix(struct sk_seg *s, size_t size, const shmk_creds *peer)
{
	int fd = -1, rc;
	void *p;

	for (int tries = 0; tries < 16 && fd < 0; tries++) {
		uint64_t r = 0;

		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint64_t)clock() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
		snprintf(s->name, sizeof(s->name), "/shmk-ring-%d-%016llx", (int)getpid(),
		         (unsigned long long)r);
		fd = shm_open(s->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			return -errno;
	}
	if (fd < 0)
		return -EEXIST;
	/* the umask may have taken bits from 0600; it can only have narrowed it */
	if (fchmod(fd, 0600) < 0)
		goto fail_errno;
	if (peer && peer->uid != geteuid() && (rc = sk_acl_grant(fd, peer->uid)) < 0)
		goto fail;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail_errno;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto fail_errno;
	s->fd = fd;
	s->desc.header = p;
	return 0;
fail_errno:
	rc = -errno;
fail:
	shm_unlink(s->name);
	close(fd);
	return rc;
}

static int sk_new_sysv(struct sk_seg *s, size_t size, const shmk_creds *peer)
{
	struct shmid_ds sd;
	struct semid_ds md;
	void *p;
	int rc;

	s->shmid = shmget(IPC_PRIVATE, size, IPC_CREAT | IPC_EXCL | 0600);
	if (s->shmid < 0)
		return -errno;
	s->semid = semget(IPC_PRIVATE, 1, IPC_CREAT | IPC_EXCL | 0600);
	if (s->semid < 0)
		goto fail_errno;
	if (semctl(s->semid, 0, SETVAL, 1) < 0)
		goto fail_errno;
	if (peer && (peer->uid != geteuid() || peer->gid != getegid())) {
		/* The peer becomes the owner; we keep access as the creator
		 * (cuid), which ipcperms() treats like the owner. Mode 0600:
		 * nobody else. */
		if (shmctl(s->shmid, IPC_STAT, &sd) < 0)
			goto fail_errno;
		sd.shm_perm.uid = peer->uid;
		sd.shm_perm.gid = peer->gid;
		sd.shm_perm.mode = 0600;
		if (shmctl(s->shmid, IPC_SET, &sd) < 0)
			goto fail_errno;
		if (semctl(s->semid, 0, IPC_STAT, &md) < 0)
			goto fail_errno;
		md.sem_perm.uid = peer->uid;
		md.sem_perm.gid = peer->gid;
		md.sem_perm.mode = 0600;
		if (semctl(s->semid, 0, IPC_SET, &md) < 0)
			goto fail_errno;
	}
	p = shmat(s->shmid, NULL, 0);
	if (p == (void *)-1)
		goto fail_errno;
	s->desc.header = p;
	return 0;
fail_errno:
	rc = -errno;
	if (s->semid >= 0)
		semctl(s->semid, 0, IPC_RMID);
	shmctl(s->shmid, IPC_RMID, NULL);
	s->semid = s->shmid = -1;
	return rc;
}

static void sk_unmap(struct sk_seg *s)
{
	if (s->desc.impl == SHMK_IMPL_POSIX) {
		munmap(s->desc.header, s->desc.orig_size);
		if (s->desc.is_master)
			shm_unlink(s->name);
		close(s->fd);
	} else {
		shmdt(s->desc.header);
		if (s->desc.is_master) {
			shmctl(s->shmid, IPC_RMID, NULL);
			semctl(s->semid, 0, IPC_RMID);
		}
	}
}

/* The end of shmk_shm_new and shmk_shm_decode: rc < 0 (the segment is not
 * mapped) frees s; otherwise the mapped segment is registered, and unmapped
 * and freed if that fails. Returns the descriptor, or NULL with errno. */
static shmk_shm_desc *sk_seg_finish(struct sk_seg *s, size_t size, int rc)
{
	if (rc == 0) {
		if ((rc = sk_reg_add(s->desc.header, size)) == 0)
			return &s->desc;
		sk_unmap(s);
	}
	pthread_mutex_destroy(&s->tlock);
	free(s);
	errno = -rc;
	return NULL;
}

/* ---- the public API ------------------------------------------------------- */

shmk_shm_desc *shmk_shm_new(size_t size, const shmk_creds *peer, enum shmk_impl impl)
{
	struct sk_seg *s;
	int rc;

	if (impl == SHMK_IMPL_NONE) {
		errno = ENOTSUP;
		return NULL;
	}
	if (impl == SHMK_IMPL_AUTO)
		impl = SHMK_IMPL_SYSV;
	if ((impl != SHMK_IMPL_POSIX && impl != SHMK_IMPL_SYSV) ||
	    size < SHMK_SHM_RESERVED + SK_MIN_RING || !(size = sk_page_round(size))) {
		errno = EINVAL;
		return NULL;
	}
	pthread_once(&sk_atfork_once, sk_atfork_init);
	if (!(s = sk_seg_alloc(impl, size, 1)))
		return NULL;
	rc = impl == SHMK_IMPL_POSIX ? sk_new_posix(s, size, peer) : sk_new_sysv(s, size, peer);
	if (rc < 0)
		goto fail;
	sk_header_init(s->desc.header, size);
	return sk_seg_finish(s, size, 0);
fail:
	return sk_seg_finish(s, size, rc);
}

void shmk_shm_ref(shmk_shm_desc *desc)
{
	if (desc)
		atomic_fetch_add_explicit(&sk_seg_of(desc)->refcnt, 1, memory_order_relaxed);
}

void shmk_shm_done(shmk_shm_desc *desc)
{
	struct sk_seg *s;
	int saved = errno;

	if (!desc)
		return;
	s = sk_seg_of(desc);
	/* acq_rel: every other holder's use of the mapping happens before the
	 * last one unmaps it */
	if (atomic_fetch_sub_explicit(&s->refcnt, 1, memory_order_acq_rel) != 1)
		return;
	sk_reg_del(desc->header);
	sk_unmap(s);
	pthread_mutex_destroy(&s->tlock);
	free(s);
	errno = saved;
}

/* A fork child shares the parent's open file description, and with it the
 * parent's OFD lock: give the child a description of its own. */
static int sk_fd_own(struct sk_seg *s)
{
	unsigned gen = atomic_load_explicit(&sk_fork_gen, memory_order_relaxed);
	char path[64];
	int fd;

	if (sk_likely(s->fork_gen == gen))
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(s->fd);
	s->fd = fd;
	s->fork_gen = gen;
	return 0;
}

static int sk_kernel_lock(struct sk_seg *s, int wait)
{
	if (s->desc.impl == SHMK_IMPL_POSIX) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
		int rc = wait ? pthread_mutex_lock(&s->tlock) : pthread_mutex_trylock(&s->tlock);

		if (rc)
			return rc == EBUSY ? -EAGAIN : -rc;
		if ((rc = sk_fd_own(s)) < 0)
			goto unlock;
		while (fcntl(s->fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0) {
			if (errno == EINTR)
				continue;
			rc = (errno == EACCES || errno == EAGAIN) ? -EAGAIN : -errno;
			goto unlock;
		}
		/* relaxed: only compared with pthread_self() by the holder */
		atomic_store_explicit(&s->towner, (uintptr_t)pthread_self(), memory_order_relaxed);
		return 0;
unlock:
		pthread_mutex_unlock(&s->tlock);
		return rc;
	} else {
		struct sembuf op = { 0, -1, (short)(SEM_UNDO | (wait ? 0 : IPC_NOWAIT)) };

		while (semop(s->semid, &op, 1) < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -EAGAIN : -errno;
		}
		atomic_store_explicit(&s->sysv_held, 1, memory_order_relaxed);
		return 0;
	}
}

static int sk_lock(shmk_shm_desc *desc, int wait)
{
	struct sk_seg *s;
	int rc;

	if (!desc)
		return EINVAL;
	s = sk_seg_of(desc);
	if ((rc = sk_kernel_lock(s, wait)) < 0)
		return -rc;
	/* The kernel lock is ours; holder is still set only if the last
	 * holder died between taking the lock and releasing it. acq_rel: we
	 * see what it wrote before dying, as far as it got. */
	if (atomic_exchange_explicit(&sk_ctrl_of(desc)->holder, 1, memory_order_acq_rel))
		return EOWNERDEAD;
	return 0;
}

int shmk_shm_lock(shmk_shm_desc *desc)
{
	return sk_lock(desc, 1);
}

int shmk_shm_trylock(shmk_shm_desc *desc)
{
	return sk_lock(desc, 0);
}

int shmk_shm_unlock(shmk_shm_desc *desc)
{
	struct sk_seg *s;

	if (!desc)
		return EINVAL;
	s = sk_seg_of(desc);
	if (desc->impl == SHMK_IMPL_POSIX) {
		struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
		int rc;

		/* only the thread holding tlock holds the OFD lock too */
		if (atomic_load_explicit(&s->towner, memory_order_relaxed) != (uintptr_t)pthread_self())
			return EPERM;
		atomic_store_explicit(&s->towner, 0, memory_order_relaxed);
		/* release: what we wrote under the lock is visible to the next
		 * holder, which reads holder with acquire */
		atomic_store_explicit(&sk_ctrl_of(desc)->holder, 0, memory_order_release);
		rc = fcntl(s->fd, F_OFD_SETLK, &fl) < 0 ? errno : 0;
		pthread_mutex_unlock(&s->tlock);
		return rc;
	} else {
		struct sembuf op = { 0, 1, SEM_UNDO };

		/* any thread of the holding process may release a semaphore */
		if (!atomic_exchange_explicit(&s->sysv_held, 0, memory_order_relaxed))
			return EPERM;
		/* release: as above */
		atomic_store_explicit(&sk_ctrl_of(desc)->holder, 0, memory_order_release);
		while (semop(s->semid, &op, 1) < 0)
			if (errno != EINTR)
				return errno;
		return 0;
	}
}

/* What a peer needs to attach: fixed layout, checked field by field. */
struct sk_enc {
	char magic[8];
	uint32_t impl;
	uint32_t zero;
	uint64_t size;
	int32_t shmid, semid;
	char name[64];
};
_Static_assert(sizeof(struct sk_enc) <= SHMK_SHM_ENCODED_MAX, "encoding fits");
static const char sk_enc_magic[8] = "SHMKSEG";

ssize_t shmk_shm_encode(shmk_shm_desc *desc, void *buf, size_t buflen)
{
	struct sk_seg *s;
	struct sk_enc e;

	if (!desc || !buf) {
		errno = EINVAL;
		return -1;
	}
	if (buflen < sizeof(e)) {
		errno = ENOSPC;
		return -1;
	}
	s = sk_seg_of(desc);
	memset(&e, 0, sizeof(e));
	memcpy(e.magic, sk_enc_magic, sizeof(e.magic));
	e.impl = (uint32_t)desc->impl;
	e.size = desc->orig_size;
	e.shmid = s->shmid;
	e.semid = s->semid;
	memcpy(e.name, s->name, sizeof(e.name));
	memcpy(buf, &e, sizeof(e));
	return (ssize_t)sizeof(e);
}

static int sk_attach_posix(struct sk_seg *s, const struct sk_enc *e)
{
	struct stat st;
	void *p;
	int fd, rc;

	if (s->name[0] != '/' || strchr(s->name + 1, '/') || !s->name[1])
		return -EINVAL;
	fd = shm_open(s->name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		goto fail_errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
		rc = -EMSGSIZE;
		goto fail;
	}
	p = mmap(NULL, e->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto fail_errno;
	s->fd = fd;
	s->desc.header = p;
	return 0;
fail_errno:
	rc = -errno;
fail:
	close(fd);
	return rc;
}

static int sk_attach_sysv(struct sk_seg *s, const struct sk_enc *e)
{
	struct shmid_ds sd;
	struct semid_ds md;
	void *p;

	if (shmctl(s->shmid, IPC_STAT, &sd) < 0 || semctl(s->semid, 0, IPC_STAT, &md) < 0)
		return -errno;
	if (sd.shm_segsz != e->size || md.sem_nsems != 1)
		return -EMSGSIZE;
	p = shmat(s->shmid, NULL, 0);
	if (p == (void *)-1)
		return -errno;
	s->desc.header = p;
	return 0;
}

shmk_shm_desc *shmk_shm_decode(const void *buf, size_t len, size_t size)
{
	struct sk_enc e;
	struct sk_seg *s;
	size_t want;
	int rc;

	if (!buf || len != sizeof(e)) {
		errno = EINVAL;
		return NULL;
	}
	memcpy(&e, buf, sizeof(e));
	if (memcmp(e.magic, sk_enc_magic, sizeof(e.magic)) || e.zero ||
	    (e.impl != SHMK_IMPL_POSIX && e.impl != SHMK_IMPL_SYSV) ||
	    !memchr(e.name, 0, sizeof(e.name))) {
		errno = EINVAL;
		return NULL;
	}
	want = sk_page_round(size);
	if (!want || e.size != want || want < SHMK_SHM_RESERVED + SK_MIN_RING) {
		errno = EMSGSIZE;
		return NULL;
	}
	pthread_once(&sk_atfork_once, sk_atfork_init);
	if (!(s = sk_seg_alloc((enum shmk_impl)e.impl, want, 0)))
		return NULL;
	memcpy(s->name, e.name, sizeof(s->name));
	s->shmid = e.shmid;
	s->semid = e.semid;
	rc = e.impl == SHMK_IMPL_POSIX ? sk_attach_posix(s, &e) : sk_attach_sysv(s, &e);
	if (rc < 0)
		goto fail;
	if (sk_ctrl_of(&s->desc)->magic != SK_SEG_MAGIC ||
	    sk_ctrl_of(&s->desc)->version != SK_SEG_VERSION) {
		sk_unmap(s);
		rc = -EPROTO;
		goto fail;
	}
	return sk_seg_finish(s, want, 0);
fail:
	return sk_seg_finish(s, want, rc);
}

void *shmk_shm_addr(shmk_shm_desc *desc, size_t offset)
{
	if (!desc || offset >= desc->orig_size) {
		errno = EINVAL;
		return NULL;
	}
	return (char *)desc->header + offset;
}

int shmk_shm_data_alloc(shmk_shm_desc *desc, size_t size, void **ptr)
{
	shmk_shm_header *h;
	struct sk_ring_snap r;
	size_t at, nend, rbegin;

	if (!desc || !ptr || !size)
		return EINVAL;
	h = desc->header;
	if (sk_ring_snap(&h->rbuf, desc->orig_size, 1, &r) < 0)
		return EINVAL;
	/* acquire: as in sk_ring_snap; the values are only compared */
	if (r.head != r.tail ||
	    atomic_load_explicit(&sk_ctrl_of(desc)->msg_head, memory_order_acquire) !=
	    atomic_load_explicit(&sk_ctrl_of(desc)->msg_tail, memory_order_acquire))
		return EBUSY;
	at = h->cdata_end;
	if (at < SHMK_SHM_RESERVED || at > r.begin)
		return EINVAL;
	at = (at + 15) & ~(size_t)15;
	if (size > r.end - at)
		return ENOSPC;
	nend = at + size;
	/* the ring stays cache-line aligned so that message records (8-byte
	 * aligned) start on an aligned offset */
	rbegin = (nend + SK_CACHELINE - 1) & ~(size_t)(SK_CACHELINE - 1);
	if (rbegin > r.end || r.end - rbegin < SK_MIN_RING)
		return ENOSPC;
	h->cdata_end = nend;
	h->rbuf.begin = h->rbuf.head = h->rbuf.tail = rbegin;
	/* r.end - rbegin >= SK_MIN_RING: the END word fits */
	sk_msg_reset(sk_ctrl_of(desc), desc->header, rbegin);
	sk_msg_forget(sk_seg_of(desc));
	*ptr = (char *)desc->header + at;
	return 0;
}

int shmk_rbuf_append(shmk_rbuf *rbuf, void *shmaddr, const void *src, size_t srclen)
{
	struct sk_ring_snap r;
	size_t size = sk_reg_size(shmaddr), cap, first, t;

	if (!rbuf || !size || (!src && srclen) || sk_ring_snap(rbuf, size, 1, &r) < 0)
		return EINVAL;
	cap = r.end - r.begin;
	if (srclen > cap - 1 - sk_ring_used(&r))
		return ENOSPC;
	first = r.end - r.tail < srclen ? r.end - r.tail : srclen;
	memcpy((char *)shmaddr + r.tail, src, first);
	memcpy((char *)shmaddr + r.begin, (const char *)src + first, srclen - first);
	t = r.tail + srclen;
	if (t >= r.end)
		t -= cap;
	/* release: the bytes are in the ring before the consumer sees tail */
	atomic_store_explicit(SK_ATOMIC_SZ(&rbuf->tail), t, memory_order_release);
	return 0;
}

int shmk_rbuf_read(shmk_rbuf *rbuf, void *shmaddr, void *dst, size_t dstlen)
{
	struct sk_ring_snap r;
	size_t size = sk_reg_size(shmaddr), cap, first, h;

	if (!rbuf || !size || (!dst && dstlen) || sk_ring_snap(rbuf, size, 1, &r) < 0)
		return EINVAL;
	if (dstlen > sk_ring_used(&r))
		return ENODATA;
	cap = r.end - r.begin;
	first = r.end - r.head < dstlen ? r.end - r.head : dstlen;
	memcpy(dst, (char *)shmaddr + r.head, first);
	memcpy((char *)dst + first, (char *)shmaddr + r.begin, dstlen - first);
	h = r.head + dstlen;
	if (h >= r.end)
		h -= cap;
	/* release: our copy out is done before the producer may reuse it */
	atomic_store_explicit(SK_ATOMIC_SZ(&rbuf->head), h, memory_order_release);
	return 0;
}

int shmk_rbuf_skip(shmk_rbuf *rbuf, size_t datalen)
{
	struct sk_ring_snap r;
	size_t h;

	if (!rbuf || sk_ring_snap(rbuf, sk_reg_size_around(rbuf), 1, &r) < 0)
		return EINVAL;
	if (datalen > sk_ring_used(&r))
		return ENODATA;
	h = r.head + datalen;
	if (h >= r.end)
		h -= r.end - r.begin;
	/* release: as in shmk_rbuf_read */
	atomic_store_explicit(SK_ATOMIC_SZ(&rbuf->head), h, memory_order_release);
	return 0;
}

size_t shmk_rbuf_avail(shmk_rbuf *rbuf)
{
	struct sk_ring_snap r;

	if (!rbuf || sk_ring_snap(rbuf, sk_reg_size_around(rbuf), 1, &r) < 0)
		return 0;
	return r.end - r.begin - 1 - sk_ring_used(&r);
}

size_t shmk_rbuf_len(shmk_rbuf *rbuf)
{
	struct sk_ring_snap r;

	if (!rbuf || sk_ring_snap(rbuf, sk_reg_size_around(rbuf), 1, &r) < 0)
		return 0;
	return sk_ring_used(&r);
}
