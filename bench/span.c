/* The span benchmark's workloads (issue 5), one per run, for bench/span.sh
 * to run preloaded with placement off and on:
 *   span at N      N x shmat(id, NULL) + shmdt of one existing 4 KiB SysV
 *                  segment (the target: placed <= 1.10 x plain)
 *   span cycle N   N x shmget + shmat + touch + shmdt + shmctl(IPC_RMID),
 *                  4 KiB (bench/shmcycle's loop, the recording benchmark)
 *   span posix N   N x mmap(NULL, 4 KiB, MAP_SHARED) + munmap of one
 *                  existing shm_open object
 *   span fill N FILE  not timed: N 4 KiB SysV segments attached (placed when
 *                  preloaded) by ceil(N/200) processes (a process maps at
 *                  most 256 ranges in the span), each removed at once so that
 *                  nothing outlives the run; creates FILE when all are
 *                  attached, then holds them until SIGTERM. bench/span.sh
 *                  runs the others next to it: a table with N live entries.
 * Prints the nanoseconds per iteration of the loop alone (set-up and exit
 * excluded), and on stderr the address of the last attach, so that a run
 * shows whether it was placed. */
#include <err.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* Attaches n segments, reports on fd, holds them until SIGTERM, then exits
 * normally (the library's destructor leaves the table). */
static void wait_term(void)
{
	sigset_t none;
	sigemptyset(&none);
	while (!stop)
		sigsuspend(&none);   /* SIGTERM blocked elsewhere: no lost wake-up */
}

static int fill_child(long n, int fd)
{
	for (long i = 0; i < n; i++) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (id < 0)
			err(1, "shmget");
		if (shmat(id, NULL, 0) == (void *)-1)
			err(1, "shmat");
		shmctl(id, IPC_RMID, NULL);
	}
	if (write(fd, "r", 1) != 1)
		err(1, "write");
	close(fd);
	wait_term();
	return 0;
}

static int fill(long n, const char *ready)
{
	enum { PER = 200 };
	int nproc = (int)((n + PER - 1) / PER), pfd[2];
	pid_t kids[64];
	if (nproc > 64)
		errx(2, "fill: at most %d", 64 * PER);
	struct sigaction sa = { .sa_handler = on_term };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	if (pipe(pfd) < 0)
		err(1, "pipe");
	for (int i = 0; i < nproc; i++) {
		long share = n - (long)i * PER < PER ? n - (long)i * PER : PER;
		if ((kids[i] = fork()) < 0)
			err(1, "fork");
		if (kids[i] == 0) {
			close(pfd[0]);
			exit(fill_child(share, pfd[1]));
		}
	}
	close(pfd[1]);
	char c;
	for (int i = 0; i < nproc; i++)
		if (read(pfd[0], &c, 1) != 1)
			errx(1, "fill: a child failed");
	int fd = open(ready, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		err(1, "%s", ready);
	close(fd);
	wait_term();
	for (int i = 0; i < nproc; i++)
		kill(kids[i], SIGTERM);
	for (int i = 0; i < nproc; i++)
		waitpid(kids[i], NULL, 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		errx(2, "usage: span at|cycle|posix [N] | span fill N FILE");
	const char *mode = argv[1];
	if (strcmp(mode, "fill") == 0) {
		if (argc != 4)
			errx(2, "usage: span fill N FILE");
		return fill(atol(argv[2]), argv[3]);
	}
	long n = argc > 2 ? atol(argv[2]) : 20000;
	void *last = NULL;
	double t0, t1;
	if (strcmp(mode, "at") == 0) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (id < 0)
			err(1, "shmget");
		t0 = now();
		for (long i = 0; i < n; i++) {
			void *p = shmat(id, NULL, 0);
			if (p == (void *)-1)
				err(1, "shmat");
			if (shmdt(p) < 0)
				err(1, "shmdt");
			last = p;
		}
		t1 = now();
		shmctl(id, IPC_RMID, NULL);
	} else if (strcmp(mode, "cycle") == 0) {
		t0 = now();
		for (long i = 0; i < n; i++) {
			int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
			if (id < 0)
				err(1, "shmget");
			char *p = shmat(id, NULL, 0);
			if (p == (void *)-1)
				err(1, "shmat");
			p[0] = 1;
			if (shmdt(p) < 0)
				err(1, "shmdt");
			if (shmctl(id, IPC_RMID, NULL) < 0)
				err(1, "shmctl");
			last = p;
		}
		t1 = now();
	} else if (strcmp(mode, "posix") == 0) {
		char name[64];
		snprintf(name, sizeof name, "/shmk-bench-span-%d", (int)getpid());
		int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
		if (fd < 0)
			err(1, "shm_open %s", name);
		if (ftruncate(fd, 4096) < 0)
			err(1, "ftruncate");
		t0 = now();
		for (long i = 0; i < n; i++) {
			void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p == MAP_FAILED)
				err(1, "mmap");
			if (munmap(p, 4096) < 0)
				err(1, "munmap");
			last = p;
		}
		t1 = now();
		close(fd);
		shm_unlink(name);
	} else {
		errx(2, "unknown workload %s", mode);
	}
	printf("%.1f\n", (t1 - t0) / n);
	fprintf(stderr, "%p\n", last);
	return 0;
}
