/* clock_prog ROUNDS - ROUNDS of shmget, shmat, shmdt, IPC_RMID on 4 KiB,
 * printing for each call "NAME T0 T1": CLOCK_MONOTONIC (ns) just before and
 * just after it. Every 50th round sleeps 5 ms first, longer than the writer
 * goes between two (tick, ns) pairs. tests/clock_ticks.sh checks that the
 * time the log gives each record lies between the two. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <time.h>

static uint64_t now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 100;
	for (int i = 0; i < rounds; i++) {
		if (i % 50 == 49)
			nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
		uint64_t t0 = now();
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		uint64_t t1 = now();
		if (id < 0)
			return perror("shmget"), 1;
		printf("sysv_get %llu %llu\n", (unsigned long long)t0, (unsigned long long)t1);
		t0 = now();
		void *p = shmat(id, NULL, 0);
		t1 = now();
		if (p == (void *)-1)
			return perror("shmat"), 1;
		printf("sysv_at %llu %llu\n", (unsigned long long)t0, (unsigned long long)t1);
		t0 = now();
		int rc = shmdt(p);
		t1 = now();
		printf("sysv_dt %llu %llu\n", (unsigned long long)t0, (unsigned long long)t1);
		t0 = now();
		rc |= shmctl(id, IPC_RMID, NULL);
		t1 = now();
		if (rc)
			return perror("shmdt/shmctl"), 1;
		printf("sysv_ctl %llu %llu\n", (unsigned long long)t0, (unsigned long long)t1);
	}
	return 0;
}
