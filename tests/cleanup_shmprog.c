/* cleanup_shmprog - an unmodified program (not linked with libshmkeeper)
 * that creates a SysV segment and a POSIX object, writes their ids, and
 * ends as told: "exit", "_exit", "wait" (until a signal), "kill" (SIGKILL
 * itself), "daemon" (double-forks a grandchild that creates them and
 * waits; the parent exits at once), "hold" (creates nothing: attaches the
 * ones IDFILE names, writes IDFILE.held, and waits).
 *
 * Usage: cleanup_shmprog HOW NAME IDFILE
 * NAME is the POSIX object's name; IDFILE receives "SHMID NAME PID". */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

static void make(const char *name, const char *idfile)
{
	int id = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
	if (id < 0) {
		perror("shmget");
		exit(100);
	}
	void *p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		perror("shmat");
		exit(100);
	}
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, 4096) < 0) {
		perror("shm_open");
		exit(100);
	}
	void *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (q == MAP_FAILED) {
		perror("mmap");
		exit(100);
	}
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", idfile);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d %s %d\n", id, name, (int)getpid()) < 0 || fclose(f) != 0 ||
	    rename(tmp, idfile) < 0) {
		perror(idfile);
		exit(100);
	}
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: cleanup_shmprog HOW NAME IDFILE\n");
		return 100;
	}
	const char *how = argv[1];
	if (strcmp(how, "hold") == 0) {
		int id;
		char name[256], held[4096];
		FILE *f = fopen(argv[3], "r");
		if (!f || fscanf(f, "%d %255s", &id, name) != 2)
			return 100;
		fclose(f);
		int fd = shm_open(name, O_RDWR, 0);
		if (shmat(id, NULL, 0) == (void *)-1 || fd < 0 ||
		    mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED) {
			perror("hold");
			return 100;
		}
		close(fd);
		snprintf(held, sizeof held, "%s.held", argv[3]);
		if (!(f = fopen(held, "w")) || fclose(f) != 0)
			return 100;
		for (;;)
			pause();
	}
	if (strcmp(how, "daemon") == 0) {
		pid_t p = fork();
		if (p < 0)
			return 100;
		if (p > 0) {
			waitpid(p, NULL, 0);
			return 0;
		}
		setsid();
		if (fork() != 0)
			_exit(0);
		make(argv[2], argv[3]);
		for (;;)
			pause();
	}
	make(argv[2], argv[3]);
	if (strcmp(how, "exit") == 0)
		exit(0);
	if (strcmp(how, "_exit") == 0)
		_exit(0);
	if (strcmp(how, "kill") == 0)
		kill(getpid(), SIGKILL);
	for (;;)
		pause();
}
