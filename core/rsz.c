/* Resizable fixed-address segments: the shmk_rsz_* API of <shmkeeper.h>.
 * Modelled on ccan's rszshm (claim a span, map a file over its start, grow
 * into it); the header is versioned and checked, since any process that
 * can open the file can write it. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmkeeper.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define RSZ_MAGIC   0x315a53524b4d4853ull   /* "SHMKRSZ1" */
#define RSZ_VERSION 1u

struct shmk_rsz_hdr {
	/* Stored last by the maker (release): a reader that sees it sees the rest. */
	_Atomic uint64_t magic;
	uint32_t version, hdr_size;
	/* Grown under the record lock; read without it by shmk_rsz_up (acquire). */
	_Atomic uint64_t flen;
	uint64_t max;             /* set at creation, never changes */
	uint64_t addr;            /* set at creation, never changes */
	uint64_t pad[3];
};
_Static_assert(sizeof(struct shmk_rsz_hdr) == SHMK_RSZ_HDR_SIZE, "header size");

static size_t pgsz(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t pgup(size_t x)
{
	size_t p = pgsz();
	return (x + p - 1) & ~(p - 1);
}

/* "/name" with no other slash is a POSIX object; anything else a path. */
static bool is_posix_name(const char *f)
{
	return f[0] == '/' && f[1] && !strchr(f + 1, '/');
}

static void *claim(void *at, size_t len)
{
	/* NOREPLACE: never take over what the program mapped there. Kernels
	 * before 4.17 treat it as a hint: the address comparison catches that. */
	void *m = mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
		       MAP_FIXED_NOREPLACE, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (m != at) {
		munmap(m, len);
		errno = EEXIST;
		return NULL;
	}
	return m;
}

static void set_view(struct shmk_rsz *r, size_t flen)
{
	r->flen = flen;
	r->cap = flen - SHMK_RSZ_HDR_SIZE;
}

#undef shmk_rsz_mk
SHMK_API void *shmk_rsz_mk(struct shmk_rsz *r, size_t flen, const char *fname,
			   struct shmk_rsz_scan scan)
{
	size_t pg = pgsz();
	if (!r || flen == 0 || flen > SIZE_MAX / 4 || !scan.start || scan.hop == 0 ||
	    scan.iter == 0 || (uintptr_t)scan.start % pg || scan.hop % pg ||
	    scan.len < flen + SHMK_RSZ_HDR_SIZE ||
	    (fname && strnlen(fname, SHMK_RSZ_PATH_MAX) == SHMK_RSZ_PATH_MAX) ||
	    (fname && !fname[0])) {
		errno = EINVAL;
		return NULL;
	}
	*r = (struct shmk_rsz){ .fd = -1 };
	strcpy(r->fname, fname ? fname : SHMK_RSZ_DFLT_FNAME);
	flen = pgup(flen + SHMK_RSZ_HDR_SIZE);
	scan.len = pgup(scan.len);
	if (flen > scan.len) {
		errno = EINVAL;
		return NULL;
	}

	char *m = NULL, *tgt = scan.start;
	for (unsigned i = 1; i <= scan.iter; i++) {
		if ((m = claim(tgt, scan.len)) != NULL)
			break;
		if (errno != EEXIST && errno != ENOMEM && errno != EINVAL)
			return NULL;
		/* rszshm's spiral: start, -hop, +hop, -2hop, ... */
		uintptr_t step = (uintptr_t)i * scan.hop;
		tgt = i % 2 ? tgt - step : tgt + step;
	}
	if (!m) {
		errno = ENOSPC;
		return NULL;
	}

	int e;
	char *slash = NULL;
	bool posix = is_posix_name(r->fname);
	if (!posix && (slash = strstr(r->fname, "XXXXXX/")) != NULL) {
		slash += 6;
		*slash = '\0';
		if (!mkdtemp(r->fname)) {
			*slash = '/';
			slash = NULL;
			goto fail;
		}
		*slash = '/';
		r->flags |= SHMK_RSZ_F_TMPDIR;
	}
	if (posix) {
		r->flags |= SHMK_RSZ_F_POSIX;
		r->fd = shm_open(r->fname, O_CREAT | O_EXCL | O_RDWR, 0666);
	} else {
		r->fd = open(r->fname, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, slash ? 0600 : 0666);
	}
	if (r->fd < 0)
		goto fail_nofile;
	if (ftruncate(r->fd, (off_t)flen) < 0)
		goto fail;
	if (mmap(m, flen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, 0) == MAP_FAILED)
		goto fail;
	struct shmk_rsz_hdr *h = (struct shmk_rsz_hdr *)m;
	h->version = RSZ_VERSION;
	h->hdr_size = SHMK_RSZ_HDR_SIZE;
	atomic_store_explicit(&h->flen, flen, memory_order_relaxed);
	h->max = scan.len;
	h->addr = (uintptr_t)m;
	/* release: an attacher that reads the magic reads a complete header. */
	atomic_store_explicit(&h->magic, RSZ_MAGIC, memory_order_release);
	if (!posix && msync(m, SHMK_RSZ_HDR_SIZE, MS_SYNC) < 0)
		goto fail;
	r->hdr = h;
	r->max = scan.len;
	r->dat = m + SHMK_RSZ_HDR_SIZE;
	set_view(r, flen);
	return r->dat;

fail:
	e = errno;
	if (r->fd >= 0) {
		close(r->fd);
		if (posix)
			shm_unlink(r->fname);
		else
			unlink(r->fname);
	}
	errno = e;
fail_nofile:
	e = errno;
	munmap(m, scan.len);
	if (r->flags & SHMK_RSZ_F_TMPDIR) {
		char *p = strrchr(r->fname, '/');
		*p = '\0';
		rmdir(r->fname);
		*p = '/';
	}
	r->fd = -1;
	r->flags = 0;
	errno = e;
	return NULL;
}

SHMK_API void *shmk_rsz_at(struct shmk_rsz *r, const char *fname)
{
	if (!r || !fname || !fname[0] || strnlen(fname, SHMK_RSZ_PATH_MAX) == SHMK_RSZ_PATH_MAX) {
		errno = EINVAL;
		return NULL;
	}
	bool posix = is_posix_name(fname);
	int fd = posix ? shm_open(fname, O_RDWR, 0) : open(fname, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	struct shmk_rsz_hdr h;
	int e;
	char *m = NULL;
	ssize_t n = pread(fd, &h, sizeof h, 0);
	if (n < 0 || fstat(fd, &st) < 0)
		goto fail;
	size_t pg = pgsz();
	/* Everything in the header is checked before it becomes an address or
	 * a length: any process that can open the file can write it. */
	uint64_t flen = atomic_load_explicit(&h.flen, memory_order_relaxed);
	if (n != (ssize_t)sizeof h ||
	    atomic_load_explicit(&h.magic, memory_order_relaxed) != RSZ_MAGIC ||
	    h.version != RSZ_VERSION || h.hdr_size != SHMK_RSZ_HDR_SIZE ||
	    h.addr == 0 || h.addr % pg || h.max % pg || flen % pg ||
	    flen <= SHMK_RSZ_HDR_SIZE || flen > h.max || h.max > (1ull << 56) ||
	    h.addr > (1ull << 56) - h.max || (uint64_t)st.st_size < flen) {
		errno = ENODATA;
		goto fail;
	}
	if ((m = claim((void *)(uintptr_t)h.addr, h.max)) == NULL) {
		if (errno == EEXIST || errno == ENOMEM || errno == EINVAL)
			errno = EADDRINUSE;
		goto fail;
	}
	if (mmap(m, flen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		goto fail;
	*r = (struct shmk_rsz){ .fd = fd, .max = h.max, .hdr = (struct shmk_rsz_hdr *)m,
				.dat = m + SHMK_RSZ_HDR_SIZE,
				.flags = posix ? SHMK_RSZ_F_POSIX : 0 };
	strcpy(r->fname, fname);
	set_view(r, flen);
	/* It may have grown between the read and the map. */
	if (shmk_rsz_up(r) < 0) {
		e = errno;
		shmk_rsz_dt(r);
		errno = e;
		return NULL;
	}
	return r->dat;
fail:
	e = errno;
	if (m)
		munmap(m, h.max);
	close(fd);
	errno = e;
	return NULL;
}

SHMK_API void *shmk__rsz_m(struct shmk_rsz **rp, size_t flen, const char *fname, int make)
{
	struct shmk_rsz *r = malloc(sizeof *r);
	void *p = NULL;
	if (r) {
		p = make ? shmk_rsz_mk(r, flen, fname, SHMK_RSZ_DFLT_SCAN) : shmk_rsz_at(r, fname);
		if (p) {
			r->flags |= SHMK_RSZ_F_MALLOC;
		} else {
			int e = errno;
			free(r);
			r = NULL;
			errno = e;
		}
	}
	*rp = r;
	return p;
}

/* Maps the file up to the header's length; the caller may hold the lock. */
static int catch_up(struct shmk_rsz *r)
{
	if (!r || r->fd < 0 || !r->hdr) {
		errno = EINVAL;
		return -1;
	}
	/* acquire: pairs with the grower's release store, made after its
	 * ftruncate: the file is at least this long. */
	uint64_t flen = atomic_load_explicit(&r->hdr->flen, memory_order_acquire);
	if (flen == r->flen)
		return 0;
	if (flen < r->flen || flen > r->max || flen % pgsz()) {
		errno = EBADMSG;
		return -1;
	}
	if (mmap(r->hdr, flen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, 0) == MAP_FAILED)
		return -1;
	set_view(r, flen);
	return 1;
}

SHMK_API int shmk_rsz_up(struct shmk_rsz *r)
{
	return catch_up(r);
}

/* A process-owned record lock, not flock(2): flock belongs to the open
 * file description, which fork children share with their parent, so it
 * would not exclude them (the rszshm example forks after making the
 * segment, and raced that way: tests/rsz_coop.c). */
static int grow_lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	int r;
	while ((r = fcntl(fd, F_SETLKW, &fl)) < 0 && errno == EINTR)
		;
	return r;
}

static int grow_locked(struct shmk_rsz *r, size_t want)
{
	if (grow_lock(r->fd, F_WRLCK) < 0)
		return -1;
	/* Others may have grown it while we waited, maybe not far enough. */
	int ret = catch_up(r);
	if (ret >= 0 && r->flen < want) {
		if (ftruncate(r->fd, (off_t)want) == 0 &&
		    mmap(r->hdr, want, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, 0) != MAP_FAILED) {
			/* release: the file is sized and mapped before others map it. */
			atomic_store_explicit(&r->hdr->flen, want, memory_order_release);
			set_view(r, want);
			ret = 1;
		} else {
			ret = -1;
		}
	}
	int e = errno;
	grow_lock(r->fd, F_UNLCK);
	errno = e;
	return ret;
}

SHMK_API int shmk_rsz_grow(struct shmk_rsz *r)
{
	int ret = catch_up(r);
	if (ret != 0)
		return ret;
	if (r->flen >= r->max) {
		errno = ENOMEM;
		return -1;
	}
	size_t want = r->flen * 2 < r->max ? r->flen * 2 : r->max;
	ret = grow_locked(r, want);
	/* Someone else grew it while we waited for the lock: that is the grow. */
	return ret == 0 ? 1 : ret;
}

SHMK_API int shmk_rsz_grow_to(struct shmk_rsz *r, size_t cap)
{
	int ret = catch_up(r);
	if (ret < 0)
		return ret;
	if (cap > r->max - SHMK_RSZ_HDR_SIZE) {
		errno = ENOMEM;
		return -1;
	}
	size_t want = pgup(cap + SHMK_RSZ_HDR_SIZE);
	if (r->flen >= want)
		return ret;
	return grow_locked(r, want) < 0 ? -1 : 1;
}

SHMK_API int shmk_rsz_dt(struct shmk_rsz *r)
{
	if (!r) {
		errno = EINVAL;
		return -1;
	}
	if (r->fd < 0)
		return 0;
	int ret = 0, e = 0;
	if (!(r->flags & SHMK_RSZ_F_POSIX) && msync(r->hdr, r->flen, MS_SYNC) < 0)
		ret = -1, e = errno;
	if (munmap(r->hdr, r->max) < 0 && !ret)
		ret = -1, e = errno;
	if (close(r->fd) < 0 && !ret)
		ret = -1, e = errno;
	r->fd = -1;
	r->flen = r->cap = 0;
	r->hdr = NULL;
	r->dat = NULL;
	if (ret)
		errno = e;
	return ret;
}

SHMK_API int shmk_rsz_rm(struct shmk_rsz *r)
{
	if (!r || !r->fname[0]) {
		errno = EINVAL;
		return -1;
	}
	if (r->flags & SHMK_RSZ_F_POSIX)
		return shm_unlink(r->fname);
	if (unlink(r->fname) < 0)
		return -1;
	if (r->flags & SHMK_RSZ_F_TMPDIR) {
		char *p = strrchr(r->fname, '/');
		*p = '\0';
		int ret = rmdir(r->fname);
		*p = '/';
		return ret;
	}
	return 0;
}

SHMK_API int shmk_rsz_free(struct shmk_rsz *r)
{
	if (!r) {
		errno = EINVAL;
		return -1;
	}
	int ret = shmk_rsz_dt(r), e = errno;
	if (shmk_rsz_rm(r) < 0 && errno != ENOENT && ret == 0)
		ret = -1, e = errno;
	if (r->flags & SHMK_RSZ_F_MALLOC)
		free(r);
	if (ret)
		errno = e;
	return ret;
}
