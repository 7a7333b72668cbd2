/* The recording benchmark's workload: N cycles of shmget + shmat + shmdt +
 * shmctl(IPC_RMID) on a 4 KiB segment. Prints the nanoseconds per cycle of
 * the loop alone (process start and exit excluded): wall time, then the
 * process's CPU time (user + system), which a neighbour on a shared machine
 * disturbs less. */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <time.h>

static double now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000;
	double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
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
	}
	double c1 = now(CLOCK_PROCESS_CPUTIME_ID), t1 = now(CLOCK_MONOTONIC);
	printf("%.1f %.1f\n", (t1 - t0) / n, (c1 - c0) / n);
	return 0;
}
