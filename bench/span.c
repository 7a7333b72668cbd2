/* The span benchmark's workloads (issue 5), one per run, for bench/span.sh
 * to run preloaded with placement off and on:
 *   span at N      N x shmat(id, NULL) + shmdt of one existing 4 KiB SysV
 *                  segment (the target: placed <= 1.10 x plain)
 *   span cycle N   N x shmget + shmat + touch + shmdt + shmctl(IPC_RMID),
 *                  4 KiB (bench/shmcycle's loop, the recording benchmark)
 *   span posix N   N x mmap(NULL, 4 KiB, MAP_SHARED) + munmap of one
 *                  existing shm_open object
 * Prints the nanoseconds per iteration of the loop alone (set-up and exit
 * excluded), and on stderr the address of the last attach, so that a run
 * shows whether it was placed. */
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		errx(2, "usage: span at|cycle|posix [N]");
	const char *mode = argv[1];
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
