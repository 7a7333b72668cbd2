/* Messages over a segment's ring (the shmk_msg_* API of <shmkeeper.h>).
 *
 * A record is an 8-byte header {u32 len, u32 kind} and the payload padded to
 * 8 bytes, always contiguous in the ring, so that a reservation can be handed
 * out as one pointer. When a record does not fit before the end of the ring,
 * the producer writes a PAD header at tail and the record at begin.
 *
 * One producer and one consumer, no lock: the producer owns tail, the consumer
 * head; each caches the other's index and re-reads it only when the cached
 * one says "full" or "empty", so an index's cache line moves between the CPUs
 * once per batch rather than once per message. A cache is dropped when our own
 * index was moved by someone else (several producers taking turns under
 * shmk_shm_lock), since a stale view of the other index is then unsafe.
 *
 * The ring bounds are taken from the header once, checked, and kept in the
 * descriptor; head and tail are checked on every load. A record header is read
 * once into a local and checked against the data the consumer can see before
 * a byte of payload is touched.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include "core/ring.h"

#define SK_REC_HDR   8u
#define SK_KIND_MSG  0x474d4b53u   /* "SKMG" */
#define SK_KIND_PAD  0x44504b53u   /* "SKPD" */
/* Tries before sleeping: long enough to ride out the other side's next
 * message in a stream (a futex sleep plus wake costs ~10 us here), short
 * enough to leave an idle CPU alone. */
#define SK_SPIN      400

struct sk_rec_hdr {
	uint32_t len;
	uint32_t kind;
};

static inline void sk_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline size_t sk_rec_size(size_t len)
{
	return SK_REC_HDR + ((len + 7) & ~(size_t)7);
}

static inline int sk_idx_ok(const struct sk_seg *s, size_t v)
{
	return v >= s->m_begin && v < s->m_end && (v & 7) == 0;
}

/* Takes the ring bounds from the header once. They are not re-read later:
 * bounds the peer moves afterwards are not bounds we use. */
static int sk_msg_ready(struct sk_seg *s)
{
	struct sk_ring_snap r;

	if (sk_likely(s->msg_ready))
		return 0;
	if (sk_ring_snap(&s->desc.header->rbuf, s->desc.orig_size, 8, &r) < 0 ||
	    r.end - r.begin < 4 * SK_REC_HDR)
		return -EINVAL;
	s->m_begin = r.begin;
	s->m_end = r.end;
	s->p_head = r.head;
	s->p_tail = r.tail;
	s->c_tail = r.tail;
	s->c_head = r.head;
	s->msg_ready = 1;
	return 0;
}

static size_t sk_max_rec(const struct sk_seg *s)
{
	/* An empty ring whose head sits in the middle offers max(end - head,
	 * head - begin - 8) contiguous bytes, which is at least half. */
	return ((s->m_end - s->m_begin - SK_REC_HDR) / 2) & ~(size_t)7;
}

static inline size_t *sk_head_p(struct sk_seg *s)
{
	return &s->desc.header->rbuf.head;
}

static inline size_t *sk_tail_p(struct sk_seg *s)
{
	return &s->desc.header->rbuf.tail;
}

/* ---- producer ------------------------------------------------------------- */

/* Finds room for a record of rec bytes. Returns 0 with *at (record offset),
 * *pad (offset of a PAD header to write first, or SIZE_MAX) and *ntail (tail
 * after publishing); -EAGAIN if full; -EBADMSG if the peer broke an index. */
static int sk_room(struct sk_seg *s, size_t rec, size_t *at, size_t *pad)
{
	/* relaxed: tail is ours (or was handed to us by the lock's ordering) */
	size_t t = atomic_load_explicit(SK_ATOMIC_SZ(sk_tail_p(s)), memory_order_relaxed);
	size_t h = s->p_head;
	int fresh = 0;

	if (!sk_idx_ok(s, t))
		return -EBADMSG;
	if (t != s->p_tail)
		goto reload;
	for (;;) {
		*pad = SIZE_MAX;
		if (t >= h) {
			size_t room = s->m_end - t - (h == s->m_begin ? SK_REC_HDR : 0);

			if (rec <= room) {
				*at = t;
				return 0;
			}
			if (h - s->m_begin >= rec + SK_REC_HDR) {
				*pad = t;
				*at = s->m_begin;
				return 0;
			}
		} else if (h - t >= rec + SK_REC_HDR) {
			*at = t;
			return 0;
		}
		if (fresh)
			return -EAGAIN;
reload:
		/* acquire: the consumer's copy out of the space it freed is
		 * complete before we write over it */
		h = atomic_load_explicit(SK_ATOMIC_SZ(sk_head_p(s)), memory_order_acquire);
		if (!sk_idx_ok(s, h))
			return -EBADMSG;
		s->p_head = h;
		s->p_tail = t;
		fresh = 1;
	}
}

static void sk_publish(struct sk_seg *s, size_t at, size_t pad, size_t len)
{
	struct sk_ctrl *c = sk_ctrl_of(&s->desc);
	struct sk_rec_hdr hd = { (uint32_t)len, SK_KIND_MSG };
	char *base = (char *)s->desc.header;
	size_t nt = at + sk_rec_size(len);

	if (pad != SIZE_MAX) {
		struct sk_rec_hdr ph = { 0, SK_KIND_PAD };
		memcpy(base + pad, &ph, sizeof(ph));
	}
	memcpy(base + at, &hd, sizeof(hd));
	if (nt == s->m_end)
		nt = s->m_begin;
	s->p_tail = nt;
	/* release: header and payload are in the ring before tail shows them */
	atomic_store_explicit(SK_ATOMIC_SZ(sk_tail_p(s)), nt, memory_order_release);
	/* seq_cst fence: orders our tail store before the waiters load, against
	 * the consumer's waiters increment before its tail load (Dekker); without
	 * it both could miss the other and the consumer sleep on a full ring */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&c->data_waiters, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&c->data_seq, 1, memory_order_release);
		sk_futex_wake_all(&c->data_seq);
	}
}

/* ---- consumer ------------------------------------------------------------- */

/* Finds the next record. Returns 0 with *at (payload offset), *len and *nhead
 * (head after releasing it); -EAGAIN if empty; -EBADMSG if malformed. */
static int sk_next(struct sk_seg *s, size_t *at, size_t *len, size_t *nhead)
{
	/* relaxed: head is ours, as tail is the producer's */
	size_t h = atomic_load_explicit(SK_ATOMIC_SZ(sk_head_p(s)), memory_order_relaxed);
	size_t t = s->c_tail, avail;
	struct sk_rec_hdr hd;

	if (!sk_idx_ok(s, h))
		return -EBADMSG;
	if (h != s->c_head || h == t) {
		/* acquire: the producer's record is in the ring before tail */
		t = atomic_load_explicit(SK_ATOMIC_SZ(sk_tail_p(s)), memory_order_acquire);
		if (!sk_idx_ok(s, t))
			return -EBADMSG;
		s->c_tail = t;
		s->c_head = h;
		if (h == t)
			return -EAGAIN;
	}
	memcpy(&hd, (char *)s->desc.header + h, sizeof(hd));
	if (hd.kind == SK_KIND_PAD) {
		/* a PAD is only written with a record after it, at begin */
		if (t > h || t == s->m_begin)
			return -EBADMSG;
		h = s->m_begin;
		memcpy(&hd, (char *)s->desc.header + h, sizeof(hd));
	}
	if (hd.kind != SK_KIND_MSG)
		return -EBADMSG;
	avail = (t > h ? t : s->m_end) - h;
	if (hd.len > avail - SK_REC_HDR || sk_rec_size(hd.len) > avail)
		return -EBADMSG;
	*at = h + SK_REC_HDR;
	*len = hd.len;
	*nhead = h + sk_rec_size(hd.len);
	if (*nhead == s->m_end)
		*nhead = s->m_begin;
	return 0;
}

static void sk_release(struct sk_seg *s, size_t nh)
{
	struct sk_ctrl *c = sk_ctrl_of(&s->desc);

	s->c_head = nh;
	/* release: our reads of the record are done before the producer
	 * may reuse its space */
	atomic_store_explicit(SK_ATOMIC_SZ(sk_head_p(s)), nh, memory_order_release);
	/* seq_cst fence: the Dekker pairing of sk_publish, for the producer */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&c->space_waiters, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&c->space_seq, 1, memory_order_release);
		sk_futex_wake_all(&c->space_seq);
	}
}

/* ---- waiting -------------------------------------------------------------- */

struct sk_try {
	size_t rec;                /* producer: record size wanted */
	size_t at, pad, len, nh;   /* results */
};

static int sk_attempt(struct sk_seg *s, int producer, struct sk_try *a)
{
	return producer ? sk_room(s, a->rec, &a->at, &a->pad)
	                : sk_next(s, &a->at, &a->len, &a->nh);
}

static uint64_t sk_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Retries until the attempt succeeds or the timeout passes: a short spin,
 * then futex sleeps on the other side's sequence word. */
static int sk_wait(struct sk_seg *s, int producer, struct sk_try *a, int timeout_ms)
{
	struct sk_ctrl *c = sk_ctrl_of(&s->desc);
	_Atomic uint32_t *seq = producer ? &c->space_seq : &c->data_seq;
	_Atomic uint32_t *waiters = producer ? &c->space_waiters : &c->data_waiters;
	uint64_t deadline = 0;
	int rc = sk_attempt(s, producer, a);

	if (rc != -EAGAIN || timeout_ms == 0)
		return rc;
	for (int i = 0; i < SK_SPIN; i++) {
		sk_cpu_relax();
		if ((rc = sk_attempt(s, producer, a)) != -EAGAIN)
			return rc;
	}
	if (timeout_ms > 0)
		deadline = sk_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		/* acquire: pairs with the waker's release increment */
		uint32_t v = atomic_load_explicit(seq, memory_order_acquire);
		int w;

		/* seq_cst: the Dekker side of sk_publish/sk_release's fence */
		atomic_fetch_add_explicit(waiters, 1, memory_order_seq_cst);
		rc = sk_attempt(s, producer, a);
		if (rc != -EAGAIN) {
			atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
			return rc;
		}
		w = sk_futex_wait(seq, v, deadline);
		atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
		rc = sk_attempt(s, producer, a);
		if (rc != -EAGAIN)
			return rc;
		if (w == -ETIMEDOUT)
			return -ETIMEDOUT;
	}
}

/* ---- the public API ------------------------------------------------------- */

size_t shmk_msg_max(shmk_shm_desc *desc)
{
	struct sk_seg *s;

	if (!desc)
		return 0;
	s = sk_seg_of(desc);
	if (sk_msg_ready(s) < 0)
		return 0;
	return sk_max_rec(s) - SK_REC_HDR;
}

static int sk_reserve(struct sk_seg *s, size_t len, struct sk_try *a, int timeout_ms)
{
	int rc;

	if ((rc = sk_msg_ready(s)) < 0)
		return rc;
	if (len > UINT32_MAX || sk_rec_size(len) > sk_max_rec(s))
		return -EMSGSIZE;
	a->rec = sk_rec_size(len);
	return sk_wait(s, 1, a, timeout_ms);
}

int shmk_msg_send(shmk_shm_desc *desc, const void *msg, size_t len, int timeout_ms)
{
	struct sk_seg *s;
	struct sk_try a;
	int rc;

	if (!desc || (!msg && len))
		return EINVAL;
	s = sk_seg_of(desc);
	if (s->res_open)
		return EBUSY;
	if ((rc = sk_reserve(s, len, &a, timeout_ms)) < 0)
		return -rc;
	memcpy((char *)desc->header + a.at + SK_REC_HDR, msg, len);
	sk_publish(s, a.at, a.pad, len);
	return 0;
}

int shmk_msg_reserve(shmk_shm_desc *desc, size_t len, void **ptr, int timeout_ms)
{
	struct sk_seg *s;
	struct sk_try a;
	int rc;

	if (!desc || !ptr)
		return EINVAL;
	s = sk_seg_of(desc);
	if (s->res_open)
		return EBUSY;
	if ((rc = sk_reserve(s, len, &a, timeout_ms)) < 0)
		return -rc;
	/* the PAD goes in now, unpublished: the consumer never reads past tail */
	if (a.pad != SIZE_MAX) {
		struct sk_rec_hdr ph = { 0, SK_KIND_PAD };
		memcpy((char *)desc->header + a.pad, &ph, sizeof(ph));
	}
	s->res_at = a.at;
	s->res_len = len;
	s->res_open = 1;
	*ptr = (char *)desc->header + a.at + SK_REC_HDR;
	return 0;
}

int shmk_msg_commit(shmk_shm_desc *desc, size_t len)
{
	struct sk_seg *s;

	if (!desc)
		return EINVAL;
	s = sk_seg_of(desc);
	if (!s->res_open || len > s->res_len)
		return EINVAL;
	s->res_open = 0;
	sk_publish(s, s->res_at, SIZE_MAX, len);
	return 0;
}

static int sk_take(struct sk_seg *s, struct sk_try *a, int timeout_ms)
{
	int rc;

	if ((rc = sk_msg_ready(s)) < 0)
		return rc;
	return sk_wait(s, 0, a, timeout_ms);
}

int shmk_msg_recv(shmk_shm_desc *desc, void *buf, size_t buflen, size_t *len, int timeout_ms)
{
	struct sk_seg *s;
	struct sk_try a;
	int rc;

	if (!desc || !len || (!buf && buflen))
		return EINVAL;
	s = sk_seg_of(desc);
	if (s->peek_open)
		return EBUSY;
	if ((rc = sk_take(s, &a, timeout_ms)) < 0)
		return -rc;
	*len = a.len;
	if (a.len > buflen)
		return EMSGSIZE;
	memcpy(buf, (char *)desc->header + a.at, a.len);
	sk_release(s, a.nh);
	return 0;
}

int shmk_msg_peek(shmk_shm_desc *desc, const void **ptr, size_t *len, int timeout_ms)
{
	struct sk_seg *s;
	struct sk_try a;
	int rc;

	if (!desc || !ptr || !len)
		return EINVAL;
	s = sk_seg_of(desc);
	if (s->peek_open)
		return EBUSY;
	if ((rc = sk_take(s, &a, timeout_ms)) < 0)
		return -rc;
	s->peek_next = a.nh;
	s->peek_open = 1;
	*ptr = (char *)desc->header + a.at;
	*len = a.len;
	return 0;
}

int shmk_msg_release(shmk_shm_desc *desc)
{
	struct sk_seg *s;

	if (!desc)
		return EINVAL;
	s = sk_seg_of(desc);
	if (!s->peek_open)
		return EINVAL;
	s->peek_open = 0;
	sk_release(s, s->peek_next);
	return 0;
}
