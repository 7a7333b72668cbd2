/* tool_logread - the log reader (core/logread.c) on its own: what it makes of
 * good, cut, holed, corrupt and foreign logs, then a few thousand random
 * mutations of a good log, which it must read without a crash or a read
 * outside the buffer (run it under --enable-sanitizers to see those). */
#include <assert.h>
#include <errno.h>

#include "core/logread.h"
#include "tests/tool_logbuf.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

static const uint64_t frames[3] = { 0x401000, 0x402000, 0x403000 };

/* A log with one record of each variable-length shape. Returns the offsets
 * of its records in offs[]. */
static size_t build(struct logbuf *b, size_t offs[6])
{
	static const char *const argv[] = { "prog", "a b", NULL };
	struct sk_ev_sysv_get g = { .key = 7, .shmid = 9, .size = 4096, .flags = SK_F_CREATED, .nframes = 3 };
	struct sk_ev_posix_open o = { .dev = 1, .ino = 2, .size = 0, .flags = SK_F_CREATED,
				      .nframes = 2, .name_len = 4 };
	struct sk_ev_module m = { .base = 0x400000, .start = 0x400000, .end = 0x500000,
				  .path_len = 8, .build_id_len = 20 };
	struct sk_ev_posix_unlink u = { .dev = 1, .ino = 2, .name_len = 4 };
	struct sk_ev_exit x = { .status = 3 };
	uint8_t bid[20];

	memset(bid, 0xab, sizeof(bid));
	lb_init(b, 4242, "/bin/prog", argv, 1000);
	offs[0] = lb_add(b, SK_EV_MODULE, &m, sizeof(m), bid, sizeof(bid), "/bin/pro", NULL, 0);
	offs[1] = lb_add(b, SK_EV_SYSV_GET, &g, sizeof(g), NULL, 0, NULL, frames, 3);
	offs[2] = lb_add(b, SK_EV_POSIX_OPEN, &o, sizeof(o), NULL, 0, "/abc", frames, 2);
	offs[3] = lb_add(b, SK_EV_POSIX_UNLINK, &u, sizeof(u), NULL, 0, "/abc", NULL, 0);
	offs[4] = lb_add(b, SK_EV_EXIT, &x, sizeof(x), NULL, 0, NULL, NULL, 0);
	offs[5] = b->len;
	return b->len;
}

struct result {
	int events, holes, bad, trunc;
	int rc_open;
	char diag[400];
	uint64_t diag_off;
};

static struct result read_all(const void *buf, size_t len)
{
	struct result res = { 0 };
	struct sk_reader *r;
	struct sk_event ev;
	int rc;

	res.rc_open = sk_reader_open_mem(&r, buf, len);
	if (res.rc_open < 0) {
		if (r)
			snprintf(res.diag, sizeof(res.diag), "%s", sk_reader_diag(r));
		if (r)
			res.diag_off = sk_reader_diag_offset(r);
		sk_reader_close(r);
		return res;
	}
	/* The header's strings are terminated whatever the file said. */
	const struct sk_file_header *h = sk_reader_header(r);
	CHECK(memchr(h->exe, 0, sizeof(h->exe)) != NULL);
	for (const char *a = NULL; (a = sk_args_next(h, a)); )
		CHECK(a >= h->args && a < h->args + SK_ARGS_MAX);
	for (int guard = 0; (rc = sk_reader_next(r, &ev)) != SK_RD_END; guard++) {
		if (guard > 100000) {
			CHECK(!"reader does not advance");
			break;
		}
		if (rc < 0)
			break;
		switch (rc) {
		case SK_RD_EVENT:
			res.events++;
			CHECK(ev.len >= sk_event_min_size(ev.type));
			CHECK(ev.offset + ev.len <= len);
			if (ev.name)
				CHECK(strlen(ev.name) == ev.name_len);
			for (unsigned i = 0; i < ev.nframes; i++)   /* touches every frame */
				CHECK(ev.frames[i] != 0x1 || 1);
			break;
		case SK_RD_HOLE: res.holes++; break;
		case SK_RD_BAD: res.bad++; break;
		case SK_RD_TRUNC: res.trunc++; break;
		}
		if (rc != SK_RD_EVENT && !res.diag[0]) {
			snprintf(res.diag, sizeof(res.diag), "%s", sk_reader_diag(r));
			res.diag_off = sk_reader_diag_offset(r);
		}
	}
	sk_reader_close(r);
	return res;
}

static void test_good(void)
{
	struct logbuf b;
	size_t offs[6];
	size_t len = build(&b, offs);
	struct sk_reader *r;
	struct sk_event ev;

	CHECK(sk_reader_open_mem(&r, b.buf, len) == 0);
	CHECK(sk_reader_header(r)->pid == 4242);
	CHECK(strcmp(sk_args_next(sk_reader_header(r), NULL), "prog") == 0);
	CHECK(sk_reader_next(r, &ev) == SK_RD_EVENT && ev.type == SK_EV_MODULE &&
	      ev.build_id_len == 20 && ev.build_id[0] == 0xab && strcmp(ev.name, "/bin/pro") == 0);
	CHECK(sk_reader_next(r, &ev) == SK_RD_EVENT && ev.type == SK_EV_SYSV_GET &&
	      ev.nframes == 3 && ev.frames[2] == 0x403000);
	CHECK(sk_reader_next(r, &ev) == SK_RD_EVENT && ev.type == SK_EV_POSIX_OPEN &&
	      strcmp(ev.name, "/abc") == 0 && ev.nframes == 2 && ev.frames[1] == 0x402000);
	CHECK(sk_reader_next(r, &ev) == SK_RD_EVENT && ev.type == SK_EV_POSIX_UNLINK);
	CHECK(sk_reader_next(r, &ev) == SK_RD_EVENT && ev.type == SK_EV_EXIT);
	CHECK(sk_reader_next(r, &ev) == SK_RD_END);
	CHECK(sk_reader_next(r, &ev) == SK_RD_END);
	sk_reader_close(r);

	/* A live writer's file: sparse zeros after the cursor. */
	lb_reserve(&b, 8192);
	struct result res = read_all(b.buf, len + 8192);
	CHECK(res.events == 5 && res.holes == 0 && res.bad == 0 && res.trunc == 0);
	free(b.buf);
}

static void test_damage(void)
{
	struct logbuf b;
	size_t offs[6];
	size_t len = build(&b, offs);
	uint8_t *copy = malloc(len);
	struct result res;

	/* Cut inside the third record. */
	res = read_all(b.buf, offs[2] + 12);
	CHECK(res.events == 2 && res.trunc == 1);
	CHECK(res.diag_off == offs[2]);

	/* Cut inside the header. */
	res = read_all(b.buf, 100);
	CHECK(res.rc_open == -EPROTO && strstr(res.diag, "cut short"));

	/* A hole: the second record never committed. */
	memcpy(copy, b.buf, len);
	memset(copy + offs[1], 0, offs[2] - offs[1]);
	res = read_all(copy, len);
	CHECK(res.events == 4 && res.holes == 1 && res.bad == 0);
	CHECK(res.diag_off == offs[1] && strstr(res.diag, "hole of"));

	/* Only the head word zero (the body was written). */
	memcpy(copy, b.buf, len);
	memset(copy + offs[1], 0, 4);
	res = read_all(copy, len);
	CHECK(res.events == 4 && res.holes == 1);

	/* A corrupt head word. */
	memcpy(copy, b.buf, len);
	memcpy(copy + offs[2], &(uint32_t){ 0xdeadbeef }, 4);
	res = read_all(copy, len);
	CHECK(res.events == 4 && res.bad == 1 && res.diag_off == offs[2]);

	/* A length that runs past the record's cursor. */
	memcpy(copy, b.buf, len);
	uint32_t h = SK_HEAD(SK_EV_EXIT, 4096);
	memcpy(copy + offs[4], &h, 4);
	res = read_all(copy, len);
	CHECK(res.events == 4 && res.bad == 1);

	/* A name longer than its record. */
	memcpy(copy, b.buf, len);
	((struct sk_ev_posix_unlink *)(copy + offs[3]))->name_len = 300;
	res = read_all(copy, len);
	CHECK(res.events == 4 && res.bad == 1 && strstr(res.diag, "name"));

	/* Frames beyond the record. */
	memcpy(copy, b.buf, len);
	((struct sk_ev_sysv_get *)(copy + offs[1]))->nframes = 60;
	res = read_all(copy, len);
	CHECK(res.events == 4 && res.bad == 1 && strstr(res.diag, "frames"));

	/* Newer version, foreign file, empty file. */
	memcpy(copy, b.buf, len);
	((struct sk_file_header *)copy)->version = SK_VERSION + 1;
	res = read_all(copy, len);
	CHECK(res.rc_open == -EPROTO && strstr(res.diag, "version"));
	res = read_all("#!/bin/sh\necho hello\n", 21);
	CHECK(res.rc_open == -EPROTO && strstr(res.diag, "not a shmkeeper log"));
	res = read_all("", 0);
	CHECK(res.rc_open == -EPROTO && strstr(res.diag, "empty"));

	/* A header whose strings are not terminated. */
	memcpy(copy, b.buf, len);
	memset(((struct sk_file_header *)copy)->exe, 'x', SK_EXE_MAX);
	memset(((struct sk_file_header *)copy)->args, 'y', SK_ARGS_MAX);
	((struct sk_file_header *)copy)->args_len = 60000;
	res = read_all(copy, len);
	CHECK(res.rc_open == 0 && res.events == 5);
	free(copy);
	free(b.buf);
}

/* xorshift: reproducible without libc's rand state. */
static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_fuzz(int rounds)
{
	struct logbuf b;
	size_t offs[6];
	size_t len = build(&b, offs);
	uint8_t *copy = malloc(len);

	for (int i = 0; i < rounds; i++) {
		size_t n = len;

		memcpy(copy, b.buf, len);
		for (int k = (int)(next_rand() % 8) + 1; k > 0; k--) {
			size_t at = SK_HEADER_SIZE - 64 + next_rand() % (len - SK_HEADER_SIZE + 64);
			switch (next_rand() % 4) {
			case 0: copy[at] ^= (uint8_t)(1u << (next_rand() % 8)); break;
			case 1: copy[at] = (uint8_t)next_rand(); break;
			case 2: {   /* a plausible head word anywhere */
				uint32_t h = SK_HEAD(next_rand() % (SK_EV_TYPE_MAX + 1),
						     (next_rand() % 64) * 8);
				memcpy(copy + (at & ~(size_t)7), &h, 4);
				break;
			}
			case 3: n = SK_HEADER_SIZE + next_rand() % (len - SK_HEADER_SIZE); break;
			}
		}
		/* An exact-size heap copy, so a sanitizer sees any overread. */
		uint8_t *exact = malloc(n);
		memcpy(exact, copy, n);
		(void)read_all(exact, n);
		free(exact);
	}
	free(copy);
	free(b.buf);
}

int main(void)
{
	test_good();
	test_damage();
	test_fuzz(20000);
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
