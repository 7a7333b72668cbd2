/* Two processes move messages of random sizes through a segment's ring and
 * check every one (sequence number and checksum).
 *
 *   ring_xfer                      all the runs below, in turn
 *   ring_xfer fork|unix posix|sysv COUNT RINGSIZE
 *
 * fork: the consumer is a fork child using the inherited descriptor.
 * unix: the consumer is this program exec'd again (an unrelated image); it
 * gets the encoded descriptor over a unix socket and decodes it.
 * Every 16th message goes through reserve/commit, every 3rd is received with
 * peek/release. A small ring runs full and empty all the time and wraps every
 * few messages. Exit 0 when every message arrived intact, 1 otherwise.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmkeeper.h>

#define TIMEOUT_MS 10000

struct hdr {
	uint64_t seq;
	uint32_t len;     /* whole message, header included */
	uint32_t sum;     /* FNV-1a of the body */
};

/* FNV-1a over 8-byte words, then the tail: a checksum, not a hash, and
 * cheap enough that the ring, not the test, sets the pace. */
static uint32_t fnv(const unsigned char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 1099511628211ull;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return (uint32_t)(h ^ (h >> 32));
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Mostly small, sometimes up to max: the shape of real traffic, and enough
 * large ones to make the ring wrap with PAD records. */
static size_t msg_size(uint64_t seq, size_t max)
{
	uint64_t r = mix(seq);
	size_t n = (r & 15) == 0 ? (size_t)(r >> 8) % (max + 1) : (size_t)(r >> 8) % 257;

	return n < sizeof(struct hdr) ? sizeof(struct hdr) : n > max ? max : n;
}

static void fill(unsigned char *m, uint64_t seq, size_t n)
{
	struct hdr h = { seq, (uint32_t)n, 0 };
	uint64_t r = mix(seq ^ 0x5555);
	size_t i = sizeof h;

	for (; i + 8 <= n; i += 8) {
		memcpy(m + i, &r, 8);
		r = r * 6364136223846793005ull + 1442695040888963407ull;
	}
	for (; i < n; i++)
		m[i] = (unsigned char)(r >> (8 * (i & 7)));
	h.sum = fnv(m + sizeof h, n - sizeof h);
	memcpy(m, &h, sizeof h);
}

static int produce(shmk_shm_desc *d, uint64_t count)
{
	size_t max = shmk_msg_max(d);
	unsigned char *m = malloc(max);
	int rc;

	if (max > 8192)
		max = 8192;
	for (uint64_t seq = 0; seq < count; seq++) {
		size_t n = msg_size(seq, max);

		if (seq % 16 == 0) {
			void *p;

			if ((rc = shmk_msg_reserve(d, max, &p, TIMEOUT_MS)))
				goto fail;
			fill(p, seq, n);
			if ((rc = shmk_msg_commit(d, n)))
				goto fail;
		} else {
			fill(m, seq, n);
			if ((rc = shmk_msg_send(d, m, n, TIMEOUT_MS)))
				goto fail;
		}
	}
	free(m);
	return 0;
fail:
	fprintf(stderr, "ring_xfer: producer: %s\n", strerror(rc));
	free(m);
	return 1;
}

static int check(const unsigned char *m, size_t n, uint64_t seq)
{
	struct hdr h;

	if (n < sizeof h) {
		fprintf(stderr, "ring_xfer: message %llu: %zu bytes\n", (unsigned long long)seq, n);
		return 1;
	}
	memcpy(&h, m, sizeof h);
	if (h.seq != seq || h.len != n || h.sum != fnv(m + sizeof h, n - sizeof h)) {
		fprintf(stderr, "ring_xfer: message %llu: got seq %llu len %u/%zu sum %08x/%08x\n",
		        (unsigned long long)seq, (unsigned long long)h.seq, h.len, n, h.sum,
		        fnv(m + sizeof h, n - sizeof h));
		return 1;
	}
	return 0;
}

static int consume(shmk_shm_desc *d, uint64_t count)
{
	size_t max = shmk_msg_max(d), n;
	unsigned char *m = malloc(max);
	int rc;

	for (uint64_t seq = 0; seq < count; seq++) {
		if (seq % 3 == 0) {
			const void *p;

			if ((rc = shmk_msg_peek(d, &p, &n, TIMEOUT_MS)))
				goto fail;
			/* the bytes are the peer's to change: check a copy */
			memcpy(m, p, n < max ? n : max);
			if ((rc = shmk_msg_release(d)))
				goto fail;
		} else if ((rc = shmk_msg_recv(d, m, max, &n, TIMEOUT_MS))) {
			goto fail;
		}
		if (check(m, n, seq)) {
			free(m);
			return 1;
		}
	}
	if ((rc = shmk_msg_recv(d, m, max, &n, 0)) != EAGAIN) {
		fprintf(stderr, "ring_xfer: consumer: a message too many\n");
		free(m);
		return 1;
	}
	free(m);
	return 0;
fail:
	fprintf(stderr, "ring_xfer: consumer: %s\n", strerror(rc));
	free(m);
	return 1;
}

static int wait_child(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return 1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int run(const char *self, const char *mode, const char *implname, uint64_t count, size_t size)
{
	enum shmk_impl impl = strcmp(implname, "posix") == 0 ? SHMK_IMPL_POSIX : SHMK_IMPL_SYSV;
	shmk_shm_desc *d = shmk_shm_new(size, NULL, impl);
	struct timespec t0, t1;
	int rc, crc;
	pid_t pid;

	if (!d) {
		fprintf(stderr, "ring_xfer: shmk_shm_new: %s\n", strerror(errno));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (strcmp(mode, "fork") == 0) {
		pid = fork();
		if (pid == 0)
			_exit(consume(d, count));
		rc = produce(d, count);
		crc = wait_child(pid);
	} else {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char enc[SHMK_SHM_ENCODED_MAX], cnt[32], sz[32];
		ssize_t n = shmk_shm_encode(d, enc, sizeof enc);
		int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), cs;

		snprintf(sa.sun_path, sizeof sa.sun_path, "/tmp/ring_xfer.%d.sock", (int)getpid());
		unlink(sa.sun_path);
		if (n < 0 || ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1) < 0) {
			perror("ring_xfer: socket");
			return 1;
		}
		snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)count);
		snprintf(sz, sizeof sz, "%zu", size);
		pid = fork();
		if (pid == 0) {
			execl(self, self, "--consumer", sa.sun_path, cnt, sz, (char *)NULL);
			_exit(127);
		}
		cs = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		unlink(sa.sun_path);
		if (cs < 0 || write(cs, enc, (size_t)n) != n) {
			perror("ring_xfer: send descriptor");
			return 1;
		}
		rc = produce(d, count);
		crc = wait_child(pid);
		close(cs);
		close(ls);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%s %s: %llu messages, ring %zu bytes: producer %s, consumer %s, %.2f s\n",
	       mode, implname, (unsigned long long)count, size, rc ? "FAIL" : "ok",
	       crc ? "FAIL" : "ok",
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	shmk_shm_done(d);
	return rc || crc;
}

static int consumer_main(const char *path, uint64_t count, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char enc[SHMK_SHM_ENCODED_MAX];
	shmk_shm_desc *d;
	ssize_t n = 0, r;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("ring_xfer: consumer: connect");
		return 1;
	}
	/* the creator writes the whole encoding in one go; read until we have
	 * what shmk_shm_decode needs or the sender stops */
	while ((r = read(s, enc + n, sizeof enc - (size_t)n)) > 0) {
		n += r;
		if ((d = shmk_shm_decode(enc, (size_t)n, size)))
			break;
	}
	if (r <= 0 || !d) {
		fprintf(stderr, "ring_xfer: consumer: decode: %s\n", strerror(errno));
		return 1;
	}
	rc = consume(d, count);
	shmk_shm_done(d);
	close(s);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct { const char *mode, *impl; uint64_t count; size_t size; } runs[] = {
		{ "fork", "posix", 1000000, 1 << 18 },
		{ "fork", "sysv", 1000000, 1 << 18 },
		{ "unix", "posix", 1000000, 1 << 18 },
		{ "unix", "sysv", 1000000, 1 << 18 },
		/* full and empty all the time, a wrap every few messages */
		{ "fork", "posix", 200000, 4096 },
		{ "unix", "sysv", 200000, 4096 },
	};
	int fails = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "--consumer") == 0)
		return consumer_main(argv[2], strtoull(argv[3], NULL, 0), strtoul(argv[4], NULL, 0));
	if (argc == 5)
		return run(argv[0], argv[1], argv[2], strtoull(argv[3], NULL, 0), strtoul(argv[4], NULL, 0));
	if (argc != 1) {
		fprintf(stderr, "usage: ring_xfer [fork|unix posix|sysv COUNT RINGSIZE]\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
		fails += run(argv[0], runs[i].mode, runs[i].impl, runs[i].count, runs[i].size);
	return fails ? 1 : 0;
}
