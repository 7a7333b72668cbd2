/* Messages per second between two processes at 8, 64, 512 and 4096 bytes:
 * shmkeeper's ring (shmk_msg_send/recv), a pipe, a unix socket
 * (SOCK_SEQPACKET) and, when configure found it, libck's ck_ring in the same
 * shape. A single-core memcpy of the same sizes is the bandwidth baseline.
 *
 *   bench/ring [ROUNDS [SECONDS [METHODS]]]
 *       default 5 rounds of 0.2 s a cell; METHODS a comma list of
 *       ring,pipe,unix,ck_ring,memcpy (default all), for quick A/B runs;
 *       BENCH_VERBOSE=1 in the environment prints every cell's rate on
 *       stderr, which shows phases that a median hides
 *
 * Every round measures every (size, method) cell, so the methods are
 * interleaved in time and share whatever the machine is doing; the medians
 * and the ratios come from the same run. Producer and consumer are pinned to
 * CPUs 0 and 1 (the consumer is a fork child) for every method alike.
 *
 * What makes the comparison fair (each point once went wrong here):
 *  - ck_ring uses its by-value typed interface (CK_RING_PROTOTYPE): the
 *    payload is copied into the ring's own buffer by enqueue and out of it by
 *    dequeue, like shmk_msg_send/recv, and that buffer has the same size as
 *    the shmkeeper ring (2 MiB), so both keep the same bytes in flight and the
 *    same working set. (An earlier version copied into a separate 8 MiB array
 *    of 4 KiB slots: one page per message even at 8 bytes, and a ring of
 *    1023 messages whatever their size.) Its sizes are compile-time constants,
 *    as they are for anyone using the typed interface; ours go through
 *    memcpy with a run-time length.
 *  - A side that cannot go on spins as long as ours does (SPIN pauses), then
 *    gives the CPU away: ours sleeps on a futex, ck_ring has no sleep, so it
 *    calls sched_yield(). A pure spin loses badly on a loaded machine, where
 *    the spinner's peer is often not running.
 *  - The shared pages are faulted in (MADV_POPULATE_WRITE) before the clock
 *    starts, for the ring and for ck_ring alike: a fresh tmpfs page costs
 *    ~10 us on first touch, which is not message passing. In both
 *    processes: fork does not copy a shared mapping's page tables, so the
 *    consumer took a minor fault on each of the 512 pages during its first
 *    pass (perf: exc_page_fault under its memcpy), ring and ck_ring alike.
 *  - memcpy copies from a 4 KiB source into a destination the size of the
 *    ring, walked like the ring, so it is not an L1-hot copy (the ring is 2 MiB,
 *    L2 is 1 MiB here); it is timed in CPU time of the one process, i.e. the
 *    bandwidth of one core while it runs, so that the other programs sharing
 *    the machine do not shrink the baseline (they do shrink the ring, timed
 *    in wall-clock time like the pipe, the socket and ck_ring).
 */
#include <errno.h>
#include <stdbool.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmkeeper.h>

#ifdef HAVE_CK_RING_H
#include <ck_pr.h>
#include <ck_ring.h>
#endif

enum { M_RING, M_PIPE, M_UNIX, M_CK, M_MEMCPY, M_MAX };
static const char *mnames[M_MAX] = { "ring", "pipe", "unix", "ck_ring", "memcpy" };
static const size_t sizes[] = { 8, 64, 512, 4096 };
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define MAXR 64
#define RING_BYTES (2u << 20)   /* segment size, and ck_ring's buffer size */
#define SPIN 400                /* core/msg.c's SK_SPIN */

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double clk(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clk(CLOCK_MONOTONIC);
}

/* Faults a shared area in before the clock starts. */
static void populate(void *p, size_t n)
{
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
	if (madvise(p, n, MADV_POPULATE_WRITE) < 0)
		die("madvise(MADV_POPULATE_WRITE)");
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &s);
	sched_setaffinity(0, sizeof s, &s);
}

static int full_io(int fd, void *buf, size_t n, int wr)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = wr ? write(fd, (char *)buf + done, n - done)
		               : read(fd, (char *)buf + done, n - done);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

#ifdef HAVE_CK_RING_H
/* One typed ring per size; the buffer is RING_BYTES whatever the size. */
#define CK_TYPE(n) \
	struct ck##n { char b[n]; }; \
	CK_RING_PROTOTYPE(ck##n, ck##n)
CK_TYPE(8)
CK_TYPE(64)
CK_TYPE(512)
CK_TYPE(4096)

struct ck_shared {
	ck_ring_t ring;
	char buf[RING_BYTES] __attribute__((aligned(64)));
};

static void ck_wait(unsigned *spins)
{
	if (++*spins < SPIN) {
		ck_pr_stall();
	} else {
		*spins = 0;
		sched_yield();
	}
}

static bool ck_put(struct ck_shared *ck, size_t sz, void *src)
{
	switch (sz) {
	case 8: return ck_ring_enqueue_spsc_ck8(&ck->ring, (struct ck8 *)ck->buf, src);
	case 64: return ck_ring_enqueue_spsc_ck64(&ck->ring, (struct ck64 *)ck->buf, src);
	case 512: return ck_ring_enqueue_spsc_ck512(&ck->ring, (struct ck512 *)ck->buf, src);
	default: return ck_ring_enqueue_spsc_ck4096(&ck->ring, (struct ck4096 *)ck->buf, src);
	}
}

static bool ck_get(struct ck_shared *ck, size_t sz, void *dst)
{
	switch (sz) {
	case 8: return ck_ring_dequeue_spsc_ck8(&ck->ring, (struct ck8 *)ck->buf, dst);
	case 64: return ck_ring_dequeue_spsc_ck64(&ck->ring, (struct ck64 *)ck->buf, dst);
	case 512: return ck_ring_dequeue_spsc_ck512(&ck->ring, (struct ck512 *)ck->buf, dst);
	default: return ck_ring_dequeue_spsc_ck4096(&ck->ring, (struct ck4096 *)ck->buf, dst);
	}
}
#endif

/* One cell: n messages of size sz by method m; returns seconds. */
static double cell(int m, size_t sz, uint64_t n)
{
	static char src[4096] __attribute__((aligned(64))), dst[4096] __attribute__((aligned(64)));
	int ready[2], fds[2] = { -1, -1 };
	shmk_shm_desc *d = NULL;
	double t0, t1;
	pid_t pid;
	char c;
#ifdef HAVE_CK_RING_H
	struct ck_shared *ck = NULL;
#endif

	memset(src, 0x5a, sizeof src);
	if (m == M_MEMCPY) {
		/* a ring-sized destination, walked like a ring */
		static char area[RING_BYTES] __attribute__((aligned(64)));
		size_t at = 0;

		t0 = clk(CLOCK_PROCESS_CPUTIME_ID);
		for (uint64_t i = 0; i < n; i++) {
			memcpy(area + at, src, sz);
			__asm__ __volatile__("" ::"r"(area) : "memory");
			at += sz;
			if (at + sz > sizeof area)
				at = 0;
		}
		return clk(CLOCK_PROCESS_CPUTIME_ID) - t0;
	}
	if (pipe(ready) < 0)
		die("pipe");
	switch (m) {
	case M_RING:
		if (!(d = shmk_shm_new(RING_BYTES, NULL, SHMK_IMPL_AUTO)))
			die("shmk_shm_new");
		populate(d->header, d->orig_size);
		break;
	case M_PIPE:
		if (pipe(fds) < 0)
			die("pipe");
		break;
	case M_UNIX:
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) < 0)
			die("socketpair");
		break;
#ifdef HAVE_CK_RING_H
	case M_CK:
		ck = mmap(NULL, sizeof *ck, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (ck == MAP_FAILED)
			die("mmap");
		populate(ck, sizeof *ck);
		ck_ring_init(&ck->ring, RING_BYTES / (unsigned)sz);
		break;
#endif
	}
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		size_t len;

		pin(1);
		/* fork does not copy the page tables of a shared mapping:
		 * the child faults the pages in again, so populate here too */
		if (d)
			populate(d->header, d->orig_size);
#ifdef HAVE_CK_RING_H
		if (ck)
			populate(ck, sizeof *ck);
#endif
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (uint64_t i = 0; i < n; i++) {
			switch (m) {
			case M_RING:
				if (shmk_msg_recv(d, dst, sizeof dst, &len, -1) || len != sz)
					_exit(1);
				break;
			case M_PIPE:
				if (full_io(fds[0], dst, sz, 0))
					_exit(1);
				break;
			case M_UNIX:
				if (recv(fds[1], dst, sizeof dst, 0) != (ssize_t)sz)
					_exit(1);
				break;
#ifdef HAVE_CK_RING_H
			case M_CK: {
				unsigned spins = 0;

				while (!ck_get(ck, sz, dst))
					ck_wait(&spins);
				break;
			}
#endif
			}
		}
		_exit(0);
	}
	pin(0);
	if (read(ready[0], &c, 1) != 1)
		die("ready");
	t0 = now();
	for (uint64_t i = 0; i < n; i++) {
		switch (m) {
		case M_RING:
			if (shmk_msg_send(d, src, sz, -1))
				die("shmk_msg_send");
			break;
		case M_PIPE:
			if (full_io(fds[1], src, sz, 1))
				die("write");
			break;
		case M_UNIX:
			if (send(fds[0], src, sz, 0) != (ssize_t)sz)
				die("send");
			break;
#ifdef HAVE_CK_RING_H
		case M_CK: {
			unsigned spins = 0;

			while (!ck_put(ck, sz, src))
				ck_wait(&spins);
			break;
		}
#endif
		}
	}
	{
		int st;

		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			die("consumer");
	}
	t1 = now();
	close(ready[0]);
	close(ready[1]);
	if (fds[0] >= 0)
		close(fds[0]), close(fds[1]);
	shmk_shm_done(d);
#ifdef HAVE_CK_RING_H
	if (ck)
		munmap(ck, sizeof *ck);
#endif
	return t1 - t0;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmpd);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	double target = argc > 2 ? atof(argv[2]) : 0.2;
	static double rate[M_MAX][NSIZES][MAXR];
	uint64_t n[M_MAX][NSIZES];
	int have[M_MAX] = { 1, 1, 1, 0, 1 }, ck = 0;
	int verbose = getenv("BENCH_VERBOSE") != NULL;

#ifdef HAVE_CK_RING_H
	ck = have[M_CK] = 1;
#endif
	if (argc > 3) {
		char *list = strdup(argv[3]);

		for (int m = 0; m < M_MAX; m++)
			have[m] = 0;
		for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
			for (int m = 0; m < M_MAX; m++)
				if (!strcmp(tok, mnames[m]) && (m != M_CK || ck))
					have[m] = 1;
		free(list);
	}
	if (rounds < 1 || rounds > MAXR)
		rounds = 5;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* calibration, not counted: messages per cell for about `target` s */
	for (int m = 0; m < M_MAX; m++)
		for (size_t s = 0; s < NSIZES; s++) {
			uint64_t k = 20000;
			double t;

			if (!have[m])
				continue;
			t = cell(m, sizes[s], k);
			n[m][s] = (uint64_t)((double)k * target / (t > 1e-6 ? t : 1e-6));
			if (n[m][s] < 10000)
				n[m][s] = 10000;
		}
	for (int r = 0; r < rounds; r++)
		for (size_t s = 0; s < NSIZES; s++)
			for (int m = 0; m < M_MAX; m++)
				if (have[m]) {
					rate[m][s][r] = (double)n[m][s] / cell(m, sizes[s], n[m][s]);
					if (verbose)
						fprintf(stderr, "round %d %s %zu %.0f\n", r, mnames[m],
						        sizes[s], rate[m][s][r]);
				}

	printf("messages per second, median of %d interleaved rounds (%d CPUs)\n",
	       rounds, (int)sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-8s", "size");
	for (int m = 0; m < M_MAX; m++)
		if (have[m])
			printf(" %12s", mnames[m]);
	printf(" %9s %9s %9s %11s\n", "ring/ck", "ring/unix", "ring/pipe", "ring/memcpy");
	for (size_t s = 0; s < NSIZES; s++) {
		double med[M_MAX] = { 0 };

		printf("%-8zu", sizes[s]);
		for (int m = 0; m < M_MAX; m++)
			if (have[m]) {
				med[m] = median(rate[m][s], rounds);
				printf(" %12.0f", med[m]);
			}
		for (int k = 0; k < 3; k++) {
			static const int vs[3] = { M_CK, M_UNIX, M_PIPE };

			if (have[M_RING] && have[vs[k]])
				printf(" %9.2f", med[M_RING] / med[vs[k]]);
			else
				printf(" %9s", "-");
		}
		if (have[M_RING] && have[M_MEMCPY])
			printf(" %10.1f%%\n", 100.0 * med[M_RING] / med[M_MEMCPY]);
		else
			printf(" %11s\n", "-");
	}
	for (int m = 0; m < M_MAX; m++)
		if (have[m] && m != M_PIPE && m != M_UNIX)
			printf("%s at 4096 B: %.0f MB/s%s\n", mnames[m],
			       median(rate[m][NSIZES - 1], rounds) * 4096 / 1e6,
			       m == M_MEMCPY ? " (per CPU-second)" : "");
	return 0;
}
