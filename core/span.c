/* The span: reservation, shared placement table, per-process slots.
 * Contract and the wrappers' side: core/span.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/logfmt.h"
#include "core/span.h"
#include "core/util.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

/* ---- the shared table ------------------------------------------------- */

#define TAB_MAGIC    "SHMKSPN"
#define TAB_VERSION  3u     /* 2: the lock is a futex word, not a pthread mutex;
			     * 3: ent_sum is a multiply-xor chain, gc_s */
#define TAB_LIVE     1u
#define TAB_DEAD     2u     /* unlinked: whoever finds this reopens by name */
#define ENT_FREE     0u
#define ENT_USED     0x55u
#define ENTF_REMOVED 1u     /* IPC_RMID / shm_unlink seen: collect when unused */
#define ENT_SIZE     384u
#define HDR_SIZE     4096u

struct tab_user {
	uint32_t pid;             /* 0: free */
	uint32_t pad;
	uint64_t start;           /* /proc/PID/stat field 22: pids wrap */
	uint64_t pidns;           /* liveness is only judged in our pid namespace */
	uint64_t check;
};

struct tab_ent {
	uint32_t state;           /* ENT_FREE / ENT_USED */
	uint32_t kind;            /* SK_SPAN_SYSV / SK_SPAN_POSIX */
	uint64_t off, len;        /* in the span; SHMLBA multiples */
	int32_t  shmid;
	uint32_t cpid;            /* SysV identity with segsz: shmids are reused */
	uint64_t segsz;
	uint64_t dev, ino;        /* POSIX identity behind the name */
	uint64_t gen;             /* allocation number: local caches compare it */
	uint32_t name_len;
	uint32_t pad;
	uint64_t check;           /* over everything above and name */
	/* Outside the checksum: changed without the lock. */
	_Atomic uint32_t flags;   /* ENTF_* */
	uint32_t pad2;
	_Atomic uint64_t attached[SK_SPAN_USERS / 64]; /* POSIX: users mapping it */
	char     name[SK_NAME_MAX]; /* NUL-padded: hashed by 8-byte words */
};

struct tab {
	char     magic[8];
	uint32_t version, hdr_size;
	uint64_t span_addr, span_size;
	uint32_t nents, nusers;
	uint32_t shmlba, ent_size;
	uint64_t total_size;
	/* Read before the lock to see a table being retired. */
	_Atomic uint32_t state;
	uint32_t repairs;         /* times a dead holder's update was repaired */
	uint32_t dropped;         /* entries or users that failed validation */
	uint32_t pad;
	uint64_t gen;
	_Atomic uint64_t lock;    /* the table lock: see "the table lock" below */
	uint32_t hwm;             /* ents[hwm..] are free, whatever they hold */
	uint32_t pad2;
	uint64_t gc_s;            /* CLOCK_MONOTONIC_COARSE s of the last collection */
	char     hpad[HDR_SIZE - 104];
	struct tab_user users[SK_SPAN_USERS];
	struct tab_ent  ents[SK_SPAN_ENTS];
};

_Static_assert(sizeof(struct tab_ent) <= ENT_SIZE, "entry size");
_Static_assert(offsetof(struct tab, lock) == 80, "header layout");
_Static_assert(offsetof(struct tab, users) == HDR_SIZE, "header size");
_Static_assert(offsetof(struct tab, hpad) == 104, "header layout");

#define TAB_SIZE (sizeof(struct tab))

/* ---- the process side ---------------------------------------------------- */

/* L_HOLE: a range this process detached and left unmapped (no reservation)
 * for the next placement there to map into: see "holes" below. */
enum { L_FREE = 0, L_CLAIM, L_MAPPED, L_HOLE };

struct lslot {
	int       state;
	int       kind;
	uintptr_t start, end;
	int       ent;            /* table entry, or -1 (foreign) */
	int       shmid;
	bool      forced;         /* explicit call that replaces what is there */
	bool      hole;           /* L_CLAIM: made in a hole (no reservation under it) */
};

struct cache_ent { uint64_t key; int idx; uint64_t gen; };

/* This process's copy of the table's placements, so that placing and
 * finding cost the same with 5 entries or 500: before it, every allocation
 * checksummed and sorted every entry and every miss scanned them all
 * (bench/span.sh with N_FILL=400: cycle 1.06 -> 1.30 x off). It is current
 * while t->gen, bumped by every allocation, is the value it was built at.
 * Frees by others do not bump gen; they only leave it conservative (a range
 * or an entry it still thinks taken), never the other way. A writer that
 * bypasses gen (forgery, junk) is met where an entry is used (that one is
 * validated, and a mismatch is a miss) or at the next rebuild: after any
 * other process's allocation, at an allocation of ours a second or more
 * after the last build, and when the span or the table looks full. (Every
 * 64 allocations, as it was, cost a shmget+shmat+shmdt+RMID cycle 1200
 * instructions on average with 261 entries in the table: callgrind.) Only
 * ever touched with the table lock held. */
#define MIR_BUCKETS 256
#define MIR_REBUILD_S 1
/* Entries whose segment went where no library saw it (ipcrm, rm of a
 * /dev/shm file, a process without the preload) are freed only when the
 * span looks full, and until then every scan and sorted insert pays for
 * them. A table with more than GC_ABOVE entries is collected (one IPC_STAT
 * or fstatat an entry, under the lock) at most every GC_EVERY_S seconds,
 * whoever finds it due. */
#define GC_ABOVE     32
#define GC_EVERY_S   60

struct mir_ent {
	uint64_t key;              /* cache_key() of the entry */
	uint64_t gen;              /* the entry's gen when seen */
	uint64_t off, len;
	int16_t  next;             /* index + 1 in its bucket's chain; 0 ends */
};

/* The small members first: head, used and the first entries share one
 * page (S's hot part and the first slots are on the page before). */
struct mirror {
	const struct tab *tab;     /* NULL: to be built */
	uint64_t gen;              /* t->gen it is current for */
	int64_t  built_s;          /* CLOCK_MONOTONIC_COARSE second of the build */
	int      n;                /* ranges in r */
	int      lo;               /* r[0, lo) cover [0, lo_end) without a gap */
	uint64_t lo_end;
	int16_t  head[MIR_BUCKETS];  /* index + 1; 0 empty */
	uint64_t used[SK_SPAN_ENTS / 64];
	struct mir_ent e[SK_SPAN_ENTS];
	struct mir_range {
		uint64_t off, len;
		uint64_t cov;      /* i < lo: r[0, i] cover [0, cov) */
		int      idx;
	} r[SK_SPAN_ENTS];         /* sorted by off */
};

/* Ordered by heat: what every call reads first, the big arrays last (the
 * first slots, and the mirror's chains and first entries, are what a
 * process with few segments touches of them). */
static struct {
	int          init_ret;
	bool         inited;
	struct sk_span_cfg cfg;
	uint64_t     shmlba;
	struct tab  *tab;         /* NULL until the first placement */
	int          dirfd;
	bool         broken;      /* header invalid or lock unusable: stop trying */
	int          user;        /* our slot in tab->users, or -1 */
	pid_t        pid;
	uint64_t     start, pidns;
	uint64_t     lk_me;       /* our value of the table lock word */
	/* tests: called in the middle of an allocation (a pointer of its own,
	 * after S's big arrays, took a page of its own at every allocation) */
	void       (*midupdate)(void);
	int          hwm;         /* slots[0, hwm) may be in use */
	/* Removed entries whose last local mapping went (local lock): checked
	 * one by one at the next allocation, in place of the scan that used to
	 * collect them in passing. recheck_lost: some did not fit. */
	int          recheck[16];
	int          nrecheck;
	bool         recheck_lost;
	/* Our spare (table lock): an entry we saw done, kept for the next
	 * placement of its size (see ent_retire). Index + 1, 0 for none. */
	int          spare;
	uint64_t     spare_gen;
	/* SysV removals not yet told to the table (local lock). */
	int          pend[16];
	int          npend;
	/* The table was found full (table lock): until a second later, or
	 * until this process frees an entry, a placement that does not fit
	 * fails at once instead of reading the whole table again and asking
	 * the kernel about every entry (with 2000 segments attached, a
	 * shmget+shmat+shmdt+RMID cycle took 8.3 x raw, not 1.28). */
	int64_t      full_s;
	uint64_t     full_frees;
	uint64_t     frees;
	struct cache_ent cache[64];
	struct lslot slots[SK_SPAN_LOCAL];
	struct mirror mir;
} S SK_HOTDATA = { .dirfd = -1, .user = -1 };

void sk_span_test_midupdate(void (*fn)(void))
{
	S.midupdate = fn;
}

/* Spinlock, not a mutex: held for a few loads and at most one mmap, and its
 * owner is known per thread so that a signal handler re-entering is told
 * -EDEADLK instead of deadlocking (LESSONS.md: handlers call shmdt). */
static SK_HOTDATA atomic_int local_lock;
static SK_TLS int in_span;

SK_HOT_SPAN static int enter(void)
{
	if (in_span)
		return -EDEADLK;
	in_span = 1;
	return 0;
}

SK_HOT_SPAN static void leave(void)
{
	in_span = 0;
}

SK_HOT_SPAN static void llock(void)
{
	/* acquire: the slots written by the previous holder are visible. */
	while (atomic_exchange_explicit(&local_lock, 1, memory_order_acquire))
		sched_yield();
}

SK_HOT_SPAN static void lunlock(void)
{
	/* release: publish the slots before the next holder reads them. */
	atomic_store_explicit(&local_lock, 0, memory_order_release);
}

/* ---- raw syscalls: the wrappers must never see the library's own objects - */

SK_HOT_SPAN static void *raw_mmap(void *a, size_t l, int prot, int fl, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, a, l, prot, fl, fd, off);
}

SK_HOT_SPAN static int raw_munmap(void *a, size_t l)
{
	return (int)syscall(SYS_munmap, a, l);
}

static int raw_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

/* /dev/shm is opened only for the moment it is needed: a descriptor the
 * library kept would shift every fd number the program gets after it and sit
 * where the program closes or dup2s (tests/fault_host.sh). Returns whether
 * this call opened it (then dir_put closes it), or -1 if it could not. */
static int dir_get(void)
{
	if (S.dirfd >= 0)
		return 0;
	S.dirfd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/shm", O_PATH | O_DIRECTORY | O_CLOEXEC);
	return S.dirfd >= 0 ? 1 : -1;
}

static void dir_put(int opened)
{
	if (opened == 1) {
		raw_close(S.dirfd);
		S.dirfd = -1;
	}
}

static int raw_shmstat(int id, struct shmid_ds *ds)
{
	return (int)syscall(SYS_shmctl, id, IPC_STAT, ds);
}

SK_HOT_SPAN static void *reserve_at(uintptr_t a, size_t l, int extra)
{
	return raw_mmap((void *)a, l, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra, -1, 0);
}

/* ---- parsing ----------------------------------------------------------- */

int sk_span_parse_num(const char *s, uint64_t *v)
{
	if (!s || !*s)
		return -EINVAL;
	uint64_t x = 0, base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!*s)
			return -EINVAL;
	}
	const char *p = s;
	for (; *p; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			break;
		if (x > (UINT64_MAX - d) / base)
			return -EINVAL;
		x = x * base + d;
	}
	if (p == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*p) {
	case '\0': break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: return -EINVAL;
	}
	if (*p && p[1])
		return -EINVAL;
	if (shift && x > (UINT64_MAX >> shift))
		return -EINVAL;
	*v = x << shift;
	return 0;
}

static uint64_t shmlba(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t lba = SHMLBA;
	return lba > (uint64_t)pg ? lba : (uint64_t)pg;
}

int sk_span_parse(const char *spec, struct sk_span_cfg *cfg)
{
	if (!spec || !*spec) {
		cfg->addr = SK_SPAN_DEFAULT_ADDR;
		cfg->size = SK_SPAN_DEFAULT_SIZE;
		cfg->off = false;
		return 0;
	}
	if (strcmp(spec, "off") == 0) {
		cfg->addr = cfg->size = 0;
		cfg->off = true;
		return 0;
	}
	const char *colon = strchr(spec, ':');
	char a[64];
	if (!colon || (size_t)(colon - spec) >= sizeof a)
		return -EINVAL;
	memcpy(a, spec, (size_t)(colon - spec));
	a[colon - spec] = '\0';
	uint64_t addr, size, lba = shmlba();
	if (sk_span_parse_num(a, &addr) < 0 || sk_span_parse_num(colon + 1, &size) < 0)
		return -EINVAL;
	if (addr == 0 || size == 0 || addr % lba)
		return -EINVAL;
	if (size > (1ull << 56))
		return -EINVAL;
	size = (size + lba - 1) & ~(lba - 1);
	if (addr > (1ull << 56) - size)
		return -EINVAL;
	cfg->addr = addr;
	cfg->size = size;
	cfg->off = false;
	return 0;
}

int sk_span_parse_policy(const char *s, enum sk_span_policy *p)
{
	if (!s || !*s || strcmp(s, "warn") == 0)
		*p = SK_SPAN_WARN;
	else if (strcmp(s, "strict") == 0)
		*p = SK_SPAN_STRICT;
	else
		return -EINVAL;
	return 0;
}

int sk_span_config_env(struct sk_span_cfg *cfg)
{
	int ret = 0;
	cfg->policy = SK_SPAN_WARN;
	if (sk_span_parse(secure_getenv("SHMKEEPER_SPAN"), cfg) < 0) {
		sk_span_parse(NULL, cfg);
		ret = -EINVAL;
	}
	if (sk_span_parse_policy(secure_getenv("SHMKEEPER_SPAN_POLICY"), &cfg->policy) < 0)
		ret = -EINVAL;
	return ret;
}

int sk_span_strict_errno(int kind, int mflags)
{
	if (kind == SK_SPAN_SYSV)
		return EINVAL;
	if (mflags & MAP_FIXED_NOREPLACE)
		return EEXIST;
	return ENOMEM;
}

/* ---- init -------------------------------------------------------------- */

int sk_span_init(const struct sk_span_cfg *cfg)
{
	if (S.inited)
		return S.init_ret;
	int saved = SK_ERRNO;
	S.inited = true;
	S.cfg = *cfg;
	S.shmlba = shmlba();
	sk_span_g.policy = cfg->policy;
	S.init_ret = 0;
	if (!cfg->off) {
		/* MAP_FIXED_NOREPLACE (4.17+) fails with EEXIST instead of
		 * silently moving or clobbering; older kernels treat it as a
		 * hint, hence the address comparison. */
		void *m = reserve_at(cfg->addr, cfg->size, MAP_FIXED_NOREPLACE);
		if (m == MAP_FAILED) {
			S.init_ret = SK_ERRNO == EEXIST ? -EEXIST : -SK_ERRNO;
		} else if ((uintptr_t)m != cfg->addr) {
			raw_munmap(m, cfg->size);
			S.init_ret = -EEXIST;
		} else {
			sk_span_g.base = cfg->addr;
			sk_span_g.end = cfg->addr + cfg->size;
		}
		sk_span_g.state = S.init_ret == 0 ? 1 : -1;
	}
	SK_ERRNO = saved;
	return S.init_ret;
}

/* ---- table helpers --------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

/* A multiply-xor chain, a multiply a word: it catches torn updates and
 * scribbles (a forger can compute any checksum anyway). The mix() chain it
 * replaced cost ~100 instructions an entry, twice a placement (callgrind). */
SK_HOT_SPAN static uint64_t ent_sum(const struct tab_ent *e)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = 0x53484d4b53504eull;
	h = (h ^ (((uint64_t)e->state << 32) | e->kind)) * k;
	h = (h ^ e->off) * k;
	h = (h ^ e->len) * k;
	h = (h ^ (((uint64_t)(uint32_t)e->shmid << 32) | e->cpid)) * k;
	h = (h ^ e->segsz) * k;
	h = (h ^ e->dev) * k;
	h = (h ^ e->ino) * k;
	h = (h ^ e->gen) * k;
	h = (h ^ e->name_len) * k;
	size_t n = e->name_len < SK_NAME_MAX ? e->name_len : SK_NAME_MAX;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t w;
		memcpy(&w, e->name + i, 8);
		h = (h ^ w) * k;
	}
	return h ^ (h >> 29);
}

static uint64_t user_sum(const struct tab_user *u)
{
	return mix(mix(mix(0x75736572ull, u->pid), u->start), u->pidns);
}

/* Every value read from the table is checked before it is used: any user of
 * the span (other uids included) can write it. */
SK_HOT_SPAN static bool ent_valid(const struct tab *t, const struct tab_ent *e)
{
	if (e->state == ENT_FREE)
		return true;
	if (e->state != ENT_USED)
		return false;
	if (e->kind != SK_SPAN_SYSV && e->kind != SK_SPAN_POSIX)
		return false;
	if (e->len == 0 || e->off % S.shmlba || e->len % S.shmlba ||
	    e->off >= t->span_size || e->len > t->span_size - e->off)
		return false;
	if (e->kind == SK_SPAN_POSIX &&
	    (e->name_len == 0 || e->name_len >= SK_NAME_MAX - 8 || e->name[e->name_len]))
		return false;
	return e->check == ent_sum(e);
}

static bool user_valid(const struct tab_user *u)
{
	if (u->pid == 0)
		return u->start == 0 && u->check == 0;
	return u->pid <= 0x3fffffff && u->check == user_sum(u);
}

SK_HOT_SPAN static bool hdr_valid(const struct tab *t)
{
	return memcmp(t->magic, TAB_MAGIC, 8) == 0 && t->version == TAB_VERSION &&
	       t->hdr_size == HDR_SIZE && t->nents == SK_SPAN_ENTS &&
	       t->nusers == SK_SPAN_USERS && t->ent_size == sizeof(struct tab_ent) &&
	       t->total_size == TAB_SIZE && t->shmlba == S.shmlba &&
	       t->span_addr == S.cfg.addr && t->span_size == S.cfg.size;
}

SK_HOT_SPAN static void ent_clear(struct tab_ent *e)
{
	e->state = ENT_FREE;
	e->check = 0;
	atomic_store_explicit(&e->flags, 0, memory_order_relaxed);
	for (unsigned i = 0; i < SK_SPAN_USERS / 64; i++)
		atomic_store_explicit(&e->attached[i], 0, memory_order_relaxed);
}

static void mir_del(const struct tab *t, int idx);

/* Frees entry i (table locked): in the table and in our mirror of it. */
SK_HOT_SPAN static void ent_free(struct tab *t, int i)
{
	ent_clear(&t->ents[i]);
	mir_del(t, i);
	S.frees++;
}

static void user_clear(struct tab *t, int u)
{
	memset(&t->users[u], 0, sizeof t->users[u]);
	/* release: a collector that sees the bit gone also sees the unmap that
	 * preceded it. */
	for (unsigned i = 0; i < SK_SPAN_ENTS; i++)
		atomic_fetch_and_explicit(&t->ents[i].attached[u / 64],
					  ~(1ull << (u % 64)), memory_order_release);
}

/* ents[0, hwm) may be in use; the rest is free whatever it holds. */
SK_HOT_SPAN static unsigned ents_hwm(const struct tab *t)
{
	return t->hwm < SK_SPAN_ENTS ? t->hwm : SK_SPAN_ENTS;
}

/* Lowers hwm past free entries at the top: scans stay as short as the table
 * is full (one entry in the common create-attach-remove cycle). */
SK_HOT_SPAN static void hwm_trim(struct tab *t)
{
	unsigned h = ents_hwm(t);
	while (h > 0 && t->ents[h - 1].state == ENT_FREE)
		h--;
	t->hwm = h;
}

/* Called with the lock held after a dead holder's lock was taken over, or
 * when a read found junk. */
SK_COLD static void repair(struct tab *t)
{
	/* A holder killed between raising hwm and writing the entry leaves
	 * hwm too high (harmless); a forged hwm is thrown away. */
	t->hwm = SK_SPAN_ENTS;
	for (unsigned i = 0; i < SK_SPAN_USERS; i++)
		if (!user_valid(&t->users[i])) {
			user_clear(t, (int)i);
			t->dropped++;
		}
	for (unsigned i = 0; i < SK_SPAN_ENTS; i++) {
		struct tab_ent *e = &t->ents[i];
		if (!ent_valid(t, e)) {
			ent_clear(e);
			t->dropped++;
			continue;
		}
		if (e->state != ENT_USED)
			continue;
		/* Two placements overlapping can only come from a forged
		 * table: keep the first. */
		for (unsigned j = 0; j < i; j++) {
			struct tab_ent *f = &t->ents[j];
			if (f->state == ENT_USED && e->off < f->off + f->len &&
			    f->off < e->off + e->len) {
				ent_clear(e);
				t->dropped++;
				break;
			}
		}
	}
	hwm_trim(t);
	/* Entries went without a gen bump: rebuild before trusting it. */
	S.mir.tab = NULL;
}

/* ---- the table lock ----------------------------------------------------- */

/* The table is a world-writable file, so its lock holds no pointers: a
 * robust pthread mutex keeps glibc's robust-list links in the shared
 * memory and pthread_mutex_unlock writes through them, so whoever rewrites
 * them aims our stores (shown with a crash on the ring's mutex). Instead,
 * one 64-bit word changed only by CAS:
 *   low 32 bits, the futex word: the holder's pid | LK_WAITERS; 0 free;
 *   high 32 bits: the low 32 bits of the holder's start time (field 22 of
 *   /proc/PID/stat), because pids wrap.
 * Both halves change in one CAS, so a waiter never pairs one process's pid
 * with another's start time. A waiter that finds the holder dead takes the
 * word over with a CAS and repairs the table. Every value read from the
 * word is checked like the rest of the table (lk_holder_dead). */
#define LK_WAITERS   0x80000000u
#define LK_PID_MAX   4194304u         /* PID_MAX_LIMIT, 64-bit kernels */
#define LK_WAIT_NS   2000000000ll     /* one wait: then -ETIMEDOUT */
#define LK_STUCK_S   10               /* then only try, this long */
#define LK_SLICE_NS  1000000l         /* first sleep; doubles to 64 ms */

/* Threads of this process between lk_take and tab_unlock (waiters too):
 * tells a word holding our own pid and start time that a thread of ours
 * holds from one left by the image before an exec (exec kills the holder
 * thread, keeps pid and start time). */
static SK_HOTDATA atomic_uint lk_users;
/* CLOCK_MONOTONIC_COARSE second until which this process does not wait for
 * the lock (a holder alive but stuck: stopped, in a debugger, a bug); 0
 * normally. Per process on purpose: without it every placement waited the
 * whole timeout, 2 s per shmat. */
static SK_HOTDATA _Atomic int64_t lk_stuck_until;
/* Read by every shmdt, mmap and munmap (sk_span_overlaps). Defined after S:
 * gcc lays a section's variables out last defined first, and after S's
 * 48 KB it would sit alone on a page. */
SK_HIDDEN SK_HOTDATA struct sk_span_bounds sk_span_g;

static void tab_unlock(struct tab *t);

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static uint32_t *lk_futex(struct tab *t)
{
	/* The futex is the low half of the word: the first 4 bytes on a
	 * little-endian machine, the last on a big-endian one. */
	return (uint32_t *)(void *)&t->lock + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
}

static int64_t lk_now(clockid_t clk, int64_t *ns)
{
	struct timespec ts;
	sk_clock(clk, &ts);
	if (ns)
		*ns = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
	return ts.tv_sec;
}

/* The holder is a registered user in another pid namespace: its pid names
 * some other process here, or none. */
static bool lk_foreign_ns(const struct tab *t, uint32_t pid, uint32_t tag)
{
	for (unsigned i = 0; i < SK_SPAN_USERS; i++) {
		const struct tab_user *u = &t->users[i];
		if (u->pid == pid && (uint32_t)u->start == tag && user_valid(u))
			return u->pidns != S.pidns;
	}
	return false;
}

/* A word that names no process at all (written by someone else). */
static bool lk_junk(uint64_t cur)
{
	uint32_t pid = (uint32_t)cur & ~LK_WAITERS;
	return cur != 0 && (pid == 0 || pid > LK_PID_MAX);
}

/* Whether the lock word cur names no live holder. Wrong "dead" lets two
 * processes in; wrong "alive" only costs a timeout: when unsure, alive. */
SK_COLD static bool lk_holder_dead(const struct tab *t, uint64_t cur)
{
	uint32_t pid = (uint32_t)cur & ~LK_WAITERS, tag = (uint32_t)(cur >> 32);
	if (lk_junk(cur))
		return true;
	if ((cur & ~(uint64_t)LK_WAITERS) == S.lk_me)
		/* Our pid and start time: held by one of our threads unless
		 * we are the only one counted (a holder lost in an exec). */
		return atomic_load(&lk_users) <= 1;
	if (lk_foreign_ns(t, pid, tag))
		return false;
	if (syscall(SYS_kill, (pid_t)pid, 0) != 0 && SK_ERRNO == ESRCH)
		return true;
	char st;
	uint64_t start;
	if (sk_proc_stat((pid_t)pid, &st, &start) < 0)
		return false;                        /* hidepid, no /proc */
	/* A zombie still answers kill(pid, 0). */
	return st == 'Z' || st == 'X' || (uint32_t)start != tag;
}

/* Returns 0 taken, 1 taken from a dead holder (repair the table), -EBUSY
 * held and wait == false, -ETIMEDOUT held for LK_WAIT_NS by a live holder. */
SK_COLD static int lk_slow(struct tab *t, bool wait)
{
	uint64_t me = S.lk_me;
	for (int spin = 0; spin < 64; spin++) {
		uint64_t cur = atomic_load_explicit(&t->lock, memory_order_relaxed);
		if (cur == 0 && atomic_compare_exchange_strong_explicit(&t->lock, &cur, me,
				memory_order_seq_cst, memory_order_relaxed))
			return 0;
		if (!wait)
			break;
		cpu_relax();
	}
	int64_t t0 = 0, now, waited = 0;
	long slice = LK_SLICE_NS;
	for (;;) {
		uint64_t cur = atomic_load_explicit(&t->lock, memory_order_seq_cst);
		if (cur == 0) {
			/* Others may sleep on it too: keep LK_WAITERS so that
			 * our release wakes the next. */
			if (atomic_compare_exchange_strong_explicit(&t->lock, &cur, me | LK_WAITERS,
					memory_order_seq_cst, memory_order_relaxed))
				return 0;
			continue;
		}
		/* Junk at once; a process only after a slice slept without a
		 * wake-up (liveness costs syscalls), and not at all while we
		 * do not wait: that would cost them on every call. */
		if (lk_junk(cur) || (wait && waited > 0 && lk_holder_dead(t, cur))) {
			if (atomic_compare_exchange_strong_explicit(&t->lock, &cur, me | LK_WAITERS,
					memory_order_seq_cst, memory_order_relaxed))
				return 1;
			continue;
		}
		if (!wait)
			return -EBUSY;
		if (waited >= LK_WAIT_NS)
			return -ETIMEDOUT;
		if (!((uint32_t)cur & LK_WAITERS)) {
			if (!atomic_compare_exchange_strong_explicit(&t->lock, &cur, cur | LK_WAITERS,
					memory_order_seq_cst, memory_order_relaxed))
				continue;
			cur |= LK_WAITERS;
		}
		if (!t0)
			lk_now(CLOCK_MONOTONIC, &t0);
		/* Shared (not FUTEX_PRIVATE): the holder is another process. */
		struct timespec ts = { 0, slice };
		syscall(SYS_futex, lk_futex(t), FUTEX_WAIT, (uint32_t)cur, &ts, NULL, 0);
		lk_now(CLOCK_MONOTONIC, &now);
		waited = now - t0;
		if (waited <= 0)
			waited = 1;
		if (slice < 64 * LK_SLICE_NS)
			slice *= 2;
	}
}

static void pend_flush(struct tab *t);

SK_HOT_SPAN static int tab_lock(struct tab *t)
{
	int saved = SK_ERRNO, r;
	bool wait = true;
	int64_t until = atomic_load_explicit(&lk_stuck_until, memory_order_relaxed);
	/* Normally no clock read: only after a timeout. */
	if (sk_unlikely(until != 0))
		wait = lk_now(CLOCK_MONOTONIC_COARSE, NULL) >= until;
	/* seq_cst, as the CAS below: a thread of ours that sees the word
	 * holding our pid also sees this count (lk_holder_dead). */
	atomic_fetch_add(&lk_users, 1);
	uint64_t cur = 0;
	if (atomic_compare_exchange_strong_explicit(&t->lock, &cur, S.lk_me,
			memory_order_seq_cst, memory_order_relaxed))
		r = 0;
	else
		r = lk_slow(t, wait);
	if (r == -ETIMEDOUT)
		atomic_store_explicit(&lk_stuck_until,
				      lk_now(CLOCK_MONOTONIC_COARSE, NULL) + LK_STUCK_S,
				      memory_order_relaxed);
	else if (r >= 0 && sk_unlikely(until != 0))
		atomic_store_explicit(&lk_stuck_until, 0, memory_order_relaxed);
	if (r < 0) {
		atomic_fetch_sub(&lk_users, 1);
		SK_ERRNO = saved;
		return r;
	}
	if (!hdr_valid(t)) {
		tab_unlock(t);
		S.broken = true;
		SK_ERRNO = saved;
		return -EBADMSG;
	}
	if (r == 1) {
		/* The holder died, maybe halfway through an entry: validate
		 * everything before anyone reads it again. */
		repair(t);
		t->repairs++;
	}
	if (S.npend && t == S.tab)
		pend_flush(t);
	SK_ERRNO = saved;
	return 0;
}

SK_HOT_SPAN static void tab_unlock(struct tab *t)
{
	int saved = SK_ERRNO;
	uint64_t cur = atomic_load_explicit(&t->lock, memory_order_relaxed);
	/* Not ours any more (taken over by a waiter who judged us dead, or
	 * rewritten): leave it to whoever has it. */
	while ((cur & ~(uint64_t)LK_WAITERS) == S.lk_me) {
		/* release: our table writes before the next holder's reads. */
		if (atomic_compare_exchange_weak_explicit(&t->lock, &cur, 0,
				memory_order_release, memory_order_relaxed)) {
			if ((uint32_t)cur & LK_WAITERS)
				syscall(SYS_futex, lk_futex(t), FUTEX_WAKE, 1, NULL, NULL, 0);
			break;
		}
	}
	atomic_fetch_sub(&lk_users, 1);
	SK_ERRNO = saved;
}

static size_t fmt_hex(char *dst, size_t at, size_t size, uint64_t v)
{
	char tmp[17];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n && at + 1 < size)
		dst[at++] = tmp[--n];
	dst[at < size ? at : size - 1] = '\0';
	return at;
}

int sk_span_table_name(const struct sk_span_cfg *cfg, char *buf, size_t len)
{
	/* The layout's version in the name: a library of another version
	 * uses a table of its own instead of refusing this one. */
	size_t n = sk_fmt_str(buf, 0, len, SK_SPAN_TABLE_PREFIX "v3.");
	n = fmt_hex(buf, n, len, sk_ns_inode("ipc"));
	n = sk_fmt_str(buf, n, len, ".");
	n = fmt_hex(buf, n, len, cfg->addr);
	n = sk_fmt_str(buf, n, len, ".");
	n = fmt_hex(buf, n, len, cfg->size);
	if (n + 1 >= len)
		return -ENAMETOOLONG;
	return (int)n;
}

static bool user_alive(const struct tab_user *u)
{
	if (u->pid == 0)
		return false;
	/* Another pid namespace, or no /proc: we cannot tell, so keep it. */
	if (u->pidns != S.pidns || S.start == 0)
		return true;
	return sk_proc_start_ticks((pid_t)u->pid) == u->start;
}

SK_COLD static int collect_users(struct tab *t)
{
	int live = 0;
	for (unsigned i = 0; i < SK_SPAN_USERS; i++) {
		if (t->users[i].pid == 0)
			continue;
		if ((int)i != S.user && !user_alive(&t->users[i]))
			user_clear(t, (int)i);
		else
			live++;
	}
	return live;
}

SK_COLD static bool posix_name_is(const struct tab_ent *e)
{
	struct stat st;
	int opened = dir_get();
	if (opened < 0)
		return true;
	const char *n = e->name[0] == '/' ? e->name + 1 : e->name;
	int rc = (int)syscall(SYS_newfstatat, S.dirfd, n, &st, AT_SYMLINK_NOFOLLOW);
	int err = SK_ERRNO;
	dir_put(opened);
	if (rc != 0)
		return err != ENOENT;
	return (uint64_t)st.st_dev == e->dev && (uint64_t)st.st_ino == e->ino;
}

/* No registered user marks e as mapped (liveness not checked: no
 * syscall). Every user marks what it maps in the span, SysV included, so
 * that removal can free an entry without asking the kernel. */
SK_HOT_SPAN static bool ent_unmarked(const struct tab *t, struct tab_ent *e)
{
	for (unsigned w = 0; w < SK_SPAN_USERS / 64; w++) {
		/* acquire: pairs with the release in the detacher's clear. */
		uint64_t bits = atomic_load_explicit(&e->attached[w], memory_order_acquire);
		for (; bits; bits &= bits - 1)
			if (t->users[w * 64 + (unsigned)__builtin_ctzll(bits)].pid != 0)
				return false;
	}
	return true;
}

/* Removed, and no registered user maps it: free it now (the cheap test of
 * the placement and removal paths; collect_ents does the full one). */
SK_HOT_SPAN static bool ent_done(const struct tab *t, struct tab_ent *e)
{
	return (atomic_load_explicit(&e->flags, memory_order_relaxed) & ENTF_REMOVED) &&
	       ent_unmarked(t, e);
}

/* Whether entry e may be freed: removed (or gone behind our back) and
 * mapped by no live user. For SysV the kernel also knows: a segment exists
 * until removed and detached everywhere (ipcrm removes without telling us). */
SK_HOT_SPAN static bool ent_collectable(struct tab *t, struct tab_ent *e)
{
	for (unsigned w = 0; w < SK_SPAN_USERS / 64; w++) {
		/* acquire: pairs with the release in the detacher's clear. */
		uint64_t bits = atomic_load_explicit(&e->attached[w], memory_order_acquire);
		for (; bits; bits &= bits - 1) {
			unsigned u = w * 64 + (unsigned)__builtin_ctzll(bits);
			if (t->users[u].pid != 0 && ((int)u == S.user || user_alive(&t->users[u])))
				return false;
		}
	}
	if (atomic_load_explicit(&e->flags, memory_order_relaxed) & ENTF_REMOVED)
		return true;
	if (e->kind == SK_SPAN_SYSV) {
		struct shmid_ds ds;
		if (raw_shmstat(e->shmid, &ds) != 0)
			return SK_ERRNO == EINVAL || SK_ERRNO == EIDRM;
		return (e->cpid && (uint32_t)ds.shm_cpid != e->cpid) ||
		       (uint64_t)ds.shm_segsz != e->segsz;
	}
	return !posix_name_is(e);
}

SK_COLD static int collect_ents(struct tab *t, bool only_removed)
{
	int freed = 0;
	for (unsigned i = 0, n = ents_hwm(t); i < n; i++) {
		struct tab_ent *e = &t->ents[i];
		if (e->state == ENT_FREE)
			continue;
		if (!ent_valid(t, e)) {
			ent_free(t, (int)i);
			t->dropped++;
			freed++;
			continue;
		}
		if (only_removed && !(atomic_load_explicit(&e->flags, memory_order_relaxed) & ENTF_REMOVED))
			continue;
		if (ent_collectable(t, e)) {
			ent_free(t, (int)i);
			freed++;
		}
	}
	hwm_trim(t);
	return freed;
}

SK_COLD static int register_user(struct tab *t)
{
	int freeu = -1;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < SK_SPAN_USERS; i++) {
			struct tab_user *u = &t->users[i];
			if (!user_valid(u)) {
				user_clear(t, i);
				t->dropped++;
			}
			if (u->pid == (uint32_t)S.pid && u->start == S.start && u->pidns == S.pidns) {
				/* Same process after exec: its old mappings are gone. */
				user_clear(t, i);
				freeu = i;
				break;
			}
			if (u->pid == 0 && freeu < 0)
				freeu = i;
		}
		if (freeu >= 0)
			break;
		collect_users(t);
	}
	if (freeu < 0)
		return -EUSERS;
	struct tab_user *u = &t->users[freeu];
	u->pid = (uint32_t)S.pid;
	u->start = S.start;
	u->pidns = S.pidns;
	u->check = user_sum(u);
	S.user = freeu;
	return 0;
}

SK_COLD static int link_tmpfile(int fd, const char *name)
{
	char path[64];
	size_t n = sk_fmt_str(path, 0, sizeof path, "/proc/self/fd/");
	sk_fmt_u64(path, n, sizeof path, (uint64_t)fd);
	if (syscall(SYS_linkat, AT_FDCWD, path, S.dirfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (SK_ERRNO == EEXIST)
		return -EEXIST;
	/* No /proc: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, try anyway. */
	if (syscall(SYS_linkat, fd, "", S.dirfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	return -SK_ERRNO;
}

/* Creates the table under no name (O_TMPFILE), fills it, then links it in:
 * nobody can see a half-initialised table, and a creator that dies leaves
 * nothing behind. */
SK_COLD static int create_table(const char *name)
{
	int fd = (int)syscall(SYS_openat, S.dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
	if (fd < 0)
		return -SK_ERRNO;
	int r;
	/* Every user of the span shares it, other uids included (the umask
	 * applies to O_TMPFILE too). */
	if (syscall(SYS_fchmod, fd, 0666) != 0 || syscall(SYS_ftruncate, fd, (off_t)TAB_SIZE) != 0) {
		r = -SK_ERRNO;
		goto out;
	}
	struct tab *t = raw_mmap(NULL, TAB_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (t == MAP_FAILED) {
		r = -SK_ERRNO;
		goto out;
	}
	memcpy(t->magic, TAB_MAGIC, 8);
	t->version = TAB_VERSION;
	t->hdr_size = HDR_SIZE;
	t->span_addr = S.cfg.addr;
	t->span_size = S.cfg.size;
	t->nents = SK_SPAN_ENTS;
	t->nusers = SK_SPAN_USERS;
	t->shmlba = (uint32_t)S.shmlba;
	t->ent_size = sizeof(struct tab_ent);
	t->total_size = TAB_SIZE;
	/* lock and hwm: 0 (ftruncate zero-fills). */
	atomic_store_explicit(&t->state, TAB_LIVE, memory_order_release);
	raw_munmap(t, TAB_SIZE);
	r = link_tmpfile(fd, name);
out:
	raw_close(fd);
	return r;
}

/* Who we are in the table: pid, start time, pid namespace, and the lock
 * word made of them. Read once per process (after fork: again). */
SK_COLD static void self_ids(void)
{
	if (!S.pid)
		S.pid = getpid();
	if (!S.start) {
		S.start = sk_proc_start_ticks(0);
		S.pidns = sk_ns_inode("pid");
	}
	S.lk_me = ((uint64_t)(uint32_t)S.start << 32) | (uint32_t)S.pid;
}

/* Opens (creating if needed) and joins the table. Called with the local
 * lock NOT held (it may take the table lock). */
static int open_table_in_dir(void);

SK_HOT_SPAN static int open_table(void)
{
	if (S.tab)
		return 0;
	int opened = S.dirfd < 0;
	int r = open_table_in_dir();
	dir_put(opened);
	return r;
}

SK_COLD static int open_table_in_dir(void)
{
	if (S.broken)
		return -EBADMSG;
	char name[128];
	int r = sk_span_table_name(&S.cfg, name, sizeof name);
	if (r < 0)
		return r;
	if (S.dirfd < 0) {
		S.dirfd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/shm",
				       O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (S.dirfd < 0)
			return -SK_ERRNO;
	}
	self_ids();
	for (int tries = 0; tries < 16; tries++) {
		int fd = (int)syscall(SYS_openat, S.dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && SK_ERRNO == ENOENT) {
			r = create_table(name);
			if (r < 0 && r != -EEXIST)
				return r;
			continue;
		}
		if (fd < 0)
			return -SK_ERRNO;
		struct stat st;
		if (syscall(SYS_fstat, fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size != TAB_SIZE) {
			raw_close(fd);
			S.broken = true;
			return -EBADMSG;
		}
		struct tab *t = raw_mmap(NULL, TAB_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		raw_close(fd);
		if (t == MAP_FAILED)
			return -SK_ERRNO;
		if (!hdr_valid(t)) {
			raw_munmap(t, TAB_SIZE);
			S.broken = true;
			return -EBADMSG;
		}
		r = tab_lock(t);
		if (r < 0) {
			raw_munmap(t, TAB_SIZE);
			return r;
		}
		/* acquire: pairs with the retiring user's release store. */
		if (atomic_load_explicit(&t->state, memory_order_acquire) != TAB_LIVE) {
			tab_unlock(t);
			raw_munmap(t, TAB_SIZE);
			sched_yield();
			continue;
		}
		r = register_user(t);
		tab_unlock(t);
		if (r < 0) {
			raw_munmap(t, TAB_SIZE);
			return r;
		}
		S.tab = t;
		S.mir.tab = NULL;   /* t may sit where a retired table was */
		return 0;
	}
	return -EAGAIN;
}

/* ---- local slots (local lock held) ------------------------------------------ */

SK_HOT_SPAN static bool local_overlaps(uintptr_t a, uintptr_t e, int except)
{
	for (int i = 0; i < S.hwm; i++) {
		const struct lslot *s = &S.slots[i];
		if (i != except && s->state != L_FREE && s->state != L_HOLE &&
		    a < s->end && s->start < e)
			return true;
	}
	return false;
}

SK_HOT_SPAN static int slot_new(int state, int kind, uintptr_t a, uintptr_t e, int ent, int shmid)
{
	for (int i = 0; i < SK_SPAN_LOCAL; i++) {
		struct lslot *s = &S.slots[i];
		if (s->state != L_FREE)
			continue;
		*s = (struct lslot){ state, kind, a, e, ent, shmid, false, false };
		if (i >= S.hwm)
			S.hwm = i + 1;
		return i;
	}
	return -ENOSPC;
}

SK_HOT_SPAN static bool ent_still_local(int ent)
{
	for (int i = 0; i < S.hwm; i++)
		if (S.slots[i].state != L_FREE && S.slots[i].ent == ent)
			return true;
	return false;
}

/* The last local mapping of an entry went: clear our mark. */
SK_HOT_SPAN static void ent_unmark(int ent)
{
	if (ent < 0 || !S.tab || S.user < 0 || ent_still_local(ent))
		return;
	/* release: the unmap is done before a collector can see the bit gone. */
	atomic_fetch_and_explicit(&S.tab->ents[ent].attached[S.user / 64],
				  ~(1ull << (S.user % 64)), memory_order_release);
	if (atomic_load_explicit(&S.tab->ents[ent].flags, memory_order_relaxed) & ENTF_REMOVED) {
		if (S.nrecheck < (int)SK_ARRAY_SIZE(S.recheck))
			S.recheck[S.nrecheck++] = ent;
		else
			S.recheck_lost = true;
	}
}

/* The kernel no longer maps [a, e): trim the slots. */
SK_HOT_SPAN static void slots_cut(uintptr_t a, uintptr_t e, int except)
{
	for (int i = 0; i < S.hwm; i++) {
		struct lslot *s = &S.slots[i];
		if (i == except || s->state == L_FREE || !(a < s->end && s->start < e))
			continue;
		if (a > s->start && e < s->end) {
			/* A hole in the middle: the tail becomes a slot. */
			slot_new(s->state, s->kind, e, s->end, s->ent, s->shmid);
			s->end = a;
		} else if (a > s->start) {
			s->end = a;
		} else if (e < s->end) {
			s->start = e;
		} else {
			int ent = s->ent;
			s->state = L_FREE;
			ent_unmark(ent);
		}
	}
}

/* ---- holes (local lock held) ----------------------------------------------
 *
 * A detach in the span used to put the reservation back in the same step
 * (mmap PROT_NONE MAP_FIXED over the attachment), and the next attach there
 * replaced that reservation again: two vma changes a cycle that a program
 * without the span does not pay. Now a shmdt of a whole placed attachment,
 * or a munmap of a whole placed mapping, leaves the range unmapped: a hole,
 * still this process's. The next placement at exactly that range maps into
 * it without SHM_REMAP / with MAP_FIXED_NOREPLACE, so the kernel refuses if
 * anything else came in meanwhile: a hole is never mapped over. Any other
 * use of a range with a hole in it first puts the reservation back with
 * MAP_FIXED_NOREPLACE (it fails, and the range stops being ours, if
 * something came in). At most SK_SPAN_HOLES are kept (each splits the
 * reservation's vma). Only a mapping the kernel chooses itself can come
 * into a hole, and top-down allocation picks one only when no free range
 * above it fits: the default span is 64 TiB below the mmap base.
 * shmget+shmat+shmdt+RMID at a placed slot: 25.3 us a cycle with the
 * reservation put back, 24.9 us with the hole, 25.2 us for the kernel's own
 * choice without any span (fastest of 9 runs each, this VM). */
#define SK_SPAN_HOLES 4

/* Reserves the hole's range again and frees the slot. Returns 0, or
 * -EEXIST if something else was mapped there: then the slot stays as a
 * foreign mapping, which nothing of ours maps over (until the program
 * unmaps it through munmap). */
SK_HOT_SPAN static int hole_fill(struct lslot *s)
{
	size_t l = s->end - s->start;
	void *m = reserve_at(s->start, l, MAP_FIXED_NOREPLACE);
	if (m != MAP_FAILED && (uintptr_t)m != s->start)
		raw_munmap(m, l);          /* a kernel without NOREPLACE: a hint */
	s->hole = false;
	if (m == MAP_FAILED || (uintptr_t)m != s->start) {
		*s = (struct lslot){ L_MAPPED, SK_SPAN_ANON, s->start, s->end, -1, -1, false, false };
		return -EEXIST;
	}
	s->state = L_FREE;
	return 0;
}

/* Fills every hole overlapping [a, e) but `except`. Returns 0, or -EEXIST
 * if one of them was taken. */
SK_HOT_SPAN static int holes_fill(uintptr_t a, uintptr_t e, int except)
{
	int r = 0;
	for (int i = 0; i < S.hwm; i++) {
		struct lslot *s = &S.slots[i];
		if (i != except && s->state == L_HOLE && a < s->end && s->start < e &&
		    hole_fill(s) < 0)
			r = -EEXIST;
	}
	return r;
}

/* The kernel no longer maps slot s, which we unmapped whole: keep its range
 * as a hole. */
SK_HOT_SPAN static void hole_make(struct lslot *s)
{
	int n = 0, first = -1;
	for (int i = 0; i < S.hwm; i++)
		if (S.slots[i].state == L_HOLE && n++ == 0)
			first = i;
	int ent = s->ent;
	s->state = L_HOLE;
	s->ent = -1;
	s->shmid = -1;
	s->forced = s->hole = false;
	ent_unmark(ent);
	if (n >= SK_SPAN_HOLES)
		hole_fill(&S.slots[first]);
}

/* [a, e) is not ours to keep unmapped any more (reserved again, or the
 * program's): forget the holes there. */
SK_HOT_SPAN static void holes_forget(uintptr_t a, uintptr_t e)
{
	for (int i = 0; i < S.hwm; i++) {
		struct lslot *s = &S.slots[i];
		if (s->state == L_HOLE && a < s->end && s->start < e)
			s->state = L_FREE;
	}
}

/* ---- placement ------------------------------------------------------------- */

SK_HOT_SPAN static uint64_t cache_key(const struct sk_span_key *k)
{
	if (k->kind == SK_SPAN_SYSV)
		return (1ull << 63) | (uint32_t)k->shmid;
	return mix(k->dev, k->ino) & ~(1ull << 63);
}

SK_HOT_SPAN static bool ent_matches(const struct tab_ent *e, const struct sk_span_key *k)
{
	if (e->state != ENT_USED || e->kind != (uint32_t)k->kind)
		return false;
	if (k->kind == SK_SPAN_SYSV)
		return e->shmid == k->shmid;
	const char *n = k->name[0] == '/' ? k->name + 1 : k->name;
	const char *m = e->name[0] == '/' ? e->name + 1 : e->name;
	/* Bounded: e may not be validated yet, and a name without its NUL
	 * would run past the table's last entry. */
	return e->dev == k->dev && e->ino == k->ino &&
	       strncmp(n, m, SK_NAME_MAX - (size_t)(m - e->name)) == 0;
}

/* ---- the mirror (table locked): see struct mirror ------------------------ */

SK_HOT_SPAN static int64_t coarse_s(void)
{
	struct timespec ts;
	if (sk_clock(CLOCK_MONOTONIC_COARSE, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec;
}

static int collect_ents(struct tab *t, bool only_removed);
static void mir_build(struct tab *t);

/* The table-wide collection of GC_ABOVE (table locked). A stamp from the
 * future (another time namespace, junk) counts as due. */
SK_COLD static void gc_due(struct tab *t)
{
	if (ents_hwm(t) <= GC_ABOVE)
		return;
	int64_t now = coarse_s(), last = (int64_t)t->gc_s;
	if (now - last < GC_EVERY_S && now >= last)
		return;
	t->gc_s = (uint64_t)now;
	collect_users(t);
	if (collect_ents(t, false) > 0)
		mir_build(t);
}

SK_HOT_SPAN static uint64_t lba_up(uint64_t v)
{
	return (v + S.shmlba - 1) & ~(S.shmlba - 1);
}

static uint64_t ent_key(const struct tab_ent *e)
{
	struct sk_span_key k = { .kind = (int)e->kind, .shmid = e->shmid,
				 .dev = e->dev, .ino = e->ino };
	return cache_key(&k);
}

SK_HOT_SPAN static bool mir_current(const struct tab *t)
{
	return S.mir.tab == t && S.mir.gen == t->gen;
}

SK_HOT_SPAN static bool mir_has(int idx)
{
	return S.mir.used[idx / 64] & (1ull << (idx % 64));
}

/* The first range whose offset is >= off. */
SK_HOT_SPAN static int mir_lower(uint64_t off)
{
	int a = 0, b = S.mir.n;
	while (a < b) {
		int m = a + (b - a) / 2;
		if (S.mir.r[m].off < off)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

/* The covered prefix now ends before range p (it was changed there). */
SK_HOT_SPAN static void mir_cut_prefix(int p)
{
	struct mirror *m = &S.mir;
	if (p >= m->lo)
		return;
	m->lo = p;
	m->lo_end = p > 0 ? m->r[p - 1].cov : S.shmlba;
}

/* Entry idx (valid, used) into the key index; not into the ranges. */
SK_HOT_SPAN static void mir_index(const struct tab *t, int idx)
{
	struct mirror *m = &S.mir;
	const struct tab_ent *e = &t->ents[idx];
	uint64_t key = ent_key(e);
	unsigned b = (unsigned)(key % MIR_BUCKETS);
	m->e[idx] = (struct mir_ent){ key, e->gen, e->off, e->len, m->head[b] };
	m->head[b] = (int16_t)(idx + 1);
	m->used[idx / 64] |= 1ull << (idx % 64);
}

/* Takes entry idx out of its key's hash chain. */
SK_HOT_SPAN static void mir_unchain(int idx)
{
	struct mirror *m = &S.mir;
	int16_t *l = &m->head[m->e[idx].key % MIR_BUCKETS];
	while (*l && *l != idx + 1)
		l = &m->e[*l - 1].next;
	if (*l)
		*l = m->e[idx].next;
}

SK_HOT_SPAN static void mir_add(const struct tab *t, int idx)
{
	struct mirror *m = &S.mir;
	if (mir_has(idx))
		mir_del(t, idx);  /* freed by another process behind our back */
	const struct tab_ent *e = &t->ents[idx];
	int p = mir_lower(e->off);
	memmove(&m->r[p + 1], &m->r[p], (size_t)(m->n - p) * sizeof m->r[0]);
	m->r[p] = (struct mir_range){ e->off, e->len, 0, idx };
	m->n++;
	mir_cut_prefix(p);
	mir_index(t, idx);
}

SK_HOT_SPAN static void mir_del(const struct tab *t, int idx)
{
	struct mirror *m = &S.mir;
	if (m->tab != t || idx < 0 || idx >= SK_SPAN_ENTS || !mir_has(idx))
		return;
	m->used[idx / 64] &= ~(1ull << (idx % 64));
	int p = mir_lower(m->e[idx].off);
	while (p < m->n && m->r[p].idx != idx)
		p++;
	if (p < m->n) {
		memmove(&m->r[p], &m->r[p + 1], (size_t)(m->n - p - 1) * sizeof m->r[0]);
		m->n--;
		mir_cut_prefix(p);
	}
	mir_unchain(idx);
}

/* Entry idx got a new identity over the same range (a reused spare): only
 * its hash chain changes, not the ranges. */
SK_HOT_SPAN static void mir_rekey(const struct tab *t, int idx)
{
	mir_unchain(idx);
	mir_index(t, idx);
}

/* Reads the whole table again: validates every entry (bounds and checksum
 * before off and len are trusted), drops what fails, and frees in passing
 * what is removed and unmapped everywhere, so that the table stays short
 * without a syscall. */
SK_COLD static void mir_build(struct tab *t)
{
	struct mirror *m = &S.mir;
	memset(m->head, 0, sizeof m->head);
	memset(m->used, 0, sizeof m->used);
	m->tab = t;
	m->n = m->lo = 0;
	m->lo_end = S.shmlba;   /* the guard: see mir_fit */
	m->built_s = coarse_s();
	for (unsigned i = 0, h = ents_hwm(t); i < h; i++) {
		struct tab_ent *e = &t->ents[i];
		if (e->state == ENT_FREE)
			continue;
		if (!ent_valid(t, e)) {
			ent_clear(e);
			t->dropped++;
			continue;
		}
		if (ent_done(t, e)) {
			ent_clear(e);
			continue;
		}
		m->r[m->n++] = (struct mir_range){ e->off, e->len, 0, (int)i };
		mir_index(t, (int)i);
	}
	/* Entries come mostly in offset order (first fit): insertion sort. */
	for (int i = 1; i < m->n; i++) {
		struct mir_range x = m->r[i];
		int j = i;
		for (; j > 0 && m->r[j - 1].off > x.off; j--)
			m->r[j] = m->r[j - 1];
		m->r[j] = x;
	}
	hwm_trim(t);
	m->gen = t->gen;
}

/* Finds the entry of k; table locked. Checks the entry it returns, except
 * one found through our cache when `check` is false: a removal only flags
 * it (outside the checksum), frees it, or keeps it as our spare, whose
 * reuse takes its range from the mirror and rewrites the rest (callgrind:
 * the check was 84 of the ~200 instructions a removal cost). A key the
 * (current) mirror does not know has no entry: no scan. */
SK_HOT_SPAN static int find_ent(struct tab *t, const struct sk_span_key *k, bool check)
{
	uint64_t key = cache_key(k);
	struct cache_ent *c = &S.cache[key % SK_ARRAY_SIZE(S.cache)];
	int n = (int)ents_hwm(t);
	if (c->key == key && c->idx >= 0 && c->idx < n) {
		struct tab_ent *e = &t->ents[c->idx];
		if (e->gen == c->gen && ent_matches(e, k)) {
			if (!check || ent_valid(t, e))
				return c->idx;
			ent_free(t, c->idx);
			t->dropped++;
		}
	}
	if (!mir_current(t))
		mir_build(t);
	int next;
	for (int i = S.mir.head[key % MIR_BUCKETS]; i; i = next) {
		int idx = i - 1;
		next = S.mir.e[idx].next;
		if (S.mir.e[idx].key != key)
			continue;
		struct tab_ent *e = &t->ents[idx];
		if (e->state != ENT_USED || e->gen != S.mir.e[idx].gen) {
			/* Freed by another process (no gen bump), or
			 * rewritten behind the lock: not what we saw. */
			mir_del(t, idx);
			continue;
		}
		if (!ent_matches(e, k))
			continue;
		if (!ent_valid(t, e)) {
			ent_free(t, idx);
			t->dropped++;
			continue;
		}
		return idx;
	}
	return -ENOENT;
}

/* First fit over the table's placements (the mirror's ranges, after the
 * prefix known to be full) and what this process mapped in the span (both:
 * the slot must be free here and everywhere). Mirror current for t.
 *
 * Between one SHMLBA above the span's start and one below its end (the
 * guards; mir_build and mir_cut_prefix start the covered prefix there), so
 * that a placement has a mapping on both sides: an attach into a hole
 * between two vmas, and the detach that leaves the hole, change the
 * kernel's tree of vmas in place, where a hole at the span's edge merges
 * with the free range beyond it and each attach there splits it again (as
 * the kernel's own top-down choice does every time). A shmget, shmat, write,
 * shmdt, IPC_RMID cycle: ~2100 cycles less kernel time inside the
 * reservation than at its edge or at the kernel's address (rdtsc medians,
 * 9 runs; doc/span.md). */
SK_HOT_SPAN static int mir_fit(const struct tab *t, uint64_t need, uint64_t *off)
{
	struct mirror *m = &S.mir;
	while (m->lo < m->n && m->r[m->lo].off <= m->lo_end) {
		uint64_t end = lba_up(m->r[m->lo].off + m->r[m->lo].len);
		if (end > m->lo_end)
			m->lo_end = end;
		m->r[m->lo++].cov = m->lo_end;
	}
	uint64_t cand = m->lo_end, lim = t->span_size - S.shmlba;
	int i = m->lo;
	llock();
	while (cand + need <= lim) {
		for (; i < m->n && m->r[i].off < cand + need; i++) {
			uint64_t end = lba_up(m->r[i].off + m->r[i].len);
			if (end > cand)
				cand = end;
		}
		if (cand + need > lim)
			break;
		uintptr_t a = sk_span_g.base + cand, e = a + need, lend = 0;
		for (int j = 0; j < S.hwm; j++) {
			const struct lslot *s = &S.slots[j];
			if (s->state != L_FREE && s->state != L_HOLE && s->start < e &&
			    s->end > a && s->end > lend)
				lend = s->end;
		}
		if (!lend)
			break;
		cand = lba_up(lend - sk_span_g.base);
	}
	lunlock();
	if (cand + need > lim)
		return -ENOSPC;
	*off = cand;
	return 0;
}

/* A free entry: the first below hwm that is free in the mirror and in the
 * table, else hwm itself (raised before the entry is written, so a holder
 * killed halfway leaves it inside hwm where the repair finds it). */
SK_HOT_SPAN static int mir_free_ent(struct tab *t)
{
	unsigned h = ents_hwm(t);
	for (unsigned w = 0; w * 64 < h; w++)
		for (uint64_t f = ~S.mir.used[w]; f; f &= f - 1) {
			unsigned i = w * 64 + (unsigned)__builtin_ctzll(f);
			if (i >= h)
				break;
			if (t->ents[i].state == ENT_FREE)
				return (int)i;
		}
	if (h >= SK_SPAN_ENTS)
		return -1;
	t->hwm = h + 1;
	return (int)h;
}

/* Whether entry i is still the spare we kept: nobody freed or reused it
 * since (gen), its range is the one our mirror checked when it read the
 * entry (all a reuse keeps of it), and it is still done. Table locked. */
SK_HOT_SPAN static bool spare_ours(struct tab *t, int i)
{
	struct tab_ent *e = &t->ents[i];
	const struct mir_ent *m = &S.mir.e[i];
	return (unsigned)i < ents_hwm(t) && e->state == ENT_USED && e->gen == S.spare_gen &&
	       mir_has(i) && m->gen == e->gen && m->off == e->off && m->len == e->len &&
	       ent_done(t, e);
}

/* Frees the spare if it is still ours. Table locked. */
SK_HOT_SPAN static void spare_drop(struct tab *t)
{
	int i = S.spare - 1;
	S.spare = 0;
	if (i >= 0 && mir_current(t) && spare_ours(t, i)) {
		ent_free(t, i);
		hwm_trim(t);
	}
}

/* Entry idx is done (ent_done: removed, and marked by no user). Instead of
 * freeing it, keep it as our spare, whose range the next placement of the
 * same size takes as it is: the create-attach-detach-remove cycle reuses one
 * entry without a fit and without taking its range out of the mirror and
 * putting it back. Until then it holds its range like any removed entry
 * that someone still maps; anyone may collect it (mir_build frees done
 * entries), which the generation check sees. One spare: an older one is
 * freed. Table locked. */
SK_HOT_SPAN static void ent_retire(struct tab *t, int idx)
{
	if (S.spare && S.spare - 1 != idx)
		spare_drop(t);
	S.spare = idx + 1;
	S.spare_gen = t->ents[idx].gen;
}

/* The spare, if it is still ours and its range is `need` long; else frees it
 * (if ours) and returns -1. Table locked, mirror current. */
SK_HOT_SPAN static int spare_take(struct tab *t, uint64_t need)
{
	int i = S.spare - 1;
	if (i < 0)
		return -1;
	bool fits = spare_ours(t, i) && S.mir.e[i].len == need;
	if (fits) {
		/* Free here too (mir_fit's test): not a range where the
		 * program mapped something of its own meanwhile. */
		uintptr_t a = sk_span_g.base + S.mir.e[i].off;
		llock();
		fits = !local_overlaps(a, a + need, -1);
		lunlock();
	}
	if (!fits) {
		spare_drop(t);
		return -1;
	}
	S.spare = 0;
	return i;
}

SK_HOT_SPAN static int alloc_ent(struct tab *t, const struct sk_span_key *k, uint64_t len,
		     uint32_t cpid)
{
	uint64_t need = lba_up(len), off;
	if (need == 0 || need > t->span_size)
		return -ENOSPC;
	int again[SK_ARRAY_SIZE(S.recheck)], nagain;
	bool lost;
	llock();
	nagain = S.nrecheck;
	for (int i = 0; i < nagain; i++)   /* not memcpy: a libc call */
		again[i] = S.recheck[i];
	lost = S.recheck_lost;
	S.nrecheck = 0;
	S.recheck_lost = false;
	lunlock();
	if (!mir_current(t) || lost || coarse_s() - S.mir.built_s >= MIR_REBUILD_S) {
		mir_build(t);
		gc_due(t);
	}
	/* What we detached last and was removed: retire it now, so that its
	 * range is the next placement's (as the spare, or as the first fit
	 * its freeing makes). */
	for (int i = 0; i < nagain; i++) {
		struct tab_ent *e = &t->ents[again[i]];
		if (e->state == ENT_FREE)
			continue;
		if (!ent_valid(t, e)) {
			ent_free(t, again[i]);
			t->dropped++;
		} else if (ent_done(t, e)) {
			ent_retire(t, again[i]);
		}
	}
	int idx = spare_take(t, need);
	bool reused = idx >= 0;
	if (reused) {
		off = S.mir.e[idx].off;
	} else {
		int r = mir_fit(t, need, &off);
		/* Full: first forget what others freed, then ask who is gone
		 * (not again within the second, unless we freed something). */
		bool recent = S.full_s && S.frees == S.full_frees &&
			      (uint64_t)(coarse_s() - S.full_s) < 1;
		if (r == -ENOSPC && !recent) {
			mir_build(t);
			r = mir_fit(t, need, &off);
			if (r == -ENOSPC && collect_ents(t, false) > 0)
				r = mir_fit(t, need, &off);
		}
		if (r == 0) {
			idx = mir_free_ent(t);
			if (idx < 0 && !recent) {
				mir_build(t);
				idx = mir_free_ent(t);
				if (idx < 0 && collect_ents(t, false) > 0)
					idx = mir_free_ent(t);
			}
			if (idx < 0)
				r = -ENOSPC;
		}
		if (r < 0) {
			if (r == -ENOSPC && !recent) {
				S.full_s = coarse_s();
				S.full_frees = S.frees;
			}
			return r;
		}
	}
	struct tab_ent *e = &t->ents[idx];
	ent_clear(e);
	e->kind = (uint32_t)k->kind;
	e->off = off;
	e->len = need;
	e->gen = ++t->gen;
	if (k->kind == SK_SPAN_SYSV) {
		e->shmid = k->shmid;
		e->cpid = cpid;           /* 0: not known (no IPC_STAT made) */
		e->segsz = len;
		e->dev = e->ino = 0;
		e->name_len = 0;          /* the name is not hashed: no need to clear it */
	} else {
		e->shmid = -1;
		e->cpid = 0;
		e->segsz = k->size;
		e->dev = k->dev;
		e->ino = k->ino;
		memset(e->name, 0, sizeof e->name);
		size_t nl = strlen(k->name);
		memcpy(e->name, k->name, nl);
		e->name_len = (uint32_t)nl;
	}
	e->state = ENT_USED;
	/* A holder killed here leaves an entry whose checksum is wrong: the
	 * next locker's repair drops it (tests/span_table.c). */
	if (sk_unlikely(S.midupdate != NULL))
		S.midupdate();
	e->check = ent_sum(e);
	/* We were current before the bump: still current after it. */
	if (reused)
		mir_rekey(t, idx);
	else
		mir_add(t, idx);
	S.mir.gen = t->gen;
	return idx;
}

/* Marks entry idx as mapped by us (relaxed: the table lock, or the local
 * lock for the clear, orders it against collectors). */
SK_HOT_SPAN static void ent_mark(struct tab *t, int idx)
{
	atomic_fetch_or_explicit(&t->ents[idx].attached[S.user / 64], 1ull << (S.user % 64),
				 memory_order_relaxed);
}

SK_HOT_SPAN static int place_locked(struct tab *t, const struct sk_span_key *k, size_t len,
			uint64_t off, uint64_t *slot_off, uint64_t *slot_len, int *idx_out)
{
	struct cache_ent *c = &S.cache[cache_key(k) % SK_ARRAY_SIZE(S.cache)];
	int r;
	/* A fork child whose registration failed (lock busy then). */
	if (S.user < 0 && (r = register_user(t)) < 0)
		return r;
	int idx = find_ent(t, k, true);
	uint64_t size = k->size;
	uint32_t cpid = 0;
	if (k->kind == SK_SPAN_SYSV) {
		bool verified = idx >= 0 && c->key == cache_key(k) && c->idx == idx &&
				c->gen == t->ents[idx].gen;
		if (size == 0 && !verified) {
			/* The wrapper did not know the size: ask the kernel
			 * (the only syscall here, and only then). */
			struct shmid_ds ds;
			if (raw_shmstat(k->shmid, &ds) != 0)
				return -SK_ERRNO;
			size = (uint64_t)ds.shm_segsz;
			cpid = (uint32_t)ds.shm_cpid;
		}
		/* A stale entry (its segment removed, the shmid come round
		 * again) must not lend its maybe smaller slot: shmids are
		 * reused, sizes tell most of them apart, and a removed entry
		 * that nobody maps any more is stale by definition. */
		if (idx >= 0) {
			struct tab_ent *e = &t->ents[idx];
			if ((size && size != e->segsz) || (cpid && e->cpid && cpid != e->cpid) ||
			    ent_done(t, e)) {
				ent_free(t, idx);
				hwm_trim(t);
				idx = -1;
			}
		}
		if (idx < 0 && size == 0) {
			struct shmid_ds ds;
			if (raw_shmstat(k->shmid, &ds) != 0)
				return -SK_ERRNO;
			size = (uint64_t)ds.shm_segsz;
			cpid = (uint32_t)ds.shm_cpid;
		}
	}
	if (idx < 0) {
		uint64_t need = size;
		if (k->kind == SK_SPAN_POSIX && off + len > need)
			need = off + len;
		idx = alloc_ent(t, k, need, cpid);
		if (idx < 0)
			return idx;
	}
	struct tab_ent *e = &t->ents[idx];
	if (k->kind == SK_SPAN_POSIX && (off > e->len || len > e->len - off))
		return -E2BIG;
	*c = (struct cache_ent){ cache_key(k), idx, e->gen };
	if (k->kind == SK_SPAN_POSIX) {
		*slot_off = e->off + off;
		*slot_len = (len + S.shmlba - 1) & ~(S.shmlba - 1);
	} else {
		*slot_off = e->off;
		*slot_len = e->len;
	}
	ent_mark(t, idx);
	*idx_out = idx;
	return 0;
}

/* Whether this process maps SysV segment shmid at a placement of its own.
 * Local lock held. */
SK_HOT_SPAN static bool sysv_mapped_here(int shmid)
{
	bool found = false;
	for (int i = 0; i < S.hwm && !found; i++)
		found = S.slots[i].state == L_MAPPED && S.slots[i].kind == SK_SPAN_SYSV &&
			S.slots[i].shmid == shmid && S.slots[i].ent >= 0;
	return found;
}

/* Every local slot holds a mapping (none free, no hole): no placement can
 * get one, and asking the table first only leaves it an entry that no one
 * maps. Scans only then. Local lock held. */
SK_HOT_SPAN static bool slots_full(void)
{
	if (S.hwm < SK_SPAN_LOCAL)
		return false;
	for (int i = 0; i < S.hwm; i++)
		if (S.slots[i].state == L_FREE || S.slots[i].state == L_HOLE)
			return false;
	return true;
}

SK_HOT_SPAN static int usable(void)
{
	if (S.cfg.off || !S.inited)
		return -ENODEV;
	if (sk_span_g.base == 0)
		return -EADDRNOTAVAIL;
	return 0;
}

SK_HOT_SPAN int sk_span_place(const struct sk_span_key *k, size_t len, uint64_t off,
		  struct sk_span_ticket *tk, void **addr)
{
	tk->slot = -1;
	tk->hole = false;
	int r = usable();
	if (r < 0)
		return r;
	if ((r = enter()) < 0)
		return r;
	int saved = SK_ERRNO;
	if (k->kind == SK_SPAN_POSIX && (!k->name || !k->name[0] || strlen(k->name) >= SK_NAME_MAX - 8 ||
					 off % S.shmlba || len == 0)) {
		r = -EINVAL;
		goto out;
	}
	/* A SysV segment mapped at its slot here already: its placement is
	 * taken (-EEXIST), as the table would say after a lock session and a
	 * lookup (a program that attaches a segment again, read-only, say:
	 * stress-ng's shm-sysv did it four times a segment, ~2 us each). While
	 * we map it, its shmid cannot name another segment. Every local slot
	 * taken: -ENOSPC before the table is asked (slots_full). One local
	 * lock session for both. */
	llock();
	if (k->kind == SK_SPAN_SYSV && sysv_mapped_here(k->shmid))
		r = -EEXIST;
	else if (slots_full())
		r = -ENOSPC;
	lunlock();
	if (r < 0)
		goto out;
	if ((r = open_table()) < 0)
		goto out;
	struct tab *t = S.tab;
	uint64_t soff = 0, slen = 0;
	int idx = -1;
	if ((r = tab_lock(t)) < 0)
		goto out;
	r = place_locked(t, k, len, off, &soff, &slen, &idx);
	tab_unlock(t);
	if (r < 0)
		goto out;
	uintptr_t a = sk_span_g.base + soff;
	int shmid = k->kind == SK_SPAN_SYSV ? k->shmid : -1, h = -1;
	llock();
	for (int i = 0; i < S.hwm && h < 0; i++)
		if (S.slots[i].state == L_HOLE && S.slots[i].start == a && S.slots[i].end == a + slen)
			h = i;
	if (local_overlaps(a, a + slen, -1) || holes_fill(a, a + slen, h) < 0) {
		r = -EEXIST;
	} else if (h >= 0) {
		/* Into our hole, as it is: the wrapper maps without replacing. */
		S.slots[h] = (struct lslot){ L_CLAIM, k->kind, a, a + slen, idx, shmid, false, true };
		tk->slot = h;
		tk->hole = true;
		*addr = (void *)a;
		r = 0;
	} else if ((r = slot_new(L_CLAIM, k->kind, a, a + slen, idx, shmid)) >= 0) {
		/* Reservation there: make it a hole first, and map into that
		 * without replacing anything either. SHM_REMAP over the
		 * reservation mapped a SHM_HUGETLB segment (2 MiB, where the
		 * slot is its size in pages) over the placements next to it
		 * (diff_transparency); into a hole the kernel refuses it. */
		if (raw_munmap((void *)a, slen) != 0) {
			S.slots[r].state = L_FREE;
			r = -SK_ERRNO;
		} else {
			S.slots[r].hole = true;
			tk->slot = r;
			tk->hole = true;
			*addr = (void *)a;
			r = 0;
		}
	}
	if (r < 0)
		ent_unmark(idx);
	lunlock();
out:
	leave();
	SK_ERRNO = saved;
	return r;
}

SK_HOT_SPAN void sk_span_commit(struct sk_span_ticket *tk, bool ok)
{
	if (tk->slot < 0)
		return;
	/* Marked as span code while the local lock is held: a signal handler
	 * that interrupts us and attaches must get -EDEADLK from enter(), not
	 * spin on our lock (tests/fault_host.sh signal). */
	int was = in_span;
	in_span = 1;
	llock();
	struct lslot *s = &S.slots[tk->slot];
	if (ok) {
		if (s->forced)
			slots_cut(s->start, s->end, tk->slot);
		s->state = L_MAPPED;
		s->hole = false;
	} else {
		int ent = s->ent;
		/* A hole the kernel refused to map into: something came in
		 * (then it is not ours any more), or the segment was refused;
		 * reserve it again if it is still empty. */
		if (s->hole)
			hole_fill(s);
		else
			s->state = L_FREE;
		ent_unmark(ent);
	}
	lunlock();
	in_span = was;
	tk->slot = -1;
}

SK_HOT_SPAN int sk_span_explicit(const struct sk_span_key *k, const void *addr, size_t len,
		     bool forced, struct sk_span_ticket *tk, int *extra)
{
	tk->slot = -1;
	tk->hole = false;
	*extra = 0;
	int r = usable();
	if (r < 0)
		return r == -EADDRNOTAVAIL ? -ENODEV : r;
	if ((r = enter()) < 0)
		return r;
	int saved = SK_ERRNO;
	int kind = k ? k->kind : SK_SPAN_ANON;
	uintptr_t a = (uintptr_t)addr;
	struct shmid_ds ds;
	/* The segment's size: the wrapper's (from shmget or its own
	 * IPC_STAT), else the kernel's. */
	if (kind == SK_SPAN_SYSV && k->size)
		len = (k->size + S.shmlba - 1) & ~(S.shmlba - 1);
	else if (kind == SK_SPAN_SYSV && raw_shmstat(k->shmid, &ds) == 0)
		len = (ds.shm_segsz + S.shmlba - 1) & ~(S.shmlba - 1);
	if (len == 0)
		len = 1;
	uintptr_t e = a + len;
	int idx = -1, ret = SK_SPAN_FOREIGN;
	if (kind != SK_SPAN_ANON && open_table() == 0 && tab_lock(S.tab) == 0) {
		idx = find_ent(S.tab, k, true);
		if (idx >= 0) {
			struct tab_ent *en = &S.tab->ents[idx];
			uintptr_t ps = sk_span_g.base + en->off;
			if ((kind == SK_SPAN_SYSV && a == ps) ||
			    (kind == SK_SPAN_POSIX && a >= ps && e <= ps + en->len)) {
				ret = SK_SPAN_IS_PLACEMENT;
				if (S.user >= 0 || register_user(S.tab) == 0)
					ent_mark(S.tab, idx);
			} else {
				idx = -1;
			}
		}
		tab_unlock(S.tab);
	}
	if (ret == SK_SPAN_FOREIGN && S.cfg.policy == SK_SPAN_STRICT) {
		r = -EPERM;
		goto out;
	}
	llock();
	bool inside = a >= sk_span_g.base && e <= sk_span_g.end;
	bool busy = local_overlaps(a, e, -1);
	if (!forced && busy) {
		/* The kernel refuses it as it would have without the span. */
		if (ret == SK_SPAN_IS_PLACEMENT)
			ent_unmark(idx);
		lunlock();
		r = ret;
		goto out;
	}
	/* Our holes there get the reservation back first; one that was taken
	 * holds what the program's call must meet, as it would without us. */
	uintptr_t ra = a & ~(uintptr_t)(S.shmlba - 1);
	uintptr_t re = (e + S.shmlba - 1) & ~(uintptr_t)(S.shmlba - 1);
	bool taken = holes_fill(ra, re, -1) < 0, punched = false;
	/* Not replacing: the range holds only our reservation, which the
	 * program cannot see. It becomes a hole, so that the kernel decides
	 * as it would without us (a SHM_HUGETLB segment larger than the range
	 * we know is refused, not mapped over what is next to it); if that
	 * fails, the call replaces the reservation instead. */
	if (!forced && inside && !taken) {
		if (raw_munmap((void *)ra, re - ra) == 0)
			punched = true;
		else
			*extra = kind == SK_SPAN_SYSV ? SHM_REMAP : SK_SPAN_TO_FIXED;
	}
	r = slot_new(L_CLAIM, kind, ra, re, idx, kind == SK_SPAN_SYSV ? k->shmid : -1);
	if (r >= 0) {
		S.slots[r].forced = forced || *extra;
		S.slots[r].hole = punched;   /* a failed call: reserve it again */
		tk->slot = r;
		r = ret;
	} else {
		*extra = 0;
		if (punched)
			reserve_at(ra, re - ra, MAP_FIXED_NOREPLACE);
		if (ret == SK_SPAN_IS_PLACEMENT)
			ent_unmark(idx);
		r = ret;  /* no room to remember it: still let the call through */
	}
	lunlock();
out:
	leave();
	SK_ERRNO = saved;
	return r;
}

/* ---- detach ------------------------------------------------------------------ */

SK_HOT_SPAN int sk_span_unmap(const void *addr, size_t len, int how, int *shmid)
{
	uintptr_t a = (uintptr_t)addr;
	if (sk_span_g.base == 0)
		return 0;
	if (a % (uintptr_t)S.shmlba && how != SK_SPAN_FORGET)
		return 0;
	int r = enter();
	if (r < 0)
		return r;
	int saved = SK_ERRNO;
	llock();
	uintptr_t e;
	int found = -1;
	if (how == SK_SPAN_SHMDT) {
		for (int i = 0; i < S.hwm && found < 0; i++)
			if (S.slots[i].state == L_MAPPED && S.slots[i].kind == SK_SPAN_SYSV &&
			    S.slots[i].start == a)
				found = i;
		if (found < 0) {
			r = 0;
			goto out;
		}
		e = S.slots[found].end;
		if (shmid)
			*shmid = S.slots[found].shmid;
		/* The kernel's own shmdt, leaving a hole (see "holes"). */
		if (a >= sk_span_g.base && e <= sk_span_g.end) {
			if (syscall(SYS_shmdt, (void *)a) != 0) {
				r = -SK_ERRNO;
				goto out;
			}
			hole_make(&S.slots[found]);
			r = 1;
			goto out;
		}
	} else {
		if (len == 0 || a + len < a) {
			r = 0;
			goto out;
		}
		e = (a + len + S.shmlba - 1) & ~(uintptr_t)(S.shmlba - 1);
		if (!(a < sk_span_g.end && e > sk_span_g.base)) {
			r = 0;
			goto out;
		}
		/* A whole mapping of ours goes: leave a hole (see "holes"). */
		for (int i = 0; how == SK_SPAN_MUNMAP && i < S.hwm; i++) {
			struct lslot *s = &S.slots[i];
			if (s->state != L_MAPPED || s->start != a || s->end != e ||
			    a < sk_span_g.base || e > sk_span_g.end)
				continue;
			if (raw_munmap((void *)a, e - a) != 0) {
				r = -SK_ERRNO;
				goto out;
			}
			hole_make(s);
			r = 1;
			goto out;
		}
	}
	if (how != SK_SPAN_FORGET) {
		uintptr_t ia = a > sk_span_g.base ? a : sk_span_g.base;
		uintptr_t ie = e < sk_span_g.end ? e : sk_span_g.end;
		/* One mmap replaces the mapping by the reservation: the kernel
		 * detaches exactly as munmap/shmdt would (shm_close runs for the
		 * replaced vma), and no other thread can map in between.
		 * Without MAP_NORESERVE (PROT_NONE: nothing is charged either
		 * way) the restored range does not merge with the reservation
		 * around it, so the next attach there replaces one whole vma
		 * instead of splitting the reservation in three and this mmap
		 * merging it back: shmat+shmdt at a slot inside the span went
		 * from 1.21 to 1.02 x off (bench/span.sh 11 20000 3000 400). */
		if (raw_mmap((void *)ia, ie - ia, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
			r = -SK_ERRNO;
			goto out;
		}
		if (a < ia)
			raw_munmap((void *)a, ia - a);
		if (e > ie)
			raw_munmap((void *)ie, e - ie);
		a = ia;
		e = ie;
	}
	slots_cut(a, e, -1);
	r = 1;
out:
	lunlock();
	leave();
	SK_ERRNO = saved;
	return r;
}

SK_HOT_SPAN void sk_span_taken(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, e = a + (len ? len : 1);
	if (sk_span_g.base == 0 || e < a || enter() < 0)
		return;
	a &= ~(uintptr_t)(S.shmlba - 1);
	e = (e + S.shmlba - 1) & ~(uintptr_t)(S.shmlba - 1);
	llock();
	/* The whole mapping is the program's now, not only the holes it took:
	 * part of it may lie where nothing of ours was (the tail an mremap
	 * shrink left, a shmdt we did not see), which a placement would
	 * otherwise take for reservation and map over (diff_transparency
	 * found one). */
	holes_forget(a, e);
	slot_new(L_MAPPED, SK_SPAN_ANON, a, e, -1, -1);
	lunlock();
	leave();
}

SK_HOT_SPAN int sk_span_rereserve(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, e = a + len;
	if (sk_span_g.base == 0 || len == 0 || e < a)
		return -EINVAL;
	if (a < sk_span_g.base)
		a = sk_span_g.base;
	if (e > sk_span_g.end)
		e = sk_span_g.end;
	a = (a + S.shmlba - 1) & ~(uintptr_t)(S.shmlba - 1);
	e &= ~(uintptr_t)(S.shmlba - 1);
	if (a >= e)
		return -EINVAL;
	int saved = SK_ERRNO, r = 0;
	void *m = reserve_at(a, e - a, MAP_FIXED_NOREPLACE);
	if (m == MAP_FAILED)
		r = -SK_ERRNO;
	else if ((uintptr_t)m != a) {
		raw_munmap(m, e - a);
		r = -EEXIST;
	} else if (enter() == 0) {
		llock();
		holes_forget(a, e);
		lunlock();
		leave();
	}
	SK_ERRNO = saved;
	return r;
}

/* Marks k's entry removed; frees it (or keeps it as the spare) if mapped
 * nowhere, else the next placement collects it once the last mapping went
 * (mir_build, collect_ents). No syscall unless another user marks it mapped.
 * Table locked. */
SK_HOT_SPAN static void removed_locked(struct tab *t, const struct sk_span_key *k)
{
	int idx = find_ent(t, k, false);
	if (idx < 0)
		return;
	struct tab_ent *e = &t->ents[idx];
	atomic_fetch_or_explicit(&e->flags, ENTF_REMOVED, memory_order_relaxed);
	if (ent_done(t, e)) {
		ent_retire(t, idx);
	} else if (ent_collectable(t, e)) {
		/* Marked only by users that are gone: a mark that would keep
		 * it from being taken as the spare. */
		ent_free(t, idx);
		hwm_trim(t);
	}
}

/* Tells the table the SysV removals queued by sk_span_removed. Table
 * locked (tab_lock calls it), local lock not held. */
SK_HOT_SPAN static void pend_flush(struct tab *t)
{
	int ids[SK_ARRAY_SIZE(S.pend)], n;
	llock();
	n = S.npend;
	for (int i = 0; i < n; i++)   /* not memcpy: a libc call */
		ids[i] = S.pend[i];
	S.npend = 0;
	lunlock();
	for (int i = 0; i < n; i++) {
		struct sk_span_key k = { .kind = SK_SPAN_SYSV, .shmid = ids[i] };
		removed_locked(t, &k);
	}
}

/* A SysV removal is queued for the next table lock session (the next
 * placement's, usually): the create-attach-detach-remove cycle then takes
 * the table lock once, not twice. Until then the entry holds its range as
 * if still attached; a process that dies with removals queued leaves
 * entries whose segments are gone, which collect_ents frees. POSIX
 * removals carry a name and are told at once. */
SK_HOT_SPAN void sk_span_removed(const struct sk_span_key *k)
{
	if (!S.tab || enter() < 0)
		return;
	int saved = SK_ERRNO;
	bool queued = false;
	if (k->kind == SK_SPAN_SYSV) {
		llock();
		if (S.npend < (int)SK_ARRAY_SIZE(S.pend)) {
			S.pend[S.npend++] = k->shmid;
			queued = true;
		}
		lunlock();
	}
	/* The lock session tells the queue too. */
	if (!queued && tab_lock(S.tab) == 0) {
		removed_locked(S.tab, k);
		tab_unlock(S.tab);
	}
	leave();
	SK_ERRNO = saved;
}

void sk_span_flush(void)
{
	/* Racy reads, as hints: a removal queued meanwhile by another thread
	 * is told by its own next lock session or by sk_span_fini. */
	if (!S.tab || !S.npend || S.pid != (pid_t)syscall(SYS_getpid))
		return;   /* nothing queued, or a vfork child on our memory */
	if (enter() < 0)
		return;
	int saved = SK_ERRNO;
	if (tab_lock(S.tab) == 0) {   /* tells the queue */
		spare_drop(S.tab);    /* this image keeps nothing for later */
		tab_unlock(S.tab);
	}
	leave();
	SK_ERRNO = saved;
}

int sk_span_gc(void)
{
	if (!S.tab)
		return -ENOENT;
	int r = enter();
	if (r < 0)
		return r;
	int saved = SK_ERRNO;
	if ((r = tab_lock(S.tab)) == 0) {
		collect_users(S.tab);
		r = collect_ents(S.tab, false);
		tab_unlock(S.tab);
	}
	leave();
	SK_ERRNO = saved;
	return r;
}

/* Leaves the table; unlinks it when we were its last live user. Lock held. */
static bool leave_table(struct tab *t, const char *name)
{
	if (S.user >= 0) {
		user_clear(t, S.user);
		S.user = -1;
	}
	if (collect_users(t) > 0)
		return false;
	/* Unlink while still holding the lock, then mark it retired: anyone
	 * who opened the old inode sees TAB_DEAD under this lock and reopens
	 * by name. If unlink fails (another uid's file in sticky /dev/shm)
	 * the table stays live for the next user. */
	int opened = dir_get();
	int rc = opened < 0 ? -1 : (int)syscall(SYS_unlinkat, S.dirfd, name, 0);
	dir_put(opened);
	if (rc != 0)
		return false;
	/* release: pairs with the acquire load in open_table. */
	atomic_store_explicit(&t->state, TAB_DEAD, memory_order_release);
	return true;
}

/* Drops our spare (telling the queued removals) and leaves the table.
 * Inside enter(). */
static void leave_session(void)
{
	char name[128];
	if (sk_span_table_name(&S.cfg, name, sizeof name) > 0 && tab_lock(S.tab) == 0) {
		spare_drop(S.tab);
		leave_table(S.tab, name);
		tab_unlock(S.tab);
	}
}

void sk_span_fini(void)
{
	if (!S.tab || enter() < 0)
		return;
	int saved = SK_ERRNO;
	leave_session();
	raw_munmap(S.tab, TAB_SIZE);
	S.tab = NULL;
	S.mir.tab = NULL;
	leave();
	SK_ERRNO = saved;
}

/* The process ends without destructors (_exit, _Exit, a fatal signal's
 * default action): leaves the table as sk_span_fini does, so that the last
 * user still unlinks it (a fork child that _exits was the common case of a
 * table left in /dev/shm), but does not unmap it. Not in a vfork child,
 * which runs on our memory and would take our slot. */
void sk_span_exit(void)
{
	if (!S.tab || S.pid != (pid_t)syscall(SYS_getpid) || enter() < 0)
		return;
	int saved = SK_ERRNO;
	leave_session();
	leave();
	SK_ERRNO = saved;
}

int sk_span_table_collect(const char *name)
{
	int saved = SK_ERRNO, r;
	int dfd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/shm", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -SK_ERRNO;
	int fd = (int)syscall(SYS_openat, dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -SK_ERRNO;
		raw_close(dfd);
		SK_ERRNO = saved;
		return r;
	}
	struct stat st;
	struct tab *t = MAP_FAILED;
	if (syscall(SYS_fstat, fd, &st) == 0 && (uint64_t)st.st_size == TAB_SIZE)
		t = raw_mmap(NULL, TAB_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	raw_close(fd);
	if (t == MAP_FAILED) {
		raw_close(dfd);
		SK_ERRNO = saved;
		return -EBADMSG;
	}
	/* Borrow the process state for the checks (shmlba, span, our pid). */
	struct sk_span_cfg keep = S.cfg;
	int keep_dir = S.dirfd, keep_user = S.user;
	S.cfg.addr = t->span_addr;
	S.cfg.size = t->span_size;
	if (!S.shmlba)
		S.shmlba = shmlba();
	self_ids();
	S.dirfd = dfd;
	S.user = -1;
	r = hdr_valid(t) ? tab_lock(t) : -EBADMSG;
	if (r == 0) {
		r = leave_table(t, name) ? 1 : 0;
		tab_unlock(t);
	}
	S.cfg = keep;
	S.dirfd = keep_dir;
	S.user = keep_user;
	raw_munmap(t, TAB_SIZE);
	raw_close(dfd);
	SK_ERRNO = saved;
	return r;
}

int sk_span_stats(struct sk_span_stats *st)
{
	if (!S.tab)
		return -ENOENT;
	int r = enter();
	if (r < 0)
		return r;
	if ((r = tab_lock(S.tab)) == 0) {
		*st = (struct sk_span_stats){ 0 };
		for (unsigned i = 0; i < SK_SPAN_ENTS; i++) {
			struct tab_ent *e = &S.tab->ents[i];
			if (e->state != ENT_USED)
				continue;
			if (ent_done(S.tab, e))
				st->retired++;
			else
				st->entries++;
		}
		for (unsigned i = 0; i < SK_SPAN_USERS; i++)
			st->users += S.tab->users[i].pid != 0;
		st->repairs = S.tab->repairs;
		st->dropped = S.tab->dropped;
		st->gen = S.tab->gen;
		tab_unlock(S.tab);
	}
	leave();
	return r;
}

/* ---- fork ------------------------------------------------------------------ */

void sk_span_fork_prepare(void)
{
	llock();
}

void sk_span_fork_parent(void)
{
	lunlock();
}

/* What a child resets of its own copy, whichever table it goes on with. */
static void fork_child_local(void)
{
	atomic_store_explicit(&local_lock, 0, memory_order_relaxed);
	in_span = 0;
	atomic_store(&lk_users, 0);
	/* Read again when the child first opens the table: a child that
	 * never places pays no syscall here. */
	S.pid = 0;
	S.start = 0;
	S.lk_me = 0;
	S.user = -1;
	/* Another thread may have been halfway through changing it. */
	S.mir.tab = NULL;
	S.nrecheck = 0;
	S.recheck_lost = true;
	S.spare = 0;              /* the parent's */
	S.npend = 0;              /* the parent tells them */
	/* A claim in flight in another parent thread may or may not have been
	 * mapped before the fork: keep it as mapped, it only blocks placement. */
	for (int i = 0; i < S.hwm; i++)
		if (S.slots[i].state == L_CLAIM)
			S.slots[i].state = L_MAPPED;
}

void sk_span_fork_child(void)
{
	fork_child_local();
	if (!S.tab)
		return;
	self_ids();
	/* The table mapping is inherited; the child is a user of its own,
	 * marked on every entry it inherited a mapping of. */
	if (tab_lock(S.tab) != 0)
		return;
	if (register_user(S.tab) == 0)
		for (int i = 0; i < S.hwm; i++)
			if (S.slots[i].state != L_FREE && S.slots[i].ent >= 0 &&
			    S.slots[i].ent < SK_SPAN_ENTS)
				ent_mark(S.tab, S.slots[i].ent);
	tab_unlock(S.tab);
}

void sk_span_ipcns_child(void)
{
	fork_child_local();
	/* The inherited mappings stay where they are, foreign to the table
	 * this namespace's placements go in: they only block placement. */
	for (int i = 0; i < S.hwm; i++) {
		if (S.slots[i].state == L_FREE)
			continue;
		S.slots[i].ent = -1;
		S.slots[i].shmid = -1;
	}
	memset(S.cache, 0, sizeof S.cache);
	/* Not a user of the parent's table, which names the parent's
	 * namespace's shmids: its entries are neither ours nor stale. The
	 * next placement opens this namespace's (sk_span_table_name). */
	if (S.tab)
		raw_munmap(S.tab, TAB_SIZE);
	S.tab = NULL;
}

_Atomic uint64_t *sk_span_test_lock(void)
{
	return S.tab ? &S.tab->lock : NULL;
}

void sk_span_test_reset(void)
{
	if (S.tab)
		raw_munmap(S.tab, TAB_SIZE);
	if (S.dirfd >= 0)
		raw_close(S.dirfd);
	memset(&S, 0, sizeof S);
	S.dirfd = -1;
	S.user = -1;
	memset(&sk_span_g, 0, sizeof sk_span_g);
	atomic_store_explicit(&local_lock, 0, memory_order_relaxed);
	atomic_store(&lk_users, 0);
	atomic_store(&lk_stuck_until, 0);
	in_span = 0;
}
