/* Messages per second between two processes at 8, 64, 512 and 4096 bytes:
 * shmkeeper's ring (shmk_msg_send/recv), a pipe, a unix socket
 * (SOCK_SEQPACKET) and, when configure found it, libck's ck_ring in the same
 * shape (SPSC ring of slot indices over a shared slot array, copy in and copy
 * out). A single-core memcpy of the same sizes is the bandwidth baseline.
 *
 *   bench/ring [ROUNDS [SECONDS]]     default 5 rounds of 0.2 s a cell
 *
 * Every round measures every (size, method) cell, so the methods are
 * interleaved in time and share whatever the machine is doing; the medians
 * and the ratios come from the same run. Producer and consumer are pinned to
 * CPUs 0 and 1 (the consumer is a fork child) for every method alike.
 */
#include <errno.h>
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

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &s);
	sched_setaffinity(0, sizeof s, &s);
}

static void die(const char *what)
{
	perror(what);
	exit(1);
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
#define CK_SLOTS 2048          /* twice the ring: a slot being copied out is
                                  never the one being refilled */
#define CK_RING_SIZE 1024
struct ck_shared {
	ck_ring_t ring;
	ck_ring_buffer_t buf[CK_RING_SIZE];
	char slots[CK_SLOTS][4096];
};
#endif

/* One cell: n messages of size sz by method m; returns seconds. */
static double cell(int m, size_t sz, uint64_t n)
{
	static char src[4096], dst[4096];
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
		static char area[1 << 21];
		size_t at = 0;

		t0 = now();
		for (uint64_t i = 0; i < n; i++) {
			memcpy(area + at, src, sz);
			__asm__ __volatile__("" ::"r"(area) : "memory");
			at += sz;
			if (at + sz > sizeof area)
				at = 0;
		}
		return now() - t0;
	}
	if (pipe(ready) < 0)
		die("pipe");
	switch (m) {
	case M_RING:
		if (!(d = shmk_shm_new(2u << 20, NULL, SHMK_IMPL_AUTO)))
			die("shmk_shm_new");
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
		ck_ring_init(&ck->ring, CK_RING_SIZE);
		break;
#endif
	}
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		size_t len;

		pin(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (uint64_t i = 0; i < n; i++) {
			switch (m) {
			case M_RING:
				if (shmk_msg_recv(d, dst, sizeof dst, &len, -1))
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
				void *v;

				while (!ck_ring_dequeue_spsc(&ck->ring, ck->buf, &v))
					ck_pr_stall();
				memcpy(dst, ck->slots[(uintptr_t)v], sz);
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
			uintptr_t slot = (uintptr_t)(i % CK_SLOTS);

			memcpy(ck->slots[slot], src, sz);
			while (!ck_ring_enqueue_spsc(&ck->ring, ck->buf, (void *)slot))
				ck_pr_stall();
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
	int have[M_MAX] = { 1, 1, 1, 0, 1 };

#ifdef HAVE_CK_RING_H
	have[M_CK] = 1;
#endif
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
				if (have[m])
					rate[m][s][r] = (double)n[m][s] / cell(m, sizes[s], n[m][s]);

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
		if (have[M_CK])
			printf(" %9.2f", med[M_RING] / med[M_CK]);
		else
			printf(" %9s", "-");
		printf(" %9.2f %9.2f %10.1f%%\n", med[M_RING] / med[M_UNIX],
		       med[M_RING] / med[M_PIPE], 100.0 * med[M_RING] / med[M_MEMCPY]);
	}
	printf("ring at 4096 B: %.0f MB/s; memcpy of 4096 B: %.0f MB/s\n",
	       median(rate[M_RING][NSIZES - 1], rounds) * 4096 / 1e6,
	       median(rate[M_MEMCPY][NSIZES - 1], rounds) * 4096 / 1e6);
	return 0;
}
