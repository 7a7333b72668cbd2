/* POSIX shared memory: shm_open and shm_unlink, and what is needed to know
 * when an object is mapped, unmapped and resized: mmap, munmap, mremap,
 * ftruncate, fallocate, posix_fallocate, and the fd calls that make or drop
 * a reference to its fd (close, close_range, dup, dup2, dup3, fcntl F_DUPFD).
 *
 * Failure contract: the real call's return value and errno reach the caller
 * unchanged; a failed call on a shm fd or attachment is counted, not recorded.
 *
 * mmap, munmap, close, dup and fcntl run for every file and every malloc
 * arena: when the fd is not a shm object's and the range holds no
 * attachment, they cost a load and a branch (segtab.h) and nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/record.h"
#include "core/segtab.h"
#include "core/span.h"
#include "core/util.h"
#include "preload/real.h"
#include "preload/state.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAX_PIECES 16

/* glibc's shm_open and shm_unlink skip every leading '/', so "x", "/x" and
 * "//x" name /dev/shm/x: the log keeps the one form "/x". */
static void canon_name(const char *name, char out[SK_NAME_MAX])
{
	while (*name == '/')
		name++;
	out[0] = '/';
	sk_strlcpy(out + 1, name, SK_NAME_MAX - 1);
}

static void record_unmapped(const struct sk_attach *p, int n, unsigned extra)
{
	for (int i = 0; i < n; i++) {
		struct sk_attach a = p[i];
		a.flags |= (uint16_t)extra;
		if (a.shmid >= 0)
			sk_ev_sysv_dt(a.shmid, a.addr, a.len, a.flags);
		else
			sk_ev_map(SK_EV_UNMAP, &a, 0, 0);
	}
}

SK_HOT_POSIX SK_EXPORT int shm_open(const char *name, int oflag, mode_t mode)
{
	if (sk_unlikely(!REAL(shm_open))) {
		SK_ERRNO = ENOSYS;
		return -1;
	}
	struct timespec t0 = { 0, 0 };
	if (oflag & O_CREAT)
		sk_clock(CLOCK_REALTIME_COARSE, &t0);  /* the clock file times use */
	int fd = sk_real.shm_open(name, oflag, mode);
	if (!sk_on())
		return fd;
	SK_ENTER();
	if (fd < 0) {
		sk_count_failed(SK_FN_SHM_OPEN);
	} else {
		/* The fd is known with or without a log: where the object is
		 * placed must not depend on whether this process records. */
		char cn[SK_NAME_MAX];
		canon_name(name, cn);
		struct stat st;
		memset(&st, 0, sizeof st);
		fstat(fd, &st);
		unsigned flags = 0;
		if ((oflag & O_CREAT) && (oflag & O_EXCL))
			flags |= SK_F_CREATED;
		else if ((oflag & O_CREAT) && st.st_size == 0 &&
			 (st.st_ctim.tv_sec > t0.tv_sec ||
			  (st.st_ctim.tv_sec == t0.tv_sec && st.st_ctim.tv_nsec >= t0.tv_nsec)))
			/* Changed since the call began: created now, unless
			 * O_TRUNC emptied an existing one. */
			flags |= (oflag & O_TRUNC) ? SK_F_CREATED | SK_F_CREATE_UNSURE : SK_F_CREATED;
		if (sk_tab_lock()) {
			sk_fd_mark(fd, st.st_dev, st.st_ino, cn);
			if (flags & SK_F_CREATED)
				sk_posix_created(cn, st.st_dev, st.st_ino);
			sk_tab_unlock();
		}
		if (sk_log_ready())
			sk_ev_posix_open(cn, fd, oflag, st.st_dev, st.st_ino, (uint64_t)st.st_size,
					 st.st_mode & 07777, st.st_uid, flags);
	}
	SK_LEAVE();
	return fd;
}

SK_HOT_POSIX SK_EXPORT int shm_unlink(const char *name)
{
	if (sk_unlikely(!REAL(shm_unlink))) {
		SK_ERRNO = ENOSYS;
		return -1;
	}
	if (!sk_on())
		return sk_real.shm_unlink(name);
	char cn[SK_NAME_MAX], path[SK_NAME_MAX + 16];
	struct stat st;
	int saved = SK_ERRNO, have = 0;
	if (name && strlen(name) < SK_NAME_MAX) {
		/* Which object the name meant: the report tells apart two
		 * objects that had the same name at different times. */
		canon_name(name, cn);
		sk_fmt_str(path, sk_fmt_str(path, 0, sizeof path, "/dev/shm"), sizeof path, cn);
		have = fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
	}
	SK_ERRNO = saved;
	int ret = sk_real.shm_unlink(name);
	SK_ENTER();
	if (ret < 0) {
		sk_count_failed(SK_FN_SHM_UNLINK);
	} else if (sk_log_ready()) {
		if (sk_tab_lock()) {
			sk_posix_forget(cn);
			sk_tab_unlock();
		}
		sk_ev_posix_unlink(cn, have ? st.st_dev : 0, have ? st.st_ino : 0);
	}
	if (ret == 0 && name && strlen(name) < SK_NAME_MAX) {
		struct sk_span_key k = { .kind = SK_SPAN_POSIX, .name = cn,
					 .dev = have ? st.st_dev : 0, .ino = have ? st.st_ino : 0 };
		sk_span_removed(&k);
	}
	SK_LEAVE();
	return ret;
}

/* mmap through the span (core/span.h): a shared mapping of a POSIX object
 * made without an address is placed at the object's address in the span;
 * a fixed one inside the span is checked against the policy. */
static void *mmap_span(void *addr, size_t len, int prot, int flags, int fd, off_t off,
		       int shm_fd, unsigned *aflags, unsigned *why, int *r)
{
	struct sk_span_key k = { .kind = SK_SPAN_POSIX };
	struct sk_span_ticket t;
	char name[256];
	int saved = SK_ERRNO, have = 0, type = flags & MAP_TYPE;
	int fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	void *ret;
	*why = 0;
	*r = 0;
	if (shm_fd && sk_tab_lock()) {
		have = sk_fd_lookup(fd, &k.dev, &k.ino, name);
		sk_tab_unlock();
	}
	if (have && !addr && !fixed && (type == MAP_SHARED || type == MAP_SHARED_VALIDATE)) {
		struct stat st;
		k.name = name;
		k.size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
		void *a;
		*r = sk_span_place(&k, len, (uint64_t)off, &t, &a);
		if (*r == 0) {
			SK_ERRNO = saved;
			/* Over the reservation, or into a hole of ours
			 * without replacing anything (core/span.c). */
			ret = REAL(mmap)(a, len, prot,
					 flags | (t.hole ? MAP_FIXED_NOREPLACE : MAP_FIXED), fd, off);
			if (ret != MAP_FAILED && ret != a) {
				/* A kernel older than 4.17 took NOREPLACE as a hint. */
				REAL(munmap)(ret, len);
				ret = MAP_FAILED;
			}
			sk_span_commit(&t, ret != MAP_FAILED);
			if (ret != MAP_FAILED) {
				*aflags |= SK_F_PLACED;
				return ret;
			}
			/* Refused at that address: under warn, the kernel's own
			 * choice is the answer the program would have had. */
			if (sk_span_policy() == SK_SPAN_STRICT) {
				/* A hole of ours that something else took: the
				 * program asked for no address, so not EEXIST. */
				if (t.hole && SK_ERRNO == EEXIST)
					SK_ERRNO = sk_span_strict_errno(SK_SPAN_POSIX, flags);
				return ret;
			}
			SK_ERRNO = saved;
			ret = REAL(mmap)(addr, len, prot, flags, fd, off);
			if (ret != MAP_FAILED)
				*why = SK_W_SPAN_FULL;
			return ret;
		}
		if (*r == -ENODEV || *r == -EDEADLK || *r == -EINVAL) {
			SK_ERRNO = saved;
			return REAL(mmap)(addr, len, prot, flags, fd, off);
		}
		if (sk_span_policy() == SK_SPAN_STRICT) {
			*why = SK_W_PLACE_REFUSED;
			SK_ERRNO = sk_span_strict_errno(SK_SPAN_POSIX, flags);
			return MAP_FAILED;
		}
		*why = SK_W_SPAN_FULL;
		SK_ERRNO = saved;
		return REAL(mmap)(addr, len, prot, flags, fd, off);
	}
	if (!fixed || !sk_span_overlaps(addr, len)) {
		SK_ERRNO = saved;
		return REAL(mmap)(addr, len, prot, flags, fd, off);
	}
	int extra = 0;
	if (have) {
		k.name = name;
	}
	*r = sk_span_explicit(have ? &k : NULL, addr, len,
			      (flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE), &t, &extra);
	if (*r == -EPERM) {
		*why = SK_W_PLACE_REFUSED;
		SK_ERRNO = sk_span_strict_errno(SK_SPAN_POSIX, flags);
		return MAP_FAILED;
	}
	SK_ERRNO = saved;
	if (*r < 0)
		return REAL(mmap)(addr, len, prot, flags, fd, off);
	int fl = flags;
	if (extra == SK_SPAN_TO_FIXED)
		fl = (fl & ~MAP_FIXED_NOREPLACE) | MAP_FIXED;
	ret = REAL(mmap)(addr, len, prot, fl, fd, off);
	sk_span_commit(&t, ret != MAP_FAILED);
	if (*r == SK_SPAN_FOREIGN && have)
		*why = SK_W_ADDR_IN_SPAN;
	else if (*r == SK_SPAN_IS_PLACEMENT && ret != MAP_FAILED)
		*aflags |= SK_F_PLACED;
	return ret;
}

SK_HOT_POSIX SK_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int shm_fd = !(flags & MAP_ANONYMOUS) && sk_fd_maybe_shm(fd);
	int over = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) &&
		   (sk_att_maybe((uint64_t)addr, len) || sk_span_overlaps(addr, len));
	if (sk_likely(!shm_fd && !over)) {
		void *r = REAL(mmap)(addr, len, prot, flags, fd, off);
		/* The kernel's own address in the span: one of our holes. */
		if (sk_unlikely(r != MAP_FAILED && sk_span_overlaps(r, len)))
			sk_span_taken(r, len);
		return r;
	}
	if (!sk_on())
		return REAL(mmap)(addr, len, prot, flags, fd, off);
	unsigned aflags = 0, why;
	int r;
	void *ret = mmap_span(addr, len, prot, flags, fd, off, shm_fd, &aflags, &why, &r);
	int sk_errno_ = SK_ERRNO;
	/* The kernel's own address in the span: one of our holes. */
	if (ret != MAP_FAILED && !(aflags & SK_F_PLACED) &&
	    !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && sk_span_overlaps(ret, len))
		sk_span_taken(ret, len);
	if (ret == MAP_FAILED) {
		if (shm_fd)
			sk_count_failed(SK_FN_MMAP);
	} else if (sk_log_ready()) {
		struct sk_attach gone[MAX_PIECES];
		int ngone = 0, mapped = 0;
		struct sk_attach a = { .addr = (uint64_t)ret, .len = sk_page_round(len),
				       .offset = (uint64_t)off, .shmid = -1,
				       .flags = (uint16_t)aflags };
		if ((flags & MAP_TYPE) == MAP_PRIVATE)
			a.flags |= SK_F_PRIVATE;
		if (sk_tab_lock()) {
			/* A fixed mapping replaced whatever was mapped there. */
			if (flags & MAP_FIXED || aflags & SK_F_PLACED)
				ngone = sk_att_cut(a.addr, a.len, gone, MAX_PIECES);
			if (shm_fd && sk_fd_lookup(fd, &a.dev, &a.ino, NULL)) {
				sk_att_add(&a);
				mapped = 1;
			}
			sk_tab_unlock();
		}
		record_unmapped(gone, ngone, SK_F_IMPLICIT);
		/* SK_F_PLACED in the map record says it was placed: no
		 * separate PLACE record (one event less a placement). */
		if (mapped)
			sk_ev_map(SK_EV_POSIX_MAP, &a, prot, flags);
	}
	if (why && sk_log_ready())
		sk_ev_warn(why, why == SK_W_ADDR_IN_SPAN ? (int64_t)(uintptr_t)addr : -r,
			   fd, why == SK_W_ADDR_IN_SPAN ?
			   "mmap at a fixed address inside the span" :
			   why == SK_W_PLACE_REFUSED ? "mmap refused by the strict span policy" :
			   "mmap not placed in the span: kernel's address used");
	SK_LEAVE();
	return ret;
}
SK_EXPORT void *mmap64(void *, size_t, int, int, int, off_t) __attribute__((alias("mmap")));

SK_HOT_POSIX SK_EXPORT int munmap(void *addr, size_t len)
{
	if (sk_likely(!sk_att_maybe((uint64_t)addr, len) && !sk_span_overlaps(addr, len)))
		return REAL(munmap)(addr, len);
	if (!sk_on())
		return REAL(munmap)(addr, len);
	int saved = SK_ERRNO, ret;
	/* Inside the span the reservation goes back over the range in the same
	 * step as the unmap. */
	int r = sk_span_overlaps(addr, len) ? sk_span_unmap(addr, len, SK_SPAN_MUNMAP, NULL) : 0;
	SK_ERRNO = saved;
	ret = r == 1 ? 0 : REAL(munmap)(addr, len);
	int sk_errno_ = SK_ERRNO;
	if (ret < 0) {
		sk_count_failed(SK_FN_MUNMAP);
	} else if (sk_log_ready()) {
		struct sk_attach gone[MAX_PIECES];
		int ngone = 0;
		if (sk_tab_lock()) {
			ngone = sk_att_cut((uint64_t)addr, sk_page_round(len), gone, MAX_PIECES);
			sk_tab_unlock();
		}
		record_unmapped(gone, ngone, 0);
	}
	SK_LEAVE();
	return ret;
}

SK_HOT_POSIX SK_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL;
	if (flags & MREMAP_FIXED) {
		va_list ap;
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	int hit = sk_att_maybe((uint64_t)old, old_len ? old_len : 1) ||
		  sk_span_overlaps(old, old_len) ||
		  ((flags & MREMAP_FIXED) && sk_att_maybe((uint64_t)new_addr, new_len));
	void *ret = REAL(mremap)(old, old_len, new_len, flags, new_addr);
	/* Moved by the kernel into the span, or grown in place there: what it
	 * took is the program's now. (Not the part that stayed where it was:
	 * that may be a placement of ours.) */
	if (sk_unlikely(ret != MAP_FAILED)) {
		uint64_t ol = sk_page_round(old_len), nl = sk_page_round(new_len);
		if (ret != old && sk_span_overlaps(ret, new_len))
			sk_span_taken(ret, new_len);
		else if (ret == old && nl > ol && sk_span_overlaps((char *)old + ol, nl - ol))
			sk_span_taken((char *)old + ol, nl - ol);
	}
	if (sk_likely(!hit))
		return ret;
	if (!sk_on())
		return ret;
	SK_ENTER();
	if (ret != MAP_FAILED && ret != old && old_len && !(flags & MREMAP_DONTUNMAP) &&
	    sk_span_overlaps(old, old_len)) {
		/* Moved out of its place: the span takes the old range back. */
		sk_span_unmap(old, old_len, SK_SPAN_FORGET, NULL);
		sk_span_rereserve(old, old_len);
	} else if (ret == old && new_len < old_len && sk_span_overlaps(old, old_len)) {
		/* Shrunk in place: the span takes the tail back. */
		uint64_t keep = sk_page_round(new_len), end = sk_page_round(old_len);
		if (keep < end)
			sk_span_rereserve((char *)old + keep, end - keep);
	}
	if (ret == MAP_FAILED) {
		sk_count_failed(SK_FN_MREMAP);
	} else if (sk_log_ready()) {
		struct sk_attach gone[MAX_PIECES], moved[MAX_PIECES];
		int ngone = 0, nmoved = 0;
		uint64_t nl = sk_page_round(new_len);
		if (sk_tab_lock()) {
			if (flags & MREMAP_FIXED)
				ngone = sk_att_cut((uint64_t)ret, nl, gone, MAX_PIECES);
			/* old_len 0 duplicates a shared mapping: the old one stays. */
			if (old_len && !(flags & MREMAP_DONTUNMAP))
				nmoved = sk_att_cut((uint64_t)old, sk_page_round(old_len),
						    moved, MAX_PIECES);
			else
				nmoved = sk_att_find((uint64_t)old, &moved[0]);
			if (nmoved) {
				struct sk_attach a = moved[0];
				a.addr = (uint64_t)ret;
				a.len = nl;
				a.flags &= (uint16_t)~SK_F_PARTIAL;
				sk_att_add(&a);
			}
			sk_tab_unlock();
		}
		record_unmapped(gone, ngone, SK_F_IMPLICIT);
		if (nmoved)
			sk_ev_remap(&moved[0], (uint64_t)ret, nl, flags);
	}
	SK_LEAVE();
	return ret;
}

static void record_resize(int fd, int how)
{
	uint64_t dev, ino;
	int have = 0;
	if (sk_tab_lock()) {
		have = sk_fd_lookup(fd, &dev, &ino, NULL);
		sk_tab_unlock();
	}
	struct stat st;
	if (have && fstat(fd, &st) == 0)
		sk_ev_resize(dev, ino, fd, (uint64_t)st.st_size, how);
}

SK_HOT_POSIX SK_EXPORT int ftruncate(int fd, off_t length)
{
	if (sk_likely(!sk_fd_maybe_shm(fd)))
		return REAL(ftruncate)(fd, length);
	int ret = REAL(ftruncate)(fd, length);
	if (!sk_on())
		return ret;
	SK_ENTER();
	if (ret < 0)
		sk_count_failed(SK_FN_FTRUNCATE);
	else if (sk_log_ready())
		record_resize(fd, 0);
	SK_LEAVE();
	return ret;
}
SK_EXPORT int ftruncate64(int, off_t) __attribute__((alias("ftruncate")));

SK_EXPORT int fallocate(int fd, int mode, off_t offset, off_t len)
{
	if (sk_likely(!sk_fd_maybe_shm(fd)))
		return REAL(fallocate)(fd, mode, offset, len);
	int ret = REAL(fallocate)(fd, mode, offset, len);
	if (!sk_on())
		return ret;
	SK_ENTER();
	if (ret < 0)
		sk_count_failed(SK_FN_FALLOCATE);
	else if (sk_log_ready())
		record_resize(fd, 1);
	SK_LEAVE();
	return ret;
}
SK_EXPORT int fallocate64(int, int, off_t, off_t) __attribute__((alias("fallocate")));

/* Returns an error number, not -1 and errno. */
SK_EXPORT int posix_fallocate(int fd, off_t offset, off_t len)
{
	if (sk_likely(!sk_fd_maybe_shm(fd)))
		return REAL(posix_fallocate)(fd, offset, len);
	int ret = REAL(posix_fallocate)(fd, offset, len);
	if (!sk_on())
		return ret;
	SK_ENTER();
	if (ret != 0)
		sk_count_failed(SK_FN_FALLOCATE);
	else if (sk_log_ready())
		record_resize(fd, 2);
	SK_LEAVE();
	return ret;
}
SK_EXPORT int posix_fallocate64(int, off_t, off_t) __attribute__((alias("posix_fallocate")));

/* ---- fd references ---------------------------------------------------- */

static void fd_unmark(int fd)
{
	if (sk_tab_lock()) {
		sk_fd_unmark(fd);
		sk_tab_unlock();
	}
}

/* libunwind's pipe (core/record.c): libunwind validates addresses by
 * reading and writing a byte through it, so it must stay libunwind's, at
 * the numbers libunwind keeps (mem_validate_pipe, static in its Ginit.c).
 *
 * The pipe2 wrapper below moves it AT OR ABOVE the soft RLIMIT_NOFILE: the
 * kernel gives the program no new fd there (open, dup, F_DUPFD, dup2 all
 * stop below the soft limit), and an fd already there stays valid. So the
 * program opens as many files as without the library and sees the same
 * numbers below its limit (tests/fd_budget.sh; LTP's shm_open/38-1 counted
 * 19994 files instead of 19996 when the pipe sat at limit-16). F_DUPFD
 * only takes a floor below the limit, so the library's numbers are out of
 * reach: the soft limit is raised by 2 (never past the hard limit) for the
 * two F_DUPFD_CLOEXEC calls and put back at once. Where that cannot be
 * done (hard == soft, a soft limit too close to fs.nr_open, a refusal,
 * numbers there already taken), the pipe goes to the top of the range
 * below the limit, at limit-16, as before.
 *
 * A program that closes those numbers (close, close_range) gets the pipe
 * put back at once, at the same numbers (dup3 there needs the limit above
 * them, raised the same way); one that dup2s its own fd onto them (it
 * raised its limit first) takes them for good, and then the library stops
 * taking backtraces rather than let libunwind touch the program's fd.
 *
 * The raise lasts a few syscalls, with raw syscalls that no interposer
 * sees. In that window another thread (or a signal handler) that opens an
 * fd gets a number at or above the old limit only if every number below it
 * is in use, where it would have had EMFILE: accepted, the program is then
 * holding a valid fd it could not have had, and the library's F_DUPFD
 * lands higher or fails (then the pipe goes below the limit). A getrlimit
 * in the window sees the raised value; a setrlimit in the window is kept
 * (nofile_restore). A program that lowers its soft limit later leaves the
 * pipe valid; a fork child inherits it; exec closes it (CLOEXEC). */
static int unw_pipe[2] = { -1, -1 };    /* libunwind's {read, write} */

/* The kernel's struct rlimit64, for SYS_prlimit64. */
struct nofile {
	uint64_t cur, max;
};

static int nofile_get(struct nofile *l)
{
	return syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, l) == 0 ? 0 : -1;
}

/* Raises the soft limit from old->cur to `want`, capped at the hard limit;
 * returns the soft limit now in force (old->cur if it was not raised). */
static uint64_t nofile_raise(const struct nofile *old, uint64_t want)
{
	if (want > old->max)     /* RLIM_INFINITY is UINT64_MAX: no cap */
		want = old->max;
	if (want <= old->cur)
		return old->cur;
	struct nofile up = { want, old->max };
	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &up, NULL) != 0)
		return old->cur;
	return want;
}

/* Puts back the limits of `old`, which nofile_raise raised to `raised`. If
 * the program changed them in between (another thread, a signal handler),
 * its change stands: the exchange returns what was in force, and that is
 * put back when it is not ours. If the kernel refuses old (the program
 * lowered the hard limit in between), the program's limits stand. */
static void nofile_restore(const struct nofile *old, uint64_t raised)
{
	struct nofile was;
	if (raised == old->cur)
		return;
	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, old, &was) != 0)
		return;
	if (was.cur != raised || was.max != old->max)
		syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &was, NULL);
}

static int unw_fd(int fd)
{
	return fd == sk_unw_fd[0] || fd == sk_unw_fd[1];
}

static void unw_note(const int fds[2])
{
	unw_pipe[0] = fds[0];
	unw_pipe[1] = fds[1];
	int lo = fds[0] < fds[1] ? fds[0] : fds[1];
	sk_unw_fd[1] = fds[0] < fds[1] ? fds[1] : fds[0];
	/* [0] the smaller, for the fast path in close */
	__atomic_store_n(&sk_unw_fd[0], lo, __ATOMIC_RELEASE);
}

/* Moves the pipe libunwind just made; see above. */
static void unw_place(int fds[2])
{
	struct nofile old;
	if (nofile_get(&old) == 0 && old.cur < (uint64_t)INT_MAX - 2) {
		uint64_t lim = nofile_raise(&old, old.cur + 2);
		long a = -1, b = -1;
		if (lim == old.cur + 2) {
			a = syscall(SYS_fcntl, fds[0], F_DUPFD_CLOEXEC, (long)old.cur);
			if (a >= 0)
				b = syscall(SYS_fcntl, fds[1], F_DUPFD_CLOEXEC, (long)old.cur);
		}
		nofile_restore(&old, lim);
		if (a >= 0 && b >= 0) {
			syscall(SYS_close, fds[0]);
			syscall(SYS_close, fds[1]);
			fds[0] = (int)a;
			fds[1] = (int)b;
			unw_note(fds);
			return;
		}
		if (a >= 0)
			syscall(SYS_close, a);
	}
	long floor = 1024;
	if (nofile_get(&old) == 0 && old.cur < (uint64_t)INT_MAX)
		floor = (long)old.cur;
	floor = floor > 64 ? floor - 16 : 3;
	for (int i = 0; i < 2; i++) {
		long nfd = syscall(SYS_fcntl, fds[i], F_DUPFD_CLOEXEC, floor);
		if (nfd >= 0) {
			syscall(SYS_close, fds[i]);
			fds[i] = (int)nfd;
		}
	}
	unw_note(fds);
}

/* Backtraces off for good, said once whatever the program does next (a
 * program that dup2s over the pipe's numbers in a loop). */
static void unw_give_up(const char *why)
{
	static int said;

	sk_rec_cfg.bt_depth = 0;
	if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
		sk_say(why);
}

/* The program closed the pipe's numbers: a new pipe goes there at once,
 * before the program can have them. Above the soft limit, dup3 needs the
 * limit raised past them; the pipe2 is made in the same window, so that a
 * program with every fd below its limit in use still gets its pipe back.
 * If a number cannot be had again, none is kept (libunwind, whose read
 * then fails with EBADF, makes a new pipe at its next use, which the pipe2
 * wrapper places): that is safe where the program cannot have the numbers
 * either, at or above the hard limit; anywhere else the library stops
 * taking backtraces. */
static void unw_fds_closed(void)
{
	if (unw_pipe[0] < 0)
		return;         /* no pipe yet: close(INT_MAX), close_range(x, ~0U) */
	int saved = SK_ERRNO, p[2], ok = 0, got[2] = { 0, 0 };
	struct nofile old = { 0, UINT64_MAX };
	if (nofile_get(&old) == 0) {
		uint64_t lim = nofile_raise(&old, (uint64_t)sk_unw_fd[1] + 1);
		if (syscall(SYS_pipe2, p, O_CLOEXEC | O_NONBLOCK) == 0) {
			/* An end made at the other end's number would be
			 * replaced by the first dup3: move it aside. */
			for (int i = 0; i < 2; i++) {
				if (p[i] != unw_pipe[1 - i])
					continue;
				long q = syscall(SYS_fcntl, p[i], F_DUPFD_CLOEXEC, 0L);
				syscall(SYS_close, p[i]);
				p[i] = (int)q;
			}
			for (int i = 0; i < 2 && p[0] >= 0 && p[1] >= 0; i++) {
				if (p[i] == unw_pipe[i]) {
					got[i] = 1;
					continue;
				}
				got[i] = syscall(SYS_dup3, p[i], unw_pipe[i], O_CLOEXEC) >= 0;
				syscall(SYS_close, p[i]);
			}
			for (int i = 0; i < 2 && (p[0] < 0 || p[1] < 0); i++)
				if (p[i] >= 0)
					syscall(SYS_close, p[i]);
			ok = got[0] && got[1];
		}
		nofile_restore(&old, lim);
	}
	if (!ok) {
		for (int i = 0; i < 2; i++)
			if (got[i])
				syscall(SYS_close, unw_pipe[i]);
		if ((uint64_t)sk_unw_fd[0] < old.max)
			unw_give_up("the unwinder's file descriptors could not be put back: events are recorded without backtraces from now on");
	}
	SK_ERRNO = saved;
}

static void unw_fd_taken(void)
{
	unw_give_up("the program took the unwinder's file descriptors: events are recorded without backtraces from now on");
}

SK_HOT_POSIX SK_EXPORT int close(int fd)
{
	if (sk_likely(!sk_fd_maybe_shm(fd)) && sk_likely(fd < sk_unw_fd[0]))
		return REAL(close)(fd);
	/* libunwind closes its pipe before it makes a new one: keep ours. */
	if (sk_rec_in_unwind && unw_fd(fd))
		return 0;
	int ret = REAL(close)(fd);
	SK_ENTER();
	/* Linux releases the fd even when close fails (EINTR, EIO). */
	fd_unmark(fd);
	if (unw_fd(fd))
		unw_fds_closed();
	SK_LEAVE();
	return ret;
}

SK_EXPORT int pipe2(int fds[2], int flags)
{
	int ret = REAL(pipe2)(fds, flags);
	if (sk_likely(!sk_rec_in_unwind) || ret != 0)
		return ret;
	SK_ENTER();
	unw_place(fds);
	SK_LEAVE();
	return ret;
}

SK_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	if (sk_unlikely(!REAL(close_range))) {
		SK_ERRNO = ENOSYS;
		return -1;
	}
	int ret = sk_real.close_range(first, last, flags);
	if (ret == 0 && !(flags & CLOSE_RANGE_CLOEXEC)) {
		SK_ENTER();
		if (sk_tab_lock()) {
			sk_fd_unmark_range(first, last);
			sk_tab_unlock();
		}
		if ((sk_unw_fd[0] >= (int)first && (unsigned)sk_unw_fd[0] <= last) ||
		    (sk_unw_fd[1] >= (int)first && (unsigned)sk_unw_fd[1] <= last))
			unw_fds_closed();
		SK_LEAVE();
	}
	return ret;
}

static void fd_dup(int oldfd, int newfd)
{
	if (sk_tab_lock()) {
		sk_fd_dup(oldfd, newfd);
		sk_tab_unlock();
	}
}

SK_HOT_POSIX SK_EXPORT int dup(int oldfd)
{
	if (sk_likely(!sk_fd_maybe_shm(oldfd)))
		return REAL(dup)(oldfd);
	int ret = REAL(dup)(oldfd);
	if (ret >= 0) {
		SK_ENTER();
		fd_dup(oldfd, ret);
		SK_LEAVE();
	}
	return ret;
}

SK_HOT_POSIX SK_EXPORT int dup2(int oldfd, int newfd)
{
	if (sk_likely(!sk_fd_maybe_shm(oldfd) && !sk_fd_maybe_shm(newfd)) &&
	    sk_likely(newfd < sk_unw_fd[0]))
		return REAL(dup2)(oldfd, newfd);
	int ret = REAL(dup2)(oldfd, newfd);
	if (ret >= 0 && unw_fd(newfd) && oldfd != newfd)
		unw_fd_taken();
	if (ret >= 0 && oldfd != newfd) {
		SK_ENTER();
		fd_dup(oldfd, newfd);
		SK_LEAVE();
	}
	return ret;
}

SK_HOT_POSIX SK_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (sk_likely(!sk_fd_maybe_shm(oldfd) && !sk_fd_maybe_shm(newfd)) &&
	    sk_likely(newfd < sk_unw_fd[0]))
		return REAL(dup3)(oldfd, newfd, flags);
	int ret = REAL(dup3)(oldfd, newfd, flags);
	if (ret >= 0 && unw_fd(newfd))
		unw_fd_taken();
	if (ret >= 0) {
		SK_ENTER();
		fd_dup(oldfd, newfd);
		SK_LEAVE();
	}
	return ret;
}

SK_HOT_POSIX SK_EXPORT int fcntl(int fd, int cmd, ...)
{
	/* As glibc does: the optional argument is read as a pointer-sized
	 * slot and passed on, whatever its type. */
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (sk_likely(!sk_fd_maybe_shm(fd)) || (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC))
		return REAL(fcntl)(fd, cmd, arg);
	int ret = REAL(fcntl)(fd, cmd, arg);
	if (ret >= 0) {
		SK_ENTER();
		fd_dup(fd, ret);
		SK_LEAVE();
	}
	return ret;
}
SK_EXPORT int fcntl64(int, int, ...) __attribute__((alias("fcntl")));
