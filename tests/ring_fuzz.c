/* The hostile peer: random and boundary values in a segment's header, ring
 * and control block, then every function, checking that each returns one of
 * its documented codes and that every pointer handed out lies inside the
 * mapping. A second phase rewrites the header from another thread while the
 * calls run (a peer changing values between our check and our use). Run it
 * under --enable-sanitizers to catch any access outside the segment.
 *
 *   ring_fuzz [SECONDS [SEED]]     default 3 seconds, seed from the clock;
 *                                  SHMK_FUZZ_SEED in the environment too.
 * The seed is printed first so that a failure can be replayed.
 * (The message layer's head and tail are in the control block, not in
 * rbuf: both are scribbled on like the header's offsets.)
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shmkeeper.h>
#include "core/ring.h"     /* where the message positions live */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: one seed, replayable */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fails;

#define EXPECT(cond, ...) do { if (!(cond) && ++fails <= 20) { \
	fprintf(stderr, "ring_fuzz: line %d: %s: ", __LINE__, #cond); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static int in_set(int rc, const int *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rc == set[i])
			return 1;
	return 0;
}
#define ONE_OF(rc, ...) in_set((rc), (const int[]){ __VA_ARGS__ }, \
	sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))

/* A value a peer might store: anything, or something near a boundary. */
static size_t evil(size_t size)
{
	static const size_t fixed[] = { 0, 1, 7, 8, 63, 64, 255, 256, 257, 264 };

	switch (rnd() % 6) {
	case 0: return (size_t)rnd();
	case 1: return fixed[rnd() % (sizeof fixed / sizeof fixed[0])];
	case 2: return size - (size_t)(rnd() % 17) + 8;       /* around the end */
	case 3: return SIZE_MAX - (size_t)(rnd() % 16);
	default: return 256 + (size_t)(rnd() % (size - 256)) / 8 * 8;  /* plausible */
	}
}

static void scribble(shmk_shm_desc *d)
{
	shmk_shm_header *h = d->header;
	size_t size = d->orig_size, *f[] = {
		&h->size, &h->cdata_begin, &h->cdata_end,
		&h->rbuf.begin, &h->rbuf.end, &h->rbuf.head, &h->rbuf.tail };
	unsigned char *base = (unsigned char *)h;

	switch (rnd() % 5) {
	case 4:     /* the message positions in the control block */
		for (int i = 0; i < 2; i++) {
			size_t v = evil(size), off = SK_CTRL_OFF + (rnd() & 1 ?
				offsetof(struct sk_ctrl, msg_head) : offsetof(struct sk_ctrl, msg_tail));

			memcpy(base + off, &v, sizeof v);
		}
		break;
	case 0:     /* every field */
		for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
			*f[i] = evil(size);
		break;
	case 1:     /* one field of an otherwise sane ring */
		h->rbuf.begin = 256;
		h->rbuf.end = size;
		*f[rnd() % (sizeof f / sizeof f[0])] = evil(size);
		break;
	case 2:     /* sane offsets, garbage records in the ring */
		h->rbuf.begin = 256;
		h->rbuf.end = size;
		h->rbuf.head = 256 + (size_t)(rnd() % (size - 256)) / 8 * 8;
		h->rbuf.tail = 256 + (size_t)(rnd() % (size - 256)) / 8 * 8;
		for (int i = 0; i < 32; i++) {
			size_t at = 256 + (size_t)(rnd() % (size - 256 - 8)) / 8 * 8;
			/* MSG, BIG (payload on the next line), PAD, anything */
			static const uint32_t kinds[] = { 0x474d4b53u, 0x47424b53u, 0x44504b53u };
			uint32_t r = (uint32_t)rnd() % 4;
			uint32_t w[2] = { (uint32_t)evil(size), r < 3 ? kinds[r] : (uint32_t)rnd() };

			/* the first one where the consumer reads next: the
			 * header there is what publishes a record */
			if (i == 0) {
				size_t mh;

				memcpy(&mh, base + SK_CTRL_OFF + offsetof(struct sk_ctrl, msg_head),
				       sizeof mh);
				if (mh >= 256 && mh <= size - 8 && !(mh & 7))
					at = mh;
			}
			memcpy(base + at, w, sizeof w);
		}
		break;
	default:    /* the control block */
		for (int i = 0; i < 8; i++)
			base[64 + rnd() % 192] = (unsigned char)rnd();
		break;
	}
}

static int inside(shmk_shm_desc *d, const void *p, size_t len)
{
	const char *b = (const char *)d->header;

	return (const char *)p >= b && len <= d->orig_size &&
	       (const char *)p - b <= (ptrdiff_t)(d->orig_size - len);
}

static void call_all(shmk_shm_desc *d)
{
	static unsigned char buf[1 << 17];
	shmk_rbuf *rb = &d->header->rbuf;
	size_t n = (size_t)(rnd() % 4 == 0 ? evil(d->orig_size) : rnd() % 300), len;
	const void *cp;
	void *p;
	int rc;

	if (n > sizeof buf)
		n = rnd() % sizeof buf;
	rc = shmk_rbuf_append(rb, d->header, buf, n);
	EXPECT(ONE_OF(rc, 0, ENOSPC, EINVAL), "append %d", rc);
	rc = shmk_rbuf_read(rb, d->header, buf, n);
	EXPECT(ONE_OF(rc, 0, ENODATA, EINVAL), "read %d", rc);
	rc = shmk_rbuf_skip(rb, (size_t)rnd() % 64);
	EXPECT(ONE_OF(rc, 0, ENODATA, EINVAL), "skip %d", rc);
	EXPECT(shmk_rbuf_avail(rb) < d->orig_size, "avail");
	EXPECT(shmk_rbuf_len(rb) < d->orig_size, "len");

	p = SHMK_SHM_ADDR(d, cdata_begin);
	EXPECT(!p || inside(d, p, 1), "addr");
	p = SHMK_SHM_ADDR(d, rbuf.tail);
	EXPECT(!p || inside(d, p, 1), "addr");
	if (rnd() % 8 == 0) {
		size_t sz = rnd() % 512 + 1;

		rc = shmk_shm_data_alloc(d, sz, &p);
		EXPECT(ONE_OF(rc, 0, EINVAL, EBUSY, ENOSPC), "data_alloc %d", rc);
		EXPECT(rc || inside(d, p, sz), "data_alloc pointer");
	}

	len = shmk_msg_max(d);
	EXPECT(len < d->orig_size, "msg_max %zu", len);
	rc = shmk_msg_send(d, buf, n, 0);
	EXPECT(ONE_OF(rc, 0, EAGAIN, EMSGSIZE, EBADMSG, EINVAL), "send %d", rc);
	rc = shmk_msg_reserve(d, n, &p, 0);
	EXPECT(ONE_OF(rc, 0, EAGAIN, EMSGSIZE, EBADMSG, EINVAL), "reserve %d", rc);
	if (rc == 0) {
		EXPECT(inside(d, p, n), "reserve pointer");
		memset(p, 0xa5, n);
		rc = shmk_msg_commit(d, n / 2);
		EXPECT(rc == 0, "commit %d", rc);
	}
	rc = shmk_msg_recv(d, buf, rnd() % 2 ? sizeof buf : 16, &len, 0);
	EXPECT(ONE_OF(rc, 0, EAGAIN, EMSGSIZE, EBADMSG, EINVAL), "recv %d", rc);
	EXPECT(rc != 0 || len <= d->orig_size, "recv len");
	rc = shmk_msg_peek(d, &cp, &len, 0);
	EXPECT(ONE_OF(rc, 0, EAGAIN, EBADMSG, EINVAL), "peek %d", rc);
	if (rc == 0) {
		EXPECT(inside(d, cp, len), "peek pointer");
		rc = shmk_msg_release(d);
		EXPECT(rc == 0, "release %d", rc);
	}

	rc = shmk_shm_trylock(d);
	EXPECT(ONE_OF(rc, 0, EOWNERDEAD), "trylock %d", rc);
	rc = shmk_shm_unlock(d);
	EXPECT(rc == 0, "unlock %d", rc);
}

static _Atomic int stop;

static void *hostile(void *arg)
{
	shmk_shm_desc *d = arg;
	volatile size_t *f = (volatile size_t *)d->header;
	uint64_t x = 88172645463325252ull;

	/* the header's 7 words, then the control block's message positions */
	static const size_t words[] = { 0, 1, 2, 3, 4, 5, 6,
		(SK_CTRL_OFF + offsetof(struct sk_ctrl, msg_head)) / sizeof(size_t),
		(SK_CTRL_OFF + offsetof(struct sk_ctrl, msg_tail)) / sizeof(size_t) };

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* a word, a bad value, now and then a good one back */
		f[words[x % 9]] = x & 1 ? (size_t)(x >> 8)
		                  : 256 + (size_t)((x >> 8) % (d->orig_size - 256)) / 8 * 8;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3.0, t0 = now(), end;
	const char *env = getenv("SHMK_FUZZ_SEED");
	uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0)
	              : env ? strtoull(env, NULL, 0) : (uint64_t)(t0 * 1e6);
	static const size_t sizes[] = { 4096, 8192, 65536 };
	unsigned long iters = 0;
	pthread_t th;

	rng_state = seed;
	printf("ring_fuzz: seed %llu, %.1f s\n", (unsigned long long)seed, secs);
	end = t0 + secs * 0.7;
	for (int round = 0; now() < end; round++) {
		enum shmk_impl impl = round & 1 ? SHMK_IMPL_SYSV : SHMK_IMPL_POSIX;
		size_t size = sizes[rnd() % 3];
		shmk_shm_desc *d = shmk_shm_new(size, NULL, impl), *p = NULL;
		char enc[SHMK_SHM_ENCODED_MAX], ctrl16[16];
		ssize_t n;

		if (!d) {
			perror("ring_fuzz: shmk_shm_new");
			return 1;
		}
		n = shmk_shm_encode(d, enc, sizeof enc);
		memcpy(ctrl16, (char *)d->header + 64, 16);
		for (int i = 0; i < 2000 && now() < end; i++, iters++) {
			/* a fresh peer descriptor now and then, so that the
			 * message layer takes its bounds from a hostile header */
			if (i % 50 == 0) {
				shmk_shm_done(p);
				scribble(d);
				p = shmk_shm_decode(enc, (size_t)n, size);
				if (!p && errno == EPROTO) {
					/* refused, rightly: the peer wiped the
					 * magic. Put it back and go on. */
					memcpy((char *)d->header + 64, ctrl16, 16);
					p = shmk_shm_decode(enc, (size_t)n, size);
				}
				EXPECT(p, "decode: %s", strerror(errno));
				if (!p)
					break;
			}
			scribble(d);
			call_all(rnd() & 1 ? d : p);
		}
		shmk_shm_done(p);
		shmk_shm_done(d);
	}

	/* phase 2: values change under the calls */
	{
		shmk_shm_desc *d = shmk_shm_new(8192, NULL, SHMK_IMPL_SYSV), *p;
		char enc[SHMK_SHM_ENCODED_MAX];
		ssize_t n = shmk_shm_encode(d, enc, sizeof enc);

		pthread_create(&th, NULL, hostile, d);
		end = t0 + secs;
		while (now() < end) {
			p = shmk_shm_decode(enc, (size_t)n, 8192);
			EXPECT(p, "decode: %s", strerror(errno));
			if (!p)
				break;
			for (int i = 0; i < 200; i++, iters++)
				call_all(p);
			shmk_shm_done(p);
		}
		atomic_store(&stop, 1);
		pthread_join(th, NULL);
		shmk_shm_done(d);
	}
	printf("ring_fuzz: %lu rounds of calls, %d failures\n", iters, fails);
	return fails ? 1 : 0;
}
