/* Internals shared by core/ring.c (segments, locks, the byte ring) and
 * core/msg.c (messages over the ring).
 *
 * The control block sits at SK_CTRL_OFF, after the seed's public header and
 * before SHMK_SHM_RESERVED. The peer can rewrite all of it: nothing in it is
 * used as an address, an offset or a size unchecked: the message positions
 * are checked against the ring bounds on every load, like rbuf's, or compared
 * with a value that was; the futex words are only waited on and woken; the
 * waiters flags only decide whether to wake; the holder word only decides
 * whether to report EOWNERDEAD. In the ring, a record header's length is
 * checked against the ring's end before a byte of payload is touched.
 */
#ifndef SHMK_RING_H
#define SHMK_RING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/compiler.h"
#include <shmkeeper.h>

#define SK_CTRL_OFF     64
#define SK_SEG_MAGIC    0x31474e524b4d4853ull   /* "SHMKRNG1" */
#define SK_SEG_VERSION  5u      /* 2: message positions in the control block,
                                   3: the two sides' lines 128 bytes apart,
                                   4: a record's header publishes it, and an
                                      END header (0) follows the last one,
                                   5: payloads over 256 bytes start on a
                                      cache line (SK_KIND_BIG) */
#define SK_CACHELINE    64
#define SK_MIN_RING     64      /* bytes of ring shmk_shm_data_alloc leaves */

/* The message layer keeps its positions here, not in rbuf.head/rbuf.tail:
 * those two share a cache line in the seed's header, and a line written by
 * both sides on every message moves between the CPUs twice per message
 * (measured: bench/ring, see core/msg.c). Each side's line holds what that
 * side writes per message (its index, the sequence word it bumps to wake the
 * other) and the waiters flag it reads after each publish, which the other
 * side writes only when it goes to sleep. The producer's line is at
 * offset 64 and the consumer's at 192, in different 128-byte pairs: with
 * them adjacent (128 and 192, version 2), an adjacent-line prefetch by one
 * side pulled in the other's line; apart, bench/ring ran 5-10% faster at 8
 * and 64 bytes (interleaved runs, 2-vCPU EPYC guest). */
struct sk_ctrl {
	uint64_t magic;
	uint32_t version;
	/* Nonzero while some process holds the kernel lock (see sk_lock). */
	_Atomic uint32_t holder;
	/* producer's line (with the words above, written only at creation
	 * and by lock holders) */
	_Atomic size_t msg_tail;          /* first free byte of the message ring */
	_Atomic uint32_t data_seq;        /* the consumer sleeps on it */
	_Atomic uint32_t data_waiters;    /* set by a consumer about to sleep */
	char pad0[2 * SK_CACHELINE - 32];
	/* consumer's line */
	_Atomic size_t msg_head;          /* first unread record */
	_Atomic uint32_t space_seq;       /* the producer sleeps on it */
	_Atomic uint32_t space_waiters;   /* set by a producer about to sleep */
	char pad2[SK_CACHELINE - 16];
};

_Static_assert(sizeof(shmk_shm_header) <= SK_CTRL_OFF, "header fits before ctrl");
_Static_assert((SK_CTRL_OFF + offsetof(struct sk_ctrl, msg_tail)) / 128 !=
               (SK_CTRL_OFF + offsetof(struct sk_ctrl, msg_head)) / 128,
               "producer's and consumer's lines in different 128-byte pairs");
_Static_assert(SK_CTRL_OFF + sizeof(struct sk_ctrl) <= SHMK_SHM_RESERVED,
               "ctrl fits in the reserved area");
_Static_assert(sizeof(size_t) == 8, "the control block layout assumes LP64");
/* The public fields are plain size_t; they are accessed through _Atomic
 * casts (liburing's io_uring_smp_load_acquire does the same). */
_Static_assert(sizeof(_Atomic size_t) == sizeof(size_t) &&
               _Alignof(_Atomic size_t) == _Alignof(size_t),
               "_Atomic size_t has the layout of size_t");

#define SK_ATOMIC_SZ(p) ((_Atomic size_t *)(p))

/* A ring description read once from shared memory and checked: begin, end,
 * head and tail are trusted only after sk_ring_snap() returned 0. */
struct sk_ring_snap {
	size_t begin, end, head, tail;
};

/* The per-process half of a descriptor; desc is first so that the public
 * pointer converts back. */
struct sk_seg {
	shmk_shm_desc desc;
	_Atomic int refcnt;
	int fd;                    /* POSIX: the segment's fd, else -1 */
	int shmid, semid;          /* SysV, else -1 */
	unsigned fork_gen;         /* sk_fork_gen when fd was opened here */
	pthread_mutex_t tlock;     /* POSIX: excludes this process's threads */
	_Atomic uintptr_t towner;  /* POSIX: pthread_self() of tlock's holder */
	_Atomic int sysv_held;     /* SysV: this process holds the semaphore */
	char name[64];             /* POSIX name, NUL-terminated */

	/* Message layer, private to this process. The ring bounds are read
	 * from the header once, checked, and kept here, so a peer that moves
	 * them later cannot move our accesses. */
	int msg_ready;             /* 1: begin/end below are valid, -1: bad */
	size_t m_begin, m_end;
	size_t m_maxlen;           /* largest payload, <= UINT32_MAX */
	size_t p_tail;             /* producer: tail as we left it... */
	size_t p_lim;              /* ...records may end up to here (0: look) */
	size_t p_head;             /* head as last loaded, checked */
	size_t c_head;             /* consumer: head as we left it, checked */
	size_t res_at, res_len;    /* open reservation: record offset, length */
	size_t res_pad;            /* its PAD's offset, or SIZE_MAX */
	size_t res_lim;            /* p_lim for res_at (p_lim is 0 meanwhile) */
	int res_open;
	size_t peek_next;          /* head after the peeked record */
	int peek_open;
};

static inline struct sk_seg *sk_seg_of(shmk_shm_desc *d)
{
	return (struct sk_seg *)d;
}

static inline struct sk_ctrl *sk_ctrl_of(shmk_shm_desc *d)
{
	return (struct sk_ctrl *)((char *)d->header + SK_CTRL_OFF);
}

/* Makes our message layer take the ring's bounds again before its next call
 * (shmk_shm_data_alloc moved them): the send fast path goes by p_lim alone.
 * An open reservation points into the old ring: it is dropped, and its
 * commit fails with EINVAL. */
static inline void sk_msg_forget(struct sk_seg *s)
{
	s->msg_ready = 0;
	s->res_open = 0;
	s->p_lim = s->res_lim = 0;
}

/* Sets the message ring empty at pos (creation, shmk_shm_data_alloc): head
 * and tail at pos, and an END header (8 zero bytes, core/msg.c) there, which
 * the caller has checked lies in the ring. */
static inline void sk_msg_reset(struct sk_ctrl *c, void *base, size_t pos)
{
	/* relaxed: done before the segment is shared, or by its creator before
	 * the ring is used (shmk_shm_data_alloc's contract) */
	atomic_store_explicit((_Atomic uint64_t *)((char *)base + pos), 0, memory_order_relaxed);
	atomic_store_explicit(&c->msg_head, pos, memory_order_relaxed);
	atomic_store_explicit(&c->msg_tail, pos, memory_order_relaxed);
}

/* Reads rbuf's four offsets once and checks them against a mapping of size
 * bytes: SHMK_SHM_RESERVED <= begin < end <= size, head and tail in
 * [begin, end), and all multiples of align (1 or 8). Returns 0 or -EINVAL. */
SK_HIDDEN int sk_ring_snap(const shmk_rbuf *rbuf, size_t size, size_t align,
                           struct sk_ring_snap *s);

/* Bytes queued in a checked snapshot. */
static inline size_t sk_ring_used(const struct sk_ring_snap *s)
{
	return s->tail >= s->head ? s->tail - s->head
	                          : (s->end - s->begin) - (s->head - s->tail);
}

/* futex(2) on a word of the segment: shared, not FUTEX_PRIVATE_FLAG, since
 * the other side is another process. deadline_ns is CLOCK_MONOTONIC, or 0 to
 * wait forever. Returns 0 or -errno (-ETIMEDOUT, -EAGAIN, -EINTR). */
SK_HIDDEN int sk_futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t deadline_ns);
SK_HIDDEN void sk_futex_wake_all(_Atomic uint32_t *word);

#endif
