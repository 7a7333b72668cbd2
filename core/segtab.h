/* What one process knows of its shared memory: which fds are POSIX shm
 * objects, which address ranges are attachments, which segments it created.
 *
 * The questions asked on every mmap/munmap/close/dup (LESSONS.md: those run
 * thousands of times more often than the shm calls) are answered without a
 * lock: a bit per fd and an address envelope. Everything else is behind one
 * spinlock that knows its owner, so that a signal handler interrupting a
 * holder skips the table update instead of deadlocking. */
#ifndef SHMK_SEGTAB_H
#define SHMK_SEGTAB_H

#include <stddef.h>
#include <stdint.h>

#include "core/compiler.h"

#define SK_FD_BITS 65536

extern uint64_t sk_fd_bitmap[SK_FD_BITS / 64];
extern int sk_fd_overflow;        /* some marked fd is >= SK_FD_BITS */
extern uint64_t sk_att_lo, sk_att_hi;  /* envelope of all attachments */

/* Might fd be a POSIX shm object? One load and a branch. */
static inline int sk_fd_maybe_shm(int fd)
{
	if (sk_likely((unsigned)fd < SK_FD_BITS))
		return (__atomic_load_n(&sk_fd_bitmap[(unsigned)fd / 64], __ATOMIC_RELAXED) >>
			((unsigned)fd % 64)) & 1;
	return fd >= 0 && __atomic_load_n(&sk_fd_overflow, __ATOMIC_RELAXED);
}

/* Might [addr, addr+len) overlap an attachment? */
static inline int sk_att_maybe(uint64_t addr, uint64_t len)
{
	return addr < __atomic_load_n(&sk_att_hi, __ATOMIC_RELAXED) &&
	       addr + len > __atomic_load_n(&sk_att_lo, __ATOMIC_RELAXED);
}

/* The table lock: 1 if taken, 0 if this thread already holds it (a signal
 * handler re-entered): then the caller records but skips the table. */
int sk_tab_lock(void);
void sk_tab_unlock(void);
/* fork: prepare takes it, parent and child release it (child resets owner). */
void sk_tab_atfork_prepare(void);
void sk_tab_atfork_parent(void);
void sk_tab_atfork_child(void);

/* ---- fds of POSIX objects (lock held) ---- */
void sk_fd_mark(int fd, uint64_t dev, uint64_t ino, const char *name);
void sk_fd_unmark(int fd);
void sk_fd_unmark_range(unsigned lo, unsigned hi);
/* 1 if marked; name (256 bytes, may be NULL) gets the object's name. */
int sk_fd_lookup(int fd, uint64_t *dev, uint64_t *ino, char *name);
void sk_fd_dup(int oldfd, int newfd);                      /* newfd replaced */

/* ---- attachments (lock held) ---- */
struct sk_attach {
	uint64_t addr, len;
	uint64_t dev, ino;        /* POSIX object, or 0 */
	uint64_t offset;          /* file offset of addr (POSIX) */
	int32_t shmid;            /* SysV, or -1 */
	uint16_t flags;           /* SK_F_* */
};
int sk_att_add(const struct sk_attach *a);                 /* 0 or -ENOSPC */
/* The attachment starting exactly at addr (SysV shmdt). */
int sk_att_find(uint64_t addr, struct sk_attach *out);
/* Removes and returns the attachment starting at addr (shmdt), as
 * sk_att_find then sk_att_cut of its range would. 1 if found, else 0. */
int sk_att_take(uint64_t addr, struct sk_attach *out);
/* Removes [addr, addr+len) from every attachment it overlaps, splitting where
 * needed; writes the pieces removed (clipped, offset adjusted, SK_F_PARTIAL
 * where the attachment goes on) into out[max]. Returns how many. */
int sk_att_cut(uint64_t addr, uint64_t len, struct sk_attach *out, int max);
/* Visits every attachment (lock held). */
void sk_att_foreach(void (*fn)(const struct sk_attach *, void *), void *arg);

/* ---- SysV segments this process met (lock held) ---- */
struct sk_sysv {
	int32_t shmid, key;
	uint64_t size;
	uint8_t created;          /* created by this process and not removed */
};
/* Returns whether shmid was known already as created by this process (a
 * thread of ours claimed it first, or we created it before). */
int sk_sysv_note(int32_t shmid, int32_t key, uint64_t size, int created);
int sk_sysv_get(int32_t shmid, struct sk_sysv *out);
void sk_sysv_forget(int32_t shmid);
/* sk_sysv_get then sk_sysv_forget, in one lookup (IPC_RMID). */
int sk_sysv_take(int32_t shmid, struct sk_sysv *out);
void sk_sysv_foreach(void (*fn)(const struct sk_sysv *, void *), void *arg);

/* ---- POSIX objects this process created and has not unlinked ---- */
struct sk_posix {
	uint64_t dev, ino;
	char name[256];
};
void sk_posix_created(const char *name, uint64_t dev, uint64_t ino);
void sk_posix_forget(const char *name);
void sk_posix_foreach(void (*fn)(const struct sk_posix *, void *), void *arg);

/* In a fork child: what the parent created is not the child's. */
void sk_tab_fork_child(void);
/* In a child in another IPC namespace than its parent's (a raw clone with
 * CLONE_NEWIPC): the parent's shmids name nothing here, or another segment.
 * Forgets the SysV segments and the SysV attachments: the mappings stay,
 * but are not recorded as this namespace's segments. */
void sk_tab_ipcns_child(void);

/* Drop everything (exec'd image never shares; tests). */
void sk_tab_reset(void);

#endif
