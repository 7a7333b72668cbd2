/* diff_gen - a seeded random sequence of System V and POSIX shared-memory
 * calls, valid and invalid, for the differential transparency test (issue 8).
 *
 * Usage: diff_gen [-u UID:GID] [-p PREFIX] SEED COUNT
 *
 * Prints one line per call, "N call(args) -> ret errno", then a digest of the
 * namespace the sequence left behind (its SysV segments and its /dev/shm
 * objects), then removes what it created. tests/diff_transparency.sh runs the
 * same sequence raw and under LD_PRELOAD and compares the two outputs: they
 * must be identical.
 *
 * Values that legitimately differ between runs are printed as sequence-local
 * handles: a shmid as S<k> (k in order of first sight), an address the kernel
 * chose as A<k> (one per successful call), an address in the sequence's own
 * reserved region as R<slot>+off. fds are printed as numbers: the library
 * holds no fd, so they must be the same. errno is set to 9000 before each
 * call and printed after it, success or not: recording must not change it.
 *
 * Keys are PREFIX-derived; names are "/PREFIX-k", so parallel runs with
 * different prefixes do not meet. -u makes some calls in a forked child that
 * took another user's ids (permission denied cases).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SHM_HUGETLB
#define SHM_HUGETLB 04000
#endif
#ifndef SHM_NORESERVE
#define SHM_NORESERVE 010000
#endif
#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MARK_ERRNO 9000
#define NKEYS      8
#define NNAMES     6
#define NSLOTS     16
#define SLOT_PAGES 16
#define MAX_SEGS   4096
#define MAX_MAPS   4096
#define MAX_FDS    64
#define LIVE_SEGS  24
#define LIVE_FDS   24

static uint64_t rng;
static uint64_t rnd(void)
{
	/* splitmix64: any seed, a good stream, no state beyond one word. */
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
static unsigned pick(unsigned n) { return (unsigned)(rnd() % n); }
static int chance(unsigned pct) { return pick(100) < pct; }

static long page;
static char prefix[64];
static key_t key_base;
static unsigned long long shmmax;
static uid_t other_uid = (uid_t)-1;
static gid_t other_gid;
static int devnull = -1;
static char *R;                  /* NSLOTS * SLOT_PAGES pages, reserved PROT_NONE */
static size_t slot_len;
static unsigned long ncall;

/* ---- handles ---------------------------------------------------------- */

struct seg { int shmid; int key_idx; int removed; int huge; };
static struct seg segs[MAX_SEGS];
static unsigned nsegs;

struct map {
	char *addr;
	size_t len;
	int live;
	int slot;                /* R slot, or -1 when the kernel chose */
	int sysv;                /* 1: shmat attachment */
	int huge;                /* of a SHM_HUGETLB segment: see do_shmat */
	int idx;                 /* A<idx> for kernel-chosen ones */
};
static struct map maps[MAX_MAPS];
static unsigned nmaps, nkernel;
static int slot_map[NSLOTS]; /* live handle in the slot, or -1 */

struct fdh { int fd; int live; };
static struct fdh fds[MAX_FDS];
static unsigned nfds;

/* ---- output ----------------------------------------------------------- */

static char line[1024];
static size_t lat;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + lat, sizeof line - lat, fmt, ap);
	va_end(ap);
	if (n > 0)
		lat += (size_t)n < sizeof line - lat ? (size_t)n : sizeof line - lat - 1;
}

static const char *ename(int e)
{
	static char buf[16];
	if (e == MARK_ERRNO)
		return "-";
	const char *s = strerrorname_np(e);
	if (s)
		return s;
	snprintf(buf, sizeof buf, "E%d", e);
	return buf;
}

static void begin(const char *call)
{
	lat = 0;
	out("%lu %s(", ncall, call);
}

static void end_int(long ret, int e)
{
	out(") -> %ld %s\n", ret, ename(e));
	fputs(line, stdout);
}

/* ---- values ----------------------------------------------------------- */

static int seg_of(int shmid)
{
	for (unsigned i = 0; i < nsegs; i++)
		if (segs[i].shmid == shmid)
			return (int)i;
	return -1;
}

static void print_shmid(int shmid)
{
	int k = seg_of(shmid);
	if (k >= 0)
		out("S%d", k);
	else
		out("%d", shmid);
}

static void print_addr(const void *p)
{
	const char *a = p;
	if (!p) {
		out("NULL");
		return;
	}
	if (a >= R && a < R + NSLOTS * slot_len) {
		size_t o = (size_t)(a - R);
		out("R%zu+%#zx", o / slot_len, o % slot_len);
		return;
	}
	for (unsigned i = nmaps; i-- > 0;)
		if (maps[i].slot < 0 && a >= maps[i].addr && a < maps[i].addr + maps[i].len) {
			out("A%d+%#zx", maps[i].idx, (size_t)(a - maps[i].addr));
			return;
		}
	if (p == (void *)-1)
		out("-1");
	else
		out("?%s", ((uintptr_t)p & (uintptr_t)(page - 1)) ? "unaligned" : "");
}

static void reserve(char *addr, size_t len)
{
	if (mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		 -1, 0) == MAP_FAILED) {
		perror("diff_gen: reserve");
		exit(99);
	}
}

static int slot_of(const char *a)
{
	if (a >= R && a < R + NSLOTS * slot_len)
		return (int)((size_t)(a - R) / slot_len);
	return -1;
}

/* Something now occupies [a, a+len) in R: handles there are gone. */
static void slot_taken(int slot)
{
	if (slot >= 0 && slot_map[slot] >= 0) {
		maps[slot_map[slot]].live = 0;
		slot_map[slot] = -1;
	}
}

static int add_map(char *addr, size_t len, int sysv)
{
	if (nmaps == MAX_MAPS) {
		/* Compact: keep the live ones, in order. */
		unsigned j = 0;
		for (unsigned i = 0; i < nmaps; i++)
			if (maps[i].live)
				maps[j++] = maps[i];
		nmaps = j;
		for (int s = 0; s < NSLOTS; s++)
			slot_map[s] = -1;
		for (unsigned i = 0; i < nmaps; i++)
			if (maps[i].slot >= 0)
				slot_map[maps[i].slot] = (int)i;
		if (nmaps == MAX_MAPS)
			return -1;
	}
	struct map *m = &maps[nmaps];
	m->addr = addr;
	m->len = len;
	m->live = 1;
	m->sysv = sysv;
	m->huge = 0;
	m->slot = slot_of(addr);
	m->idx = m->slot < 0 ? (int)nkernel++ : -1;
	if (m->slot >= 0) {
		slot_taken(m->slot);
		slot_map[m->slot] = (int)nmaps;
	}
	return (int)nmaps++;
}

/* [a, a+len) was unmapped: put the reserve back where it is in R. */
static void unmapped(char *a, size_t len)
{
	char *lo = a < R ? R : a, *hi = a + len > R + NSLOTS * slot_len ?
		R + NSLOTS * slot_len : a + len;
	if (lo < hi)
		reserve(lo, (size_t)(hi - lo));
}

static int live_map(int sysv)      /* sysv: 1, 0, or -1 for either */
{
	unsigned live[64], n = 0;
	for (unsigned i = nmaps; i-- > 0 && n < 64;)
		if (maps[i].live && (sysv < 0 || maps[i].sysv == sysv))
			live[n++] = i;
	return n ? (int)live[pick(n)] : -1;
}

static int live_map_r(void)
{
	unsigned live[NSLOTS], n = 0;
	for (int s = 0; s < NSLOTS; s++)
		if (slot_map[s] >= 0)
			live[n++] = (unsigned)slot_map[s];
	return n ? (int)live[pick(n)] : -1;
}

static size_t pick_size(void)
{
	static const size_t sizes[] = { 1, 4096, 4097, 8192, 16384, 65536, 100 };
	return sizes[pick(sizeof sizes / sizeof *sizes)];
}

static int pick_shmid(int *k)
{
	unsigned r = pick(100);
	*k = -1;
	if (r < 80 && nsegs) {
		/* Prefer live ones. */
		for (int tries = 0; tries < 4; tries++) {
			int i = (int)pick(nsegs);
			*k = i;
			if (!segs[i].removed)
				break;
		}
		return segs[*k].shmid;
	}
	if (r < 90)
		return -1;
	return INT_MAX;
}

static unsigned live_segs(void)
{
	unsigned n = 0;
	for (unsigned i = 0; i < nsegs; i++)
		n += !segs[i].removed;
	return n;
}

/* ---- names ------------------------------------------------------------ */

static char longname[400], maxname[300];

static const char *pick_name(char buf[128])
{
	unsigned r = pick(100);
	unsigned k = pick(NNAMES);
	if (r < 60)
		snprintf(buf, 128, "/%s-%u", prefix, k);
	else if (r < 70)
		snprintf(buf, 128, "%s-%u", prefix, k);           /* no slash */
	else if (r < 75)
		snprintf(buf, 128, "//%s-%u", prefix, k);         /* two slashes */
	else if (r < 80)
		snprintf(buf, 128, "/%s/%u", prefix, k);          /* inner slash */
	else if (r < 84)
		return longname;                                   /* > NAME_MAX */
	else if (r < 88)
		return maxname;                                    /* == NAME_MAX */
	else if (r < 91)
		return "/";
	else if (r < 94)
		return "";
	else if (r < 97)
		snprintf(buf, 128, "/%s-missing", prefix);
	else
		snprintf(buf, 128, "/%s-%u/", prefix, k);         /* trailing slash */
	return buf;
}

static void print_name(const char *n)
{
	if (n == longname)
		out("LONG");
	else if (n == maxname)
		out("NAME_MAX");
	else {
		size_t pl = strlen(prefix);
		const char *p = strstr(n, prefix);
		if (p) /* the prefix differs from run to run of the driver: hide it */
			out("\"%.*sP%s\"", (int)(p - n), n, p + pl);
		else
			out("\"%s\"", n);
	}
}

/* ---- fds -------------------------------------------------------------- */

static int pick_fd(void)
{
	unsigned r = pick(100);
	if (r < 75 && nfds) {
		for (int tries = 0; tries < 4; tries++) {
			unsigned i = pick(nfds);
			if (fds[i].live || tries == 3)
				return fds[i].fd;
		}
	}
	if (r < 85 && nfds)
		return fds[pick(nfds)].fd;      /* maybe stale */
	if (r < 92)
		return devnull;
	return -1;
}

static void fd_closed(int fd)
{
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i].fd == fd)
			fds[i].live = 0;
}

static void fd_opened(int fd)
{
	if (fd < 0)
		return;
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i].fd == fd) {
			fds[i].live = 1;
			return;
		}
	if (nfds < MAX_FDS) {
		fds[nfds].fd = fd;
		fds[nfds].live = 1;
		nfds++;
	} else
		close(fd);
}

static unsigned live_fds(void)
{
	unsigned n = 0;
	for (unsigned i = 0; i < nfds; i++)
		n += fds[i].live;
	return n;
}

/* ---- the calls -------------------------------------------------------- */

static int mode_pick(void)
{
	static const int m[] = { 0600, 0644, 0400, 0, 0777, 0640, 0606 };
	return m[pick(sizeof m / sizeof *m)];
}

static void do_shmget(void)
{
	int ki = chance(20) ? -1 : (int)pick(NKEYS);
	key_t key = ki < 0 ? IPC_PRIVATE : key_base + ki;
	size_t size;
	unsigned r = pick(100);
	if (r < 8)
		size = 0;
	else if (r < 11)
		size = shmmax < ULLONG_MAX ? (size_t)shmmax + 1 : SIZE_MAX;
	else if (r < 13)
		size = SIZE_MAX;
	else
		size = pick_size();
	int flg = mode_pick();
	if (chance(70)) flg |= IPC_CREAT;
	if (chance(25)) flg |= IPC_EXCL;
	if (chance(3)) flg |= SHM_HUGETLB;
	if (chance(10)) flg |= SHM_NORESERVE;
	if (nsegs >= MAX_SEGS - 1)
		flg &= ~IPC_CREAT;                  /* every segment made is tracked */
	if (live_segs() >= LIVE_SEGS && (flg & IPC_CREAT))
		flg |= IPC_EXCL, ki = ki < 0 ? 0 : ki, key = key_base + ki;  /* no new ones */
	begin("shmget");
	if (ki < 0)
		out("IPC_PRIVATE");
	else
		out("K%d", ki);
	if (size == SIZE_MAX)
		out(", SIZE_MAX");
	else if (size == (size_t)shmmax + 1)
		out(", SHMMAX+1");
	else
		out(", %zu", size);
	out(", %#o", flg);
	errno = MARK_ERRNO;
	int ret = shmget(key, size, flg);
	int e = errno;
	if (ret >= 0 && seg_of(ret) < 0 && nsegs < MAX_SEGS) {
		segs[nsegs].shmid = ret;
		segs[nsegs].key_idx = ki;
		segs[nsegs].removed = 0;
		segs[nsegs].huge = (flg & SHM_HUGETLB) != 0;
		nsegs++;
	}
	out(") -> ");
	if (ret >= 0)
		print_shmid(ret);
	else
		out("%d", ret);
	out(" %s\n", ename(e));
	fputs(line, stdout);
}

static void end_ptr(void *ret, int e)
{
	out(") -> ");
	print_addr(ret);
	out(" %s\n", ename(e));
	fputs(line, stdout);
}

static void do_shmat(void)
{
	int k, shmid = pick_shmid(&k);
	int slot = (int)pick(NSLOTS);
	char *addr = NULL;
	unsigned r = pick(100);
	int flg = 0;
	if (chance(15)) flg |= SHM_RDONLY;
	if (chance(25)) flg |= SHM_RND;
	if (chance(35)) flg |= SHM_REMAP;
	if (chance(3)) flg |= SHM_EXEC;
	if (r < 45)
		addr = NULL;
	else if (r < 75)
		addr = R + (size_t)slot * slot_len;
	else if (r < 88)
		addr = R + (size_t)slot * slot_len + 1 + pick(4095);   /* unaligned */
	else {
		/* Over a mapping: one in R, where nothing else can be clobbered. */
		int m = live_map_r();
		addr = m >= 0 ? maps[m].addr : R + (size_t)slot * slot_len;
	}
	/* A SHM_HUGETLB segment is mapped a huge page long, more than a slot
	 * of R, whatever its size (shmget succeeds with SHM_NORESERVE and no
	 * huge pages set aside): only where the kernel chooses, never over R,
	 * whose slots the generator keeps track of page by page (seed
	 * 1795456396 mapped 2 MiB over R's first slots, and the reserve put
	 * back after an mremap there failed with EINVAL, raw). */
	int huge = k >= 0 && segs[k].huge;
	if (huge)
		addr = NULL;
	begin("shmat");
	print_shmid(shmid);
	out(", ");
	print_addr(addr);
	out(", %#o", flg);
	errno = MARK_ERRNO;
	void *ret = shmat(shmid, addr, flg);
	int e = errno;
	if (ret != (void *)-1) {
		struct shmid_ds ds;
		size_t len = 0;
		if (shmctl(shmid, IPC_STAT, &ds) == 0)
			len = (ds.shm_segsz + (size_t)page - 1) & ~(size_t)(page - 1);
		/* A mapping the attachment replaced is gone. */
		for (unsigned i = 0; i < nmaps; i++)
			if (maps[i].live && maps[i].slot < 0 && (char *)ret < maps[i].addr + maps[i].len &&
			    (char *)ret + len > maps[i].addr)
				maps[i].live = 0;
		int n = add_map(ret, len, 1);
		if (n >= 0)
			maps[n].huge = huge;
	}
	end_ptr(ret, e);
}

static void do_shmdt(void)
{
	unsigned r = pick(100);
	int m = -1;
	char *addr;
	if (r < 60 && (m = live_map(1)) >= 0)
		addr = maps[m].addr;
	else if (r < 75) {
		m = live_map(-1);
		addr = m >= 0 ? maps[m].addr + (chance(50) ? 1 : 0) : R + 1;
		m = -1;
	} else
		addr = R + (size_t)pick(NSLOTS) * slot_len + (chance(30) ? 3 : 0);
	for (int twice = 0; twice < 2; twice++) {
		begin("shmdt");
		print_addr(addr);
		errno = MARK_ERRNO;
		int ret = shmdt(addr);
		int e = errno;
		if (ret == 0) {
			/* Detached: every handle that started there. */
			for (unsigned i = 0; i < nmaps; i++)
				if (maps[i].live && maps[i].sysv && maps[i].addr == addr) {
					maps[i].live = 0;
					if (maps[i].slot >= 0) {
						slot_map[maps[i].slot] = -1;
						unmapped(maps[i].addr, slot_len);
					}
				}
		}
		end_int(ret, e);
		/* A double detach, right away, before anything can be mapped there. */
		if (ret != 0 || !chance(30))
			break;
	}
}

static void print_ds(const struct shmid_ds *ds)
{
	out(" {size=%zu mode=%#o nattch=%lu}", (size_t)ds->shm_segsz,
	    (unsigned)ds->shm_perm.mode, (unsigned long)ds->shm_nattch);
}

static void do_shmctl(void)
{
	static const int cmds[] = { IPC_STAT, IPC_STAT, IPC_SET, IPC_RMID, IPC_RMID, SHM_LOCK,
				    SHM_UNLOCK, IPC_INFO, SHM_INFO, SHM_STAT, SHM_STAT_ANY, 99 };
	int cmd = cmds[pick(sizeof cmds / sizeof *cmds)];
	int k, shmid = pick_shmid(&k);
	struct shmid_ds ds;
	memset(&ds, 0, sizeof ds);
	struct shmid_ds *buf = &ds;
	unsigned r = pick(100);
	if (r < 4)
		buf = NULL;
	else if (r < 7)
		buf = (struct shmid_ds *)(void *)R;     /* PROT_NONE: EFAULT */
	int arg = shmid;
	/* By index: only a live segment's (a removed one's index may already
	 * hold anyone's segment); the index is the id's low 15 bits. */
	if (cmd == SHM_STAT || cmd == SHM_STAT_ANY)
		arg = k >= 0 && !segs[k].removed ? shmid & 0x7fff : -1;
	if (cmd == IPC_SET && buf == &ds) {
		if (shmctl(shmid, IPC_STAT, &ds) < 0)
			memset(&ds, 0, sizeof ds);
		ds.shm_perm.mode = (unsigned short)mode_pick();
	}
	begin("shmctl");
	if (cmd == SHM_STAT || cmd == SHM_STAT_ANY)
		out("idx(%s)", arg < 0 ? "bad" : "own");
	else
		print_shmid(shmid);
	out(", %d, %s", cmd, buf == &ds ? "buf" : buf ? "PROT_NONE" : "NULL");
	if (cmd == IPC_SET && buf == &ds)
		out(" mode=%#o", (unsigned)ds.shm_perm.mode);
	errno = MARK_ERRNO;
	int ret = shmctl(arg, cmd, buf);
	int e = errno;
	out(") -> ");
	if (ret < 0)
		out("%d", ret);
	else if (cmd == IPC_INFO || cmd == SHM_INFO)
		out("ok");                       /* the highest index in use: everyone's */
	else if (cmd == SHM_STAT || cmd == SHM_STAT_ANY)
		print_shmid(ret);
	else
		out("%d", ret);
	out(" %s", ename(e));
	if (ret >= 0 && buf == &ds && (cmd == IPC_STAT || cmd == SHM_STAT || cmd == SHM_STAT_ANY))
		print_ds(&ds);
	if (ret >= 0 && cmd == IPC_RMID && k >= 0) {
		/* Removed now, or when the last attachment goes. */
		segs[k].removed = 1;
	}
	out("\n");
	fputs(line, stdout);
}

static void do_shm_open(void)
{
	char buf[128];
	const char *name = pick_name(buf);
	static const int acc[] = { O_RDONLY, O_RDWR, O_RDWR, O_WRONLY };
	int of = acc[pick(4)];
	if (chance(60)) of |= O_CREAT;
	if (chance(25)) of |= O_EXCL;
	if (chance(15)) of |= O_TRUNC;
	if (chance(5)) of |= O_NONBLOCK;
	if (chance(5)) of |= O_APPEND;
	if (chance(5)) of |= O_CLOEXEC;
	mode_t mode = (mode_t)mode_pick();
	if (live_fds() >= LIVE_FDS) {
		/* Keep the table small: close one first (not printed: a plain close). */
		for (unsigned i = 0; i < nfds; i++)
			if (fds[i].live) {
				close(fds[i].fd);
				fds[i].live = 0;
				break;
			}
	}
	begin("shm_open");
	print_name(name);
	out(", %#o, %#o", of, mode);
	errno = MARK_ERRNO;
	int ret = shm_open(name, of, mode);
	int e = errno;
	fd_opened(ret);
	end_int(ret, e);
}

static void do_shm_unlink(void)
{
	char buf[128];
	const char *name = pick_name(buf);
	begin("shm_unlink");
	print_name(name);
	errno = MARK_ERRNO;
	int ret = shm_unlink(name);
	end_int(ret, errno);
}

static void do_resize(void)
{
	int fd = pick_fd();
	static const off_t sizes[] = { 0, 4096, 8192, 65536, 12345, -1, (off_t)1 << 40, 1 };
	off_t a = sizes[pick(8)], b = sizes[pick(6)];
	unsigned which = pick(3);
	if (which == 0) {
		begin("ftruncate");
		out("%d, %jd", fd, (intmax_t)a);
		errno = MARK_ERRNO;
		int ret = ftruncate(fd, a);
		end_int(ret, errno);
	} else if (which == 1) {
		static const int modes[] = { 0, FALLOC_FL_KEEP_SIZE,
					     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					     FALLOC_FL_PUNCH_HOLE, 0x100 };
		int mode = modes[pick(5)];
		if (a > 65536) a = 4096;   /* tmpfs really allocates */
		if (b > 65536) b = 65536;
		begin("fallocate");
		out("%d, %#x, %jd, %jd", fd, mode, (intmax_t)a, (intmax_t)b);
		errno = MARK_ERRNO;
		int ret = fallocate(fd, mode, a, b);
		end_int(ret, errno);
	} else {
		if (a > 65536) a = 4096;
		if (b > 65536) b = 65536;
		begin("posix_fallocate");
		out("%d, %jd, %jd", fd, (intmax_t)a, (intmax_t)b);
		errno = MARK_ERRNO;
		int ret = posix_fallocate(fd, a, b);
		end_int(ret, errno);
	}
}

static void do_mmap(void)
{
	int fd = pick_fd();
	static const size_t lens[] = { 4096, 4096, 8192, 65536, 0, 5000 };
	size_t len = lens[pick(6)];
	static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE,
				     PROT_NONE, PROT_READ | PROT_WRITE | PROT_EXEC };
	int prot = prots[pick(5)];
	static const int types[] = { MAP_SHARED, MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE,
				     MAP_SHARED | MAP_ANONYMOUS, MAP_PRIVATE | MAP_ANONYMOUS, 0 };
	int flags = types[pick(7)];
	char *addr = NULL;
	int slot = (int)pick(NSLOTS);
	unsigned r = pick(100);
	if (r < 35)
		addr = R + (size_t)slot * slot_len, flags |= MAP_FIXED;
	else if (r < 40)
		addr = R + (size_t)slot * slot_len, flags |= MAP_FIXED_NOREPLACE;
	else if (r < 43)
		addr = R + (size_t)slot * slot_len + 7, flags |= MAP_FIXED;
	static const off_t offs[] = { 0, 0, 0, 4096, 1, -4096 };
	off_t off = offs[pick(6)];
	if (addr && len > slot_len)
		len = slot_len;
	begin("mmap");
	print_addr(addr);
	out(", %zu, %d, %#x, %d, %jd", len, prot, flags, fd, (intmax_t)off);
	errno = MARK_ERRNO;
	char *ret = mmap(addr, len, prot, flags, fd, off);
	int e = errno;
	if (ret != MAP_FAILED)
		add_map(ret, (len + (size_t)page - 1) & ~(size_t)(page - 1), 0);
	end_ptr(ret, e);
}

static void do_munmap(void)
{
	int m = live_map(-1);
	char *addr;
	size_t len;
	unsigned r = pick(100);
	int whole = 0;
	if (m >= 0 && r < 60) {
		addr = maps[m].addr;
		len = maps[m].len;
		whole = 1;
		if (maps[m].slot >= 0 && maps[m].len > (size_t)page && chance(30)) {
			/* Part of it: R only (a hole elsewhere could take a later mapping). */
			addr += page;
			len = (size_t)page;
			whole = 0;
		}
	} else if (r < 80) {
		addr = R + (size_t)pick(NSLOTS) * slot_len;       /* a reserve: fine */
		len = (size_t)page * (1 + pick(SLOT_PAGES));
	} else if (r < 90) {
		addr = R + 5;
		len = (size_t)page;
	} else {
		addr = R;
		len = 0;
	}
	begin("munmap");
	print_addr(addr);
	out(", %zu", len);
	errno = MARK_ERRNO;
	int ret = munmap(addr, len);
	int e = errno;
	if (ret == 0) {
		if (m >= 0 && whole && maps[m].slot < 0)
			maps[m].live = 0;
		/* Any handle in an R slot touched is gone or damaged: drop it. */
		int s0 = slot_of(addr), s1 = slot_of(addr + len - 1);
		for (int s = s0; s >= 0 && s <= s1; s++)
			slot_taken(s);
		unmapped(addr, len);
	}
	end_int(ret, e);
}

static void do_mremap(void)
{
	int m = live_map(-1);
	if (m < 0)
		return;
	struct map old = maps[m];
	if (old.huge)
		return;        /* moved or resized it would not be a page-sized map */
	size_t nl;
	int flags = 0;
	char *target = NULL;
	unsigned r = pick(100);
	size_t ol = old.len;
	if (r < 20)
		nl = old.len > (size_t)page ? old.len - (size_t)page : old.len;   /* shrink */
	else if (r < 35) {
		nl = old.len + (size_t)page;                    /* grow in place */
		if (old.slot < 0)
			flags = MREMAP_MAYMOVE;                 /* its neighbour is unknown */
	} else if (r < 55) {
		nl = old.len + (size_t)page;
		flags = MREMAP_MAYMOVE;
	} else if (r < 75) {
		nl = old.len;
		flags = MREMAP_MAYMOVE | MREMAP_FIXED;
		int s = (int)pick(NSLOTS);
		target = R + (size_t)s * slot_len;
		if (old.slot == s)
			target = NULL, flags = MREMAP_MAYMOVE;
	} else if (r < 85) {
		ol = 0;                                          /* duplicate */
		nl = old.len;
		flags = MREMAP_MAYMOVE;
	} else if (r < 92) {
		nl = old.len;
		flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
	} else {
		nl = old.len;
		flags = 0x40;                                    /* invalid */
	}
	if (nl > slot_len && (old.slot >= 0 || target))
		nl = slot_len;
	/* Growing a SysV attachment whose neighbour is not the generator's
	 * moves it or not depending on the address layout (ASLR, and the
	 * library's own mappings), and shmdt of it later succeeds or fails
	 * accordingly: a layout question, not a transparency one (seed
	 * 1795422517 differed raw against raw). Keep its size. */
	if (old.sysv && old.slot < 0 && !target && nl > old.len)
		nl = old.len;
	begin("mremap");
	print_addr(old.addr);
	out(", %zu, %zu, %#x, ", ol, nl, flags);
	print_addr(target);
	errno = MARK_ERRNO;
	char *ret = mremap(old.addr, ol, nl, flags, target);
	int e = errno;
	if (ret != MAP_FAILED) {
		/* Whether the kernel grew a mapping it placed in place or moved
		 * it depends on the layout (the library's own mappings change
		 * it): such a result is a new handle either way. */
		int moved = ret != old.addr || (old.slot < 0 && !target && nl > old.len);
		if (moved && ol && !(flags & MREMAP_DONTUNMAP)) {
			maps[m].live = 0;
			if (old.slot >= 0) {
				slot_map[old.slot] = -1;
				unmapped(old.addr, slot_len);
			}
		} else if (!moved) {
			if (nl < old.len && old.slot >= 0)
				unmapped(old.addr + nl, old.len - nl);
			maps[m].len = nl;
		}
		if (moved) {
			/* DONTUNMAP leaves the old range mapped (empty): it stays a handle. */
			int n = add_map(ret, nl, old.sysv);
			(void)n;
		}
	}
	end_ptr(ret, e);
}

static void do_fdcall(void)
{
	int fd = pick_fd();
	unsigned r = pick(100);
	int ret, e;
	if (r < 30) {
		begin("close");
		out("%d", fd == devnull ? -1 : fd);
		errno = MARK_ERRNO;
		ret = close(fd == devnull ? -1 : fd);
		e = errno;
		if (fd != devnull)
			fd_closed(fd);
		end_int(ret, e);
	} else if (r < 45) {
		begin("dup");
		out("%d", fd);
		errno = MARK_ERRNO;
		ret = dup(fd);
		e = errno;
		if (ret >= 0 && fd == devnull)
			close(ret), ret = -2;          /* keep only shm fds */
		else
			fd_opened(ret);
		end_int(ret, e);
	} else if (r < 65) {
		int nfd = chance(50) ? pick_fd() : 40 + (int)pick(8);
		if (nfd == devnull || nfd < 0)
			nfd = chance(50) ? 40 + (int)pick(8) : -1;
		int three = chance(40);
		int fl = three ? (chance(70) ? O_CLOEXEC : 0x1) : 0;
		begin(three ? "dup3" : "dup2");
		out("%d, %d", fd, nfd);
		if (three)
			out(", %#x", fl);
		errno = MARK_ERRNO;
		ret = three ? dup3(fd, nfd, fl) : dup2(fd, nfd);
		e = errno;
		if (ret >= 0) {
			if (fd == devnull)
				fd_closed(ret);          /* now /dev/null: not ours */
			else
				fd_opened(ret);
		}
		end_int(ret, e);
		if (ret >= 0 && fd == devnull)
			close(ret);
	} else if (r < 80) {
		static const int cmds[] = { F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL, F_SETFD };
		int cmd = cmds[pick(5)];
		long arg = cmd == F_SETFD ? FD_CLOEXEC : cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC ?
			   30 + (long)pick(20) : 0;
		begin("fcntl");
		out("%d, %d, %ld", fd, cmd, arg);
		errno = MARK_ERRNO;
		ret = fcntl(fd, cmd, arg);
		e = errno;
		if (ret >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) {
			if (fd == devnull)
				close(ret), ret = -2;
			else
				fd_opened(ret);
		}
		end_int(ret, e);
	} else {
		/* close_range over one of ours, over all of ours, or bad. */
		unsigned first, last;
		int fl = 0;
		unsigned rr = pick(100);
		if (fd < 0 || fd == devnull)
			fd = 1000;
		if (rr < 50)
			first = last = (unsigned)fd;
		else if (rr < 75)
			first = (unsigned)devnull + 1, last = ~0u;
		else if (rr < 90)
			first = (unsigned)fd + 1, last = (unsigned)fd;   /* EINVAL */
		else
			first = last = (unsigned)fd;
		if (rr >= 90)
			fl = chance(50) ? CLOSE_RANGE_CLOEXEC : 0x80;
		begin("close_range");
		if (last == ~0u)
			out("%u, ~0, %#x", first, fl);
		else
			out("%u, %u, %#x", first, last, fl);
		errno = MARK_ERRNO;
		ret = close_range(first, last, fl);
		e = errno;
		if (ret == 0 && !(fl & CLOSE_RANGE_CLOEXEC))
			for (unsigned i = 0; i < nfds; i++)
				if ((unsigned)fds[i].fd >= first && (unsigned)fds[i].fd <= last)
					fds[i].live = 0;
		end_int(ret, e);
	}
}

/* A call made as another user, in a child: EACCES and EPERM cases. */
static void do_as_other(void)
{
	if (other_uid == (uid_t)-1)
		return;
	int k, shmid = pick_shmid(&k);
	char buf[128];
	const char *name = pick_name(buf);
	unsigned op = pick(6);
	int ki = (int)pick(NKEYS);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("diff_gen: fork");
		exit(99);
	}
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(other_gid, other_gid, other_gid) < 0 ||
		    setresuid(other_uid, other_uid, other_uid) < 0) {
			perror("diff_gen: setresuid");
			_exit(99);
		}
		int ret, e;
		lat = 0;
		switch (op) {
		case 0:
			out("%lu other.shmget(K%d, 0, 0", ncall, ki);
			errno = MARK_ERRNO;
			ret = shmget(key_base + ki, 0, 0);
			e = errno;
			out(") -> %s %s\n", ret >= 0 ? "id" : "-1", ename(e));
			break;
		case 1: {
			out("%lu other.shmat(", ncall);
			print_shmid(shmid);
			out(", NULL, 0");
			errno = MARK_ERRNO;
			void *p = shmat(shmid, NULL, 0);
			e = errno;
			out(") -> %s %s\n", p != (void *)-1 ? "addr" : "-1", ename(e));
			break;
		}
		case 2: {
			struct shmid_ds ds;
			out("%lu other.shmctl(", ncall);
			print_shmid(shmid);
			out(", IPC_STAT");
			errno = MARK_ERRNO;
			ret = shmctl(shmid, IPC_STAT, &ds);
			out(") -> %d %s\n", ret, ename(errno));
			break;
		}
		case 3:
			out("%lu other.shmctl(", ncall);
			print_shmid(shmid);
			out(", IPC_RMID");
			errno = MARK_ERRNO;
			ret = shmctl(shmid, IPC_RMID, NULL);
			out(") -> %d %s\n", ret, ename(errno));
			break;
		case 4:
			out("%lu other.shm_open(", ncall);
			print_name(name);
			out(", O_RDWR");
			errno = MARK_ERRNO;
			ret = shm_open(name, O_RDWR, 0);
			out(") -> %s %s\n", ret >= 0 ? "fd" : "-1", ename(errno));
			break;
		default:
			out("%lu other.shm_unlink(", ncall);
			print_name(name);
			errno = MARK_ERRNO;
			ret = shm_unlink(name);
			out(") -> %d %s\n", ret, ename(errno));
			break;
		}
		fputs(line, stdout);
		fflush(stdout);
		_exit(0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "diff_gen: the other user's child failed (status %#x)\n", st);
		exit(99);
	}
	/* The child may have removed a segment or a name: what is removed is
	 * found out by the calls that follow, in both runs alike. */
}

/* ---- digest and cleanup ----------------------------------------------- */

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void digest(void)
{
	printf("digest\n");
	for (unsigned i = 0; i < nsegs; i++) {
		struct shmid_ds ds;
		if (shmctl(segs[i].shmid, IPC_STAT, &ds) < 0) {
			printf("seg S%u gone %s\n", i, ename(errno));
			continue;
		}
		int ki = -1;
		if (ds.shm_perm.__key != IPC_PRIVATE)
			ki = ds.shm_perm.__key - key_base;
		printf("seg S%u key=%d size=%zu mode=%#o nattch=%lu\n", i, ki,
		       (size_t)ds.shm_segsz, (unsigned)ds.shm_perm.mode,
		       (unsigned long)ds.shm_nattch);
	}
	/* Any segment with one of our keys that we did not see created. */
	FILE *f = fopen("/proc/sysvipc/shm", "r");
	char buf[512];
	while (f && fgets(buf, sizeof buf, f)) {
		long long key;
		int shmid;
		if (sscanf(buf, "%lld %d", &key, &shmid) != 2)
			continue;
		if (key >= key_base && key < key_base + NKEYS && seg_of(shmid) < 0)
			printf("unknown segment with key K%lld\n", key - key_base);
	}
	if (f)
		fclose(f);
	DIR *d = opendir("/dev/shm");
	char *names[256];
	unsigned n = 0;
	struct dirent *de;
	size_t pl = strlen(prefix);
	while (d && (de = readdir(d)) && n < 256)
		if (strncmp(de->d_name, prefix, pl) == 0)
			names[n++] = strdup(de->d_name);
	if (d)
		closedir(d);
	qsort(names, n, sizeof *names, by_str);
	for (unsigned i = 0; i < n; i++) {
		struct stat st;
		char path[512];
		snprintf(path, sizeof path, "/dev/shm/%s", names[i]);
		if (stat(path, &st) == 0) {
			lat = 0;
			print_name(names[i]);
			printf("obj %s size=%jd mode=%#o\n", line, (intmax_t)st.st_size,
			       (unsigned)st.st_mode & 07777);
		}
	}
	fflush(stdout);
	/* Clean up, silently. */
	for (unsigned i = 0; i < nsegs; i++)
		shmctl(segs[i].shmid, IPC_RMID, NULL);
	for (unsigned i = 0; i < n; i++) {
		shm_unlink(names[i]);
		free(names[i]);
	}
}

/* Removes what an earlier, killed run with the same prefix left. */
static void sweep(void)
{
	for (int k = 0; k < NKEYS; k++) {
		int id = shmget(key_base + k, 0, 0);
		if (id >= 0)
			shmctl(id, IPC_RMID, NULL);
	}
	char buf[128];
	for (int k = 0; k < NNAMES; k++) {
		snprintf(buf, sizeof buf, "/%s-%d", prefix, k);
		shm_unlink(buf);
	}
	shm_unlink(maxname);
}

int main(int argc, char **argv)
{
	int opt;
	snprintf(prefix, sizeof prefix, "shmkd%d", (int)getpid());
	while ((opt = getopt(argc, argv, "u:p:")) != -1) {
		if (opt == 'u') {
			unsigned u, g;
			if (sscanf(optarg, "%u:%u", &u, &g) != 2)
				goto usage;
			other_uid = u;
			other_gid = g;
		} else if (opt == 'p')
			snprintf(prefix, sizeof prefix, "%s", optarg);
		else
			goto usage;
	}
	if (argc - optind != 2) {
usage:
		fprintf(stderr, "usage: diff_gen [-u UID:GID] [-p PREFIX] SEED COUNT\n");
		return 2;
	}
	uint64_t seed = strtoull(argv[optind], NULL, 0);
	unsigned long count = strtoul(argv[optind + 1], NULL, 0);
	rng = seed;
	page = sysconf(_SC_PAGESIZE);
	slot_len = (size_t)page * SLOT_PAGES;
	/* Keys from the prefix: FNV-1a, kept clear of 0 and of the top bit. */
	uint32_t h = 2166136261u;
	for (const char *p = prefix; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	key_base = (key_t)((h & 0x3ffffff0u) | 0x10000000u);
	FILE *f = fopen("/proc/sys/kernel/shmmax", "r");
	if (!f || fscanf(f, "%llu", &shmmax) != 1)
		shmmax = ULLONG_MAX;
	if (f)
		fclose(f);
	/* A name of exactly NAME_MAX bytes after the slash, and one longer. */
	maxname[0] = '/';
	snprintf(maxname + 1, sizeof maxname - 1, "%s-", prefix);
	memset(maxname + strlen(maxname), 'm', 256 - strlen(maxname));
	maxname[256] = '\0';
	longname[0] = '/';
	memset(longname + 1, 'l', 300);
	longname[301] = '\0';
	for (int s = 0; s < NSLOTS; s++)
		slot_map[s] = -1;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* R lies far below where the kernel places mappings (top-down from
	 * mmap_base), so that no kernel-chosen address ever lands in one of its
	 * holes, whatever the layout: 0x567000000000 is also clear of ASan's
	 * shadow and inside TSan's application range. */
	R = mmap((void *)0x567000000000ul, NSLOTS * slot_len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (R == MAP_FAILED)
		R = mmap(NULL, NSLOTS * slot_len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (R == MAP_FAILED || devnull < 0) {
		perror("diff_gen");
		return 99;
	}
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	sweep();
	printf("seed %" PRIu64 " count %lu\n", seed, count);
	for (ncall = 0; ncall < count; ncall++) {
		unsigned r = pick(1000);
		if (r < 130) do_shmget();
		else if (r < 260) do_shmat();
		else if (r < 360) do_shmdt();
		else if (r < 470) do_shmctl();
		else if (r < 560) do_shm_open();
		else if (r < 610) do_shm_unlink();
		else if (r < 700) do_resize();
		else if (r < 800) do_mmap();
		else if (r < 860) do_munmap();
		else if (r < 900) do_mremap();
		else if (r < 995) do_fdcall();
		else do_as_other();
	}
	digest();
	return 0;
}
