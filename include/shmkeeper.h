/* shmkeeper.h - the native API of libshmkeeper.
 *
 * libshmkeeper.so is two things. Preloaded (LD_PRELOAD, or `shmkeeper run`)
 * onto an unmodified program, it records the lifetime of every System V and
 * POSIX shared-memory segment the program touches; nothing in this header is
 * needed for that. Linked (`pkg-config --cflags --libs shmkeeper`), it also
 * offers the functions below:
 *
 *   - resizable fixed-address segments (shmk_rsz_*), whose pointers stay valid
 *     in every process that attaches them;
 *   - a shared-memory segment with a header, a common-data area and a byte
 *     ring buffer (shmk_shm_*, shmk_rbuf_*), with locking that survives a peer
 *     that dies, and a message layer over it (shmk_msg_*);
 *   - a registry of termination cleanups (shmk_cleanup_*) that run at exit and
 *     on fatal signals.
 *
 * Error conventions, kept per function and said in each description: functions
 * returning a pointer return NULL and set errno; functions returning int either
 * return -1 and set errno ("-1/errno") or return 0 or a positive error code
 * ("error code"), as the seed interfaces they come from did.
 *
 * Segments made through this API are recorded like any other when the library
 * records (SHMKEEPER_LOG_DIR set).
 */
#ifndef SHMKEEPER_H
#define SHMKEEPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHMK_API __attribute__((visibility("default")))
#else
#define SHMK_API
#endif

/* shmk_version - the library's version, "MAJOR.MINOR.PATCH".
 * Returns: a static string. */
SHMK_API const char *shmk_version(void);

/* ==== Resizable fixed-address segments (rszshm) ==================== */
/* (section owned by core/rsz.c) */
/*
 * A resizable segment claims a span of address space (its maximum size) at
 * an address found by a search of the middle of the address space, and maps
 * a shared file over the start of that span; growing maps more of the file
 * over more of the span. The address and the sizes are written in a header
 * at the start of the file, so that an unrelated process can attach the
 * segment at the same address: pointers stored inside it are then valid in
 * every process that attaches it. (After ccan's rszshm, by Dan Good.)
 *
 * The shared file is a POSIX shared-memory object when the name has the
 * form "/name" (one slash, at the start; shm_open(3)), and a file path
 * otherwise ("/dev/shm/app/seg", "/var/tmp/x"). A path whose directory part
 * ends in "XXXXXX" is a template: mkdtemp(3) makes the directory.
 *
 * The functions keep to one error convention: pointers are NULL with errno
 * set, ints are -1 with errno set. Handles are not shared between threads
 * without a lock of the caller's.
 */

/* struct shmk_rsz_scan - where shmk_rsz_mk looks for free address space
 * @start: first address tried (page-aligned)
 * @len:   size of the span claimed: the segment's maximum, header included
 * @hop:   distance between attempts
 * @iter:  number of attempts
 * Attempts go start, start - hop, start + hop, start - 2*hop, ... (rszshm's
 * spiral), each a private PROT_NONE MAP_NORESERVE mapping that never
 * replaces anything (MAP_FIXED_NOREPLACE). */
struct shmk_rsz_scan {
	void    *start;
	size_t   len;
	size_t   hop;
	unsigned iter;
};

#define SHMK_KiB (1024ULL)
#define SHMK_MiB (1024ULL * SHMK_KiB)
#define SHMK_GiB (1024ULL * SHMK_MiB)
#define SHMK_TiB (1024ULL * SHMK_GiB)

/* The default search: 4 GiB spans around 48 TiB, 1 TiB apart, 10 tries (the
 * middle of the 47-bit x86-64 user space, below libshmkeeper's own span at
 * 64 TiB; 96 TiB on aarch64). */
#if defined(__aarch64__)
#define SHMK_RSZ_DFLT_SCAN ((struct shmk_rsz_scan){ (void *)(96 * SHMK_TiB), 4 * SHMK_GiB, 1 * SHMK_TiB, 10 })
#else
#define SHMK_RSZ_DFLT_SCAN ((struct shmk_rsz_scan){ (void *)(48 * SHMK_TiB), 4 * SHMK_GiB, 1 * SHMK_TiB, 10 })
#endif

#define SHMK_RSZ_PATH_MAX   128
#define SHMK_RSZ_DFLT_FNAME "/dev/shm/shmk_rsz_XXXXXX/0"

/* The header at the start of the shared file; opaque: read it through the
 * handle. Its size is SHMK_RSZ_HDR_SIZE. */
struct shmk_rsz_hdr;
#define SHMK_RSZ_HDR_SIZE 64

/* struct shmk_rsz - a process's handle on a resizable segment
 * @fd:    the shared file, or -1 once detached
 * @flen:  bytes of the file mapped in this process (header included)
 * @max:   bytes of address space claimed (the most flen can become)
 * @fname: the name given to (or made by) shmk_rsz_mk, or given to shmk_rsz_at
 * @hdr:   the mapping's start (the header)
 * @dat:   the usable memory, right after the header; never moves
 * @cap:   bytes usable at dat in this process (flen - SHMK_RSZ_HDR_SIZE)
 * @flags: SHMK_RSZ_F_* (internal bookkeeping)
 * cap grows by shmk_rsz_grow, shmk_rsz_grow_to and shmk_rsz_up. */
struct shmk_rsz {
	int    fd;
	size_t flen;
	size_t max;
	char   fname[SHMK_RSZ_PATH_MAX];
	struct shmk_rsz_hdr *hdr;
	void  *dat;
	size_t cap;
	unsigned flags;
};
#define SHMK_RSZ_F_POSIX  1u  /* fname is a shm_open name */
#define SHMK_RSZ_F_TMPDIR 2u  /* fname's directory came from a template */
#define SHMK_RSZ_F_MALLOC 4u  /* the handle came from shmk_rsz_mkm/_atm */

/* shmk_rsz_mk - make a resizable segment and map it at a free address
 * @r:     handle to fill
 * @flen:  initial usable size (rounded up, with the header, to pages)
 * @fname: "/name" (POSIX object), a path, a path template, or NULL for
 *         SHMK_RSZ_DFLT_FNAME; it must not exist yet
 * @scan:  the search (optional: with three arguments, SHMK_RSZ_DFLT_SCAN;
 *         a compound literal must be parenthesised)
 * Claims scan.len bytes of address space at the first free address of the
 * search, creates the file (O_EXCL), sizes it, maps it MAP_SHARED over the
 * start of the claim and writes the header (address, flen, max).
 * Returns: r->dat, or NULL with errno: EINVAL (bad argument, scan.len too
 * small for flen, name too long), ENOSPC (no free address after scan.iter
 * attempts), EEXIST (the file exists), or an errno of open, shm_open,
 * mkdtemp, ftruncate, mmap.
 * Example:
 *	struct shmk_rsz r;
 *	if (!shmk_rsz_mk(&r, 4 * SHMK_MiB, "/myapp.heap"))
 *		err(1, "shmk_rsz_mk");
 *	struct node *n = r.dat;   // valid at this address in every attacher
 */
SHMK_API void *shmk_rsz_mk(struct shmk_rsz *r, size_t flen, const char *fname,
			   struct shmk_rsz_scan scan);
#define SHMK__RSZ_4ARGS(a, b, c, d, ...) a, b, c, d
#define shmk_rsz_mk(...) shmk_rsz_mk(SHMK__RSZ_4ARGS(__VA_ARGS__, SHMK_RSZ_DFLT_SCAN))

/* shmk_rsz_at - attach an existing resizable segment at its address
 * @r:     handle to fill
 * @fname: the name the segment was made with (r->fname of the maker)
 * Reads the header, validates it (magic, version, sizes, alignment, the
 * file's size), claims max bytes at the recorded address without replacing
 * anything, and maps the file over it. Fork children of an attached process
 * inherit the mapping and must not call it.
 * Returns: r->dat, or NULL with errno: EINVAL (bad argument), ENOENT (no such
 * segment), ENODATA (the header is not, or not yet, a valid one), EADDRINUSE
 * (the recorded address range is already used in this process), or an errno
 * of open, shm_open, mmap.
 * Example:
 *	struct shmk_rsz r;
 *	if (!shmk_rsz_at(&r, "/myapp.heap"))
 *		err(1, "shmk_rsz_at /myapp.heap");
 */
SHMK_API void *shmk_rsz_at(struct shmk_rsz *r, const char *fname);

/* shmk_rsz_mkm, shmk_rsz_atm - as shmk_rsz_mk / shmk_rsz_at with a handle
 * from malloc(3), stored in the pointer r (set to NULL on failure). Release
 * it with shmk_rsz_free.
 * Returns: r->dat, or NULL with errno.
 * Example:
 *	struct shmk_rsz *r;
 *	if (!shmk_rsz_mkm(r, 4096, NULL))
 *		err(1, "shmk_rsz_mkm");
 */
#define shmk_rsz_mkm(r, fl, fn) shmk__rsz_m((struct shmk_rsz **)&(r), (fl), (fn), 1)
#define shmk_rsz_atm(r, fn)     shmk__rsz_m((struct shmk_rsz **)&(r), 0, (fn), 0)
SHMK_API void *shmk__rsz_m(struct shmk_rsz **r, size_t flen, const char *fname, int make);

/* shmk_rsz_up - catch up with a grow made by another process
 * @r: an attached handle
 * Maps the file up to the length in the header if another process grew it.
 * Returns: 1 the mapping grew (r->flen, r->cap updated), 0 nothing to do,
 * -1 with errno: EINVAL (detached handle), EBADMSG (the header's length is
 * invalid: larger than max, unaligned, or smaller than before), or an errno
 * of mmap.
 * Example:
 *	if (shmk_rsz_up(&r) < 0)
 *		err(1, "shmk_rsz_up");
 *	for (size_t i = 0; i < r.cap; i++) ...
 */
SHMK_API int shmk_rsz_up(struct shmk_rsz *r);

/* shmk_rsz_grow - double the segment (up to its maximum)
 * @r: an attached handle
 * Catches up first (shmk_rsz_up); if another process already grew it, that
 * is the grow. Otherwise, holding a write lock on the file's first byte
 * (fcntl(2) F_SETLKW: owned by the process, so fork children exclude each
 * other), doubles the file and the mapping and publishes the new length in
 * the header.
 * Returns: 1 grown (by us or another process), -1 with errno: ENOMEM (at the
 * maximum already), EINVAL, EBADMSG, or an errno of fcntl, ftruncate, mmap.
 * Example:
 *	if (i >= r->cap && shmk_rsz_grow(r) < 0)
 *		err(1, "shmk_rsz_grow");
 */
SHMK_API int shmk_rsz_grow(struct shmk_rsz *r);

/* shmk_rsz_grow_to - grow the segment to at least cap usable bytes
 * @r:   an attached handle
 * @cap: usable bytes wanted (rounded up, with the header, to pages)
 * Returns: 1 grown, 0 already that large (after catching up), -1 with
 * errno: ENOMEM (cap exceeds the maximum), EINVAL, EBADMSG, or an errno of
 * fcntl, ftruncate, mmap.
 * Example:
 *	if (shmk_rsz_grow_to(&r, 100 * SHMK_MiB) < 0)
 *		err(1, "shmk_rsz_grow_to");
 */
SHMK_API int shmk_rsz_grow_to(struct shmk_rsz *r, size_t cap);

/* shmk_rsz_dt - detach
 * @r: a handle (detaching twice is harmless)
 * msyncs, unmaps the whole claimed span and closes the file; keeps fname
 * for shmk_rsz_rm. The segment itself stays.
 * Returns: 0, or -1 with errno of msync, munmap or close (all are tried).
 * Example:
 *	shmk_rsz_dt(&r);
 */
SHMK_API int shmk_rsz_dt(struct shmk_rsz *r);

/* shmk_rsz_rm - remove the segment's name
 * @r: a handle (attached or not) whose fname names the segment
 * Unlinks the file (shm_unlink for a POSIX name) and, if shmk_rsz_mk made
 * the directory from a template, removes that directory. Processes still
 * attached keep their mappings.
 * Returns: 0, or -1 with errno of unlink, shm_unlink or rmdir.
 * Example:
 *	shmk_rsz_dt(&r);
 *	shmk_rsz_rm(&r);
 */
SHMK_API int shmk_rsz_rm(struct shmk_rsz *r);

/* shmk_rsz_free - detach and remove, and free a handle from _mkm/_atm
 * @r: a handle; freed (and not to be used again) if made by shmk_rsz_mkm or
 *     shmk_rsz_atm
 * shmk_rsz_dt, then shmk_rsz_rm; a name another process removed already
 * (ENOENT) is not an error, so that every cooperating process may call it.
 * Returns: 0, or -1 with the errno of the first step that failed.
 * Example:
 *	shmk_rsz_free(r);
 */
SHMK_API int shmk_rsz_free(struct shmk_rsz *r);

/* ==== Shared-memory segment, ring buffer, messages =================== */
/* (section owned by core/ring.c and core/msg.c; man pages shmk_shm_*(3),
 * shmk_rbuf_*(3), shmk_msg_*(3))
 *
 * A segment is laid out as
 *
 *   0                     shmk_shm_header (the seed's layout, 56 bytes)
 *   64                    private control block (lock state, futex words,
 *                         the message ring's head and tail)
 *   SHMK_SHM_RESERVED     common-data area [cdata_begin, cdata_end), empty
 *                         until shmk_shm_data_alloc() grows it
 *   rbuf.begin            byte ring buffer [rbuf.begin, rbuf.end), up to the
 *                         end of the segment
 *
 * Offsets are from the start of the segment. "head == tail" means the ring is
 * empty, so a ring of N bytes holds at most N - 1 (a message ring N - 8).
 *
 * Trust: everything in the segment can be rewritten by the peer at any time.
 * Every function re-reads and checks the offsets it uses against the size this
 * process mapped (desc->orig_size), on every call, and returns an error code
 * (EINVAL for an unusable ring description, EBADMSG for a malformed message)
 * rather than touch memory outside the segment. Locks are held by the kernel
 * (see shmk_shm_lock), never by state the peer can rewrite.
 */

/* Bytes at the start of every segment kept for the header and the control
 * block; the common data and the ring start here or later. */
#define SHMK_SHM_RESERVED 256

/* shmk_rbuf - where a byte ring lives in a segment (offsets from its start).
 * head: first byte of data; tail: first free byte; head == tail: empty. The
 * fields are read and written with atomic acquire/release accesses by the
 * functions below; read them yourself only as hints. */
typedef struct shmk_rbuf {
	size_t begin;   /* first byte of the ring area */
	size_t end;     /* one past the last byte of the ring area */
	size_t head;    /* first data byte, in [begin, end) */
	size_t tail;    /* first free byte, in [begin, end) */
} shmk_rbuf;

/* shmk_shm_header - the start of every segment. */
typedef struct shmk_shm_header {
	size_t size;          /* size of the segment as its creator made it */
	size_t cdata_begin;   /* start of the common-data area */
	size_t cdata_end;     /* end of the common-data area */
	shmk_rbuf rbuf;       /* the ring buffer */
} shmk_shm_header;

/* shmk_creds - the peer who may map a segment. */
typedef struct shmk_creds {
	uid_t uid;
	gid_t gid;
} shmk_creds;

/* shmk_impl - how a segment is made. */
enum shmk_impl {
	SHMK_IMPL_NONE = -1,  /* no shared memory: shmk_shm_new() fails, ENOTSUP */
	SHMK_IMPL_AUTO,       /* System V (the one a hostile peer cannot shrink) */
	SHMK_IMPL_POSIX,      /* shm_open + mmap, lock: an OFD lock on the fd */
	SHMK_IMPL_SYSV        /* shmget + shmat, lock: a semaphore, SEM_UNDO */
};

/* shmk_shm_desc - this process's handle on a segment. Made only by
 * shmk_shm_new() or shmk_shm_decode(); read its fields, never write them. */
typedef struct shmk_shm_desc {
	shmk_shm_header *header;  /* the start of the mapping */
	enum shmk_impl impl;      /* SHMK_IMPL_POSIX or SHMK_IMPL_SYSV */
	int is_master;            /* 1 if made by shmk_shm_new() here */
	size_t orig_size;         /* mapped size; header->size may be a lie */
	void *priv;               /* the library's; opaque */
} shmk_shm_desc;

/* shmk_shm_new - create a segment of at least size bytes for this process
 * and one peer, map it, and initialise its header (empty common-data area,
 * ring buffer over the rest).
 *   size: rounded up to the page size; at least SHMK_SHM_RESERVED + 64.
 *   peer: the uid and gid of the process that will shmk_shm_decode() it, or
 *         NULL for our own. Access is granted to the creator and that uid
 *         only: SysV: mode 0600, owner set to the peer (the creator keeps
 *         access as the segment's creator uid); POSIX: mode 0600 plus, when
 *         the peer's uid differs, a POSIX ACL entry for that uid alone (fails
 *         with ENOTSUP where /dev/shm has no ACLs, rather than widen access).
 *   impl: see enum shmk_impl.
 * Returns: a descriptor with one reference, or NULL with errno set (EINVAL,
 * ENOTSUP, ENOMEM, EMFILE when 128 segments are already open, or the errno of
 * shm_open/shmget/semget/mmap/shmat).
 * Example:
 *   shmk_shm_desc *d = shmk_shm_new(1 << 20, NULL, SHMK_IMPL_AUTO);
 *   char enc[128]; ssize_t n = shmk_shm_encode(d, enc, sizeof enc);
 *   ... send enc[0..n) to the peer, which calls shmk_shm_decode ... */
SHMK_API shmk_shm_desc *shmk_shm_new(size_t size, const shmk_creds *peer,
                                     enum shmk_impl impl);

/* shmk_shm_done - drop a reference; at zero, unmap the segment and, in the
 * creator, remove it (shm_unlink / IPC_RMID, and the semaphore). A peer still
 * mapping it keeps its mapping. NULL is ignored. */
SHMK_API void shmk_shm_done(shmk_shm_desc *desc);

/* shmk_shm_ref - take one more reference on desc. */
SHMK_API void shmk_shm_ref(shmk_shm_desc *desc);

/* shmk_shm_lock - lock the segment against every other holder: other
 * processes, and other threads of this one. The lock is kept by the kernel
 * (POSIX: an open-file-description lock on the segment's fd; SysV: a
 * semaphore with SEM_UNDO), so it is released when a holder dies and cannot be
 * forged by writing the segment.
 * Returns: 0; EOWNERDEAD when the previous holder died holding it (the lock is
 * now held by the caller, who should repair or reset what it protects); or an
 * error code (EINVAL, EINTR is retried, EIDRM if the peer removed the
 * semaphore, ENOLCK). */
SHMK_API int shmk_shm_lock(shmk_shm_desc *desc);

/* shmk_shm_unlock - release the lock taken by shmk_shm_lock/trylock.
 * Returns: 0, EPERM if this process does not hold it, or an error code. */
SHMK_API int shmk_shm_unlock(shmk_shm_desc *desc);

/* shmk_shm_trylock - shmk_shm_lock without waiting.
 * Returns: 0, EAGAIN if another process or thread holds it, EOWNERDEAD as for
 * shmk_shm_lock, or an error code. */
SHMK_API int shmk_shm_trylock(shmk_shm_desc *desc);

/* shmk_shm_encode - write what a peer needs to attach desc (implementation,
 * size, name or ids) into buf; at most SHMK_SHM_ENCODED_MAX bytes.
 * Returns: the number of bytes written, or -1 with errno (EINVAL, ENOSPC if
 * buflen is too small). */
#define SHMK_SHM_ENCODED_MAX 128
SHMK_API ssize_t shmk_shm_encode(shmk_shm_desc *desc, void *buf, size_t buflen);

/* shmk_shm_decode - attach the segment described by buf[0..len), as filled
 * by shmk_shm_encode() in the creator.
 *   size: the size the creator asked for; the segment must be exactly that
 *         size rounded up to the page size.
 * Returns: a descriptor with one reference (is_master 0), or NULL with errno:
 * EINVAL (malformed buf), EPROTO (not a shmkeeper segment), EMSGSIZE (size
 * mismatch), or the errno of shm_open/shmat/mmap (EACCES, ENOENT, EIDRM). */
SHMK_API shmk_shm_desc *shmk_shm_decode(const void *buf, size_t len, size_t size);

/* shmk_shm_addr - the address of offset in desc's mapping.
 * Returns: the address, or NULL with errno EINVAL if offset is not inside the
 * mapping (offset >= desc->orig_size). */
SHMK_API void *shmk_shm_addr(shmk_shm_desc *desc, size_t offset);

/* SHMK_SHM_ADDR - the address of the offset stored in a header field, e.g.
 * SHMK_SHM_ADDR(d, cdata_begin); NULL if the peer stored a bad offset. */
#define SHMK_SHM_ADDR(desc, field) \
	shmk_shm_addr((desc), (desc)->header->field)

/* shmk_shm_data_alloc - carve size bytes (16-byte aligned) from the start of
 * the ring area into the common-data area; the ring then starts after it.
 * For the creator, before the segment is shared and the ring used.
 * Returns: 0 and *ptr set; EINVAL (bad header or arguments), EBUSY (the ring
 * holds data), ENOSPC (less than 64 bytes of ring would remain). */
SHMK_API int shmk_shm_data_alloc(shmk_shm_desc *desc, size_t size, void **ptr);

/* The byte ring, as in the seed: rbuf is &desc->header->rbuf and shmaddr is
 * desc->header, for a segment mapped here by shmk_shm_new/decode (that is how
 * the size to check against is found). One producer and one consumer may use
 * a ring at the same time without a lock (acquire/release on head and tail);
 * more than one of either must hold shmk_shm_lock. A ring carries bytes or
 * messages (shmk_msg_*), not both. */

/* shmk_rbuf_append - copy srclen bytes from src to the ring, all or nothing.
 * Returns: 0; ENOSPC if fewer than srclen bytes are free (nothing written);
 * EINVAL if shmaddr is not a segment mapped here or the ring description in
 * the segment is inconsistent. */
SHMK_API int shmk_rbuf_append(shmk_rbuf *rbuf, void *shmaddr, const void *src,
                              size_t srclen);

/* shmk_rbuf_read - move dstlen bytes from the ring to dst, all or nothing.
 * Returns: 0; ENODATA if fewer than dstlen bytes are queued (nothing read);
 * EINVAL as for shmk_rbuf_append. */
SHMK_API int shmk_rbuf_read(shmk_rbuf *rbuf, void *shmaddr, void *dst,
                            size_t dstlen);

/* shmk_rbuf_skip - discard datalen queued bytes.
 * Returns: 0; ENODATA if fewer are queued (nothing discarded); EINVAL if the
 * ring description is inconsistent. */
SHMK_API int shmk_rbuf_skip(shmk_rbuf *rbuf, size_t datalen);

/* shmk_rbuf_avail - free bytes in the ring; 0 if its description is
 * inconsistent. */
SHMK_API size_t shmk_rbuf_avail(shmk_rbuf *rbuf);

/* shmk_rbuf_len - queued bytes in the ring; 0 if its description is
 * inconsistent. */
SHMK_API size_t shmk_rbuf_len(shmk_rbuf *rbuf);

/* Messages over the ring. A message is a length-prefixed record (8-byte
 * header, payload padded to 8 bytes) stored contiguously in the ring
 * [rbuf.begin, rbuf.end). One producer and one consumer, lock-free: a
 * record's header, stored last with release, publishes it, and the consumer
 * frees space by a release store of the head index (head and tail live in
 * the control block, each on its own cache line; rbuf.head and rbuf.tail are
 * not moved, so shmk_rbuf_len() does not count messages); several producers
 * or consumers must hold shmk_shm_lock around their calls. A side that
 * finds the ring full or empty sleeps on a futex in the control block (no
 * spinning once idle, after a short bounded spin) and is woken by the other
 * side.
 *
 * timeout_ms: 0 tries once (EAGAIN if it cannot proceed), -1 waits forever,
 * otherwise the most milliseconds to wait (ETIMEDOUT). The functions return 0
 * or an error code; EBADMSG means the peer wrote a malformed record or ring
 * offsets (nothing outside the segment was touched). */

/* shmk_msg_max - the largest payload a message can have in desc's ring
 * (about half the ring). Returns 0 if the ring description is inconsistent. */
SHMK_API size_t shmk_msg_max(shmk_shm_desc *desc);

/* shmk_msg_send - copy len bytes from msg into the ring as one message.
 * Returns: 0, EMSGSIZE (len > shmk_msg_max), EAGAIN, ETIMEDOUT, EBADMSG,
 * EINVAL. */
SHMK_API int shmk_msg_send(shmk_shm_desc *desc, const void *msg, size_t len,
                           int timeout_ms);

/* shmk_msg_recv - take the next message, copying it to buf.
 *   *len: set to the message's length (also when EMSGSIZE).
 * Returns: 0, EMSGSIZE (buflen too small; the message stays queued), EAGAIN,
 * ETIMEDOUT, EBADMSG, EINVAL. */
SHMK_API int shmk_msg_recv(shmk_shm_desc *desc, void *buf, size_t buflen,
                           size_t *len, int timeout_ms);

/* shmk_msg_reserve - zero-copy send, step 1: room for a message of len bytes,
 * contiguous in the ring; write it through *ptr, then shmk_msg_commit().
 * At most one reservation per descriptor is open at a time.
 * Returns: 0 and *ptr set, or the errors of shmk_msg_send (EBUSY if a
 * reservation is already open). */
SHMK_API int shmk_msg_reserve(shmk_shm_desc *desc, size_t len, void **ptr,
                              int timeout_ms);

/* shmk_msg_commit - zero-copy send, step 2: publish the reserved message with
 * its final length len (at most the reserved length).
 * Returns: 0, EINVAL (no reservation, or len too large). */
SHMK_API int shmk_msg_commit(shmk_shm_desc *desc, size_t len);

/* shmk_msg_peek - zero-copy receive, step 1: the next message, in place.
 * The bytes stay in shared memory, where the peer can still change them: copy
 * what you validate. Returns: 0 with *ptr and *len set, or the errors of
 * shmk_msg_recv (except EMSGSIZE). */
SHMK_API int shmk_msg_peek(shmk_shm_desc *desc, const void **ptr, size_t *len,
                           int timeout_ms);

/* shmk_msg_release - zero-copy receive, step 2: give the peeked message's
 * space back to the producer. Returns: 0, EINVAL if nothing is peeked. */
SHMK_API int shmk_msg_release(shmk_shm_desc *desc);


/* ==== Termination cleanups ============================================ */
/* (section owned by core/cleanup.c) */
/*
 * A registry of procedures that run once when the process ends: at exit(3),
 * at return from main, at _exit(2)/_Exit(2) called through libc, and on the
 * fatal signals whose action is the default one (SIGHUP, SIGINT, SIGQUIT,
 * SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGPIPE, SIGTERM, SIGXCPU,
 * SIGXFSZ, SIGSYS). They run newest first, each exactly once, even when two
 * signals arrive together on two threads. (After Cedar's
 * RegisterUNTHREADEDTerminationCleanupProc: "it should do native Unix system
 * calls and avoid thread operations such as entering monitors".)
 *
 * The rules for a cleanup, since it may run inside a signal handler that
 * interrupted any code of any thread:
 *   - call only async-signal-safe functions (signal-safety(7)): no malloc,
 *     no stdio, no locks; write(2), unlink(2), shmctl(2), shmdt(2),
 *     munmap(2), kill(2) are fine, as are shmk_cleanup_rm_sysv and
 *     shmk_cleanup_rm_posix below;
 *   - read only data that a half-finished update cannot leave inconsistent
 *     (set the ids before registering; use sig_atomic_t or atomics);
 *   - do not wait for another thread: it may be the one interrupted;
 *   - do not call exit(3) or longjmp out; return.
 * While cleanups run, the asynchronous fatal signals are blocked in that
 * thread; they are delivered after. A fault (SIGSEGV, SIGBUS, ...) inside a
 * cleanup ends that cleanup only; the others still run. Another thread that
 * gets a fatal signal meanwhile waits (up to 10 s) for them to finish.
 *
 * Signals: the library installs its dispatcher for the fatal signals only
 * while there is something to run. The program's own handlers (from
 * sigaction(2) or signal(2), before or after registering) run exactly as
 * before, with their sa_mask, SA_SIGINFO, SA_RESETHAND, SA_NODEFER,
 * SA_RESTART, SA_ONSTACK; SIG_IGN stays ignored; sigaction(sig, NULL, &old)
 * returns what the program installed. Cleanups run only where the signal's
 * action is the default one (no handler, or a handler that was reset); then
 * the default action follows with the same signal and siginfo, so the exit
 * status ("killed by SIGTERM", "core dumped") is what it would have been.
 * A handler that ends the process by exit() or _exit() runs them that way.
 *
 * Not run: at exec (the process goes on in a new image); on SIGKILL (see
 * `shmkeeper run --reap` and `shmkeeper sweep`); at abort(3) when the
 * program's SIGABRT handler returns (glibc then resets the action itself);
 * for sysv_signal(3), sigset(3) or raw rt_sigaction dispositions, which the
 * library does not see; after a registration made during termination.
 * fork(2): the child starts with no registrations except those made with
 * SHMK_CLEANUP_INHERIT.
 */

/* Flags of shmk_cleanup_register_flags. */
#define SHMK_CLEANUP_INHERIT 1u   /* a fork child keeps this registration */

/* The most registrations at a time. */
#define SHMK_CLEANUP_MAX 128

/* shmk_cleanup_register - run fn(data) at termination
 * @fn:   the cleanup; see the rules above
 * @data: its argument, passed as is
 * Registrations are not inherited by fork children.
 * Returns: a handle (>= 0) for shmk_cleanup_unregister, or -1 with errno:
 * EINVAL (fn is NULL), ENOSPC (SHMK_CLEANUP_MAX registrations already),
 * EBUSY (termination has begun).
 * Example:
 *	static int seg = -1;
 *	static void rm_seg(void *p) { (void)p; shmk_cleanup_rm_sysv(seg); }
 *	...
 *	seg = shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0600);
 *	int h = shmk_cleanup_register(rm_seg, NULL);
 *	if (h < 0)
 *		err(1, "shmk_cleanup_register");
 */
SHMK_API int shmk_cleanup_register(void (*fn)(void *data), void *data);

/* shmk_cleanup_register_flags - shmk_cleanup_register with flags
 * @flags: 0 or SHMK_CLEANUP_INHERIT (fork children keep the registration,
 *         under the same handle, and run it at their own termination)
 * Returns: a handle, or -1 with errno as shmk_cleanup_register; EINVAL for
 * an unknown flag.
 * Example:
 *	shmk_cleanup_register_flags(rm_name, (void *)"/app.shm", SHMK_CLEANUP_INHERIT);
 */
SHMK_API int shmk_cleanup_register_flags(void (*fn)(void *data), void *data,
					 unsigned flags);

/* shmk_cleanup_unregister - cancel a registration
 * @handle: from shmk_cleanup_register(_flags)
 * After the last registration is gone (and SHMKEEPER_CLEANUP is not owned)
 * the library gives the fatal signals back to the kernel as the program set
 * them.
 * Returns: 0, or -1 with errno: EINVAL (not a live handle: never issued,
 * unregistered already, or dropped by fork), EBUSY (termination has begun and
 * this cleanup is running or has run).
 * Example:
 *	shmctl(seg, IPC_RMID, NULL);
 *	shmk_cleanup_unregister(h);
 */
SHMK_API int shmk_cleanup_unregister(int handle);

/* shmk_cleanup_rm_sysv - remove a System V segment, async-signal-safe
 * @shmid: the segment's id
 * shmctl(IPC_RMID) by system call; the removal is recorded as a cleanup
 * (shmkeeper's report lists it) when the library records. Usable anywhere,
 * meant for cleanups.
 * Returns: 0, or -1 with errno of shmctl(2) (EINVAL, EIDRM, EPERM).
 * Example:
 *	static void rm_seg(void *p) { shmk_cleanup_rm_sysv(*(int *)p); }
 */
SHMK_API int shmk_cleanup_rm_sysv(int shmid);

/* shmk_cleanup_rm_posix - remove a POSIX shared-memory object, async-signal-safe
 * @name: as given to shm_open(3): "/name" (leading slashes are skipped)
 * unlink(2) of /dev/shm/name; recorded as a cleanup when the library records.
 * Returns: 0, or -1 with errno: EINVAL (NULL, empty, "." or "..", or a slash
 * after the leading ones), ENAMETOOLONG, or an errno of unlink(2) (ENOENT,
 * EACCES).
 * Example:
 *	static void rm_name(void *p) { shmk_cleanup_rm_posix(p); }
 *	shmk_cleanup_register(rm_name, (void *)"/app.shm");
 */
SHMK_API int shmk_cleanup_rm_posix(const char *name);

/* shmk_cleanup_signal - why the cleanups run
 * Returns: the fatal signal being handled, or 0 at exit, _exit, or when no
 * termination is under way. Async-signal-safe.
 * Example:
 *	static void bye(void *p) { if (shmk_cleanup_signal() == SIGINT) ...; }
 */
SHMK_API int shmk_cleanup_signal(void);


#ifdef __cplusplus
}
#endif
#endif
