/* Messages over a segment's ring (the shmk_msg_* API of <shmkeeper.h>).
 *
 * A record is an 8-byte header {u32 len, u32 kind} and the payload padded to
 * 8 bytes, always contiguous in the ring, so that a reservation can be handed
 * out as one pointer. A payload over SK_COPY_SMALL bytes (kind BIG, version
 * 5) starts at the first cache line after its header. When a record does not
 * fit before the end of the ring, the producer writes the record at begin and
 * then a PAD header at tail.
 *
 * One producer and one consumer, no lock: the producer owns tail, the consumer
 * head. The header is what publishes a record (segment version 4): the
 * producer writes the payload, an END header (all zero) where the next record
 * will go, and then this record's header with a release store; the consumer
 * acquire-loads the header at head and finds a message, a PAD, or END
 * ("empty"). The consumer never reads tail, so a message costs it the record's
 * lines only, not also the tail's line, which the producer writes on every
 * message (version 3 did; the change alone took 64-byte messages from ~10 to
 * ~23 M/s and 512-byte ones from 5.5 to 8.8 in bench/ring's slow phase, the
 * two layouts interleaved in one run; polling tail only while waiting for an
 * empty ring lost 10-40% at 64 bytes in the fast phase). The producer
 * caches head and re-reads it only when the ring looks full. Its cache is
 * dropped when tail was moved by someone else (several producers taking turns
 * under shmk_shm_lock), since a stale view of head is then unsafe. The END
 * word always fits: the producer leaves at least 8 free bytes before head.
 *
 * head and tail are the control block's msg_head and msg_tail, each on the
 * cache line of the side that writes it (core/ring.h), not the seed header's
 * rbuf.head and rbuf.tail, which share one line: with those, both sides wrote
 * the same line on every message. rbuf gives the ring's bounds only. The
 * producer still stores tail on every message (its own line, which nobody
 * reads then): shmk_shm_data_alloc and a producer taking its turn read it.
 *
 * The ring bounds are taken from the header once, checked, and kept in the
 * descriptor; head and tail are checked on every load, or compared with the
 * value we checked before. A record header is read once into a local and
 * checked against the ring's end before a byte of payload is touched.
 */
#include <errno.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/ring.h"

#define SK_REC_HDR   8u
#define SK_KIND_END  0u            /* nothing published here yet */
#define SK_KIND_MSG  0x474d4b53u   /* "SKMG" */
#define SK_KIND_PAD  0x44504b53u   /* "SKPD" */
#define SK_KIND_BIG  0x47424b53u   /* "SKBG": a message whose payload starts at
                                      the first 64-byte boundary after its
                                      header */
/* Tries before sleeping: long enough to ride out the other side's next
 * message in a stream (a futex sleep plus wake costs ~10 us here), short
 * enough to leave an idle CPU alone. */
#define SK_SPIN      400

struct sk_rec_hdr {
	uint32_t len;
	uint32_t kind;
};

_Static_assert(sizeof(struct sk_rec_hdr) == SK_REC_HDR, "a header is one word");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && _Alignof(_Atomic uint64_t) == 8,
               "a header is accessed as one _Atomic uint64_t");

static inline void sk_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Copies a payload into or out of the ring: 32 bytes a step (two SSE2
 * moves), the last step overlapping the one before, and below 32 bytes a
 * first and a last move of 16 or 8 bytes, so that nothing from 8 to 256
 * bytes takes a byte loop. With version 3's tail-published records, glibc's
 * memcpy and 16-byte moves lost to 8-byte ones at 64 bytes (80-88 ns a
 * message against 114-133); with the header publishing the record (version
 * 4) the 32-byte steps beat 8-byte ones by 15-60% at 64 bytes, slow phase,
 * and were even at 8 (per-round ratios of interleaved runs, 2-vCPU EPYC
 * guest).
 *
 * Above SK_COPY_SMALL, 128 bytes a step in AVX2 where the CPU has it, else
 * the 32-byte steps; never rep movsb. rep movsb (ERMS) won in one process,
 * but between two it had phases: bench/ring at 4096 bytes ran at 10.5-11 M
 * messages a second in some cells and 3.0-3.7 M in others, 512 bytes at
 * 15-46 M, while the 32-byte loop held 9.7-10.5 M and 55-62 M in the same
 * runs, and the AVX2 loop 11.2-12.1 M and 75-80 M (cells interleaved, three
 * runs; glibc's memcpy, which takes rep movsb at 4 KiB, had the same phases;
 * so did ck_ring, whose copy is glibc's). */
#define SK_COPY_SMALL 256

/* Payloads over SK_COPY_SMALL start on a cache line (SK_KIND_BIG), at the
 * cost of up to 56 bytes between header and payload, so that the ring side
 * of the copy is aligned (measured with rep movsb: a 4 KiB copy into a 2 MiB
 * ring walked like the ring took 73 ns aligned, 85-89 with it 8 bytes past
 * a line). */
#define SK_ALIGN_MIN (SK_COPY_SMALL + 1)
#define SK_GAP_MAX   (SK_CACHELINE - SK_REC_HDR)

/* Whether a payload of len bytes goes in a BIG record. */
static inline int sk_big(size_t len)
{
	return len >= SK_ALIGN_MIN;
}

/* n >= 32 bytes, 32 a step, the last overlapping. */
static inline void sk_copy32(char *d, const char *p, size_t n)
{
	char *last = d + n - 32;
	const char *plast = p + n - 32;

	for (size_t i = 32; i < n; i += 32, d += 32, p += 32)
		memcpy(d, p, 32);
	memcpy(last, plast, 32);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SK_COPY_AVX2 1

/* n >= 128 bytes, 128 a step (four 32-byte loads, then four stores), the
 * last step overlapping the one before. Inline assembly, not intrinsics in
 * a target("avx2") function: a call would cost the send and receive fast
 * paths their frameless leaf shape (gcc then saved six registers a
 * message). vzeroupper: the code around it is SSE. */
static inline void sk_copy_avx2(char *d, const char *p, size_t n)
{
	const char *pe = p + n - 128;
	char *de = d + n - 128;

	__asm__ __volatile__("1:\n\t"
	                     "vmovdqu (%[p]), %%ymm0\n\t"
	                     "vmovdqu 32(%[p]), %%ymm1\n\t"
	                     "vmovdqu 64(%[p]), %%ymm2\n\t"
	                     "vmovdqu 96(%[p]), %%ymm3\n\t"
	                     "vmovdqu %%ymm0, (%[d])\n\t"
	                     "vmovdqu %%ymm1, 32(%[d])\n\t"
	                     "vmovdqu %%ymm2, 64(%[d])\n\t"
	                     "vmovdqu %%ymm3, 96(%[d])\n\t"
	                     "add $128, %[p]\n\t"
	                     "add $128, %[d]\n\t"
	                     "cmp %[pe], %[p]\n\t"
	                     "jb 1b\n\t"
	                     "vmovdqu (%[pe]), %%ymm0\n\t"
	                     "vmovdqu 32(%[pe]), %%ymm1\n\t"
	                     "vmovdqu 64(%[pe]), %%ymm2\n\t"
	                     "vmovdqu 96(%[pe]), %%ymm3\n\t"
	                     "vmovdqu %%ymm0, (%[de])\n\t"
	                     "vmovdqu %%ymm1, 32(%[de])\n\t"
	                     "vmovdqu %%ymm2, 64(%[de])\n\t"
	                     "vmovdqu %%ymm3, 96(%[de])\n\t"
	                     "vzeroupper"
	                     : [d] "+r"(d), [p] "+r"(p)
	                     : [pe] "r"(pe), [de] "r"(de)
	                     : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3");
}

/* 1: the CPU and the kernel do AVX2; else 0 (also until sk_copy_probe ran:
 * the 32-byte loop is right either way). */
static _Atomic int sk_avx2;

/* Called once a descriptor is set up for messages, before any payload is
 * copied through it; racing threads store the same answer. */
static void sk_copy_probe(void)
{
	__builtin_cpu_init();   /* in case a constructor is the caller */
	/* relaxed: a constant, and the 32-byte loop is right until it shows */
	atomic_store_explicit(&sk_avx2, __builtin_cpu_supports("avx2") ? 1 : 0,
	                      memory_order_relaxed);
}
#else
static void sk_copy_probe(void)
{
}
#endif

static SK_ALWAYS_INLINE void sk_copy(void *dst, const void *src, size_t n)
{
	char *d = dst;
	const char *p = src;

	/* smallest first: two compares to the 8-byte moves */
	if (n <= 16) {
		if (n >= 8) {
			uint64_t a, b;

			memcpy(&a, p, 8);
			memcpy(&b, p + n - 8, 8);
			memcpy(d, &a, 8);
			memcpy(d + n - 8, &b, 8);
			return;
		}
		for (; n; n--)
			*d++ = *p++;
		return;
	}
	if (n <= 32) {
		memcpy(d, p, 16);
		memcpy(d + n - 16, p + n - 16, 16);
		return;
	}
#ifdef SK_COPY_AVX2
	/* relaxed: see sk_copy_probe */
	if (n > SK_COPY_SMALL && atomic_load_explicit(&sk_avx2, memory_order_relaxed)) {
		sk_copy_avx2(d, p, n);
		return;
	}
#endif
	sk_copy32(d, p, n);
}

/* Where the payload of a record whose header is at at starts: right after
 * the header, or for a BIG one at the next line (offsets from the segment's
 * start, which is page-aligned). */
static inline size_t sk_pay(size_t at, int big)
{
	at += SK_REC_HDR;
	return big ? (at + SK_CACHELINE - 1) & ~(size_t)(SK_CACHELINE - 1) : at;
}

/* The end of that record, payload padded to 8 bytes: the next header. */
static inline size_t sk_rec_end(size_t at, int big, size_t len)
{
	return sk_pay(at, big) + ((len + 7) & ~(size_t)7);
}

static inline int sk_idx_ok(const struct sk_seg *s, size_t v)
{
	return v >= s->m_begin && v < s->m_end && (v & 7) == 0;
}

/* A header in the ring, as the one word it is stored and loaded as. off is
 * a checked index (8-aligned, below m_end), so the word is in the ring. */
static inline _Atomic uint64_t *sk_hdr_p(struct sk_seg *s, size_t off)
{
	return (_Atomic uint64_t *)((char *)s->desc.header + off);
}

static inline uint64_t sk_hdr_word(uint32_t len, uint32_t kind)
{
	struct sk_rec_hdr hd = { len, kind };
	uint64_t w;

	memcpy(&w, &hd, sizeof(w));
	return w;
}

static inline struct sk_rec_hdr sk_hdr_load(struct sk_seg *s, size_t off)
{
	/* acquire: the producer's payload (and the END after it) are in the
	 * ring before its header says MSG or PAD */
	uint64_t w = atomic_load_explicit(sk_hdr_p(s, off), memory_order_acquire);
	struct sk_rec_hdr hd;

	memcpy(&hd, &w, sizeof(hd));
	return hd;
}

static size_t sk_max_rec(const struct sk_seg *s)
{
	/* An empty ring whose head sits in the middle offers max(end - head,
	 * head - begin - 8) contiguous bytes, which is at least half. */
	return ((s->m_end - s->m_begin - SK_REC_HDR) / 2) & ~(size_t)7;
}

/* The largest payload that fits an empty ring wherever head is: a record of
 * sk_max_rec bytes, less the gap a BIG one may need. */
static size_t sk_max_len(const struct sk_seg *s)
{
	size_t n = sk_max_rec(s) - SK_REC_HDR;

	if (n < SK_ALIGN_MIN)
		return n;
	return n - SK_GAP_MAX >= SK_ALIGN_MIN ? n - SK_GAP_MAX : SK_ALIGN_MIN - 1;
}

/* Takes the ring bounds from the header once. They are not re-read later:
 * bounds the peer moves afterwards are not bounds we use. */
static SK_NOINLINE int sk_msg_ready_slow(struct sk_seg *s)
{
	const shmk_rbuf *rb = &s->desc.header->rbuf;
	size_t b, e;

	/* relaxed: the bounds are set before the segment is shared */
	b = atomic_load_explicit(SK_ATOMIC_SZ(&rb->begin), memory_order_relaxed);
	e = atomic_load_explicit(SK_ATOMIC_SZ(&rb->end), memory_order_relaxed);
	if (b < SHMK_SHM_RESERVED || b >= e || e > s->desc.orig_size ||
	    ((b | e) & 7) || e - b < 4 * SK_REC_HDR)
		return -EINVAL;
	s->m_begin = b;
	s->m_end = e;
	s->m_maxlen = sk_max_len(s);
	if (s->m_maxlen > UINT32_MAX)
		s->m_maxlen = UINT32_MAX;
	/* no view of head yet: p_lim 0 sends the first send to sk_room,
	 * and p_tail 0 is no index, so sk_room loads head. c_head is always
	 * a checked index: the fast path reads a header at head if head is
	 * still c_head, whatever a peer stored there. */
	s->p_tail = s->p_lim = 0;
	s->c_head = b;
	sk_copy_probe();
	s->msg_ready = 1;
	return 0;
}

static inline int sk_msg_ready(struct sk_seg *s)
{
	return sk_likely(s->msg_ready) ? 0 : sk_msg_ready_slow(s);
}

static inline _Atomic size_t *sk_head_p(struct sk_seg *s)
{
	return &sk_ctrl_of(&s->desc)->msg_head;
}

static inline _Atomic size_t *sk_tail_p(struct sk_seg *s)
{
	return &sk_ctrl_of(&s->desc)->msg_tail;
}

/* ---- the Dekker pairing of "publish, then look for a sleeper" with "say I
 * sleep, then look at the index" ---------------------------------------------
 *
 * Each side needs a full barrier between its store and its load, or both can
 * miss the other and a sleeper sleeps on a ring that is not empty (full).
 * A seq_cst fence on every publish cost the producer most of its time (perf:
 * 97% of sk_publish's samples on the instruction after `lock or`, which waits
 * for the record's stores to drain; without it, bench/ring gained ~20% at 8
 * bytes, medians of 30 interleaved runs, and nothing measurable at 512 and
 * 4096, where the copy dominates). So the barrier is asymmetric, as in
 * membarrier(2)'s example: the publisher, on every message, only keeps the
 * compiler from reordering; the side about to sleep, rarely, calls
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which runs a full barrier on
 * every CPU running a registered process, the publisher among them. A process
 * whose registration failed (old kernel, seccomp) fences on every publish; a
 * sleeper whose membarrier call fails sleeps in slices of SK_SLICE_MS, so a
 * wake it missed costs it at most that. */

#define SK_SLICE_MS 1

/* 0: not tried in this process (fork resets it), 1: registered, -1: fence */
static _Atomic int sk_mb_state;
static pthread_once_t sk_mb_once = PTHREAD_ONCE_INIT;

static void sk_mb_atfork_child(void)
{
	/* relaxed: the child has one thread here */
	atomic_store_explicit(&sk_mb_state, 0, memory_order_relaxed);
}

static void sk_mb_init(void)
{
	pthread_atfork(NULL, NULL, sk_mb_atfork_child);
}

static SK_NOINLINE int sk_mb_register(void)
{
	long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	int st = -1;

	pthread_once(&sk_mb_once, sk_mb_init);
	if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0)
		st = 1;
	/* relaxed: only this process's own publishes read it; a thread that
	 * still sees 0 registers again, which is harmless */
	atomic_store_explicit(&sk_mb_state, st, memory_order_relaxed);
	return st;
}

/* The publisher's half: between its index store and its waiters load.
 * Registered: a sleeper's membarrier orders us, so only the compiler is
 * kept from moving the waiters load above the store, and this returns 1.
 * Not registered (yet): a sleeper's membarrier may have missed us; this
 * returns 0 and the caller fences (sk_wake_slow). */
static inline int sk_mb_light(void)
{
	int st = atomic_load_explicit(&sk_mb_state, memory_order_relaxed);

	atomic_signal_fence(memory_order_seq_cst);
	return st > 0;
}

/* The sleeper's half: between its waiters store and its index load.
 * Returns 0, or -1 if the publisher may not have been ordered. */
static int sk_mb_heavy(void)
{
	/* seq_cst fence: enough against a publisher that fences itself */
	atomic_thread_fence(memory_order_seq_cst);
	return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0 ? 0 : -1;
}

/* Wakes the other side if it said it is going to sleep. The caller has
 * published its index. The flag is taken with an exchange, so one publish
 * per sleep makes the futex call (~1-2 us a syscall here): with a counter
 * that the sleeper decremented only once it ran again, every message
 * published in between paid for a wake, and a producer racing a slow-waking
 * consumer spent most of its time in futex(2) (bench/ring, loaded machine).
 * Several sleepers: all are woken, and any still short re-arm the flag
 * before they sleep again. Returns 0, for the callers' tail calls. */
static SK_NOINLINE int sk_wake_slow(int registered, _Atomic uint32_t *waiters,
                                    _Atomic uint32_t *seq)
{
	if (!registered) {
		/* relaxed: a thread that still sees 0 registers again,
		 * which is harmless */
		if (atomic_load_explicit(&sk_mb_state, memory_order_relaxed) == 0)
			sk_mb_register();
		atomic_thread_fence(memory_order_seq_cst);
		/* relaxed: ordered by the fence */
		if (!atomic_load_explicit(waiters, memory_order_relaxed))
			return 0;
	}
	/* seq_cst: a sleeper that arms after this exchange reads our 0 with
	 * its own seq_cst exchange, and so sees the index we published */
	if (!atomic_exchange_explicit(waiters, 0, memory_order_seq_cst))
		return 0;
	/* release: pairs with the sleeper's acquire load of seq */
	atomic_fetch_add_explicit(seq, 1, memory_order_release);
	sk_futex_wake_all(seq);
	return 0;
}

/* After an index store: the publisher's half of the pairing, then a wake
 * if needed. Everything but the two loads is out of line, as tail calls,
 * so that the fast paths need no stack frame. Returns 0. */
static inline int sk_notify(_Atomic uint32_t *waiters, _Atomic uint32_t *seq)
{
	if (sk_unlikely(!sk_mb_light()))
		return sk_wake_slow(0, waiters, seq);
	/* relaxed: ordered by sk_mb_light and the sleeper's sk_mb_heavy; the
	 * line is ours, so this is an L1 hit unless a sleeper just wrote it */
	if (sk_unlikely(atomic_load_explicit(waiters, memory_order_relaxed)))
		return sk_wake_slow(1, waiters, seq);
	return 0;
}

/* ---- producer ------------------------------------------------------------- */

/* How far a record placed at at may reach, head being h (a view of head can
 * only be behind the real one, so this is safe while tail stays ours): up to
 * the end, less the END word's 8 bytes when head is at begin; else up to 8
 * bytes before head. */
static inline size_t sk_lim(const struct sk_seg *s, size_t at, size_t h)
{
	return at >= h ? s->m_end - (h == s->m_begin ? SK_REC_HDR : 0) : h - SK_REC_HDR;
}

/* Finds room for a record of a len-byte payload (BIG if len says so).
 * Returns 0 with *at (record offset) and *pad (offset of a PAD header to
 * write after it, or SIZE_MAX), p_lim set for *at; -EAGAIN if full; -EBADMSG
 * if the peer broke an index. */
static int sk_room(struct sk_seg *s, size_t len, size_t *at, size_t *pad)
{
	int big = sk_big(len);
	/* relaxed: tail is ours (or was handed to us by the lock's ordering) */
	size_t t = atomic_load_explicit(sk_tail_p(s), memory_order_relaxed);
	size_t h = s->p_head;
	int fresh = 0;

	if (!sk_idx_ok(s, t))
		return -EBADMSG;
	if (t != s->p_tail)
		goto reload;
	for (;;) {
		*pad = SIZE_MAX;
		*at = t;
		if (t >= h) {
			if (sk_rec_end(t, big, len) <= sk_lim(s, t, h))
				break;
			if (sk_rec_end(s->m_begin, big, len) + SK_REC_HDR <= h) {
				*pad = t;
				*at = s->m_begin;
				break;
			}
		} else if (sk_rec_end(t, big, len) <= sk_lim(s, t, h)) {
			break;
		}
		if (fresh)
			return -EAGAIN;
reload:
		/* acquire: the consumer's copy out of the space it freed is
		 * complete before we write over it */
		h = atomic_load_explicit(sk_head_p(s), memory_order_acquire);
		if (!sk_idx_ok(s, h))
			return -EBADMSG;
		s->p_head = h;
		s->p_tail = t;
		s->p_lim = 0;   /* set below for the position we take */
		fresh = 1;
	}
	s->p_lim = sk_lim(s, *at, h);
	return 0;
}

/* Tail after a record that ends at nt; moves p_lim along when tail wraps to
 * begin. Called before the payload is copied, so that nothing of s is loaded
 * again after the copy's stores (which may alias anything). */
static SK_ALWAYS_INLINE size_t sk_tail_after(struct sk_seg *s, size_t nt)
{
	if (sk_unlikely(nt == s->m_end)) {
		/* head cannot be at begin here (sk_lim kept 8 bytes) */
		nt = s->m_begin;
		s->p_lim = s->p_head - SK_REC_HDR;
	}
	return nt;
}

/* Publishes the record at at, whose payload is in place (BIG or not), tail
 * going to nt (from sk_tail_after); base is the segment's address.
 * Returns 0. */
static SK_ALWAYS_INLINE int sk_publish(struct sk_seg *s, char *base, size_t at, size_t pad,
                                        int big, size_t len, size_t nt)
{
	struct sk_ctrl *c = (struct sk_ctrl *)(base + SK_CTRL_OFF);

	/* relaxed: ordered before the header by the release below. The END
	 * makes the consumer stop at nt until the next record is published
	 * there, instead of reading an older lap's bytes as a header. */
	atomic_store_explicit((_Atomic uint64_t *)(base + nt), sk_hdr_word(0, SK_KIND_END),
	                      memory_order_relaxed);
	/* release: payload and END are in the ring before the header shows them */
	atomic_store_explicit((_Atomic uint64_t *)(base + at),
	                      sk_hdr_word((uint32_t)len, big ? SK_KIND_BIG : SK_KIND_MSG),
	                      memory_order_release);
	if (pad != SIZE_MAX)
		/* release: the record at begin is published before the PAD
		 * sends the consumer there */
		atomic_store_explicit((_Atomic uint64_t *)(base + pad), sk_hdr_word(0, SK_KIND_PAD),
		                      memory_order_release);
	s->p_tail = nt;
	/* release: for whoever loads tail (shmk_shm_data_alloc, the next
	 * producer under the lock); the consumer does not */
	atomic_store_explicit(&c->msg_tail, nt, memory_order_release);
	/* our header stores before the waiters load, against the consumer's
	 * waiters store before its header load (see sk_mb_light) */
	return sk_notify(&c->data_waiters, &c->data_seq);
}

/* ---- consumer ------------------------------------------------------------- */

/* Finds the next record. Returns 0 with *at (payload offset), *len and *nhead
 * (head after releasing it); -EAGAIN if empty; -EBADMSG if malformed. */
static int sk_next(struct sk_seg *s, size_t *at, size_t *len, size_t *nhead)
{
	/* relaxed: head is ours, as tail is the producer's */
	size_t h = atomic_load_explicit(sk_head_p(s), memory_order_relaxed);
	struct sk_rec_hdr hd;

	if (!sk_idx_ok(s, h))
		return -EBADMSG;
	s->c_head = h;
	hd = sk_hdr_load(s, h);
	if (hd.kind == SK_KIND_END)
		return -EAGAIN;
	if (hd.kind == SK_KIND_PAD) {
		/* a PAD is published after the record at begin */
		if (h == s->m_begin)
			return -EBADMSG;
		h = s->m_begin;
		hd = sk_hdr_load(s, h);
	}
	if (hd.kind != SK_KIND_MSG && hd.kind != SK_KIND_BIG)
		return -EBADMSG;
	/* h < m_end and len < 2^32: no overflow */
	*nhead = sk_rec_end(h, hd.kind == SK_KIND_BIG, hd.len);
	if (*nhead > s->m_end)
		return -EBADMSG;
	*at = sk_pay(h, hd.kind == SK_KIND_BIG);
	*len = hd.len;
	if (*nhead == s->m_end)
		*nhead = s->m_begin;
	return 0;
}

/* Frees the record before nh; base is the segment's address. Returns 0. */
static SK_ALWAYS_INLINE int sk_release(struct sk_seg *s, char *base, size_t nh)
{
	struct sk_ctrl *c = (struct sk_ctrl *)(base + SK_CTRL_OFF);

	s->c_head = nh;
	/* release: our reads of the record are done before the producer
	 * may reuse its space */
	atomic_store_explicit(&c->msg_head, nh, memory_order_release);
	/* our head store before the waiters load, against a producer's
	 * waiters store before its head load (see sk_mb_light) */
	return sk_notify(&c->space_waiters, &c->space_seq);
}

/* ---- waiting -------------------------------------------------------------- */

struct sk_try {
	size_t want;               /* producer: payload length wanted */
	size_t at, pad, len, nh;   /* results */
};

static int sk_attempt(struct sk_seg *s, int producer, struct sk_try *a)
{
	return producer ? sk_room(s, a->want, &a->at, &a->pad)
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
		uint64_t until = deadline;
		int w;

		/* seq_cst, then the heavy barrier: the sleeper's half of the
		 * pairing (see sk_mb_light). The flag stays set if we do not
		 * sleep after all, or time out: the other side then makes one
		 * futex call for nothing, where clearing it here could take it
		 * from another sleeper. */
		atomic_exchange_explicit(waiters, 1, memory_order_seq_cst);
		if (sk_mb_heavy() < 0) {
			uint64_t slice = sk_mono_ns() + SK_SLICE_MS * 1000000u;

			if (!until || slice < until)
				until = slice;
		}
		rc = sk_attempt(s, producer, a);
		if (rc != -EAGAIN)
			return rc;
		w = sk_futex_wait(seq, v, until);
		rc = sk_attempt(s, producer, a);
		if (rc != -EAGAIN)
			return rc;
		if (w == -ETIMEDOUT && until == deadline)
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
	return s->m_maxlen;
}

static int sk_reserve(struct sk_seg *s, size_t len, struct sk_try *a, int timeout_ms)
{
	int rc;

	if ((rc = sk_msg_ready(s)) < 0)
		return rc;
	if (len > s->m_maxlen)
		return -EMSGSIZE;
	a->want = len;
	return sk_wait(s, 1, a, timeout_ms);
}

/* Everything but the common case: not ready yet, a reservation open, no
 * room below p_lim, a message too large. Out of line, so that the fast path
 * needs no stack frame. */
static SK_NOINLINE int sk_send_slow(struct sk_seg *s, const void *msg, size_t len,
                                    int timeout_ms)
{
	struct sk_try a;
	int big = sk_big(len);
	size_t nt;
	int rc;

	if (s->res_open)
		return EBUSY;
	if ((rc = sk_reserve(s, len, &a, timeout_ms)) < 0)
		return -rc;
	nt = sk_tail_after(s, sk_rec_end(a.at, big, len));
	sk_copy((char *)s->desc.header + sk_pay(a.at, big), msg, len);
	return sk_publish(s, (char *)s->desc.header, a.at, a.pad, big, len, nt);
}

int shmk_msg_send(shmk_shm_desc *desc, const void *msg, size_t len, int timeout_ms)
{
	struct sk_seg *s;
	char *base;
	size_t t, end, nt;
	int big = sk_big(len);

	if (!desc || (!msg && len))
		return EINVAL;
	s = sk_seg_of(desc);
	base = (char *)desc->header;
	/* relaxed: tail is ours (or was handed to us by the lock's ordering) */
	t = atomic_load_explicit(&((struct sk_ctrl *)(base + SK_CTRL_OFF))->msg_tail,
	                         memory_order_relaxed);
	/* The common case of sk_room: tail is still where we left it (so it is
	 * the index we checked or computed: p_tail is 0 or such an index, and
	 * the record's end cannot wrap) and the record fits below p_lim. p_lim
	 * is 0 while a reservation is open or before the ring is set up;
	 * m_maxlen keeps the end from wrapping (len is checked first).
	 * Measured (callgrind, 8 bytes): the layered path cost ~160
	 * instructions a send, version 3's inline one ~75, this one 47 (and 65
	 * a receive); ck_ring's enqueue is ~20. */
	if (sk_unlikely(len > s->m_maxlen || t != s->p_tail))
		return sk_send_slow(s, msg, len, timeout_ms);
	end = sk_rec_end(t, big, len);
	if (sk_unlikely(end > s->p_lim))
		return sk_send_slow(s, msg, len, timeout_ms);
	nt = sk_tail_after(s, end);
	sk_copy(base + sk_pay(t, big), msg, len);
	return sk_publish(s, base, t, SIZE_MAX, big, len, nt);
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
	/* the PAD goes in at commit, after the record it points to */
	s->res_pad = a.pad;
	s->res_at = a.at;
	/* p_lim 0 sends shmk_msg_send to its slow path, which says EBUSY */
	s->res_lim = s->p_lim;
	s->p_lim = 0;
	s->res_len = len;
	s->res_open = 1;
	*ptr = (char *)desc->header + sk_pay(a.at, sk_big(len));
	return 0;
}

int shmk_msg_commit(shmk_shm_desc *desc, size_t len)
{
	struct sk_seg *s;
	size_t nt;
	int big;

	if (!desc)
		return EINVAL;
	s = sk_seg_of(desc);
	if (!s->res_open || len > s->res_len)
		return EINVAL;
	s->res_open = 0;
	s->p_lim = s->res_lim;
	/* where the payload was reserved, whatever len is now */
	big = sk_big(s->res_len);
	nt = sk_tail_after(s, sk_rec_end(s->res_at, big, len));
	return sk_publish(s, (char *)desc->header, s->res_at, s->res_pad, big, len, nt);
}

static int sk_take(struct sk_seg *s, struct sk_try *a, int timeout_ms)
{
	int rc;

	if ((rc = sk_msg_ready(s)) < 0)
		return rc;
	return sk_wait(s, 0, a, timeout_ms);
}

/* Everything but the common case of shmk_msg_recv, out of line. */
static SK_NOINLINE int sk_recv_slow(struct sk_seg *s, void *buf, size_t buflen,
                                    size_t *len, int timeout_ms)
{
	struct sk_try a;
	int rc;

	if (s->peek_open)
		return EBUSY;
	if ((rc = sk_take(s, &a, timeout_ms)) < 0)
		return -rc;
	*len = a.len;
	if (a.len > buflen)
		return EMSGSIZE;
	sk_copy(buf, (char *)s->desc.header + a.at, a.len);
	return sk_release(s, (char *)s->desc.header, a.nh);
}

int shmk_msg_recv(shmk_shm_desc *desc, void *buf, size_t buflen, size_t *len, int timeout_ms)
{
	struct sk_seg *s;
	struct sk_rec_hdr hd;
	char *base;
	size_t h, nh, end;
	int big;

	if (!desc || !len || (!buf && buflen))
		return EINVAL;
	s = sk_seg_of(desc);
	base = (char *)desc->header;
	end = s->m_end;
	/* relaxed: head is ours, as tail is the producer's */
	h = atomic_load_explicit(&((struct sk_ctrl *)(base + SK_CTRL_OFF))->msg_head,
	                         memory_order_relaxed);
	/* The common case of sk_next: head is still where we left it (c_head
	 * is a checked index, so h is too) and the header there is a message
	 * that fits before the end (which is a multiple of 8 away, so the
	 * padded record fits too) and in buf. Checked before a byte of
	 * payload is touched; anything else, the slow path decides. */
	if (sk_unlikely(!s->msg_ready || s->peek_open || h != s->c_head))
		return sk_recv_slow(s, buf, buflen, len, timeout_ms);
	hd = sk_hdr_load(s, h);
	big = hd.kind == SK_KIND_BIG;
	/* h < end and len < 2^32: the record's end does not overflow */
	nh = sk_rec_end(h, big, hd.len);
	if (sk_unlikely((hd.kind != SK_KIND_MSG && !big) || nh > end || hd.len > buflen))
		return sk_recv_slow(s, buf, buflen, len, timeout_ms);
	*len = hd.len;
	sk_copy(buf, base + sk_pay(h, big), hd.len);
	if (nh == end)
		nh = s->m_begin;
	return sk_release(s, base, nh);
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
	return sk_release(s, (char *)desc->header, s->peek_next);
}
