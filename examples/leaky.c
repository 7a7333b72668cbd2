/* A small program that uses shared memory the way legacy programs do, and
 * forgets some of it: the README runs it under `shmkeeper run`.
 *
 * It creates three System V segments and two POSIX objects, uses them, and
 * removes only some: one SysV segment (8 KiB) and one POSIX object
 * ("/leaky-<pid>", 64 KiB) stay behind, plus one SysV segment attached by a
 * forked child and removed by it. Run it twice and the leaks add up: that is
 * what `ipcs -m` and `ls /dev/shm` show on CI machines. */
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int make_segment(size_t size)
{
	int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
	if (id < 0)
		err(1, "shmget");
	return id;
}

/* The forgotten one: a cache the program meant to remove at shutdown. */
static int open_cache(void)
{
	int id = make_segment(8192);
	char *p = shmat(id, NULL, 0);
	if (p == (void *)-1)
		err(1, "shmat");
	strcpy(p, "cache");
	shmdt(p);
	return id;
}

static void publish_stats(const char *name)
{
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0)
		err(1, "shm_open %s", name);
	if (ftruncate(fd, 65536) < 0)
		err(1, "ftruncate");
	char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		err(1, "mmap");
	close(fd);
	snprintf(p, 65536, "stats of %d", (int)getpid());
	munmap(p, 65536);
}

int main(void)
{
	/* Used and removed properly. */
	int tmp = make_segment(4096);
	char *p = shmat(tmp, NULL, 0);
	if (p == (void *)-1)
		err(1, "shmat");
	shmdt(p);
	shmctl(tmp, IPC_RMID, NULL);

	/* Handed to a child, which removes it: not a leak. */
	int shared = make_segment(16384);
	pid_t child = fork();
	if (child < 0)
		err(1, "fork");
	if (child == 0) {
		char *q = shmat(shared, NULL, 0);
		if (q != (void *)-1)
			shmdt(q);
		shmctl(shared, IPC_RMID, NULL);
		_exit(0);
	}
	waitpid(child, NULL, 0);

	int cache = open_cache();

	char name[64], scratch[64];
	snprintf(name, sizeof name, "/leaky-%d", (int)getpid());
	snprintf(scratch, sizeof scratch, "/leaky-scratch-%d", (int)getpid());
	publish_stats(name);
	publish_stats(scratch);
	shm_unlink(scratch);

	printf("leaky: left SysV segment %d and POSIX object %s behind\n", cache, name);
	return 0;
}
