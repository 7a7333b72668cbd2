/* wrap_calls - every wrapped call, its flags and its error cases, once each
 * (issue 3). Run under the library by tests/wrap_calls.sh.
 *
 * It checks transparency itself (each result against what the kernel must
 * answer; errno set to 9000 before each successful call and unchanged after
 * it) and prints what the log must hold, in order, for the script to check:
 *   expect REGEX     the next matching event line of `logdump`
 *   never REGEX      no event line of this process matches
 *   failed N,N,...   the header's failed-call counters at least these
 * Exit 0, or 1 with a message naming the call that misbehaved. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MARK 9000
static int bad;
static long pg;
extern char **environ;

#define CHECK(cond, ...) do { if (!(cond)) { printf("# FAIL line %d: ", __LINE__); \
	printf(__VA_ARGS__); printf(" (errno %d %s)\n", errno, strerrorname_np(errno) ? strerrorname_np(errno) : "?"); bad = 1; } } while (0)
/* A call that must succeed without touching errno. */
#define OK(expr, what) ({ errno = MARK; __typeof__(expr) r_ = (expr); \
	CHECK(errno == MARK, "%s changed errno on success", what); r_; })
/* A call that must fail with e. */
#define FAILS(expr, e, what) do { errno = MARK; long r_ = (long)(expr); \
	CHECK(r_ == -1 && errno == (e), "%s: want -1 %s, got %ld", what, strerrorname_np(e), r_); } while (0)

static void expect(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("expect ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static void sysv(void)
{
	key_t key = (key_t)(0x5a000000 | (getpid() & 0xffffff));
	/* shmget: create private, create by key (EXCL), open, each failure. */
	int id = OK(shmget(IPC_PRIVATE, 5000, IPC_CREAT | 0600), "shmget private");
	CHECK(id >= 0, "shmget private");
	expect("sysv_get .* key=0 shmid=%d size=5000 .*flags=1 mode=0600", id);
	int kid = OK(shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0640), "shmget key");
	CHECK(kid >= 0, "shmget key");
	expect("sysv_get .* key=%d shmid=%d size=4096 .*flags=1 mode=0640", key, kid);
	int kid2 = OK(shmget(key, 0, 0), "shmget open");
	CHECK(kid2 == kid, "shmget open gives the same id");
	expect("sysv_get .* key=%d shmid=%d size=4096 .*flags=0 ", key, kid);
	FAILS(shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600), EEXIST, "shmget EEXIST");
	FAILS(shmget(key + 1, 4096, 0600), ENOENT, "shmget ENOENT");
	FAILS(shmget(IPC_PRIVATE, 0, IPC_CREAT | 0600), EINVAL, "shmget size 0");
	FAILS(shmget(key, 8192, 0600), EINVAL, "shmget larger than the segment");

	/* shmat: plain, read-only, at an address, SHM_RND, SHM_REMAP over it. */
	char *a = OK(shmat(id, NULL, 0), "shmat");
	CHECK(a != (void *)-1, "shmat");
	expect("sysv_at .* shmid=%d shmflg=0 addr=%p .*size=8192", id, (void *)a);
	a[0] = 'x';
	char *ro = OK(shmat(id, NULL, SHM_RDONLY), "shmat rdonly");
	CHECK(ro != (void *)-1 && ro[0] == 'x', "shmat rdonly sees the data");
	expect("sysv_at .* shmid=%d shmflg=0x1000 addr=%p", id, (void *)ro);
	char *hole = mmap(NULL, 4 * (size_t)pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	FAILS(shmat(kid, hole + 1, 0), EINVAL, "shmat unaligned");
	FAILS(shmat(kid, hole, 0), EINVAL, "shmat over a mapping without SHM_REMAP");
	char *r1 = OK(shmat(kid, hole + 1, SHM_RND | SHM_REMAP), "shmat SHM_RND|SHM_REMAP");
	CHECK(r1 == hole, "SHM_RND rounds down");
	expect("sysv_at .* shmid=%d shmflg=0x6000 addr=%p req=%p", kid, (void *)hole, (void *)(hole + 1));
	/* SHM_REMAP over our own attachment: an implicit detach first. */
	char *r2 = OK(shmat(id, hole, SHM_REMAP), "shmat SHM_REMAP over an attachment");
	CHECK(r2 == hole, "SHM_REMAP");
	expect("sysv_dt .* shmid=%d addr=%p .*flags=4", kid, (void *)hole);
	expect("sysv_at .* shmid=%d shmflg=0x4000 addr=%p", id, (void *)hole);
	FAILS(shmat(-1, NULL, 0), EINVAL, "shmat bad id");

	/* shmdt: each attachment; twice; not an attachment. */
	CHECK(OK(shmdt(ro), "shmdt") == 0, "shmdt");
	expect("sysv_dt .* shmid=%d addr=%p size=8192 flags=0", id, (void *)ro);
	FAILS(shmdt(ro), EINVAL, "double shmdt");
	FAILS(shmdt(a + 1), EINVAL, "shmdt unaligned");
	CHECK(OK(shmdt(hole), "shmdt remapped") == 0, "shmdt remapped");
	expect("sysv_dt .* shmid=%d addr=%p", id, (void *)hole);

	/* shmctl: IPC_SET, SHM_LOCK, SHM_UNLOCK, IPC_RMID while attached;
	 * queries are not events; failures are counted. */
	struct shmid_ds ds;
	CHECK(OK(shmctl(id, IPC_STAT, &ds), "IPC_STAT") == 0 && ds.shm_nattch == 1, "IPC_STAT");
	ds.shm_perm.mode = 0604;
	CHECK(OK(shmctl(id, IPC_SET, &ds), "IPC_SET") == 0, "IPC_SET");
	expect("sysv_ctl .* shmid=%d cmd=1 .*mode=0604", id);
	if (shmctl(id, SHM_LOCK, NULL) == 0) {
		expect("sysv_ctl .* shmid=%d cmd=11 ", id);
		CHECK(OK(shmctl(id, SHM_UNLOCK, NULL), "SHM_UNLOCK") == 0, "SHM_UNLOCK");
		expect("sysv_ctl .* shmid=%d cmd=12 ", id);
	}
	CHECK(OK(shmctl(id, IPC_RMID, NULL), "IPC_RMID") == 0, "IPC_RMID attached");
	expect("sysv_ctl .* shmid=%d cmd=0 .*size=5000", id);
	CHECK(a[0] == 'x', "still attached after IPC_RMID");
	CHECK(OK(shmdt(a), "shmdt after RMID") == 0, "shmdt after RMID");
	expect("sysv_dt .* shmid=%d addr=%p", id, (void *)a);
	FAILS(shmctl(id, IPC_STAT, &ds), EINVAL, "IPC_STAT of a removed segment");
	FAILS(shmctl(kid, 12345, &ds), EINVAL, "shmctl bad cmd");
	FAILS(shmctl(kid, IPC_STAT, (struct shmid_ds *)1), EFAULT, "IPC_STAT EFAULT");
	CHECK(OK(shmctl(kid, IPC_RMID, NULL), "IPC_RMID") == 0, "IPC_RMID");
	expect("sysv_ctl .* shmid=%d cmd=0 ", kid);
	FAILS(shmctl(kid, IPC_RMID, NULL), EINVAL, "double IPC_RMID");
	munmap(hole, 4 * (size_t)pg);
	/* Queries never make events. */
	printf("never sysv_ctl .* cmd=2 \n");
}

static void posix(void)
{
	char name[64], name2[64];
	snprintf(name, sizeof name, "/shmk-wrap-%d", (int)getpid());
	snprintf(name2, sizeof name2, "shmk-wrap2-%d", (int)getpid());   /* no slash */
	shm_unlink(name);
	int fd = OK(shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600), "shm_open create");
	CHECK(fd >= 0, "shm_open create");
	expect("posix_open .* name=%s fd=%d .*size=0 mode=0600 flags=1", name, fd);
	FAILS(shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600), EEXIST, "shm_open EEXIST");
	FAILS(shm_open("/shmk-no/such", O_RDWR, 0), EINVAL, "shm_open inner slash");
	FAILS(shm_open("/shmk-wrap-missing", O_RDWR, 0), ENOENT, "shm_open ENOENT");
	char longname[300];
	memset(longname, 'x', sizeof longname);
	longname[0] = '/';
	longname[299] = 0;
	FAILS(shm_open(longname, O_RDWR | O_CREAT, 0600), EINVAL, "shm_open too long");  /* glibc 2.36 */

	/* Resizes: ftruncate, fallocate, posix_fallocate (returns the error). */
	CHECK(OK(ftruncate(fd, 3 * pg), "ftruncate") == 0, "ftruncate");
	expect("resize .* fd=%d size=%ld how=0", fd, 3 * pg);
	FAILS(ftruncate(fd, -1), EINVAL, "ftruncate -1");
	CHECK(OK(fallocate(fd, 0, 0, 4 * pg), "fallocate") == 0, "fallocate");
	expect("resize .* fd=%d size=%ld how=1", fd, 4 * pg);
	FAILS(fallocate(fd, 0x100, 0, pg), EOPNOTSUPP, "fallocate bad mode");
	CHECK(OK(posix_fallocate(fd, 0, 5 * pg), "posix_fallocate") == 0, "posix_fallocate");
	expect("resize .* fd=%d size=%ld how=2", fd, 5 * pg);
	errno = MARK;
	CHECK(posix_fallocate(fd, -1, pg) == EINVAL && errno == MARK, "posix_fallocate EINVAL");

	/* Maps: shared, private, anonymous with a shm fd (not an attachment),
	 * partial munmap, mremap, MAP_FIXED over it, through a dup'ed fd. */
	char *m = OK(mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), "mmap");
	CHECK(m != MAP_FAILED, "mmap shared");
	expect("posix_map .* addr=%p len=%ld offset=0 prot=3 mflags=0x1 ", (void *)m, 2 * pg);
	char *p = OK(mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, pg), "mmap private");
	expect("posix_map .* addr=%p len=%ld offset=%ld .*flags=16", (void *)p, pg, pg);
	char *an = OK(mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, fd, 0), "mmap anon");
	printf("never (posix_map|unmap) .* addr=%p \n", (void *)an);
	munmap(an, pg);
	FAILS(mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 1), EINVAL, "mmap unaligned offset");
	FAILS(mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, 0), EINVAL, "mmap length 0");
	CHECK(OK(munmap(m + pg, pg), "munmap part") == 0, "munmap part");
	expect("unmap .* addr=%p len=%ld .*flags=(8|40) ", (void *)(m + pg), pg);   /* PARTIAL, maybe PLACED */
	char *m2 = OK(mremap(m, pg, 3 * pg, MREMAP_MAYMOVE), "mremap");
	CHECK(m2 != MAP_FAILED, "mremap");
	expect("remap .* old=%p old_len=%ld new=%p new_len=%ld", (void *)m, pg, (void *)m2, 3 * pg);
	char *fx = OK(mmap(m2, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), "MAP_FIXED");
	CHECK(fx == m2, "MAP_FIXED");
	expect("unmap .* addr=%p len=%ld .*flags=(12|44) ", (void *)m2, pg);  /* IMPLICIT|PARTIAL */
	CHECK(OK(munmap(m2, 3 * pg), "munmap") == 0, "munmap rest");
	expect("unmap .* addr=%p len=%ld", (void *)(m2 + pg), 2 * pg);
	CHECK(OK(munmap(p, pg), "munmap private") == 0, "munmap private");
	expect("unmap .* addr=%p len=%ld", (void *)p, pg);

	int d1 = OK(dup(fd), "dup"), d2 = OK(fcntl(fd, F_DUPFD_CLOEXEC, 50), "F_DUPFD_CLOEXEC");
	CHECK(d1 >= 0 && d2 >= 50, "dup");
	int d3 = OK(dup2(fd, 60), "dup2"), d4 = OK(dup3(fd, 61, O_CLOEXEC), "dup3");
	CHECK(d3 == 60 && d4 == 61, "dup2/dup3");
	CHECK(OK(close(fd), "close") == 0, "close");
	int dfds[4] = { d1, d2, d3, d4 };
	for (int i = 0; i < 4; i++) {
		char *q = OK(mmap(NULL, pg, PROT_READ, MAP_SHARED, dfds[i], 0), "mmap dup fd");
		expect("posix_map .* addr=%p ", (void *)q);
		munmap(q, pg);
		expect("unmap .* addr=%p ", (void *)q);
	}
	/* The number, reused by another file, is not the object any more. */
	int other = open("/dev/zero", O_RDONLY);
	if (other >= 0 && dup2(other, 60) == 60) {
		char *z = mmap(NULL, pg, PROT_READ, MAP_SHARED, 60, 0);
		printf("never posix_map .* addr=%p \n", (void *)z);
		munmap(z, pg);
	}
	close(other);
	CHECK(OK(close_range(50, 70, 0), "close_range") == 0, "close_range");
	FAILS(close(d2), EBADF, "close after close_range");
	FAILS(close(-1), EBADF, "close -1");
	close(d1);

	/* Names: without a slash it is the same object; unlink; unlink again. */
	int f2 = OK(shm_open(name2, O_RDWR | O_CREAT, 0640), "shm_open no slash");
	CHECK(f2 >= 0, "shm_open no slash");
	expect("posix_open .* name=/%s fd=%d .*flags=1", name2, f2);
	close(f2);
	CHECK(OK(shm_unlink(name2), "shm_unlink") == 0, "shm_unlink no slash");
	expect("posix_unlink .* name=/%s ino=[1-9]", name2);
	CHECK(OK(shm_unlink(name), "shm_unlink") == 0, "shm_unlink");
	expect("posix_unlink .* name=%s ino=[1-9]", name);
	FAILS(shm_unlink(name), ENOENT, "shm_unlink missing");
	FAILS(shm_unlink("/shmk/inner"), ENOENT, "shm_unlink inner slash");  /* glibc 2.36 */
}

static void process(const char *self)
{
	fflush(stdout);
	pid_t c = OK(fork(), "fork");
	if (c == 0) {
		/* The child's log is its own: one event, then out. */
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		shmctl(id, IPC_RMID, NULL);
		_exit(0);
	}
	CHECK(c > 0, "fork");
	expect("fork .* child=%d how=0", (int)c);
	int st;
	waitpid(c, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child");
	pid_t sp;
	char *argv[] = { (char *)self, (char *)"child", NULL };
	errno = MARK;
	CHECK(posix_spawn(&sp, self, NULL, NULL, argv, environ) == 0 && errno == MARK, "posix_spawn");
	expect("fork .* child=%d how=2", (int)sp);
	waitpid(sp, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "spawned child");
	CHECK(posix_spawnp(&sp, "true", NULL, NULL, (char *[]){ "true", NULL }, environ) == 0,
	      "posix_spawnp");
	expect("fork .* child=%d how=3", (int)sp);
	waitpid(sp, &st, 0);
	FAILS(execl("/nonexistent/shmk", "x", (char *)NULL), ENOENT, "execl missing");
	expect("exec .* path=/nonexistent/shmk");
	expect("exec_failed .* path=/nonexistent/shmk err=2");
}

int main(int argc, char **argv)
{
	pg = sysconf(_SC_PAGESIZE);
	if (argc > 1 && strcmp(argv[1], "child") == 0) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		return shmctl(id, IPC_RMID, NULL) == 0 ? 0 : 1;
	}
	printf("pid %d\n", (int)getpid());
	sysv();
	posix();
	process(argv[0]);
	/* Failed calls are counted in the header (sk_fn order): at least. */
	printf("failed 4,3,2,4,4,2,2,0,0,1,2\n");
	fflush(stdout);
	return bad;
}
