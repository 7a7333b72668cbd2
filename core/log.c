/* The process log writer. Measured costs behind the design (LESSONS.md): a
 * write(2) per record doubles a wrapper's cost and a private buffer loses
 * records to SIGKILL, so records go into a MAP_SHARED file mapping (~7 ns a
 * record); the first touch of a fresh page costs up to 10 us, so the mapping
 * is pre-faulted (MADV_POPULATE_WRITE) ahead of the cursor, off the common
 * path. The library holds no fd: programs close every fd (close_range,
 * daemons), so the file is reopened by path only to grow it. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/record.h"
#include "core/util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define LOG_INITIAL   (256u * 1024)
#define LOG_AHEAD     (64u * 1024)   /* keep this much populated past the cursor */
#define LOG_CHUNK     (128u * 1024)  /* populate in steps of this */

static struct {
	char *base;                     /* the mapping, capacity bytes */
	struct sk_file_header *hdr;
	uint64_t capacity;
	uint64_t populated;             /* atomic: bytes safe to store into */
	uint64_t fsize;                 /* file size; changed only by the populater */
	pid_t populater;                /* atomic: tid populating, or 0 */
	int full;                       /* atomic: could not grow; drop past populated */
	uint64_t ino;
	uint64_t cal_next;              /* atomic: tick a new SK_EV_CLOCK is due at
					 * (UINT64_MAX without ticks) */
	uint64_t cal_first;             /* the header's first pair's tick */
} L SK_HOTDATA;

/* Ticks until the next (tick, ns) pair: the span the pairs cover so far,
 * within [2^14, 2^22] (see struct sk_ev_clock). */
static uint64_t cal_gap(uint64_t tick)
{
	uint64_t gap = tick - L.cal_first;
	return gap < (1u << 14) ? (1u << 14) : gap > (1u << 22) ? (1u << 22) : gap;
}

/* A record's time reached cal_next: one thread writes the next pair. */
static SK_NOINLINE void calibrate(uint64_t t)
{
	uint64_t due = __atomic_load_n(&L.cal_next, __ATOMIC_RELAXED);
	struct timespec m;

	/* staging before the open, or a fork child before its own */
	if (!sk_ticks_on || !__atomic_load_n(&L.hdr, __ATOMIC_ACQUIRE) || t < due)
		return;
	uint64_t tick = sk_tick_pair(&m);
	/* relaxed: a word of its own; losing the race means another thread
	 * writes this pair */
	if (!__atomic_compare_exchange_n(&L.cal_next, &due, tick + cal_gap(tick), 0,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	struct sk_ev_clock *e = (struct sk_ev_clock *)(void *)sk_log_reserve(sizeof *e);
	if (!e)
		return;
	e->tick = tick;
	e->mono_ns = (uint64_t)m.tv_sec * 1000000000u + (uint64_t)m.tv_nsec;
	sk_log_commit(&e->r, SK_EV_CLOCK, sizeof *e, tick);   /* tick < cal_next */
}
static char log_path[4096];  /* out of L: L is read on every event, this rarely */

int sk_log_is_open(void)
{
	return __atomic_load_n(&L.hdr, __ATOMIC_ACQUIRE) != NULL;
}

uint64_t sk_log_start_ticks(void)
{
	return sk_log_is_open() ? L.hdr->start_ticks : 0;
}

const char *sk_log_path(void)
{
	return sk_log_is_open() ? log_path : "";
}

static long raw_openat(const char *path, int flags, mode_t mode)
{
	return syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

/* Writes zeros over [from, to) of the file: how it grows. On ext4 the file
 * grown by ftruncate and its pages populated through the mapping cost ~4 us
 * a page (each write fault's page_mkwrite reserves a block and updates the
 * inode's times); written first, ~1.0 us, and populating them afterwards
 * 0.3 us. On tmpfs both ways cost ~2.7 us. (8 MiB in 128 KiB steps, 2-vCPU
 * guest, /tmp on ext4.) The log's growth was 1.3% of a SysV cycle. */
static int write_zeros(int fd, uint64_t from, uint64_t to)
{
	static const char zero[4096] __attribute__((aligned(4096)));
	struct iovec iov[64];
	const size_t step = sizeof iov / sizeof iov[0] * sizeof zero;   /* a call */
	for (unsigned i = 0; i < 64; i++)
		iov[i] = (struct iovec){ (void *)zero, sizeof zero };
	while (from < to) {
		size_t n = to - from < step ? (size_t)(to - from) : step;
		int cnt = (int)((n + sizeof zero - 1) / sizeof zero);
		iov[cnt - 1].iov_len = n - (size_t)(cnt - 1) * sizeof zero;
		long w = syscall(SYS_pwritev, fd, iov, cnt, (off_t)from, 0);
		iov[cnt - 1].iov_len = sizeof zero;
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -ENOSPC;
		from += (uint64_t)w;
	}
	return 0;
}

/* Grows the file to at least want bytes through a fresh fd, writing zeros.
 * Only the populater runs this. Returns 0 or -errno. */
static int grow_file(uint64_t want)
{
	long fd = raw_openat(log_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	if (fstat((int)fd, &st) < 0 || (uint64_t)st.st_ino != L.ino)
		rc = -ESTALE;           /* the file was replaced under us */
	else if ((uint64_t)st.st_size < want)
		rc = write_zeros((int)fd, (uint64_t)st.st_size, want);
	syscall(SYS_close, (int)fd);
	if (rc == 0)   /* atomic: a signal handler of this thread reads it */
		__atomic_store_n(&L.fsize, want > (uint64_t)st.st_size ? want : (uint64_t)st.st_size,
				 __ATOMIC_RELAXED);
	return rc;
}

static void touch_pages(char *p, size_t len)
{
	/* Kernels before 5.14: a write fault that keeps the contents, safe
	 * against a concurrent writer of the same page. */
	for (size_t i = 0; i < len; i += 4096)
		__atomic_fetch_add((uint64_t *)(void *)(p + i), 0, __ATOMIC_RELAXED);
}

/* Makes [off, end) of the mapping safe to store into. Returns 0, or -1 when
 * the kernel refused (ENOSPC/ENOMEM: stop before a store could SIGBUS). */
static int populate_range(uint64_t off, uint64_t end)
{
	if (madvise(L.base + off, end - off, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL)
		return -1;
	touch_pages(L.base + off, end - off);   /* kernels before 5.14 */
	return 0;
}

/* A signal handler that interrupted this thread's own populate() needs
 * [populated, target): the file grows in steps ahead of the cursor, so the
 * pages are usually inside it already. It populates just those (idempotent,
 * so the interrupted call may do them again) without taking over. Dropping
 * the event there lost one of 37000 signal-handler calls in
 * tests/fault_host.sh signal. Returns 1, or 0 if the file is too short. */
static int populate_reentered(uint64_t target)
{
	uint64_t from = __atomic_load_n(&L.populated, __ATOMIC_ACQUIRE) & ~(uint64_t)4095;
	uint64_t to = (target + 4095) & ~(uint64_t)4095;
	if (to > __atomic_load_n(&L.fsize, __ATOMIC_RELAXED) || to > L.capacity)
		return 0;
	if (from >= to)
		return 1;
	return populate_range(from, to) == 0;
}

/* Makes [populated, target) safe to store into. Returns 1 if it ran (or
 * someone else finished), 0 if the log is full or this thread already
 * populates (re-entered from a signal handler) and the file is too short. */
static int populate(uint64_t target)
{
	pid_t me = sk_tid(), none = 0;
	for (;;) {
		if (__atomic_load_n(&L.populated, __ATOMIC_ACQUIRE) >= target)
			return 1;
		if (__atomic_load_n(&L.full, __ATOMIC_RELAXED))
			return 0;
		if (__atomic_compare_exchange_n(&L.populater, &none, me, 0,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			break;
		if (none == me)
			return populate_reentered(target);
		none = 0;
		sched_yield();
	}
	uint64_t p = __atomic_load_n(&L.populated, __ATOMIC_RELAXED);
	while (p < target) {
		uint64_t n = p + LOG_CHUNK;
		if (n > L.capacity)
			n = L.capacity;
		if (n <= p)
			break;
		if (n > L.fsize) {
			/* Two steps at a time: the zeros are written, so a
			 * quarter of the file ahead (as when growing cost
			 * nothing) would be blocks the log may never use. */
			uint64_t want = n + LOG_CHUNK;
			if (want > L.capacity)
				want = L.capacity;
			if (want < n || grow_file(want) < 0)
				break;
		}
		if (populate_range(p, n) < 0)
			break;
		p = n;
		/* Release: a writer that sees the new bound finds the pages there. */
		__atomic_store_n(&L.populated, p, __ATOMIC_RELEASE);
	}
	int ok = p >= target;
	if (!ok && !__atomic_exchange_n(&L.full, 1, __ATOMIC_RELAXED)) {
		__atomic_fetch_or(&L.hdr->flags, SK_HF_FULL, __ATOMIC_RELAXED);
		sk_say("log full or out of space: further events of this process are dropped");
	}
	__atomic_store_n(&L.populater, 0, __ATOMIC_RELEASE);
	return ok;
}

/* ---- staging ------------------------------------------------------------
 * The log opens at a process's first recorded call. A signal handler that
 * interrupts that open on the opener's own thread (other threads wait for
 * it) cannot wait for it, and the log is not there yet: its records are
 * staged here, and the opener copies them into the log once it is open
 * (tests/fault_host.sh signalopen). Only that thread's handlers write here
 * (checked by tid), and each one runs to its end before the opener goes on:
 * no locking. A process killed before its log exists loses them, as it
 * loses any event. */
static struct {
	volatile sig_atomic_t on;     /* the opener is opening: stage */
	pid_t tid;                    /* the opener's thread: only its handlers stage */
	uint32_t used, dropped;
	uint64_t buf[8192];           /* 64 KiB of .bss, touched only then */
} ST;

static struct sk_rec *stage_reserve(size_t len)
{
	/* Another thread here (a termination cleanup's record, say) would
	 * race the opener's handlers for the buffer: it drops, as before. */
	if (!ST.on || sk_tid() != ST.tid)
		return NULL;
	if (len > sizeof ST.buf - ST.used) {
		ST.dropped++;
		return NULL;
	}
	struct sk_rec *r = (struct sk_rec *)(void *)((char *)ST.buf + ST.used);
	ST.used += (uint32_t)len;
	r->head = 0;
	return r;
}

void sk_log_stage_begin(void)
{
	ST.tid = sk_tid();
	ST.used = ST.dropped = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	ST.on = 1;
}

int sk_log_staging(void)
{
	return (ST.on && sk_tid() == ST.tid) || sk_log_is_open();
}

void sk_log_stage_end(void)
{
	ST.on = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	struct sk_file_header *h = __atomic_load_n(&L.hdr, __ATOMIC_ACQUIRE);
	if (!h)
		return;
	/* Every staged record is committed: each handler ran to its end. One
	 * left at 0 was abandoned (a handler that longjmp'ed out of it), and
	 * its length is not known: the rest goes with it. */
	uint32_t off = 0;
	while (off + sizeof(struct sk_rec) <= ST.used) {
		struct sk_rec *src = (struct sk_rec *)(void *)((char *)ST.buf + off);
		uint32_t head = src->head;
		size_t len = SK_HEAD_LEN(head);
		if (SK_HEAD_MAGIC(head) != SK_REC_MAGIC || len < sizeof *src || len > ST.used - off)
			break;
		struct sk_rec *r = sk_log_reserve(len);
		if (!r)
			break;
		memcpy((char *)r + sizeof r->head, (char *)src + sizeof src->head, len - sizeof r->head);
		__atomic_store_n(&r->head, head, __ATOMIC_RELEASE);
		off += (uint32_t)len;
	}
	if (off < ST.used || ST.dropped)
		__atomic_fetch_add(&h->dropped, ST.dropped + (off < ST.used), __ATOMIC_RELAXED);
	ST.used = 0;
}

/* A pair due at stamp t is written before t's record, not after it: the
 * reader converts a record from the pairs before it in the file, and one
 * stamped after an idle gap would otherwise be carried across the whole
 * gap at the rate of the pairs before it. */
SK_HOT struct sk_rec *sk_log_reserve_at(size_t len, uint64_t t)
{
	if (sk_unlikely(t >= __atomic_load_n(&L.cal_next, __ATOMIC_RELAXED)))
		calibrate(t);
	return sk_log_reserve(len);
}

SK_HOT struct sk_rec *sk_log_reserve(size_t len)
{
	struct sk_file_header *h = __atomic_load_n(&L.hdr, __ATOMIC_ACQUIRE);
	if (sk_unlikely(!h))
		return stage_reserve(len);
	/* Relaxed is enough for the cursor: the record is published by its own
	 * head word, and a reader orders nothing else by the cursor. */
	uint64_t off = __atomic_fetch_add(&h->cursor, len, __ATOMIC_RELAXED);
	uint64_t end = off + len;
	uint64_t pop = __atomic_load_n(&L.populated, __ATOMIC_ACQUIRE);
	if (sk_unlikely(end + LOG_AHEAD > pop)) {
		if (end > pop && !populate(end)) {
			__atomic_fetch_add(&h->dropped, 1, __ATOMIC_RELAXED);
			return NULL;
		}
		if (end + LOG_AHEAD > __atomic_load_n(&L.populated, __ATOMIC_ACQUIRE))
			populate(end + LOG_AHEAD);
	}
	/* The next records' lines, for writing: the kernel zeroed these pages
	 * when it populated them, most likely out of the cache, and each first
	 * store to a line would wait for it (RFO). Asked for one event ahead,
	 * they are in by the next one. Measured: 0.993 x without, over 21
	 * interleaved rounds of bench/recording's workload (within this VM's
	 * noise; it costs two instructions). */
	__builtin_prefetch(L.base + end + 64, 1, 3);
	__builtin_prefetch(L.base + end + 128, 1, 3);
	return (struct sk_rec *)(void *)(L.base + off);
}

SK_HOT void sk_log_commit(struct sk_rec *r, unsigned type, size_t len, uint64_t mono_ns)
{
	r->tid = (uint32_t)sk_tid();
	r->mono_ns = mono_ns;
	/* Release: the body is visible before the head that declares it. */
	__atomic_store_n(&r->head, SK_HEAD(type, len), __ATOMIC_RELEASE);
}

SK_HOT void sk_log_count_failed(enum sk_fn fn)
{
	struct sk_file_header *h = __atomic_load_n(&L.hdr, __ATOMIC_ACQUIRE);
	if (h && (unsigned)fn < SK_FN_MAX)
		__atomic_fetch_add(&h->failed[fn], 1, __ATOMIC_RELAXED);
}

static void read_boot_id(uint8_t out[16])
{
	char buf[64];
	memset(out, 0, 16);
	if (sk_read_file("/proc/sys/kernel/random/boot_id", buf, sizeof buf) <= 0)
		return;
	int k = 0, hi = -1;
	for (const char *p = buf; *p && k < 16; p++) {
		int v;
		if (*p >= '0' && *p <= '9') v = *p - '0';
		else if (*p >= 'a' && *p <= 'f') v = *p - 'a' + 10;
		else continue;
		if (hi < 0)
			hi = v;
		else {
			out[k++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
}

int sk_log_open(const char *dir, size_t capacity, const struct sk_log_identity *id)
{
	if (sk_log_is_open())
		return 0;
	struct rlimit rl;
	if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < capacity)
		capacity = rl.rlim_cur & ~(rlim_t)4095;  /* growing past it raises SIGXFSZ */
	if (capacity < SK_HEADER_SIZE + LOG_CHUNK)
		return -EFBIG;

	pid_t pid = getpid();
	long fd = -1;
	for (unsigned n = 0; n < 10000; n++) {
		size_t at = sk_fmt_str(log_path, 0, sizeof log_path, dir);
		at = sk_fmt_str(log_path, at, sizeof log_path, "/shmk-");
		at = sk_fmt_u64(log_path, at, sizeof log_path, (uint64_t)pid);
		at = sk_fmt_str(log_path, at, sizeof log_path, "-");
		at = sk_fmt_u64(log_path, at, sizeof log_path, n);
		at = sk_fmt_str(log_path, at, sizeof log_path, ".shmk");
		if (at + 1 >= sizeof log_path)
			return -ENAMETOOLONG;
		fd = raw_openat(log_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		return -errno;

	int rc = 0;
	struct stat st;
	uint64_t initial = capacity < LOG_INITIAL ? capacity : LOG_INITIAL;
	void *map = MAP_FAILED;
	if (fstat((int)fd, &st) < 0)
		rc = -errno;
	else
		rc = write_zeros((int)fd, 0, initial);
	if (rc == 0) {
		/* The whole capacity is mapped at once; only [0, fsize) is backed. */
		map = (void *)syscall(SYS_mmap, NULL, capacity, PROT_READ | PROT_WRITE,
				      MAP_SHARED, (int)fd, 0);
		if (map == MAP_FAILED)
			rc = -errno;
	}
	syscall(SYS_close, (int)fd);
	if (rc < 0) {
		unlink(log_path);
		return rc;
	}
	L.base = map;
	L.capacity = capacity;
	L.fsize = initial;
	L.ino = (uint64_t)st.st_ino;
	L.full = 0;
	L.populater = 0;
	L.populated = 0;

	struct sk_file_header *h = map;
	if (madvise(map, initial, MADV_POPULATE_WRITE) == 0)
		L.populated = initial;
	else {
		touch_pages(map, SK_HEADER_SIZE);
		L.populated = SK_HEADER_SIZE;
	}
	memcpy(h->magic, SK_MAGIC, sizeof h->magic);
	h->version = SK_VERSION;
#if defined(__x86_64__)
	h->arch = 1;
#elif defined(__aarch64__)
	h->arch = 2;
#endif
	h->header_size = SK_HEADER_SIZE;
	h->pid = (uint32_t)pid;
	/* At image start: by now an orphan would name init. */
	h->ppid = id->ppid ? id->ppid : (uint32_t)getppid();
	h->uid = getuid();
	h->gid = getgid();
	h->euid = geteuid();
	h->egid = getegid();
	h->start_ticks = sk_proc_start_ticks(0);
	h->ipc_ns = sk_ns_inode("ipc");
	h->mnt_ns = sk_ns_inode("mnt");
	h->image_mono_ns = id->image_mono_ns;
	struct timespec m, w;
	uint64_t tick = sk_tick_pair(&m);
	clock_gettime(CLOCK_REALTIME, &w);
	if (sk_ticks_on) {
		h->flags |= SK_HF_TICKS;
		h->image_tick = id->image_tick;
		h->open_tick = tick;
		L.cal_first = id->image_tick;
		__atomic_store_n(&L.cal_next, tick + cal_gap(tick), __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&L.cal_next, UINT64_MAX, __ATOMIC_RELAXED);
	}
	h->open_mono_ns = (uint64_t)m.tv_sec * 1000000000u + (uint64_t)m.tv_nsec;
	h->open_wall_sec = w.tv_sec;
	h->open_wall_nsec = w.tv_nsec;
	h->bt_depth = id->bt_depth;
	h->parent_pid = id->parent_pid;
	h->parent_start_ticks = id->parent_start_ticks;
	if (id->parent_pid)
		h->flags |= SK_HF_FORKED;
	h->exec_count = id->exec_count;
	read_boot_id(h->boot_id);
	h->capacity = capacity;
	ssize_t n = readlink("/proc/self/exe", h->exe, sizeof h->exe - 1);
	h->exe[n > 0 ? n : 0] = '\0';
	uint32_t used = 0;
	for (int i = 0; id->argv && i < id->argc && id->argv[i]; i++) {
		size_t l = strlen(id->argv[i]) + 1;
		if (used + l > sizeof h->args)
			break;
		memcpy(h->args + used, id->argv[i], l);
		used += (uint32_t)l;
		h->argc++;
	}
	h->args_len = used;
	h->cursor = SK_HEADER_SIZE;
	/* Release: a record reserved through L.hdr sees the whole header. */
	__atomic_store_n(&L.hdr, h, __ATOMIC_RELEASE);
	sk_rec_init();
	sk_rec_modules();
	return 0;
}

static void modules_forget(void);

void sk_log_forget(void)
{
	modules_forget();
	/* A fork child shares the parent's file pages: it must never store
	 * into them. Unmapping in the child leaves the parent's mapping alone. */
	if (L.base)
		syscall(SYS_munmap, L.base, L.capacity);
	memset(&L, 0, sizeof L);
	ST.on = 0;      /* a parent thread was opening: not ours */
	ST.used = 0;
}

void sk_log_close(int status)
{
	uint64_t now = sk_stamp();
	struct sk_rec *r = sk_log_reserve_at(sizeof(struct sk_ev_exit), now);
	if (r) {
		struct sk_ev_exit *e = (struct sk_ev_exit *)r;
		e->status = status;
		sk_log_commit(r, SK_EV_EXIT, sizeof *e, now);
	}
	if (L.hdr)
		__atomic_fetch_or(&L.hdr->flags, SK_HF_CLOSED, __ATOMIC_RELEASE);
	/* The file is not truncated: threads and later destructors may still
	 * record; it is at most one growth step larger than its records. */
}

/* ---- modules ---------------------------------------------------------- */

#define MAX_KNOWN 1024
static struct {
	pthread_mutex_t lock;
	unsigned n;
	uint64_t base[MAX_KNOWN], start[MAX_KNOWN];
	uint64_t name[MAX_KNOWN];     /* hash of the path: a library loaded
				       * where a dlclose'd one was is new */
	uint8_t seen[MAX_KNOWN];
} M = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void log_module(uint64_t base, uint64_t start, uint64_t end, const char *path,
		       const uint8_t *bid, size_t bid_len, unsigned type)
{
	size_t plen = strlen(path);
	if (plen > 4095)
		plen = 4095;
	if (bid_len > 64)
		bid_len = 64;
	size_t len = sizeof(struct sk_ev_module) + SK_ALIGN8(bid_len) + SK_ALIGN8(plen + 1);
	uint64_t now = sk_stamp();
	struct sk_rec *r = sk_log_reserve_at(len, now);
	if (!r)
		return;
	struct sk_ev_module *e = (struct sk_ev_module *)r;
	e->base = base;
	e->start = start;
	e->end = end;
	e->path_len = (uint16_t)plen;
	e->build_id_len = (uint16_t)bid_len;
	e->pad = 0;
	char *p = (char *)(e + 1);
	memset(p, 0, SK_ALIGN8(bid_len) + SK_ALIGN8(plen + 1));
	if (bid_len)     /* a GONE record has no build-id (bid NULL) */
		memcpy(p, bid, bid_len);
	memcpy(p + SK_ALIGN8(bid_len), path, plen);
	sk_log_commit(r, type, len, now);
}

static const uint8_t *find_build_id(struct dl_phdr_info *info, size_t *len)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		const uint8_t *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
			const uint8_t *name = p + sizeof *nh;
			const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
			if (desc + nh->n_descsz > end)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0) {
				*len = nh->n_descsz;
				return desc;
			}
			p = desc + ((nh->n_descsz + 3) & ~3u);
		}
	}
	*len = 0;
	return NULL;
}

/* arg: NULL to mark the known modules still loaded, non-NULL to log the
 * new ones too. */
static int module_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
		if (s < lo) lo = s;
		if (e > hi) hi = e;
	}
	if (hi == 0)
		return 0;
	const char *path = info->dlpi_name;
	if (!path || !*path)
		path = L.hdr ? L.hdr->exe : "";
	uint64_t nh = 0xcbf29ce484222325ull;      /* FNV-1a */
	for (const char *c = path; *c; c++)
		nh = (nh ^ (uint8_t)*c) * 0x100000001b3ull;
	for (unsigned i = 0; i < M.n; i++)
		if (M.base[i] == info->dlpi_addr && M.start[i] == lo && M.name[i] == nh) {
			M.seen[i] = 1;
			return 0;
		}
	if (!arg)
		return 0;
	size_t bid_len;
	const uint8_t *bid = find_build_id(info, &bid_len);
	log_module(info->dlpi_addr, lo, hi, path, bid, bid_len, SK_EV_MODULE);
	if (M.n < MAX_KNOWN) {
		M.base[M.n] = info->dlpi_addr;
		M.start[M.n] = lo;
		M.name[M.n] = nh;
		M.seen[M.n] = 1;
		M.n++;
	}
	return 0;
}

void sk_log_modules(void)
{
	if (!sk_log_is_open())
		return;
	pthread_mutex_lock(&M.lock);
	memset(M.seen, 0, sizeof M.seen);
	/* The gone first: a library loaded where a dlclose'd one was has the
	 * same base and start, and a reader applies the records in order. */
	dl_iterate_phdr(module_cb, NULL);
	for (unsigned i = 0; i < M.n;) {
		if (M.seen[i]) {
			i++;
			continue;
		}
		log_module(M.base[i], M.start[i], M.start[i], "", NULL, 0, SK_EV_MODULE_GONE);
		M.n--;
		M.base[i] = M.base[M.n];
		M.start[i] = M.start[M.n];
		M.name[i] = M.name[M.n];
		M.seen[i] = M.seen[M.n];
	}
	dl_iterate_phdr(module_cb, &M);
	pthread_mutex_unlock(&M.lock);
}

static void modules_forget(void)
{
	/* The lock may have been held by a thread that does not exist here. */
	pthread_mutex_init(&M.lock, NULL);
	M.n = 0;
}
