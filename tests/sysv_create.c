/* Who created a SysV segment, where shmget alone does not say:
 *   private  shmget(IPC_PRIVATE, 8192, 0600) without IPC_CREAT, which makes
 *            a new segment all the same (shmget(2); Perl's IPC::SharedMem
 *            does it), then leaks it; prints its shmid.
 *   race     ROUNDS times, two threads race shmget(key, IPC_CREAT) on a
 *            fresh key: one creates, the other opens; then one IPC_RMID.
 *            Prints the number of rounds.
 *   forkdt   creates and attaches a segment, forks a child that detaches
 *            the attachment it inherited and _exits; detaches and leaks it.
 *            Prints its shmid.
 *   execdt   creates and attaches a segment, execs /bin/true (which makes
 *            no call of its own): the attachment goes at exec.
 *   attach ID  attaches and detaches segment ID. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_barrier_t bar;
static int ids[2];
static key_t key;

static void *racer(void *p)
{
	int i = (int)(long)p;
	pthread_barrier_wait(&bar);
	ids[i] = shmget(key, 65536, IPC_CREAT | 0600);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "private")) {
		int id = shmget(IPC_PRIVATE, 8192, 0600);
		if (id < 0) {
			perror("shmget");
			return 1;
		}
		printf("%d\n", id);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "race")) {
		int rounds = argc > 2 ? atoi(argv[2]) : 100;
		pthread_barrier_init(&bar, NULL, 2);
		for (int r = 0; r < rounds; r++) {
			pthread_t t[2];
			key = (key_t)(0x5b4c0000 + ((getpid() & 0xff) << 8) + r);
			for (long i = 0; i < 2; i++)
				pthread_create(&t[i], NULL, racer, (void *)i);
			for (int i = 0; i < 2; i++)
				pthread_join(t[i], NULL);
			if (ids[0] < 0 || ids[0] != ids[1]) {
				fprintf(stderr, "race: ids %d %d\n", ids[0], ids[1]);
				return 1;
			}
			shmctl(ids[0], IPC_RMID, NULL);
		}
		printf("%d\n", rounds);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "forkdt")) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		char *p = id < 0 ? (char *)-1 : shmat(id, NULL, 0);
		if (p == (char *)-1)
			return 1;
		printf("%d\n", id);
		fflush(stdout);
		pid_t c = fork();
		if (c == 0) {
			shmdt(p);
			_exit(0);
		}
		int st;
		waitpid(c, &st, 0);
		shmdt(p);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "execdt")) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (id < 0 || shmat(id, NULL, 0) == (void *)-1)
			return 1;
		printf("%d\n", id);
		fflush(stdout);
		execl("/bin/true", "true", (char *)NULL);
		return 1;
	}
	if (argc > 2 && !strcmp(argv[1], "attach")) {
		void *p = shmat(atoi(argv[2]), NULL, 0);
		return p == (void *)-1 || shmdt(p) != 0;
	}
	fprintf(stderr, "usage: sysv_create private|race [ROUNDS]|forkdt|execdt|attach ID\n");
	return 2;
}
