/* Unit tests of the span: reservation, placement table, local slots.
 * core/ is called directly, the way the preload wrappers will call it
 * (core/span.h, integration note). Each test uses a span of its own, so that
 * Criterion's parallel workers never share a table. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "core/span.h"

#define SPAN_SIZE (1ull << 30)

static struct sk_span_cfg cfg_for(unsigned n, enum sk_span_policy pol)
{
	/* 32 TiB + 2n GiB (clear of PIE text at 0x55.., libraries at 0x7f..,
	 * the default span at 64 TiB and rsz searches at 48 TiB), shifted by the runner's pid (Criterion forks a
	 * worker per test) so that two runs of the suite at once do not meet. */
	uint64_t a = 0x200000000000ull + ((uint64_t)n * 2 + (uint64_t)(getppid() % 256) * 32) * SPAN_SIZE;
	return (struct sk_span_cfg){ .addr = a, .size = SPAN_SIZE, .policy = pol };
}

/* Where placements begin: one SHMLBA into the span (the guard, core/span.c
 * mir_fit). */
static uint64_t lba(void)
{
	uint64_t l = SHMLBA, pg = (uint64_t)sysconf(_SC_PAGESIZE);
	return l > pg ? l : pg;
}
#define FIRST(c) ((c).addr + lba())

static struct sk_span_cfg start(unsigned n, enum sk_span_policy pol)
{
	struct sk_span_cfg c = cfg_for(n, pol);
	sk_span_test_reset();
	cr_assert_eq(sk_span_init(&c), 0, "reserve %#lx", (unsigned long)c.addr);
	return c;
}

static int mkseg(size_t size)
{
	int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
	cr_assert_geq(id, 0, "shmget: %s", strerror(errno));
	return id;
}

/* What a wrapper does for shmat(id, NULL, 0). */
static void *attach(int id, int *err)
{
	struct sk_span_key k = { .kind = SK_SPAN_SYSV, .shmid = id };
	struct sk_span_ticket t;
	void *a;
	int r = sk_span_place(&k, 0, 0, &t, &a);
	if (err)
		*err = r;
	if (r < 0)
		return NULL;
	void *p = shmat(id, a, t.hole ? 0 : SHM_REMAP);
	sk_span_commit(&t, p != (void *)-1);
	cr_assert_neq(p, (void *)-1, "shmat: %s", strerror(errno));
	cr_assert_eq(p, a);
	return p;
}

static void detach(void *p)
{
	int shmid = -2;
	cr_assert_eq(sk_span_unmap(p, 0, SK_SPAN_SHMDT, &shmid), 1);
	cr_assert_geq(shmid, 0);
}

static void rmseg(int id)
{
	struct sk_span_key k = { .kind = SK_SPAN_SYSV, .shmid = id };
	shmctl(id, IPC_RMID, NULL);
	sk_span_removed(&k);
}

static int nattch(int id)
{
	struct shmid_ds ds;
	cr_assert_eq(shmctl(id, IPC_STAT, &ds), 0);
	return (int)ds.shm_nattch;
}

/* The protection /proc/self/maps shows at a, or "" if unmapped. */
static const char *prot_at(void *a, char out[8])
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	out[0] = '\0';
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e;
		char p[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, p) == 3 && (uintptr_t)a >= s && (uintptr_t)a < e) {
			strcpy(out, p);
			break;
		}
	}
	if (f)
		fclose(f);
	return out;
}

static bool table_exists(const struct sk_span_cfg *c)
{
	char name[128], path[160];
	sk_span_table_name(c, name, sizeof name);
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	return access(path, F_OK) == 0;
}

/* A forked child that acts as an unrelated process: it drops the inherited
 * reservation and table and joins afresh. */
static void become_stranger(const struct sk_span_cfg *c)
{
	munmap((void *)(uintptr_t)c->addr, c->size);
	sk_span_test_reset();
	if (sk_span_init(c) != 0)
		_exit(90);
}

Test(span_table, reserve_and_taken)
{
	struct sk_span_cfg c = start(0, SK_SPAN_WARN);
	char p[8];
	cr_expect_str_eq(prot_at((void *)(uintptr_t)c.addr, p), "---p");
	cr_expect(sk_span_overlaps((void *)(uintptr_t)c.addr, 1));
	cr_expect(!sk_span_overlaps((void *)(uintptr_t)(c.addr - 4096), 4096));
	cr_expect(sk_span_overlaps((void *)(uintptr_t)(c.addr - 4096), 4097));
	cr_expect(!sk_span_overlaps((void *)(uintptr_t)(c.addr + c.size), 100));
	/* Taken: the same range again (our own reservation is in the way). */
	sk_span_test_reset();
	cr_expect_eq(sk_span_init(&c), -EEXIST);
	int id = mkseg(4096), err;
	cr_expect_eq(attach(id, &err), NULL);
	cr_expect_eq(err, -EADDRNOTAVAIL, "placement impossible: %d", err);
	rmseg(id);
	/* off: nothing reserved, nothing placed. */
	sk_span_test_reset();
	struct sk_span_cfg off = { .off = true };
	cr_expect_eq(sk_span_init(&off), 0);
	cr_expect(!sk_span_overlaps((void *)(uintptr_t)c.addr, 1));
	id = mkseg(4096);
	cr_expect_eq(attach(id, &err), NULL);
	cr_expect_eq(err, -ENODEV);
	rmseg(id);
	munmap((void *)(uintptr_t)c.addr, c.size);
}

Test(span_table, sysv_same_address_in_a_stranger)
{
	struct sk_span_cfg c = start(1, SK_SPAN_WARN);
	int id = mkseg(3 * 4096 + 1);
	char *p = attach(id, NULL);
	cr_assert_geq((uintptr_t)p, c.addr);
	cr_assert_lt((uintptr_t)p, c.addr + c.size);
	strcpy(p, "hello");
	*(char **)(p + 64) = p + 128;       /* a raw pointer into the segment */
	strcpy(p + 128, "pointee");
	pid_t pid = fork();
	if (pid == 0) {
		become_stranger(&c);
		char *q = attach(id, NULL);
		if (q != p)
			_exit(1);
		if (strcmp(*(char **)(q + 64), "pointee") != 0)
			_exit(2);
		detach(q);
		sk_span_fini();
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	cr_expect_eq(nattch(id), 1);
	/* A second attach in the same process: the placement is occupied. */
	int err;
	cr_expect_eq(attach(id, &err), NULL);
	cr_expect_eq(err, -EEXIST);
	detach(p);
	char pr[8];
	cr_expect_str_eq(prot_at(p, pr), "", "a hole after shmdt");
	cr_expect_eq(nattch(id), 0, "the kernel detached it");
	rmseg(id);
	struct sk_span_stats s;
	cr_assert_eq(sk_span_stats(&s), 0);
	cr_expect_eq(s.entries, 0, "freed when removed and detached");
	sk_span_fini();
	cr_expect(!table_exists(&c), "table unlinked by its last user");
	munmap((void *)(uintptr_t)c.addr, c.size);
}

Test(span_table, first_fit_and_reuse)
{
	struct sk_span_cfg c = start(2, SK_SPAN_WARN);
	int a = mkseg(8192), b = mkseg(4096), d = mkseg(4096);
	char *pa = attach(a, NULL), *pb = attach(b, NULL);
	cr_expect_eq((uintptr_t)pa, FIRST(c), "first fit starts at the span, after its guard");
	char pr[8];
	cr_expect_str_eq(prot_at((void *)(uintptr_t)c.addr, pr), "---p", "the guard stays reserved");
	cr_expect_eq(pb, pa + 8192, "next one right after");
	/* Removed while attached: the entry stays until the last detach. */
	rmseg(a);
	struct sk_span_stats s;
	sk_span_stats(&s);
	cr_expect_eq(s.entries, 2);
	detach(pa);
	cr_expect_geq(sk_span_gc(), 1);
	sk_span_stats(&s);
	cr_expect_eq(s.entries, 1);
	char *pd = attach(d, NULL);
	cr_expect_eq(pd, pa, "the hole is reused first");
	detach(pb);
	detach(pd);
	rmseg(b);
	rmseg(d);
	sk_span_fini();
	munmap((void *)(uintptr_t)c.addr, c.size);
}

Test(span_table, full_span)
{
	sk_span_test_reset();
	struct sk_span_cfg c = cfg_for(3, SK_SPAN_WARN);
	c.size = 1 << 20;
	cr_assert_eq(sk_span_init(&c), 0);
	int big = mkseg(2 << 20), small = mkseg(4096), err;
	cr_expect_eq(attach(big, &err), NULL);
	cr_expect_eq(err, -ENOSPC);
	cr_expect_neq(attach(small, NULL), NULL);
	/* A guard at each end: what is left (the span less two guards and
	 * small's slot) fits, one SHMLBA more does not. */
	int rest = mkseg(c.size - 3 * lba()), over = mkseg(c.size - 2 * lba());
	char *pr = attach(rest, &err);
	cr_expect_eq((uintptr_t)pr, FIRST(c) + lba(), "placed after small (%d)", err);
	cr_expect_eq(attach(over, &err), NULL);
	cr_expect_eq(err, -ENOSPC);
	char p[8];
	cr_expect_str_eq(prot_at((void *)(uintptr_t)(c.addr + c.size - lba()), p), "---p",
			 "the top guard stays reserved");
	if (pr)
		detach(pr);
	rmseg(rest);
	rmseg(over);
	rmseg(big);
	rmseg(small);
	sk_span_fini();
	munmap((void *)(uintptr_t)c.addr, c.size);
}

Test(span_table, posix_placement)
{
	struct sk_span_cfg c = start(4, SK_SPAN_WARN);
	char name[64];
	snprintf(name, sizeof name, "/span_test_%d", getpid());
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 3 * 4096), 0);
	struct stat st;
	fstat(fd, &st);
	struct sk_span_key k = { .kind = SK_SPAN_POSIX, .name = name, .dev = st.st_dev,
				 .ino = st.st_ino, .size = (uint64_t)st.st_size };
	struct sk_span_ticket t;
	void *a;
	cr_assert_eq(sk_span_place(&k, 4096, 4096, &t, &a), 0);
	char *p = mmap(a, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 4096);
	sk_span_commit(&t, p != MAP_FAILED);
	cr_assert_eq(p, a);
	cr_expect_eq((uintptr_t)p, FIRST(c) + 4096, "offset 4096 of a slot at the span start");
	/* Beyond the object's slot: refused, the wrapper falls back. */
	cr_expect_eq(sk_span_place(&k, 4 * 4096, 0, &t, &a), -E2BIG);
	/* Same name, other object: a placement of its own. */
	pid_t pid = fork();
	if (pid == 0) {
		become_stranger(&c);
		void *b;
		if (sk_span_place(&k, 4096, 4096, &t, &b) != 0 || b != a)
			_exit(1);
		char *q = mmap(b, 4096, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 4096);
		sk_span_commit(&t, q != MAP_FAILED);
		if (q != p)
			_exit(2);
		struct sk_span_stats s;
		sk_span_stats(&s);
		_exit(s.users == 2 ? 0 : 3);
	}
	int stt;
	waitpid(pid, &stt, 0);
	cr_expect(WIFEXITED(stt) && WEXITSTATUS(stt) == 0, "child status %#x", stt);
	/* munmap of the whole mapping inside the span: a hole. */
	cr_assert_eq(sk_span_unmap(p, 4096, SK_SPAN_MUNMAP, NULL), 1);
	char pr[8];
	cr_expect_str_eq(prot_at(p, pr), "");
	shm_unlink(name);
	sk_span_removed(&k);
	struct sk_span_stats s;
	sk_span_stats(&s);
	cr_expect_eq(s.entries, 0, "unlinked and mapped nowhere (the child died)");
	close(fd);
	sk_span_fini();
	cr_expect(!table_exists(&c));
	munmap((void *)(uintptr_t)c.addr, c.size);
}

Test(span_table, explicit_addresses)
{
	struct sk_span_cfg c = start(5, SK_SPAN_WARN);
	int id = mkseg(4096), id2 = mkseg(4096);
	char *p = attach(id, NULL);
	detach(p);
	struct sk_span_key k = { .kind = SK_SPAN_SYSV, .shmid = id };
	struct sk_span_ticket t;
	int extra;
	/* The placement itself, asked for by address: allowed; only our
	 * reservation was there, and the call meets a hole (no SHM_REMAP). */
	cr_expect_eq(sk_span_explicit(&k, p, 4096, false, &t, &extra), SK_SPAN_IS_PLACEMENT);
	cr_expect_eq(extra, 0);
	void *q = shmat(id, p, extra);
	sk_span_commit(&t, q != (void *)-1);
	cr_expect_eq(q, p);
	/* Another segment at an address in the span: foreign, allowed (warn). */
	struct sk_span_key k2 = { .kind = SK_SPAN_SYSV, .shmid = id2 };
	char *x = (char *)(uintptr_t)(c.addr + c.size / 2);
	cr_expect_eq(sk_span_explicit(&k2, x, 4096, false, &t, &extra), SK_SPAN_FOREIGN);
	q = shmat(id2, x, extra);
	sk_span_commit(&t, q != (void *)-1);
	cr_expect_eq(q, x);
	/* Where something is mapped already, the kernel decides (EINVAL). */
	cr_expect_eq(sk_span_explicit(&k2, x, 4096, false, &t, &extra), SK_SPAN_FOREIGN);
	cr_expect_eq(extra, 0);
	cr_expect_eq(shmat(id2, x, extra), (void *)-1);
	sk_span_commit(&t, false);
	/* Placement never lands on the foreign attachment. */
	int id3 = mkseg(c.size / 2 + 4096), err;
	cr_expect_eq(attach(id3, &err), NULL);
	cr_expect_eq(err, -ENOSPC);
	int shmid;
	cr_expect_eq(sk_span_unmap(x, 0, SK_SPAN_SHMDT, &shmid), 1);
	cr_expect_eq(shmid, id2);
	detach(p);
	/* Strict refuses an address in the span that is not the placement. */
	sk_span_g.policy = SK_SPAN_STRICT;
	sk_span_test_reset();
	munmap((void *)(uintptr_t)c.addr, c.size);
	c.policy = SK_SPAN_STRICT;
	cr_assert_eq(sk_span_init(&c), 0);
	cr_expect_eq(sk_span_explicit(&k2, x, 4096, false, &t, &extra), -EPERM);
	cr_expect_eq(sk_span_explicit(NULL, x, 4096, true, &t, &extra), -EPERM);
	cr_expect_eq(sk_span_explicit(&k, p, 4096, false, &t, &extra), SK_SPAN_IS_PLACEMENT);
	sk_span_commit(&t, false);
	rmseg(id);
	rmseg(id2);
	rmseg(id3);
	sk_span_fini();
	munmap((void *)(uintptr_t)c.addr, c.size);
}

Test(span_table, rereserve)
{
	struct sk_span_cfg c = start(6, SK_SPAN_WARN);
	char *a = (char *)(uintptr_t)(c.addr + 8192);
	cr_assert_eq(munmap(a, 4096), 0);
	cr_expect_eq(sk_span_rereserve(a, 4096), 0);
	char pr[8];
	cr_expect_str_eq(prot_at(a, pr), "---p");
	cr_expect_eq(sk_span_rereserve(a, 4096), -EEXIST, "never clobbers");
	cr_expect_eq(sk_span_rereserve((void *)(uintptr_t)(c.addr - 8192), 4096), -EINVAL);
	munmap((void *)(uintptr_t)c.addr, c.size);
}

/* Eight processes place one shared segment and one each of their own,
 * at the same time: one address for the shared one, no overlaps. */
Test(span_table, concurrent_forks, .timeout = 30)
{
	struct sk_span_cfg c = start(7, SK_SPAN_WARN);
	enum { N = 8, ROUNDS = 20 };
	int shared = mkseg(5 * 4096);
	uintptr_t *res = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int ids[N];
	for (int i = 0; i < N; i++)
		ids[i] = mkseg((size_t)(i + 1) * 4096);
	/* The parent stays a user: a table nobody uses is retired, and the
	 * next user starts a fresh one (placements are only promised among
	 * processes that overlap in time). */
	char *mine = attach(shared, NULL);
	for (int i = 0; i < N; i++) {
		if (fork() == 0) {
			become_stranger(&c);
			for (int r = 0; r < ROUNDS; r++) {
				char *s = attach(shared, NULL), *o = attach(ids[i], NULL);
				if (!s || !o)
					_exit(1);
				res[2 * i] = (uintptr_t)s;
				res[2 * i + 1] = (uintptr_t)o;
				memset(o, 'a' + i, (size_t)(i + 1) * 4096);
				detach(o);
				detach(s);
			}
			sk_span_fini();
			_exit(0);
		}
	}
	for (int i = 0; i < N; i++) {
		int st;
		wait(&st);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	}
	for (int i = 0; i < N; i++) {
		cr_expect_eq(res[2 * i], (uintptr_t)mine, "shared segment at one address");
		for (int j = 0; j < i; j++) {
			uintptr_t a = res[2 * i + 1], b = res[2 * j + 1];
			cr_expect(a + (size_t)(i + 1) * 4096 <= b || b + (size_t)(j + 1) * 4096 <= a,
				  "segments %d and %d overlap", i, j);
		}
	}
	detach(mine);
	for (int i = 0; i < N; i++)
		rmseg(ids[i]);
	rmseg(shared);
	sk_span_fini();
	cr_expect(!table_exists(&c));
	munmap((void *)(uintptr_t)c.addr, c.size);
}

static void die_now(void)
{
	raise(SIGKILL);
}

/* The lock holder dies halfway through writing an entry: the next locker
 * finds it dead, takes the lock over, repairs the table, and placement
 * goes on. */
Test(span_table, holder_killed_mid_update, .timeout = 20)
{
	struct sk_span_cfg c = start(8, SK_SPAN_WARN);
	int a = mkseg(4096), b = mkseg(4096);
	char *pa = attach(a, NULL);
	pid_t pid = fork();
	if (pid == 0) {
		become_stranger(&c);
		sk_span_test_midupdate(die_now);
		attach(b, NULL);
		_exit(1);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %#x", st);
	char *pb = attach(b, NULL);
	cr_expect_neq(pb, NULL);
	cr_expect_neq(pb, pa);
	struct sk_span_stats s;
	cr_assert_eq(sk_span_stats(&s), 0);
	cr_expect_geq(s.repairs, 1, "repaired");
	cr_expect_geq(s.dropped, 1, "the half-written entry was dropped");
	cr_expect_eq(s.entries, 2);
	/* The dead child's user slot is collected: our leaving unlinks. */
	detach(pa);
	detach(pb);
	rmseg(a);
	rmseg(b);
	sk_span_fini();
	cr_expect(!table_exists(&c), "dead user collected, table unlinked");
	munmap((void *)(uintptr_t)c.addr, c.size);
}

static void *map_table(const struct sk_span_cfg *c, size_t *len)
{
	char name[128], path[160];
	sk_span_table_name(c, name, sizeof name);
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	struct stat st;
	fstat(fd, &st);
	*len = (size_t)st.st_size;
	void *m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(m, MAP_FAILED);
	return m;
}

Test(span_table, garbage_in_entries)
{
	struct sk_span_cfg c = start(9, SK_SPAN_WARN);
	int a = mkseg(4096), b = mkseg(4096);
	char *pa = attach(a, NULL);
	detach(pa);
	size_t len;
	unsigned char *m = map_table(&c, &len);
	/* Scribble over every entry (the header and users stay). */
	srand(42);
	for (size_t i = 8192; i < len; i++)
		m[i] = (unsigned char)rand();
	/* The scribbled entries are dropped as they are read; the segment is
	 * placed again at a valid address. */
	char *pb = attach(b, NULL);
	cr_expect_neq(pb, NULL);
	cr_expect_geq((uintptr_t)pb, c.addr);
	cr_expect_lt((uintptr_t)pb, c.addr + c.size);
	cr_expect_geq(sk_span_gc(), 0);
	struct sk_span_stats s;
	sk_span_stats(&s);
	cr_expect_geq(s.dropped, 1);
	cr_expect_leq(s.entries, 2);
	detach(pb);
	/* A scribbled header: the table is refused, placement stops. */
	memset(m, 0x5a, 64);
	int d = mkseg(4096), err;
	cr_expect_eq(attach(d, &err), NULL);
	cr_expect_eq(err, -EBADMSG);
	munmap(m, len);
	rmseg(a);
	rmseg(b);
	rmseg(d);
	char name[128], path[160];
	sk_span_table_name(&c, name, sizeof name);
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	unlink(path);
	munmap((void *)(uintptr_t)c.addr, c.size);
}

Test(span_table, fork_child_inherits)
{
	struct sk_span_cfg c = start(10, SK_SPAN_WARN);
	int id = mkseg(4096);
	char *p = attach(id, NULL);
	sk_span_fork_prepare();
	pid_t pid = fork();
	if (pid == 0) {
		sk_span_fork_child();
		struct sk_span_stats s;
		if (sk_span_stats(&s) != 0 || s.users != 2)
			_exit(1);
		/* The inherited attachment is known: no second placement on it. */
		int err;
		if (attach(id, &err) != NULL || err != -EEXIST)
			_exit(2);
		detach(p);
		sk_span_fini();
		_exit(0);
	}
	sk_span_fork_parent();
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	struct sk_span_stats s;
	sk_span_stats(&s);
	cr_expect_eq(s.users, 1, "the child left");
	detach(p);
	rmseg(id);
	sk_span_fini();
	cr_expect(!table_exists(&c));
	munmap((void *)(uintptr_t)c.addr, c.size);
}

Test(span_table, collect_after_sigkill)
{
	struct sk_span_cfg c = start(11, SK_SPAN_WARN);
	int id = mkseg(4096);
	pid_t pid = fork();
	if (pid == 0) {
		become_stranger(&c);
		attach(id, NULL);
		raise(SIGKILL);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(table_exists(&c), "left behind by the killed process");
	char name[128];
	sk_span_table_name(&c, name, sizeof name);
	cr_expect_eq(sk_span_table_collect(name), 1);
	cr_expect(!table_exists(&c));
	cr_expect_eq(sk_span_table_collect(name), -ENOENT);
	rmseg(id);
	munmap((void *)(uintptr_t)c.addr, c.size);
}

/* ---- the table lock (a futex word: pid | waiters, start-time tag) ---- */

static double secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void stop_now(void)
{
	raise(SIGSTOP);
}

/* A holder alive but stopped: the first placement waits the timeout and
 * falls back (-ETIMEDOUT), the next ones within 10 s do not wait at all
 * (-EBUSY); once the holder goes on, placement works again at once. */
Test(span_table, holder_stopped, .timeout = 30)
{
	struct sk_span_cfg c = start(12, SK_SPAN_WARN);
	int a = mkseg(4096), b = mkseg(4096), d = mkseg(4096);
	char *pa = attach(a, NULL);
	pid_t pid = fork();
	if (pid == 0) {
		become_stranger(&c);
		sk_span_test_midupdate(stop_now);
		char *p = attach(b, NULL);
		sk_span_unmap(p, 0, SK_SPAN_SHMDT, NULL);
		sk_span_fini();
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
	cr_assert(WIFSTOPPED(st), "child status %#x", st);
	int err;
	double t0 = secs();
	cr_expect_eq(attach(d, &err), NULL);
	double t1 = secs();
	cr_expect_eq(err, -ETIMEDOUT);
	cr_expect(t1 - t0 > 1.5 && t1 - t0 < 4, "waited %.2f s", t1 - t0);
	cr_expect_eq(attach(d, &err), NULL);
	double t2 = secs();
	cr_expect_eq(err, -EBUSY);
	cr_expect_lt(t2 - t1, 0.1, "second try waited %.3f s", t2 - t1);
	kill(pid, SIGCONT);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	char *pd = attach(d, &err);
	cr_expect_eq(err, 0, "lock free again: no more waiting out");
	cr_expect_lt(secs() - t2, 1.0);
	if (pd)
		detach(pd);
	detach(pa);
	rmseg(a);
	rmseg(b);
	rmseg(d);
	sk_span_fini();
	cr_expect(!table_exists(&c));
	munmap((void *)(uintptr_t)c.addr, c.size);
}

/* A holder killed and not yet reaped (a zombie answers kill(pid, 0)): its
 * start time says it is gone; the lock is taken over and the table
 * repaired without waiting the timeout. */
Test(span_table, holder_zombie, .timeout = 20)
{
	struct sk_span_cfg c = start(13, SK_SPAN_WARN);
	int a = mkseg(4096), b = mkseg(4096);
	char *pa = attach(a, NULL);
	pid_t pid = fork();
	if (pid == 0) {
		become_stranger(&c);
		sk_span_test_midupdate(die_now);
		attach(b, NULL);
		_exit(1);
	}
	siginfo_t si;
	/* Wait for the death without reaping it. */
	cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	double t0 = secs();
	char *pb = attach(b, NULL);
	cr_expect_lt(secs() - t0, 1.0, "took over in %.3f s", secs() - t0);
	struct sk_span_stats s;
	cr_assert_eq(sk_span_stats(&s), 0);
	cr_expect_geq(s.repairs, 1);
	int st;
	waitpid(pid, &st, 0);
	detach(pa);
	detach(pb);
	rmseg(a);
	rmseg(b);
	sk_span_fini();
	cr_expect(!table_exists(&c));
	munmap((void *)(uintptr_t)c.addr, c.size);
}

static uint64_t seen_word;

static void copy_word(void)
{
	seen_word = atomic_load(sk_span_test_lock());
}

/* Forged lock words: no pid (only a start tag), a pid beyond PID_MAX_LIMIT,
 * a dead process's pid, and our own pid and start time left by no thread
 * (what an exec leaves when another thread held the lock). Each is taken
 * over at once, and the table repaired. */
Test(span_table, lock_word_forged, .timeout = 20)
{
	struct sk_span_cfg c = start(14, SK_SPAN_WARN);
	int a = mkseg(4096);
	sk_span_test_midupdate(copy_word);
	char *pa = attach(a, NULL);
	sk_span_test_midupdate(NULL);
	detach(pa);
	_Atomic uint64_t *w = sk_span_test_lock();
	cr_assert_not_null(w);
	cr_assert_eq((uint32_t)seen_word, (uint32_t)getpid(), "word %#llx", (unsigned long long)seen_word);
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	uint64_t forged[] = {
		0x1234567800000000ull,              /* no pid */
		0x0000000100000000ull | 5000000u,  /* beyond PID_MAX_LIMIT */
		0x0000000100000000ull | (uint32_t)dead | 0x80000000u,
		seen_word,                          /* ours, held by nobody */
	};
	for (unsigned i = 0; i < SK_ARRAY_SIZE(forged); i++) {
		struct sk_span_stats s0, s1;
		cr_assert_eq(sk_span_stats(&s0), 0);
		atomic_store(w, forged[i]);
		double t0 = secs();
		int err;
		char *p = attach(a, &err);
		cr_expect_eq(err, 0, "word %#llx: %d", (unsigned long long)forged[i], err);
		cr_expect_lt(secs() - t0, 1.0, "word %#llx", (unsigned long long)forged[i]);
		cr_expect_eq(atomic_load(w), 0, "released");
		cr_assert_eq(sk_span_stats(&s1), 0);
		cr_expect_eq(s1.repairs, s0.repairs + 1);
		if (p)
			detach(p);
	}
	rmseg(a);
	sk_span_fini();
	cr_expect(!table_exists(&c));
	munmap((void *)(uintptr_t)c.addr, c.size);
}

/* Entry fields in the table file (core/span.c, struct tab_ent); the entries
 * follow the header and the users, 8 KiB in. */
#define ENTS_AT   8192u
#define E_STATE   0u
#define E_OFF     8u
#define E_SHMID   24u
#define E_GEN     56u

static struct sk_span_cfg half_span(unsigned half)
{
	/* Slot 15, in two halves: the last of a runner's 32 GiB. */
	sk_span_test_reset();
	struct sk_span_cfg c = cfg_for(15, SK_SPAN_WARN);
	c.size = SPAN_SIZE / 2;
	c.addr += half * c.size;
	cr_assert_eq(sk_span_init(&c), 0);
	return c;
}

/* The placement path does not scan the table (a per-process mirror): with
 * 200 live entries, placements still go first fit, holes are reused, a
 * stranger finds the same addresses, and another process's allocations are
 * seen. */
Test(span_table, many_entries, .timeout = 60)
{
	struct sk_span_cfg c = half_span(0);
	enum { N = 200 };
	int ids[N];
	char *ps[N];
	for (int i = 0; i < N; i++) {
		ids[i] = mkseg(4096);
		ps[i] = attach(ids[i], NULL);
		cr_assert_eq((uintptr_t)ps[i], FIRST(c) + (uint64_t)i * 4096, "entry %d", i);
		rmseg(ids[i]);   /* stays while attached; nothing outlives the test */
	}
	struct sk_span_stats s;
	sk_span_stats(&s);
	cr_expect_eq(s.entries, N);
	/* The benchmark's cycle: a new segment each time, placed after them,
	 * its entry freed at removal. */
	for (int k = 0; k < 300; k++) {
		int id = mkseg(4096);
		char *p = attach(id, NULL);
		cr_assert_eq((uintptr_t)p, FIRST(c) + (uint64_t)N * 4096, "cycle %d", k);
		detach(p);
		rmseg(id);
	}
	sk_span_stats(&s);
	cr_expect_eq(s.entries, N, "every cycle's entry was freed");
	/* Removed before, detached now: its hole is the next first fit. */
	detach(ps[50]);
	int h = mkseg(4096);
	char *ph = attach(h, NULL);
	cr_expect_eq(ph, ps[50], "the hole is reused at once");
	/* Another process allocates: we must see its placement. */
	int o = mkseg(8192), mine = mkseg(4096);
	pid_t pid = fork();
	if (pid == 0) {
		become_stranger(&c);
		char *p0 = attach(h, NULL);
		if (p0 != ps[50])
			_exit(1);
		char *po = attach(o, NULL);
		if (po != (char *)(uintptr_t)(FIRST(c) + (uint64_t)N * 4096))
			_exit(2);
		/* Stay attached until the parent placed its own. */
		pause();
		_exit(0);
	}
	/* Wait until the child's placement shows in the table. */
	for (int i = 0; i < 500; i++) {
		sk_span_stats(&s);
		if (s.entries == N + 1)
			break;
		usleep(10000);
	}
	cr_expect_eq(s.entries, N + 1);
	char *pm = attach(mine, NULL);
	cr_expect_eq((uintptr_t)pm, FIRST(c) + (uint64_t)(N + 2) * 4096,
		     "placed after the other process's 8 KiB");
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFSIGNALED(st), "child status %#x", st);
	detach(pm);
	detach(ph);
	rmseg(mine);
	rmseg(o);
	rmseg(h);
	for (int i = 0; i < N; i++)
		if (i != 50)
			detach(ps[i]);
	sk_span_fini();
	cr_expect(!table_exists(&c));
	munmap((void *)(uintptr_t)c.addr, c.size);
}

/* Entries rewritten behind the lock, the way this process's mirror cannot
 * see: a known key's entry moved elsewhere (checksum now wrong), one pointing
 * past the span, one whose gen changed: each leads to a new placement at a
 * valid, free address, never to the forged one. */
Test(span_table, forged_entries_fall_back, .timeout = 30)
{
	struct sk_span_cfg c = half_span(1);
	int a = mkseg(4096), b = mkseg(4096), d = mkseg(4096), live = mkseg(4096);
	char *pl = attach(live, NULL);
	char *pa = attach(a, NULL), *pb = attach(b, NULL), *pd = attach(d, NULL);
	detach(pa);
	detach(pb);
	detach(pd);
	size_t len;
	unsigned char *m = map_table(&c, &len);
	size_t stride = (len - ENTS_AT) / SK_SPAN_ENTS;
	cr_assert_geq(stride, 80);
	int ia = -1, ib = -1, id = -1;
	for (int i = 0; i < SK_SPAN_ENTS; i++) {
		unsigned char *e = m + ENTS_AT + (size_t)i * stride;
		int32_t shmid;
		uint32_t state;
		memcpy(&state, e + E_STATE, 4);
		memcpy(&shmid, e + E_SHMID, 4);
		if (state == 0)
			continue;
		ia = shmid == a ? i : ia;
		ib = shmid == b ? i : ib;
		id = shmid == d ? i : id;
	}
	cr_assert(ia >= 0 && ib >= 0 && id >= 0);
	/* a: moved onto the live segment's placement. */
	uint64_t v = (uint64_t)((uintptr_t)pl - c.addr);
	memcpy(m + ENTS_AT + (size_t)ia * stride + E_OFF, &v, 8);
	/* b: past the end of the span (and of the table's bounds checks). */
	v = c.size * 4;
	memcpy(m + ENTS_AT + (size_t)ib * stride + E_OFF, &v, 8);
	/* d: another generation (a reuse this process did not see). */
	memcpy(&v, m + ENTS_AT + (size_t)id * stride + E_GEN, 8);
	v += 1000;
	memcpy(m + ENTS_AT + (size_t)id * stride + E_GEN, &v, 8);
	char *qa = attach(a, NULL), *qb = attach(b, NULL), *qd = attach(d, NULL);
	cr_expect(qa && qb && qd);
	char *q[] = { qa, qb, qd };
	for (int i = 0; i < 3; i++) {
		cr_expect_geq((uintptr_t)q[i], c.addr);
		cr_expect_lt((uintptr_t)q[i], c.addr + c.size);
		cr_expect_neq(q[i], pl, "never on the live segment");
		for (int j = 0; j < i; j++)
			cr_expect_neq(q[i], q[j]);
	}
	/* A stranger builds its mirror from the table: same answers. */
	pid_t pid = fork();
	if (pid == 0) {
		become_stranger(&c);
		int err;
		char *r = attach(a, &err);
		/* Placed where we are: ours, or the checksum-valid copy. */
		_exit(r == qa ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	struct sk_span_stats s;
	sk_span_stats(&s);
	cr_expect_geq(s.dropped, 2, "the bad checksums were dropped");
	detach(qa);
	detach(qb);
	detach(qd);
	detach(pl);
	munmap(m, len);
	rmseg(a);
	rmseg(b);
	rmseg(d);
	rmseg(live);
	sk_span_fini();
	munmap((void *)(uintptr_t)c.addr, c.size);
}

/* Entries whose segments went behind the library's back (ipcrm: no
 * sk_span_removed) are collected table-wide once there are more than 32 of
 * them, at a mirror rebuild (at least a second apart), at most once a
 * minute: the second batch stays. */
static int junk_batch(int ids[40])
{
	for (int i = 0; i < 40; i++) {
		ids[i] = mkseg(4096);
		detach(attach(ids[i], NULL));
	}
	for (int i = 0; i < 40; i++)
		shmctl(ids[i], IPC_RMID, NULL);   /* as ipcrm would */
	struct sk_span_stats s;
	sk_span_stats(&s);
	return (int)s.entries;
}

Test(span_table, junk_collected, .timeout = 20)
{
	struct sk_span_cfg c = start(15, SK_SPAN_WARN);
	int ids[40];
	cr_assert_eq(junk_batch(ids), 40, "removed behind our back: still entries");
	usleep(1200 * 1000);
	int id = mkseg(4096);
	char *p = attach(id, NULL);
	struct sk_span_stats s;
	sk_span_stats(&s);
	cr_expect_eq(s.entries, 1, "collected at the rebuild: %u left", s.entries);
	cr_expect_eq((uintptr_t)p, FIRST(c), "first fit again at the start");
	/* Within the minute: not collected again. */
	cr_assert_eq(junk_batch(ids), 41);
	usleep(1200 * 1000);
	int id2 = mkseg(4096);
	char *p2 = attach(id2, NULL);
	sk_span_stats(&s);
	cr_expect_eq(s.entries, 42, "rate-limited: %u", s.entries);
	detach(p);
	detach(p2);
	rmseg(id);
	rmseg(id2);
	sk_span_fini();
	munmap((void *)(uintptr_t)c.addr, c.size);
}

/* Holes: a detached placement leaves its range unmapped for the next
 * placement there, which maps into it without replacing anything; one that
 * something else took is never mapped over; at most 4 are kept; any other
 * use of a hole's range reserves it again first. */
Test(span_table, holes)
{
	struct sk_span_cfg c = start(16, SK_SPAN_WARN);
	char pr[8];
	int a = mkseg(4096);
	char *pa = attach(a, NULL);
	detach(pa);
	rmseg(a);
	cr_expect_str_eq(prot_at(pa, pr), "", "a hole");
	/* The next segment is placed there, into the hole. */
	int b = mkseg(4096);
	struct sk_span_key kb = { .kind = SK_SPAN_SYSV, .shmid = b };
	struct sk_span_ticket t;
	void *at;
	cr_assert_eq(sk_span_place(&kb, 0, 0, &t, &at), 0);
	cr_expect_eq(at, (void *)pa);
	cr_expect(t.hole, "told to map into the hole");
	char *pb = shmat(b, at, 0);
	sk_span_commit(&t, pb != (void *)-1);
	cr_assert_eq(pb, pa);
	cr_expect_str_eq(prot_at(pb, pr), "rw-s");
	detach(pb);
	rmseg(b);
	/* Something else takes the hole (the kernel's choice for someone's
	 * mmap): the placement there fails, and leaves it alone. */
	char *x = mmap(pa, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	cr_assert_eq(x, pa);
	strcpy(x, "theirs");
	int d = mkseg(4096);
	struct sk_span_key kd = { .kind = SK_SPAN_SYSV, .shmid = d };
	cr_assert_eq(sk_span_place(&kd, 0, 0, &t, &at), 0);
	cr_expect_eq(at, (void *)pa);
	cr_expect(t.hole);
	char *pd = shmat(d, at, 0);
	cr_expect_eq(pd, (void *)-1, "the kernel refuses: something is there");
	cr_expect_eq(errno, EINVAL);
	sk_span_commit(&t, pd != (void *)-1);
	cr_expect_str_eq(x, "theirs", "not mapped over");
	/* The range holds a foreign mapping now: a placement there is
	 * refused (-EEXIST), never mapped over it. */
	int err;
	cr_expect_eq(attach(d, &err), NULL);
	cr_expect_eq(err, -EEXIST);
	munmap(x, 4096);
	rmseg(d);
	/* Five detached placements: four holes kept, one reserved again. */
	int ids[5];
	char *ps[5];
	for (int i = 0; i < 5; i++) {
		ids[i] = mkseg(4096);
		ps[i] = attach(ids[i], NULL);
		cr_assert_neq(ps[i], NULL);
	}
	int holes = 0, reserved = 0;
	for (int i = 0; i < 5; i++)
		detach(ps[i]);
	for (int i = 0; i < 5; i++) {
		prot_at(ps[i], pr);
		holes += pr[0] == '\0';
		reserved += strcmp(pr, "---p") == 0;
	}
	cr_expect_eq(holes, 4);
	cr_expect_eq(reserved, 1);
	/* An explicit attach over a hole: it meets a hole (ours, as it is, or
	 * reserved and made one again), not the reservation. */
	char *h = NULL;
	for (int i = 0; i < 5 && !h; i++)
		if (prot_at(ps[i], pr)[0] == '\0')
			h = ps[i];
	cr_assert_neq(h, NULL);
	struct sk_span_key k0 = { .kind = SK_SPAN_SYSV, .shmid = ids[0], .size = 4096 };
	int extra = 0;
	int r = sk_span_explicit(&k0, h, 4096, false, &t, &extra);
	cr_expect_geq(r, 1);
	cr_expect_eq(extra, 0);
	cr_expect_str_eq(prot_at(h, pr), "", "a hole for the call");
	char *q = shmat(ids[0], h, extra);
	sk_span_commit(&t, q != (void *)-1);
	cr_expect_eq(q, h);
	shmdt(q);
	/* A hole reserved again (sk_span_rereserve, as after mremap moved a
	 * mapping out) is reservation: the next placement there punches it
	 * (a hole again) and maps into it. */
	int e1 = mkseg(4096);
	char *p1 = attach(e1, NULL);
	detach(p1);
	cr_assert_str_eq(prot_at(p1, pr), "");
	cr_expect_eq(sk_span_rereserve(p1, 4096), 0);
	cr_expect_str_eq(prot_at(p1, pr), "---p");
	struct sk_span_key k1 = { .kind = SK_SPAN_SYSV, .shmid = e1 };
	cr_assert_eq(sk_span_place(&k1, 0, 0, &t, &at), 0);
	cr_expect_eq(at, (void *)p1);
	cr_expect(t.hole, "always into a hole");
	cr_expect_str_eq(prot_at(p1, pr), "", "punched");
	char *q1 = shmat(e1, at, t.hole ? 0 : SHM_REMAP);
	sk_span_commit(&t, q1 != (void *)-1);
	cr_expect_eq(q1, p1);
	/* A hole the kernel gave to someone (sk_span_taken, as the mmap
	 * wrapper reports it): refused at once, before any call. */
	detach(q1);
	char *y = mmap(p1, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	cr_assert_eq(y, p1);
	sk_span_taken(y, 4096);
	cr_expect_eq(sk_span_place(&k1, 0, 0, &t, &at), -EEXIST);
	munmap(y, 4096);
	rmseg(e1);
	for (int i = 0; i < 5; i++)
		rmseg(ids[i]);
	sk_span_fini();
	munmap((void *)(uintptr_t)c.addr, c.size);
}

/* A process that removes a segment and leaves through _exit (or exec) tells
 * the table before it goes: the removal was queued for its next lock session,
 * which never comes (the preloaded _exit and exec wrappers call
 * sk_span_flush). Its entry is free at once, not left for a collection. */
Test(span_table, removal_told_before_exit)
{
	struct sk_span_cfg c = start(16, SK_SPAN_WARN);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		sk_span_fork_child();
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		struct sk_span_key k = { .kind = SK_SPAN_SYSV, .shmid = id };
		struct sk_span_ticket t;
		void *a;
		if (id < 0 || sk_span_place(&k, 0, 0, &t, &a) != 0)
			_exit(2);
		void *p = shmat(id, a, 0);
		sk_span_commit(&t, p != (void *)-1);
		if (p == (void *)-1 || sk_span_unmap(p, 0, SK_SPAN_SHMDT, NULL) != 1)
			_exit(3);
		shmctl(id, IPC_RMID, NULL);
		sk_span_removed(&k);
		sk_span_flush();
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	/* Our first placement opens the table the child used. */
	int id = mkseg(4096);
	void *p = attach(id, NULL);
	struct sk_span_stats s;
	cr_assert_eq(sk_span_stats(&s), 0);
	cr_expect_eq(s.entries, 1, "ours only: the child's entry was told removed");
	cr_expect_eq(s.retired, 0, "and not kept as a spare by a process that is gone");
	detach(p);
	rmseg(id);
	sk_span_fini();
	munmap((void *)(uintptr_t)c.addr, c.size);
}
