/* fuzz_logread - a bounded, seeded mutation fuzzer of the log reader
 * (core/logread.c), plain C, for make check (issue 8). The libFuzzer target
 * is tests/fuzz_logread_lf.c (configure --enable-fuzz, clang).
 *
 * Usage: fuzz_logread CORPUS_DIR [SECONDS [SEED]]
 *        fuzz_logread CORPUS_DIR replay SEED ITERATION
 * Each iteration takes a corpus file, mutates it with a generator seeded by
 * SEED and the iteration number, and reads every record back, touching every
 * byte the reader hands out (so ASan sees an overrun). A crash prints the
 * iteration to replay; a reader that never ends is a failure. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/logread.h"

static uint64_t rng;
static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct blob { uint8_t *p; size_t n; };
static struct blob corpus[64];
static int ncorpus;
static volatile uint64_t cur_seed, cur_iter;

static void on_crash(int sig)
{
	char buf[160];
	int n = snprintf(buf, sizeof buf, "fuzz_logread: signal %d at iteration %" PRIu64
			 " (replay: fuzz_logread CORPUS replay %" PRIu64 " %" PRIu64 ")\n",
			 sig, cur_iter, cur_seed, cur_iter);
	ssize_t w = write(2, buf, (size_t)n);
	(void)w;
	_exit(1);
}

static volatile uint64_t sink;

static int consume(const uint8_t *buf, size_t n)
{
	struct sk_reader *r = NULL;
	int rc = sk_reader_open_mem(&r, buf, n);
	if (rc < 0) {
		if (r)
			sink += strlen(sk_reader_diag(r));
		sk_reader_close(r);
		return 0;
	}
	const struct sk_file_header *h = sk_reader_header(r);
	sink += strlen(h->exe);
	for (const char *a = sk_args_next(h, NULL); a; a = sk_args_next(h, a))
		sink += strlen(a);
	struct sk_event ev;
	unsigned long steps = 0;
	while ((rc = sk_reader_next(r, &ev)) != SK_RD_END && rc >= 0) {
		if (++steps > n / 8 + 16) {
			fprintf(stderr, "fuzz_logread: the reader does not end (%lu steps, %zu bytes)\n",
				steps, n);
			sk_reader_close(r);
			return 1;
		}
		if (rc != SK_RD_EVENT) {
			sink += strlen(sk_reader_diag(r));
			continue;
		}
		const uint8_t *rec = (const uint8_t *)ev.rec;
		for (uint32_t i = 0; i < ev.len; i++)
			sink += rec[i];
		if (ev.name)
			for (size_t i = 0; i <= ev.name_len; i++)
				sink += (uint8_t)ev.name[i];
		for (unsigned i = 0; i < ev.nframes; i++)
			sink += ev.frames[i];
		for (unsigned i = 0; i < ev.build_id_len; i++)
			sink += ev.build_id[i];
		sink += sk_event_min_size(ev.type) + strlen(sk_event_type_name(ev.type));
	}
	sk_reader_close(r);
	return 0;
}

static int one(uint64_t seed, uint64_t iter, uint8_t *buf, size_t cap)
{
	rng = seed ^ (iter * 0x2545f4914f6cdd1dull);
	const struct blob *b = &corpus[rnd() % (uint64_t)ncorpus];
	size_t n = b->n < cap ? b->n : cap;
	memcpy(buf, b->p, n);
	unsigned muts = 1 + (unsigned)(rnd() % 8);
	for (unsigned m = 0; m < muts && n > 0; m++) {
		size_t at = (size_t)(rnd() % n);
		/* Most mutations land in the header's used part and the records. */
		if (rnd() % 2 && n > 4096)
			at = rnd() % 2 ? (size_t)(rnd() % 256) : 4096 + (size_t)(rnd() % (n - 4096));
		switch (rnd() % 8) {
		case 0: buf[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
		case 1: buf[at] = (uint8_t)rnd(); break;
		case 2: if (at + 4 <= n) { static const uint32_t v[] = { 0, 0xffffffffu, 0xa5000000u,
			0xa5010000u, 0xa501ffffu, 0xa5ff0001u, 0x7fffffffu, 4096, 4097 };
			uint32_t x = v[rnd() % 9]; if (x >> 24 == 0xa5) x |= (uint32_t)(rnd() & 0x00ff00ffu);
			memcpy(buf + at, &x, 4); } break;
		case 3: if (at + 8 <= n) { uint64_t x = rnd() % 2 ? rnd() : rnd() % (n + 64);
			memcpy(buf + at, &x, 8); } break;
		case 4: n = at; break;                          /* truncate */
		case 5: if (at + 16 <= n && n > 16) { size_t from = (size_t)(rnd() % (n - 16));
			memmove(buf + at, buf + from, 16); } break;
		case 6: if (at + 2 <= n) { uint16_t x = (uint16_t)rnd(); memcpy(buf + at, &x, 2); } break;
		default: memset(buf + at, 0, n - at < 64 ? n - at : 64); break;
		}
	}
	/* The reader gets exactly n bytes: a heap copy, so ASan sees past it. */
	uint8_t *exact = malloc(n ? n : 1);
	memcpy(exact, buf, n);
	int rc = consume(exact, n);
	free(exact);
	return rc;
}

static int load(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)) && ncorpus < 64) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		rewind(f);
		if (n > 0 && n < (1 << 22)) {
			corpus[ncorpus].p = malloc((size_t)n);
			corpus[ncorpus].n = fread(corpus[ncorpus].p, 1, (size_t)n, f);
			ncorpus++;
		}
		fclose(f);
	}
	closedir(d);
	return ncorpus ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || load(argv[1]) < 0) {
		fprintf(stderr, "usage: fuzz_logread CORPUS_DIR [SECONDS [SEED]] (a non-empty corpus)\n");
		return 2;
	}
	signal(SIGSEGV, on_crash);
	signal(SIGBUS, on_crash);
	signal(SIGABRT, on_crash);
	signal(SIGFPE, on_crash);
	size_t cap = 0;
	for (int i = 0; i < ncorpus; i++)
		cap = corpus[i].n > cap ? corpus[i].n : cap;
	uint8_t *buf = malloc(cap);
	if (argc >= 5 && !strcmp(argv[2], "replay")) {
		cur_seed = strtoull(argv[3], NULL, 0);
		cur_iter = strtoull(argv[4], NULL, 0);
		return one(cur_seed, cur_iter, buf, cap);
	}
	double secs = argc >= 3 ? atof(argv[2]) : 3;
	uint64_t seed = argc >= 4 ? strtoull(argv[3], NULL, 0) : (uint64_t)time(NULL);
	const char *env = getenv("SHMK_FUZZ_SEED");
	if (env && argc < 4)
		seed = strtoull(env, NULL, 0);
	cur_seed = seed;
	printf("fuzz_logread: seed %" PRIu64 ", %d corpus files, %.1f s\n", seed, ncorpus, secs);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t it = 0;
	do {
		for (int k = 0; k < 64; k++, it++) {
			cur_iter = it;
			if (one(seed, it, buf, cap)) {
				printf("fuzz_logread: failed at iteration %" PRIu64 " (replay: fuzz_logread CORPUS "
				       "replay %" PRIu64 " %" PRIu64 ")\n", it, seed, it);
				return 1;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
	printf("fuzz_logread: %" PRIu64 " inputs, no fault\n", it);
	return 0;
}
