/* The span: fixed-address placement of shared-memory attachments (issue 5).
 *
 * ======================================================================
 * INTEGRATION NOTE FOR THE WRAPPERS (preload/)
 * ======================================================================
 * All functions below save and restore errno. "key" is a struct sk_span_key:
 *   SysV:  { .kind = SK_SPAN_SYSV,  .shmid = id }
 *   POSIX: { .kind = SK_SPAN_POSIX, .name = "/name" (as given to shm_open),
 *            .dev, .ino, .size = st_size of the object }
 * P = sk_span_policy(); "warn W" = log an SK_EV_WARN with code W and
 * arg1 = -ret; "strict errno" = sk_span_strict_errno(kind, mflags).
 *
 * library constructor (every image, so again after exec):
 *     struct sk_span_cfg c; int r = sk_span_config_env(&c);
 *     (r < 0: bad SHMKEEPER_SPAN/_POLICY: sk_say() it, defaults are used)
 *     r = sk_span_init(&c);
 *     r == -EEXIST: the range is taken: sk_say() once, warn SK_W_SPAN_TAKEN
 *     (arg1 = span addr, arg2 = size). Placement then fails with -EADDRNOTAVAIL
 *     and the policy decides each call as below.
 * library destructor / SK_EV_EXIT:   sk_span_fini();
 *
 * shmat(id, NULL, fl):
 *     struct sk_span_ticket t; void *a;
 *     key.size = the segment's size if the wrapper knows it (shmget, its own
 *     IPC_STAT), else 0 (then span code asks the kernel: one IPC_STAT);
 *     r = sk_span_place(&key, 0, 0, &t, &a);          (len/off unused for SysV)
 *     r == 0:  p = real_shmat(id, a, fl | (t.hole ? 0 : SHM_REMAP));
 *              sk_span_commit(&t, p != (void *)-1);
 *              success: record SK_EV_SYSV_AT with SK_F_PLACED.
 *              failure: return it as it is (the kernel refused the segment).
 *     r == -ENODEV (span off) or -EDEADLK (re-entered from a signal handler
 *              inside span code): plain real_shmat(id, NULL, fl), no warning.
 *     r < 0 otherwise (-ENOSPC full, -EEXIST range taken here, -EADDRNOTAVAIL
 *              span not reserved, -EBADMSG/-ETIMEDOUT/-EBUSY/-EUSERS table
 *              unusable or its lock held by a stuck process,
 *              -EINVAL/-EACCES/-EIDRM segment not stat-able):
 *              warn: real_shmat(id, NULL, fl), warn SK_W_SPAN_FULL (arg1=-r).
 *              strict: errno = EINVAL, return (void *)-1, warn SK_W_PLACE_REFUSED.
 *              (-EINVAL/-EIDRM/-EACCES: call real_shmat in both policies, it
 *              fails or succeeds with the kernel's own verdict.)
 *
 * shmat(id, addr, fl), addr != NULL:
 *     if (!sk_span_overlaps(addr, len)) just forward. Else (len: segment size
 *     rounded to the page; 1 if unknown):
 *     r = sk_span_explicit(&key, addr, len, (fl & SHM_REMAP) != 0, &t, &extra);
 *     r == SK_SPAN_IS_PLACEMENT or SK_SPAN_FOREIGN: p = real_shmat(id, addr,
 *              fl | extra); sk_span_commit(&t, p != (void *)-1); if FOREIGN,
 *              warn SK_W_ADDR_IN_SPAN (arg1 = addr).   (extra is 0 or SHM_REMAP)
 *     r == -EPERM (strict): errno = EINVAL, return (void *)-1, warn
 *              SK_W_PLACE_REFUSED.
 *     r < 0 otherwise: forward unchanged.
 *
 * shmdt(addr):
 *     r = sk_span_unmap(addr, 0, SK_SPAN_SHMDT, &shmid);
 *     r == 1:  done; it was a placed or in-span attachment of shmid, now
 *              detached by the kernel's shmdt and kept as a hole for the
 *              next placement there. Return 0.
 *     r == 0:  not in the span: return real_shmdt(addr).
 *     r < 0:   return real_shmdt(addr) (then sk_span_rereserve(addr, len)).
 *
 * shmctl(id, IPC_RMID, ...) that succeeded:   sk_span_removed(&key).
 * shm_unlink(name) that succeeded:            sk_span_removed(&key) with the
 *     dev/ino from the stat taken before the unlink (0,0 if it failed).
 *
 * mmap(NULL, len, prot, fl, fd, off), fl has MAP_SHARED or MAP_SHARED_VALIDATE
 * and fd is an object from shm_open:
 *     r = sk_span_place(&key, len, off, &t, &a);
 *     r == 0:  p = real_mmap(a, len, prot, fl | (t.hole ? MAP_FIXED_NOREPLACE :
 *              MAP_FIXED), fd, off) (a result other than a: unmap it, failed);
 *              sk_span_commit(&t, p != MAP_FAILED);  record SK_F_PLACED.
 *     r < 0:   as for shmat(NULL); strict errno is ENOMEM.
 * mmap(addr, ...) with MAP_FIXED or MAP_FIXED_NOREPLACE and sk_span_overlaps()
 * (any mapping, anonymous ones too: the span must know what the program put
 * there):
 *     forced = (fl & MAP_FIXED) && !(fl & MAP_FIXED_NOREPLACE);
 *     r = sk_span_explicit(shm fd ? &key : NULL, addr, len, forced, &t, &extra);
 *     r == SK_SPAN_IS_PLACEMENT or SK_SPAN_FOREIGN: if (extra ==
 *              SK_SPAN_TO_FIXED) fl = (fl & ~MAP_FIXED_NOREPLACE) | MAP_FIXED
 *              (the range holds only our reservation, which the program
 *              cannot see); p = real_mmap(addr, len, prot, fl, fd, off);
 *              sk_span_commit(&t, p != MAP_FAILED); FOREIGN: warn
 *              SK_W_ADDR_IN_SPAN.
 *     r == -EPERM (strict): errno = sk_span_strict_errno(SK_SPAN_POSIX, fl),
 *              return MAP_FAILED, warn SK_W_PLACE_REFUSED.
 *     r < 0 otherwise: forward unchanged.
 *     A hint inside the span without MAP_FIXED: forward unchanged (the kernel
 *     picks elsewhere, as it would for any occupied hint).
 *
 * munmap(addr, len):
 *     if (!sk_span_overlaps(addr, len)) forward (a load and a branch).
 *     r = sk_span_unmap(addr, len, SK_SPAN_MUNMAP, NULL): 1 = done (return 0),
 *     0 or < 0 = return real_munmap(addr, len).
 * mremap(old, ...) moving a mapping out of the span: after it succeeded,
 *     sk_span_unmap(old, old_len, SK_SPAN_FORGET, NULL) then
 *     sk_span_rereserve(old, old_len).
 *
 * fork:  prepare: sk_span_fork_prepare();  parent: sk_span_fork_parent();
 *        child: sk_span_fork_child() (inherits the reservation and the
 *        attachments; registers the child as a user of the table).
 *        A raw clone's child: the same, from the child's first call into
 *        the library; sk_span_ipcns_child() instead if it is in another
 *        IPC namespace (CLONE_NEWIPC).
 * vfork: nothing.
 * exec:  nothing before; the new image's constructor calls sk_span_init.
 *
 * Names: the table is /dev/shm/SK_SPAN_TABLE_PREFIX "v3." ... ; the lead's reader and
 * the recorder ignore POSIX names that start with it. The table is created,
 * sized and mapped with raw syscalls, so no wrapper ever sees it.
 * ======================================================================
 *
 * Contract of the module. A span [base, base+size) of address space is
 * reserved PROT_NONE in each process. A table shared by every process using
 * the same span in the same IPC namespace (a tmpfs file in /dev/shm named
 * after the IPC namespace inode, the span address and size) holds one entry
 * per placed segment: its offset in the span (first-fit, SHMLBA-rounded) and
 * its identity. The per-process side remembers which ranges of the span hold
 * mappings ("local slots"), so that a placement never lands on something this
 * process mapped there.
 *
 * Return convention: 0 or a positive value on success, -errno on failure.
 * Thread-safe. Functions marked AS-safe may be called from a signal handler.
 */
#ifndef SHMK_SPAN_H
#define SHMK_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/compiler.h"

/* Default span (documented in doc/ and the README): the middle of the 47-bit
 * x86-64 user address space (the middle of 48-bit on aarch64), 64 GiB. */
#if defined(__aarch64__)
#define SK_SPAN_DEFAULT_ADDR  0x800000000000ull
#else
#define SK_SPAN_DEFAULT_ADDR  0x400000000000ull
#endif
#define SK_SPAN_DEFAULT_SIZE  (64ull << 30)

/* Every table name starts with this (in /dev/shm; as a POSIX name "/" + it). */
#define SK_SPAN_TABLE_PREFIX  "shmkeeper.span."

#define SK_SPAN_ENTS   512   /* placements in one table */
#define SK_SPAN_USERS  128   /* processes attached to one table at a time */
#define SK_SPAN_LOCAL  256   /* mappings in the span in one process */

enum sk_span_policy { SK_SPAN_WARN = 0, SK_SPAN_STRICT = 1 };

struct sk_span_cfg {
	uint64_t addr;             /* SHMLBA-aligned, > 0 */
	uint64_t size;             /* multiple of SHMLBA, > 0; 0 with off */
	bool     off;              /* SHMKEEPER_SPAN=off: no placement */
	enum sk_span_policy policy;
};

enum sk_span_kind { SK_SPAN_SYSV = 1, SK_SPAN_POSIX = 2, SK_SPAN_ANON = 3 };

/* What identifies a segment. For SK_SPAN_SYSV shmid, and size (shm_segsz,
 * 0 if unknown: then one IPC_STAT is made); for SK_SPAN_POSIX name (with or
 * without its leading '/'), dev, ino and size (st_size now). SK_SPAN_ANON:
 * any other mapping (sk_span_explicit only). */
struct sk_span_key {
	int         kind;
	int         shmid;
	const char *name;
	uint64_t    dev, ino;
	uint64_t    size;
};

/* Between sk_span_place/sk_span_explicit and sk_span_commit. */
struct sk_span_ticket {
	int slot;                  /* local slot claimed, or -1 */
	bool hole;                 /* sk_span_place: *addr is a hole of ours
				    * (nothing mapped there): map without
				    * SHM_REMAP, with MAP_FIXED_NOREPLACE */
};

/* Results of sk_span_explicit. */
#define SK_SPAN_IS_PLACEMENT 1 /* the address is the segment's placement */
#define SK_SPAN_FOREIGN      2 /* inside the span, not a placement: allowed (warn) */
#define SK_SPAN_TO_FIXED     0x40000000 /* `extra` for mmap: NOREPLACE -> FIXED */

/* How sk_span_unmap is called. */
enum sk_span_unmap_how { SK_SPAN_SHMDT = 1, SK_SPAN_MUNMAP, SK_SPAN_FORGET };

/* ---- configuration (pure functions) ---------------------------------- */

/* Parses SHMKEEPER_SPAN: NULL or "" (the default span), "off", or
 * "ADDR:SIZE" where each number is decimal or 0x-hex with an optional
 * K/M/G/T suffix (powers of 1024, either case). ADDR must be SHMLBA-aligned,
 * SIZE is rounded up to SHMLBA, ADDR+SIZE must not pass 2^56.
 * Fills addr, size and off; leaves policy alone.
 * Returns: 0, or -EINVAL (cfg untouched). */
int sk_span_parse(const char *spec, struct sk_span_cfg *cfg);

/* Parses SHMKEEPER_SPAN_POLICY: NULL, "" or "warn" -> SK_SPAN_WARN,
 * "strict" -> SK_SPAN_STRICT. Returns: 0, or -EINVAL (*p untouched). */
int sk_span_parse_policy(const char *s, enum sk_span_policy *p);

/* Parses one number as above ("64G", "0x400000000000", "4096").
 * Returns: 0, or -EINVAL (empty, junk, overflow). */
int sk_span_parse_num(const char *s, uint64_t *v);

/* Fills cfg from secure_getenv("SHMKEEPER_SPAN") and
 * secure_getenv("SHMKEEPER_SPAN_POLICY"). An invalid value is replaced by
 * the default. Returns: 0, or -EINVAL if one of them was invalid. */
int sk_span_config_env(struct sk_span_cfg *cfg);

/* ---- the process side -------------------------------------------------- */

/* Reserves the span (PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|
 * MAP_FIXED_NOREPLACE, raw syscall) and remembers cfg. Called once per image;
 * a second call is a no-op returning the first result. Does not open the
 * table (that happens at the first placement).
 * Returns: 0; -EEXIST when part of the range is already mapped (placement is
 * then impossible and reported as -EADDRNOTAVAIL); 0 with cfg->off. */
int sk_span_init(const struct sk_span_cfg *cfg);

/* Leaves the table (clears this process's marks, frees its user slot,
 * unlinks the table when no live user remains). Called at exit. */
void sk_span_fini(void);

/* The span in force: [sk_span_g.base, sk_span_g.end), both 0 when off or
 * not reserved. Read on every mmap/munmap: keep it a load and a branch. */
struct sk_span_bounds { uintptr_t base, end; int policy; int state; };
extern struct sk_span_bounds sk_span_g SK_HIDDEN;

/* True when [addr, addr+len) overlaps the span. AS-safe. */
static inline bool sk_span_overlaps(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	if (len == 0)
		len = 1;
	return a < sk_span_g.end && a + len > sk_span_g.base && a + len > a;
}

static inline enum sk_span_policy sk_span_policy(void)
{
	return (enum sk_span_policy)sk_span_g.policy;
}

/* The errno a refused call fails with under the strict policy: EINVAL for
 * shmat (shmat(2): "can't attach segment at shmaddr"), EEXIST for mmap with
 * MAP_FIXED_NOREPLACE (what the kernel gives for an occupied range), ENOMEM
 * for any other mmap (mmap(2): no address range available). */
int sk_span_strict_errno(int kind, int mflags);

/* Chooses the address of an attachment of `key` made without an address.
 * For SK_SPAN_POSIX, len and off are those of the mmap call (off page-
 * aligned); the object's slot is sized max(key->size, off+len) the first time.
 * For SysV the segment size is key->size; when 0, IPC_STAT (raw syscall),
 * once per process and placement. With the size known the call makes no
 * syscall (the table lock is a CAS when free).
 * On 0, *addr is where to map: the range is a hole (t->hole, always set
 * now: the reservation there was unmapped, or a hole of ours is reused), so
 * the wrapper maps without SHM_REMAP / with MAP_FIXED_NOREPLACE and the
 * kernel refuses rather than replace anything; the range is claimed in this
 * process until sk_span_commit(t, ...), which must follow, whatever
 * happened (a failed call gets the reservation back).
 * Returns: 0; -ENODEV span off; -EADDRNOTAVAIL span not reserved;
 * -ENOSPC no room in the span or the table; -EEXIST the placement is
 * occupied in this process (e.g. a second attach of the same segment);
 * -EDEADLK re-entered (signal handler) while this thread is in span code;
 * -EBADMSG table corrupt; -ETIMEDOUT table lock not obtained in 2 s (a
 * live holder is stuck); -EBUSY lock held and not waited for: for 10 s
 * after a -ETIMEDOUT this process only tries the lock (or until it gets it);
 * -EUSERS too many processes; -EINVAL/-EIDRM/-EACCES from IPC_STAT;
 * -E2BIG (POSIX) the mapping does not fit the object's slot.
 * Not AS-safe, but detects re-entry (-EDEADLK). */
int sk_span_place(const struct sk_span_key *key, size_t len, uint64_t off,
		  struct sk_span_ticket *t, void **addr);

/* Ends a placement or an explicit attach: ok says whether the real call
 * succeeded. Releases the claim on failure. Always call it after a 0 or
 * positive return of sk_span_place / sk_span_explicit. */
void sk_span_commit(struct sk_span_ticket *t, bool ok);

/* An attachment or mapping at an explicit address overlapping the span.
 * key may be NULL (anonymous mapping, SK_SPAN_ANON). forced: the call
 * replaces what is there (SHM_REMAP, MAP_FIXED) rather than fails
 * (plain shmat(addr), MAP_FIXED_NOREPLACE).
 * On SK_SPAN_IS_PLACEMENT or SK_SPAN_FOREIGN, *extra tells how to change the
 * call's flags so that the kernel behaves as it would without the
 * reservation (SHM_REMAP for shmat, SK_SPAN_TO_FIXED for mmap, or 0), and t
 * holds a claim for sk_span_commit.
 * Returns: SK_SPAN_IS_PLACEMENT, SK_SPAN_FOREIGN (warn policy), -EPERM
 * (strict policy refuses it), -ENODEV (span off: forward unchanged),
 * -EDEADLK (forward unchanged). */
int sk_span_explicit(const struct sk_span_key *key, const void *addr,
		     size_t len, bool forced, struct sk_span_ticket *t,
		     int *extra);

/* Detach or unmap inside the span. A whole attachment or mapping of ours
 * (SHMDT always; MUNMAP of exactly one placed mapping) is removed by the
 * kernel's shmdt/munmap and its range kept as a hole (see "holes" in
 * span.c); anything else is replaced by the reservation in one step (mmap
 * PROT_NONE MAP_FIXED: no other thread can take it).
 * SK_SPAN_SHMDT: addr must be the start of a SysV attachment this process
 *   made in the span; its length is known here; *shmid is set.
 * SK_SPAN_MUNMAP: [addr, addr+len) page-aligned; the parts outside the span
 *   are unmapped too (raw munmap), so the call is a complete munmap.
 * SK_SPAN_FORGET: the kernel already removed [addr, len) (mremap moved it):
 *   only the bookkeeping is done; no syscall.
 * Returns: 1 done (the wrapper returns 0), 0 not ours (forward the real
 * call), -errno (forward the real call). AS-safe. */
int sk_span_unmap(const void *addr, size_t len, int how, int *shmid);

/* A mapping the kernel placed itself (mmap without MAP_FIXED, mremap, the
 * kernel's shmat address) overlaps the span: it can only be where nothing
 * of ours was mapped or reserved (a hole, an untracked gap). The range is
 * remembered as the program's (a placement there is refused, never mapped
 * over) until the program unmaps it. The wrappers call it when a result
 * overlaps the span. AS-safe (does nothing when re-entered). */
void sk_span_taken(const void *addr, size_t len);

/* Maps the reservation back over [addr, addr+len) (clipped to the span)
 * with MAP_FIXED_NOREPLACE: never clobbers what another thread mapped in
 * between. Returns: 0, -EEXIST (something is there), -EINVAL. AS-safe. */
int sk_span_rereserve(const void *addr, size_t len);

/* The segment was removed (IPC_RMID, shm_unlink succeeded). Its entry is
 * freed if nothing attaches it anywhere, else when the last user goes
 * (found by the next collection). A SysV removal is told to the table at
 * this process's next table lock (its next placement, sk_span_stats,
 * sk_span_fini), a POSIX one at once. AS-safe (does nothing when
 * re-entered). */
void sk_span_removed(const struct sk_span_key *key);

/* Tells the table the SysV removals this process queued, if any: before
 * exec, _exit, and the default action of a fatal signal the library
 * handles, which all skip sk_span_fini. Does nothing in a vfork child or
 * when re-entered. */
void sk_span_flush(void);

/* The process ends without the destructor (_exit, _Exit, the default action
 * of a fatal signal the library handles): tells the queued removals and
 * leaves the table like sk_span_fini (the last user unlinks it), without
 * unmapping it. Does nothing in a vfork child or when re-entered. */
void sk_span_exit(void);

/* Fork handlers: see the integration note. The child handler is not AS-safe
 * in the POSIX sense but runs in the single-threaded child. */
void sk_span_fork_prepare(void);
void sk_span_fork_parent(void);
void sk_span_fork_child(void);
/* Instead of sk_span_fork_child in a child in another IPC namespace than
 * its parent's (a raw clone with CLONE_NEWIPC): leaves the parent's table
 * alone; the child's placements go in its namespace's table. */
void sk_span_ipcns_child(void);

/* ---- the table, for tests and the tool -------------------------------- */

/* Writes the table's file name (no directory, NUL-terminated) for this IPC
 * namespace and cfg into buf. Returns: its length, or -ENAMETOOLONG. */
int sk_span_table_name(const struct sk_span_cfg *cfg, char *buf, size_t len);

/* Collects: dead users (pid + start time gone), entries of removed segments
 * that nothing attaches. Returns: number of entries freed, or -errno. */
int sk_span_gc(void);

/* Opens the table named `name` in /dev/shm if it exists, collects dead users
 * and unlinks it if no live user remains (for `shmkeeper`, after SIGKILLed
 * programs). Returns: 1 unlinked, 0 still in use, -errno. */
int sk_span_table_collect(const char *name);

struct sk_span_stats {
	unsigned entries, users, repairs, dropped;
	uint64_t gen;
	unsigned retired;          /* removed, mapped nowhere: free to take */
};
/* Counts of the table this process uses: entries holds those in use, retired
 * those removed and mapped nowhere (a spare kept for the next placement of
 * its size, or one nobody collected yet). Returns: 0, -ENOENT (none open). */
int sk_span_stats(struct sk_span_stats *st);

/* Test hook: fn is called with the table locked halfway through writing a
 * new entry (so that a test can kill the process there). NULL normally. */
SK_HIDDEN void sk_span_test_midupdate(void (*fn)(void));

/* Test hook: the lock word of the table this process uses (NULL when none
 * is open), so that a test can forge or inspect it. */
_Atomic uint64_t *sk_span_test_lock(void);

/* Forgets everything local (unmaps the table, drops the reservation state
 * without unmapping the span) so that a test can sk_span_init again. */
void sk_span_test_reset(void);

#endif
