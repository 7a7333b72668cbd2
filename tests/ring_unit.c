/* Unit tests of core/ring.c and core/msg.c, in-process, without preloading. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <shmkeeper.h>

static const enum shmk_impl impls[] = { SHMK_IMPL_POSIX, SHMK_IMPL_SYSV };

static shmk_shm_desc *mk(enum shmk_impl impl, size_t size)
{
	shmk_shm_desc *d = shmk_shm_new(size, NULL, impl);

	cr_assert(d, "shmk_shm_new(%zu, %d): %s", size, impl, strerror(errno));
	return d;
}

ParameterizedTestParameters(ring, header_layout)
{
	return cr_make_param_array(enum shmk_impl, (void *)impls, 2);
}

ParameterizedTest(enum shmk_impl *impl, ring, header_layout)
{
	shmk_shm_desc *d = mk(*impl, 10000);
	long pg = sysconf(_SC_PAGESIZE);

	cr_assert_eq(d->impl, *impl);
	cr_assert_eq(d->is_master, 1);
	cr_assert_eq(d->orig_size % (size_t)pg, 0);
	cr_assert_geq(d->orig_size, 10000);
	cr_assert_eq(d->header->size, d->orig_size);
	cr_assert_eq(d->header->cdata_begin, SHMK_SHM_RESERVED);
	cr_assert_eq(d->header->cdata_end, SHMK_SHM_RESERVED);
	cr_assert_eq(d->header->rbuf.begin, SHMK_SHM_RESERVED);
	cr_assert_eq(d->header->rbuf.end, d->orig_size);
	cr_assert_eq(d->header->rbuf.head, d->header->rbuf.tail);
	cr_assert_eq(shmk_rbuf_len(&d->header->rbuf), 0);
	cr_assert_eq(shmk_rbuf_avail(&d->header->rbuf), d->orig_size - SHMK_SHM_RESERVED - 1);
	shmk_shm_done(d);
}

Test(ring, new_rejects)
{
	errno = 0;
	cr_assert_null(shmk_shm_new(4096, NULL, SHMK_IMPL_NONE));
	cr_assert_eq(errno, ENOTSUP);
	cr_assert_null(shmk_shm_new(100, NULL, SHMK_IMPL_POSIX));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(shmk_shm_new(4096, NULL, (enum shmk_impl)7));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(shmk_shm_new(SIZE_MAX - 10, NULL, SHMK_IMPL_SYSV));
	cr_assert_eq(errno, EINVAL);
}

Test(ring, auto_is_sysv)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_AUTO, 4096);

	cr_assert_eq(d->impl, SHMK_IMPL_SYSV);
	shmk_shm_done(d);
}

Test(ring, access_creator_only)
{
	shmk_shm_desc *p = mk(SHMK_IMPL_POSIX, 4096), *s = mk(SHMK_IMPL_SYSV, 4096);
	char enc[SHMK_SHM_ENCODED_MAX], path[128];
	struct shmid_ds sd;
	struct stat st;
	int shmid;

	/* the encoding carries the name; find the file through /dev/shm */
	cr_assert_gt(shmk_shm_encode(p, enc, sizeof enc), 0);
	snprintf(path, sizeof path, "/dev/shm%s", enc + 32);
	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(st.st_uid, geteuid());

	cr_assert_gt(shmk_shm_encode(s, enc, sizeof enc), 0);
	memcpy(&shmid, enc + 24, sizeof shmid);
	cr_assert_eq(shmctl(shmid, IPC_STAT, &sd), 0);
	cr_assert_eq(sd.shm_perm.mode & 0777, 0600);
	shmk_shm_done(p);
	shmk_shm_done(s);
}

ParameterizedTestParameters(ring, refcount)
{
	return cr_make_param_array(enum shmk_impl, (void *)impls, 2);
}

ParameterizedTest(enum shmk_impl *impl, ring, refcount)
{
	shmk_shm_desc *d = mk(*impl, 4096);
	char enc[SHMK_SHM_ENCODED_MAX];
	ssize_t n = shmk_shm_encode(d, enc, sizeof enc);
	shmk_shm_desc *peer;

	shmk_shm_ref(d);
	shmk_shm_done(d);
	/* still there: one reference left */
	peer = shmk_shm_decode(enc, (size_t)n, 4096);
	cr_assert(peer, "decode: %s", strerror(errno));
	shmk_shm_done(peer);
	shmk_shm_done(d);
	/* the creator's last reference removed it */
	cr_assert_null(shmk_shm_decode(enc, (size_t)n, 4096));
	shmk_shm_done(NULL);
}

ParameterizedTestParameters(ring, encode_decode)
{
	return cr_make_param_array(enum shmk_impl, (void *)impls, 2);
}

ParameterizedTest(enum shmk_impl *impl, ring, encode_decode)
{
	shmk_shm_desc *d = mk(*impl, 8192), *p;
	char enc[SHMK_SHM_ENCODED_MAX], bad[SHMK_SHM_ENCODED_MAX];
	ssize_t n;

	errno = 0;
	cr_assert_eq(shmk_shm_encode(d, enc, 8), -1);
	cr_assert_eq(errno, ENOSPC);
	n = shmk_shm_encode(d, enc, sizeof enc);
	cr_assert_gt(n, 0);
	cr_assert_leq(n, SHMK_SHM_ENCODED_MAX);

	p = shmk_shm_decode(enc, (size_t)n, 8000);
	cr_assert(p, "decode: %s", strerror(errno));
	cr_assert_eq(p->is_master, 0);
	cr_assert_eq(p->orig_size, d->orig_size);
	cr_assert_neq((void *)p->header, (void *)d->header);
	strcpy((char *)shmk_shm_addr(d, 4000), "hello");
	cr_assert_str_eq((char *)shmk_shm_addr(p, 4000), "hello");
	shmk_shm_done(p);

	cr_assert_null(shmk_shm_decode(enc, (size_t)n, 4096));
	cr_assert_eq(errno, EMSGSIZE);
	cr_assert_null(shmk_shm_decode(enc, (size_t)n - 1, 8192));
	cr_assert_eq(errno, EINVAL);
	memcpy(bad, enc, sizeof bad);
	bad[0] ^= 1;
	cr_assert_null(shmk_shm_decode(bad, (size_t)n, 8192));
	cr_assert_eq(errno, EINVAL);
	memcpy(bad, enc, sizeof bad);
	memset(bad + 32, 'x', 64);     /* name without its NUL */
	cr_assert_null(shmk_shm_decode(bad, (size_t)n, 8192));
	cr_assert_eq(errno, EINVAL);
	shmk_shm_done(d);
}

Test(ring, decode_rejects_foreign_segment)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_SYSV, 4096);
	char enc[SHMK_SHM_ENCODED_MAX];
	ssize_t n = shmk_shm_encode(d, enc, sizeof enc);

	/* not a shmkeeper segment any more: the control block's magic is gone */
	memset((char *)d->header + 64, 0, 16);
	cr_assert_null(shmk_shm_decode(enc, (size_t)n, 4096));
	cr_assert_eq(errno, EPROTO);
	shmk_shm_done(d);
}

Test(ring, addr)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_SYSV, 4096);

	cr_assert_eq(shmk_shm_addr(d, 0), (void *)d->header);
	cr_assert_eq(shmk_shm_addr(d, 4095), (char *)d->header + 4095);
	cr_assert_null(shmk_shm_addr(d, 4096));
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(SHMK_SHM_ADDR(d, cdata_begin), (char *)d->header + SHMK_SHM_RESERVED);
	d->header->cdata_begin = 1u << 30;     /* as a hostile peer would */
	cr_assert_null(SHMK_SHM_ADDR(d, cdata_begin));
	shmk_shm_done(d);
}

Test(ring, data_alloc)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_POSIX, 4096);
	void *a, *b;

	cr_assert_eq(shmk_shm_data_alloc(d, 10, &a), 0);
	cr_assert_eq(a, (char *)d->header + SHMK_SHM_RESERVED);
	cr_assert_eq(shmk_shm_data_alloc(d, 100, &b), 0);
	cr_assert_eq(b, (char *)d->header + SHMK_SHM_RESERVED + 16);
	cr_assert_eq(d->header->cdata_end, SHMK_SHM_RESERVED + 116);
	cr_assert_eq(d->header->rbuf.begin % 64, 0);
	cr_assert_geq(d->header->rbuf.begin, d->header->cdata_end);
	cr_assert_eq(shmk_shm_data_alloc(d, 4096, &b), ENOSPC);
	cr_assert_eq(shmk_shm_data_alloc(d, 0, &b), EINVAL);
	cr_assert_eq(shmk_rbuf_append(&d->header->rbuf, d->header, "x", 1), 0);
	cr_assert_eq(shmk_shm_data_alloc(d, 8, &b), EBUSY);
	shmk_shm_done(d);
}

/* Messages keep their positions in the control block: rbuf.head and
 * rbuf.tail stay where they were, a queued message still makes data_alloc
 * EBUSY, and a ring moved by data_alloc is the one messages use. */
Test(ring, msg_positions_and_data_alloc)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_SYSV, 8192);
	char out[64];
	size_t len, rb;
	void *a;

	cr_assert_eq(shmk_msg_send(d, "early", 5, 0), 0);
	cr_assert_eq(shmk_shm_data_alloc(d, 100, &a), EBUSY);
	cr_assert_eq(d->header->rbuf.head, SHMK_SHM_RESERVED);
	cr_assert_eq(d->header->rbuf.tail, SHMK_SHM_RESERVED);
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
	cr_assert_eq(shmk_shm_data_alloc(d, 100, &a), 0);
	rb = d->header->rbuf.begin;
	cr_assert_gt(rb, SHMK_SHM_RESERVED);
	memset(a, 0x77, 100);
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(shmk_msg_send(d, "0123456789abcdef", 1 + i % 16, 0), 0);
		cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
		cr_assert_eq(len, (size_t)(1 + i % 16));
		cr_assert_eq(memcmp(out, "0123456789abcdef", len), 0);
	}
	for (int i = 0; i < 100; i++)
		cr_assert_eq(((unsigned char *)a)[i], 0x77, "common data overwritten");
	cr_assert_eq(d->header->rbuf.head, rb);
	cr_assert_eq(d->header->rbuf.tail, rb);
	shmk_shm_done(d);
}

Test(ring, rbuf_bytes_wrap_full_empty)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_SYSV, 4096);
	shmk_rbuf *rb = &d->header->rbuf;
	size_t cap = rb->end - rb->begin - 1;
	unsigned char in[4096], out[4096];

	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 7 + 3);
	cr_assert_eq(shmk_rbuf_read(rb, d->header, out, 1), ENODATA);
	cr_assert_eq(shmk_rbuf_skip(rb, 1), ENODATA);
	/* many odd-sized passes move head and tail around the end */
	for (int round = 0; round < 200; round++) {
		size_t n = (size_t)(round * 37 % 1000) + 1;

		cr_assert_eq(shmk_rbuf_append(rb, d->header, in, n), 0);
		cr_assert_eq(shmk_rbuf_len(rb), n);
		cr_assert_eq(shmk_rbuf_avail(rb), cap - n);
		cr_assert_eq(shmk_rbuf_read(rb, d->header, out, n - 1), 0);
		cr_assert_arr_eq(out, in, n - 1);
		cr_assert_eq(shmk_rbuf_skip(rb, 1), 0);
		cr_assert_eq(shmk_rbuf_len(rb), 0);
	}
	/* full: cap bytes fit, one more does not; nothing partial */
	cr_assert_eq(shmk_rbuf_append(rb, d->header, in, cap), 0);
	cr_assert_eq(shmk_rbuf_avail(rb), 0);
	cr_assert_eq(shmk_rbuf_append(rb, d->header, in, 1), ENOSPC);
	cr_assert_eq(shmk_rbuf_len(rb), cap);
	cr_assert_eq(shmk_rbuf_read(rb, d->header, out, cap + 1), ENODATA);
	cr_assert_eq(shmk_rbuf_read(rb, d->header, out, cap), 0);
	cr_assert_arr_eq(out, in, cap);
	cr_assert_eq(rb->head, rb->tail);
	/* an address that is not a segment mapped here */
	cr_assert_eq(shmk_rbuf_append(rb, out, in, 1), EINVAL);
	cr_assert_eq(shmk_rbuf_read(rb, NULL, out, 1), EINVAL);
	shmk_shm_done(d);
}

struct trylock_arg {
	shmk_shm_desc *d;
	int rc;
};

static void *trylock_thread(void *p)
{
	struct trylock_arg *a = p;

	a->rc = shmk_shm_trylock(a->d);
	if (a->rc == 0)
		shmk_shm_unlock(a->d);
	return NULL;
}

ParameterizedTestParameters(ring, lock)
{
	return cr_make_param_array(enum shmk_impl, (void *)impls, 2);
}

ParameterizedTest(enum shmk_impl *impl, ring, lock)
{
	shmk_shm_desc *d = mk(*impl, 4096), *p;
	char enc[SHMK_SHM_ENCODED_MAX];
	ssize_t n = shmk_shm_encode(d, enc, sizeof enc);
	struct trylock_arg a = { d, -1 };
	pthread_t th;

	p = shmk_shm_decode(enc, (size_t)n, 4096);
	cr_assert(p);
	cr_assert_eq(shmk_shm_unlock(d), EPERM);
	cr_assert_eq(shmk_shm_lock(d), 0);
	/* another thread of this process, and another descriptor */
	pthread_create(&th, NULL, trylock_thread, &a);
	pthread_join(th, NULL);
	cr_assert_eq(a.rc, EAGAIN);
	cr_assert_eq(shmk_shm_trylock(p), EAGAIN);
	cr_assert_eq(shmk_shm_unlock(d), 0);
	cr_assert_eq(shmk_shm_trylock(p), 0);
	cr_assert_eq(shmk_shm_trylock(d), EAGAIN);
	cr_assert_eq(shmk_shm_unlock(p), 0);
	a.rc = -1;
	pthread_create(&th, NULL, trylock_thread, &a);
	pthread_join(th, NULL);
	cr_assert_eq(a.rc, 0);
	shmk_shm_done(p);
	shmk_shm_done(d);
}

ParameterizedTestParameters(ring, msg_roundtrip)
{
	return cr_make_param_array(enum shmk_impl, (void *)impls, 2);
}

ParameterizedTest(enum shmk_impl *impl, ring, msg_roundtrip)
{
	shmk_shm_desc *d = mk(*impl, 8192);
	unsigned char in[4096], out[4096];
	size_t max = shmk_msg_max(d), len;
	const void *pp;
	void *wp;

	cr_assert_gt(max, 3000);
	cr_assert_lt(max, 4096);
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i ^ (i >> 8));
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), EAGAIN);
	cr_assert_eq(shmk_msg_send(d, in, max + 1, 0), EMSGSIZE);
	cr_assert_eq(shmk_msg_send(d, in, 0, 0), 0);
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
	cr_assert_eq(len, 0);
	/* odd sizes walk the records round the ring, PAD records included */
	for (size_t i = 0; i < 3000; i++) {
		size_t n = (i * 131) % (max + 1);

		cr_assert_eq(shmk_msg_send(d, in + (i % 7), n, 0), 0, "send %zu (%zu)", i, n);
		cr_assert_eq(shmk_msg_recv(d, out, 3, &len, 0), n > 3 ? EMSGSIZE : 0);
		cr_assert_eq(len, n);
		if (n > 3)
			cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
		cr_assert_arr_eq(out, in + (i % 7), n);
	}
	/* zero copy, both ways, with a shortened commit */
	cr_assert_eq(shmk_msg_reserve(d, 1000, &wp, 0), 0);
	cr_assert_eq(shmk_msg_reserve(d, 10, &wp, 0), EBUSY);
	cr_assert_eq(shmk_msg_send(d, in, 10, 0), EBUSY);
	cr_assert_geq((char *)wp, (char *)d->header + d->header->rbuf.begin);
	cr_assert_leq((char *)wp + 1000, (char *)d->header + d->orig_size);
	memcpy(wp, in, 600);
	cr_assert_eq(shmk_msg_commit(d, 1001), EINVAL);
	cr_assert_eq(shmk_msg_commit(d, 600), 0);
	cr_assert_eq(shmk_msg_commit(d, 600), EINVAL);
	cr_assert_eq(shmk_msg_peek(d, &pp, &len, 0), 0);
	cr_assert_eq(len, 600);
	cr_assert_arr_eq(pp, in, 600);
	cr_assert_eq(shmk_msg_peek(d, &pp, &len, 0), EBUSY);
	cr_assert_eq(shmk_msg_release(d), 0);
	cr_assert_eq(shmk_msg_release(d), EINVAL);
	cr_assert_eq(shmk_msg_peek(d, &pp, &len, 0), EAGAIN);
	shmk_shm_done(d);
}

/* The header publishes a record (segment version 4): a reservation that
 * wraps shows nothing, not even its PAD, until it is committed, and after it
 * the consumer stops at the END word instead of reading the previous lap's
 * records, whose headers are still in the ring. */
Test(ring, msg_wrap_reserved_and_stale_lap)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_SYSV, 4096);
	unsigned char in[1000], out[1000];
	const void *pp;
	size_t len;
	void *wp;

	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 7);
	/* three records of 1008 to 1064 bytes: the fourth does not fit */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(shmk_msg_send(d, in, sizeof in, 0), 0);
		cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
	}
	cr_assert_eq(shmk_msg_reserve(d, sizeof in, &wp, 0), 0);
	cr_assert_eq((uintptr_t)wp, ((uintptr_t)d->header + d->header->rbuf.begin + 8 + 63) & ~63ul,
	             "the reservation wraps to the ring's start (its payload on the first line after)");
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), EAGAIN);
	memcpy(wp, in, sizeof in);
	cr_assert_eq(shmk_msg_commit(d, sizeof in), 0);
	memset(out, 0, sizeof out);
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
	cr_assert_eq(len, sizeof in);
	cr_assert_arr_eq(out, in, sizeof in);
	/* the second record of the first lap starts right here */
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), EAGAIN);
	cr_assert_eq(shmk_msg_peek(d, &pp, &len, 0), EAGAIN);
	shmk_shm_done(d);
}

/* Payloads over 256 bytes start on a cache line (segment version 5), as
 * a reservation's pointer and a peek show; smaller ones follow their header.
 * The largest message fits wherever head is; a reservation made BIG stays
 * where it was reserved when the commit is shorter. */
Test(ring, msg_big_payloads_aligned)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_POSIX, 16384);
	static unsigned char in[16384], out[16384];
	size_t max = shmk_msg_max(d), len;
	const void *pp;
	void *wp;

	cr_assert_gt(max, 4096);
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 13 + (i >> 9));
	for (size_t i = 0; i < 400; i++) {
		/* a small record moves head by 16 to 64 bytes */
		size_t skip = (i * 8) % 49, n = i % 3 == 2 ? max : 200 + (i * 97) % 3000;

		cr_assert_eq(shmk_msg_send(d, in, skip, 0), 0);
		cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
		cr_assert_eq(shmk_msg_send(d, in + i, n, 0), 0, "send %zu of %zu bytes", i, n);
		cr_assert_eq(shmk_msg_peek(d, &pp, &len, 0), 0);
		cr_assert_eq(len, n);
		if (n > 256)
			cr_assert_eq((uintptr_t)pp % 64, 0, "a %zu-byte payload at %p", n, pp);
		cr_assert_arr_eq(pp, in + i, n);
		cr_assert_eq(shmk_msg_release(d), 0);
	}
	cr_assert_eq(shmk_msg_send(d, in, max + 1, 0), EMSGSIZE);
	cr_assert_eq(shmk_msg_reserve(d, 2000, &wp, 0), 0);
	cr_assert_eq((uintptr_t)wp % 64, 0);
	memcpy(wp, in, 40);
	cr_assert_eq(shmk_msg_commit(d, 40), 0);
	cr_assert_eq(shmk_msg_send(d, in + 1, 100, 0), 0);
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
	cr_assert_eq(len, 40);
	cr_assert_arr_eq(out, in, 40);
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
	cr_assert_eq(len, 100);
	cr_assert_arr_eq(out, in + 1, 100);
	shmk_shm_done(d);
}

/* Every length the copy splits differently (the byte, 8-, 16- and 32-byte
 * moves, and above 256 bytes the 128-byte steps and their overlapping
 * tail), from sources at every offset in a line, into a receive buffer at
 * every offset: the bytes arrive, and none is written past the length. */
Test(ring, msg_copy_every_length)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_POSIX, 65536);
	static unsigned char in[8192 + 64], out[8192 + 128];
	size_t len;

	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 7 + (i >> 8) + 1);
	for (size_t n = 0; n <= 4300; n += n < 1100 ? 1 : 61) {
		size_t so = n % 61, ro = n % 59;

		memset(out, 0xEE, sizeof out);
		cr_assert_eq(shmk_msg_send(d, in + so, n, 0), 0, "send %zu bytes", n);
		cr_assert_eq(shmk_msg_recv(d, out + ro, n, &len, 0), 0, "recv %zu bytes", n);
		cr_assert_eq(len, n);
		cr_assert_arr_eq(out + ro, in + so, n, "%zu bytes from offset %zu", n, so);
		for (size_t i = 0; i < ro; i++)
			cr_assert_eq(out[i], 0xEE, "byte %zu before a %zu-byte copy", i, n);
		for (size_t i = ro + n; i < sizeof out; i++)
			cr_assert_eq(out[i], 0xEE, "byte %zu past a %zu-byte copy at %zu", i, n, ro);
	}
	shmk_shm_done(d);
}

/* A BIG header whose payload would fit right after it but not after the
 * gap to the next line: refused, nothing read past the ring. */
Test(ring, msg_big_header_past_the_end)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_SYSV, 8192);
	char *base = (char *)d->header, out[8];
	size_t end = d->header->rbuf.end, h, len;
	const void *pp;

	/* head one 16-byte record past begin; a gap after it if needed */
	cr_assert_eq(shmk_msg_send(d, "12345678", 8, 0), 0);
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
	h = d->header->rbuf.begin + 16;
	if ((h + 8) % 64 == 0) {
		cr_assert_eq(shmk_msg_send(d, "12345678", 8, 0), 0);
		cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), 0);
		h += 16;
	}
	uint32_t w[2] = { (uint32_t)(end - h - 8), 0x47424b53u /* SKBG */ };
	memcpy(base + h, w, sizeof w);
	cr_assert_eq(shmk_msg_recv(d, out, sizeof out, &len, 0), EBADMSG);
	cr_assert_eq(shmk_msg_peek(d, &pp, &len, 0), EBADMSG);
	shmk_shm_done(d);
}

Test(ring, msg_full_and_timeout)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_SYSV, 4096);
	char buf[256];
	struct timespec t0, t1;
	size_t len, sent = 0;
	double ms;

	while (shmk_msg_send(d, buf, 100, 0) == 0)
		sent++;
	cr_assert_gt(sent, 30);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(shmk_msg_send(d, buf, 100, 50), ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	cr_assert_geq(ms, 49.0);
	cr_assert_lt(ms, 1000.0);
	for (size_t i = 0; i < sent; i++)
		cr_assert_eq(shmk_msg_recv(d, buf, sizeof buf, &len, 0), 0);
	cr_assert_eq(shmk_msg_recv(d, buf, sizeof buf, &len, 30), ETIMEDOUT);
	shmk_shm_done(d);
}

struct sender_arg {
	shmk_shm_desc *d;
	int n;
};

static void *sender(void *p)
{
	struct sender_arg *a = p;

	for (int i = 0; i < a->n; i++)
		if (shmk_msg_send(a->d, &i, sizeof i, 5000))
			return (void *)1;
	return NULL;
}

Test(ring, msg_blocking_threads)
{
	shmk_shm_desc *d = mk(SHMK_IMPL_POSIX, 4096);
	struct sender_arg a = { d, 200000 };
	pthread_t th;
	void *res;
	size_t len;
	int v;

	pthread_create(&th, NULL, sender, &a);
	for (int i = 0; i < a.n; i++) {
		cr_assert_eq(shmk_msg_recv(d, &v, sizeof v, &len, 5000), 0);
		cr_assert_eq(v, i);
	}
	pthread_join(th, &res);
	cr_assert_null(res);
	shmk_shm_done(d);
}
