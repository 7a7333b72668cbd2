/* A peer killed while it holds a segment's lock: the next locker gets the
 * lock and is told (EOWNERDEAD), and the lock works normally after that. Also:
 * a fork child does not share its parent's hold on the lock (an OFD lock
 * belongs to the open file description, which fork shares).
 * Exit 0 when all hold, 1 otherwise. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkeeper.h>

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "ring_lockdeath: %s: line %d: %s\n", name, __LINE__, #cond); \
	return 1; } } while (0)

static int one(enum shmk_impl impl, const char *name, int decode_in_child)
{
	shmk_shm_desc *d = shmk_shm_new(4096, NULL, impl);
	char enc[SHMK_SHM_ENCODED_MAX], c;
	ssize_t n;
	int fds[2], st;
	pid_t pid;

	CHECK(d);
	n = shmk_shm_encode(d, enc, sizeof enc);
	CHECK(n > 0 && pipe(fds) == 0);

	/* 1. the parent holds the lock: a fork child cannot take it */
	CHECK(shmk_shm_lock(d) == 0);
	pid = fork();
	if (pid == 0)
		_exit(shmk_shm_trylock(d) == EAGAIN ? 0 : 1);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(shmk_shm_unlock(d) == 0);

	/* 2. a child takes the lock and is killed holding it */
	pid = fork();
	if (pid == 0) {
		shmk_shm_desc *p = decode_in_child ? shmk_shm_decode(enc, (size_t)n, 4096) : d;

		if (!p || shmk_shm_lock(p) != 0)
			_exit(1);
		if (write(fds[1], "L", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	CHECK(read(fds[0], &c, 1) == 1 && c == 'L');
	CHECK(shmk_shm_trylock(d) == EAGAIN);
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st));
	CHECK(shmk_shm_lock(d) == EOWNERDEAD);
	CHECK(shmk_shm_unlock(d) == 0);
	CHECK(shmk_shm_lock(d) == 0);
	CHECK(shmk_shm_unlock(d) == 0);
	CHECK(shmk_shm_trylock(d) == 0);
	CHECK(shmk_shm_unlock(d) == 0);
	close(fds[0]);
	close(fds[1]);
	shmk_shm_done(d);
	printf("%s: ok\n", name);
	return 0;
}

int main(void)
{
	int fails = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	fails += one(SHMK_IMPL_POSIX, "posix, inherited descriptor", 0);
	fails += one(SHMK_IMPL_POSIX, "posix, decoded descriptor", 1);
	fails += one(SHMK_IMPL_SYSV, "sysv, inherited descriptor", 0);
	fails += one(SHMK_IMPL_SYSV, "sysv, decoded descriptor", 1);
	return fails ? 1 : 0;
}
