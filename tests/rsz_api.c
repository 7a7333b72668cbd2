/* Unit tests of the resizable fixed-address segments (shmk_rsz_*). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmkeeper.h"

/* Searches of their own per test (Criterion runs tests in parallel). */
static struct shmk_rsz_scan scan_for(unsigned n)
{
	uintptr_t a = (40 + n) * SHMK_TiB + (uintptr_t)(getppid() % 64) * 8 * SHMK_GiB;
	return (struct shmk_rsz_scan){ (void *)a, 64 * SHMK_MiB, 16 * SHMK_GiB, 4 };
}

static void posix_name(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "/rsz_test_%s_%d", tag, getpid());
}

Test(rsz_api, make_attach_elsewhere)
{
	struct shmk_rsz r;
	char name[64];
	posix_name(name, sizeof name, "mk");
	struct shmk_rsz_scan sc = scan_for(0);
	void *p = shmk_rsz_mk(&r, 4096, name, sc);
	cr_assert_not_null(p, "shmk_rsz_mk: %s", strerror(errno));
	cr_expect_eq((char *)r.hdr, (char *)sc.start, "first address of the search");
	cr_expect_eq(r.cap, 8192 - SHMK_RSZ_HDR_SIZE);
	cr_expect_eq(r.flen, 8192);
	cr_expect_eq(r.max, 64 * SHMK_MiB);
	/* A list of raw pointers. */
	char **q = p;
	q[0] = (char *)&q[2];
	strcpy((char *)&q[2], "node");
	/* Attaching again here: the address is taken. */
	struct shmk_rsz s;
	cr_expect_null(shmk_rsz_at(&s, name));
	cr_expect_eq(errno, EADDRINUSE);
	/* An unrelated process (a child that gave up the inherited mapping). */
	pid_t pid = fork();
	if (pid == 0) {
		munmap(r.hdr, r.max);
		struct shmk_rsz t;
		char **u = shmk_rsz_at(&t, name);
		if (u != q)
			_exit(1);
		if (strcmp(u[0], "node") != 0)
			_exit(2);
		_exit(shmk_rsz_dt(&t) == 0 ? 0 : 3);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	cr_expect_eq(shmk_rsz_dt(&r), 0);
	cr_expect_eq(shmk_rsz_dt(&r), 0, "twice is harmless");
	cr_expect_eq(shmk_rsz_rm(&r), 0);
	cr_expect_eq(shm_open(name, O_RDWR, 0), -1);
}

Test(rsz_api, grow_and_catch_up)
{
	struct shmk_rsz r, s;
	char name[64];
	posix_name(name, sizeof name, "grow");
	struct shmk_rsz_scan sc = scan_for(1);
	sc.len = 64 * 1024;
	cr_assert_not_null(shmk_rsz_mk(&r, 4096, name, sc));
	pid_t pid = fork();
	if (pid == 0) {
		/* Another process grows it; the parent catches up. */
		munmap(r.hdr, r.max);
		if (!shmk_rsz_at(&s, name))
			_exit(1);
		if (shmk_rsz_grow(&s) != 1 || s.flen != 16384)
			_exit(2);
		memset((char *)s.dat + 10000, 'z', 100);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	cr_expect_eq(r.flen, 8192);
	cr_expect_eq(shmk_rsz_up(&r), 1);
	cr_expect_eq(r.flen, 16384);
	cr_expect_eq(((char *)r.dat)[10000], 'z');
	cr_expect_eq(shmk_rsz_up(&r), 0);
	cr_expect_eq(shmk_rsz_grow(&r), 1);
	cr_expect_eq(r.flen, 32768, "doubles");
	cr_expect_eq(shmk_rsz_grow_to(&r, 100), 0, "already that large");
	cr_expect_eq(shmk_rsz_grow_to(&r, 40000), 1);
	cr_expect_eq(r.flen, 40960);
	cr_expect_geq(r.cap, 40000);
	cr_expect_eq(shmk_rsz_grow(&r), 1);
	cr_expect_eq(r.flen, 65536, "capped at the maximum");
	cr_expect_eq(shmk_rsz_grow(&r), -1);
	cr_expect_eq(errno, ENOMEM);
	cr_expect_eq(shmk_rsz_grow_to(&r, 65536), -1);
	cr_expect_eq(errno, ENOMEM);
	((char *)r.dat)[r.cap - 1] = 1;
	cr_expect_eq(shmk_rsz_free(&r), 0);
	cr_expect_eq(shm_open(name, O_RDWR, 0), -1, "removed");
}

Test(rsz_api, default_file_and_malloc_handle)
{
	struct shmk_rsz *r;
	cr_assert_not_null(shmk_rsz_mkm(r, 4096, NULL), "%s", strerror(errno));
	cr_expect(r->flags & SHMK_RSZ_F_TMPDIR);
	cr_expect_eq(strncmp(r->fname, "/dev/shm/shmk_rsz_", 18), 0, "%s", r->fname);
	char path[SHMK_RSZ_PATH_MAX], dir[SHMK_RSZ_PATH_MAX];
	strcpy(path, r->fname);
	strcpy(dir, path);
	*strrchr(dir, '/') = '\0';
	cr_expect_eq(access(path, F_OK), 0);
	cr_expect_eq(shmk_rsz_free(r), 0);
	cr_expect_eq(access(path, F_OK), -1, "file removed");
	cr_expect_eq(access(dir, F_OK), -1, "template directory removed");
	struct shmk_rsz *a;
	cr_expect_null(shmk_rsz_atm(a, "/dev/shm/no/such/rsz"));
	cr_expect_eq(errno, ENOENT);
	cr_expect_null(a);
}

Test(rsz_api, errors)
{
	struct shmk_rsz r;
	char name[64];
	posix_name(name, sizeof name, "err");
	struct shmk_rsz_scan sc = scan_for(2);
	cr_expect_null(shmk_rsz_mk(&r, 0, name, sc));
	cr_expect_eq(errno, EINVAL);
	cr_expect_null(shmk_rsz_mk(&r, sc.len, name, sc));
	cr_expect_eq(errno, EINVAL, "no room for the header");
	char longname[200];
	memset(longname, 'a', sizeof longname - 1);
	longname[0] = '/';
	longname[sizeof longname - 1] = '\0';
	cr_expect_null(shmk_rsz_mk(&r, 4096, longname, sc));
	cr_expect_eq(errno, EINVAL);
	cr_expect_null(shmk_rsz_at(&r, ""));
	cr_expect_eq(errno, EINVAL);
	/* Every address of the search taken: ENOSPC. */
	sc.iter = 3;
	void *blocks[3];
	uintptr_t t = (uintptr_t)sc.start;
	for (unsigned i = 1; i <= 3; i++) {
		blocks[i - 1] = mmap((void *)t, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		cr_assert_eq((uintptr_t)blocks[i - 1], t);
		t = i % 2 ? t - i * sc.hop : t + i * sc.hop;
	}
	cr_expect_null(shmk_rsz_mk(&r, 4096, name, sc));
	cr_expect_eq(errno, ENOSPC);
	/* One more attempt finds the next address of the spiral. */
	sc.iter = 4;
	cr_expect_eq(shmk_rsz_mk(&r, 4096, name, sc), (char *)t + SHMK_RSZ_HDR_SIZE);
	struct shmk_rsz r2;
	struct shmk_rsz_scan sc2 = scan_for(3);
	cr_expect_null(shmk_rsz_mk(&r2, 4096, name, sc2));
	cr_expect_eq(errno, EEXIST);
	cr_expect_eq(shmk_rsz_free(&r), 0);
	for (int i = 0; i < 3; i++)
		munmap(blocks[i], 4096);
}

Test(rsz_api, garbage_header)
{
	char name[64];
	posix_name(name, sizeof name, "junk");
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	cr_assert_geq(fd, 0);
	struct shmk_rsz r;
	cr_expect_null(shmk_rsz_at(&r, name));
	cr_expect_eq(errno, ENODATA, "empty file");
	cr_assert_eq(ftruncate(fd, 8192), 0);
	char junk[SHMK_RSZ_HDR_SIZE];
	memset(junk, 0x41, sizeof junk);
	cr_assert_eq(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
	cr_expect_null(shmk_rsz_at(&r, name));
	cr_expect_eq(errno, ENODATA, "junk header");
	close(fd);
	shm_unlink(name);
	/* A valid segment whose header length is then forged. */
	struct shmk_rsz_scan sc = scan_for(4);
	cr_assert_not_null(shmk_rsz_mk(&r, 4096, name, sc));
	uint64_t *h = (uint64_t *)r.hdr;
	h[2] = (uint64_t)r.max * 2;      /* flen beyond max */
	cr_expect_eq(shmk_rsz_up(&r), -1);
	cr_expect_eq(errno, EBADMSG);
	h[2] = 8192;
	cr_expect_eq(shmk_rsz_free(&r), 0);
}
