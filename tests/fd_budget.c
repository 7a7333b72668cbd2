/* The program's fd budget, with and without the library (tests/fd_budget.sh).
 * libunwind keeps a pipe open for ever from its first use (core/record.c);
 * the library must keep it where the program cannot allocate.
 *
 *   fd_budget budget NAME   at a soft RLIMIT_NOFILE of 256: a first event,
 *                           then prints, on stdout, what the program can see
 *                           below its limit: fds open, F_DUPFD at limit-16,
 *                           open() calls before EMFILE, the same after
 *                           close_range(3, ~0U, 0) with F_GETFD on every
 *                           number below the limit, and the soft limit.
 *                           stdout must be the same with and without the
 *                           library. On stderr "lib N" for each fd at or
 *                           above the limit (the library's), before and
 *                           after the close_range. The last event leaks the
 *                           POSIX object NAME from fdb_after_closerange.
 *   fd_budget raise NAME    preloaded only: the library's fds (pipes at or
 *                           above the limit) are put back there, at the
 *                           same limit, after close() and close_range; the
 *                           program then raises its limit and opens past
 *                           them (never getting one); leaks NAME from
 *                           fdb_after_raise; then dup2s its own pipe over
 *                           them, and the library must leave its data alone.
 *   fd_budget lower NAME    preloaded only: after the first event the
 *                           program lowers both limits to 200, under the
 *                           library's fds, and closes every fd: the pipe
 *                           cannot be put back (nor can the program have
 *                           those numbers); leaks NAME from fdb_after_lower,
 *                           whose backtrace must still be taken.
 *   fd_budget threads       preloaded only: 4 threads open and close while
 *                           the main thread closes a library fd 300 times
 *                           (each re-creation raises the soft limit for a
 *                           few syscalls): no thread gets an fd at or above
 *                           the limit while fds below it are free, and the
 *                           limit and the library's fds are as before.
 * Exit 0 on success, 1 with a message on stderr, 77 if the hard limit is
 * too low to run (below 256; the shell test wants 512). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define LIM 256

static int failed;

static void bad(const char *what)
{
	fprintf(stderr, "fd_budget: %s\n", what);
	failed = 1;
}

static void set_soft(rlim_t soft)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("getrlimit");
		exit(99);
	}
	rl.rlim_cur = soft;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("setrlimit");
		exit(99);
	}
}

static rlim_t soft_now(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur;
}

/* A recorded event (the first one opens the log and primes libunwind). */
static __attribute__((noinline)) void event(void)
{
	int fd = shm_open("/fd_budget_probe", O_RDWR | O_CREAT, 0600);
	if (fd < 0) {
		perror("shm_open");
		exit(99);
	}
	shm_unlink("/fd_budget_probe");
	close(fd);
}

/* Leaks NAME: the report must name this function. */
static __attribute__((noinline)) void leak(const char *name)
{
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		perror("shm_open leak");
		exit(99);
	}
	if (ftruncate(fd, 4096) != 0)
		perror("ftruncate");
	close(fd);
}

/* Distinct bodies, so that the compiler does not fold the two into one;
 * the store after the call keeps it from being a tail call. */
static volatile int sink;

static __attribute__((noinline)) void fdb_after_closerange(const char *name)
{
	leak(name);
	sink = 1;
}

static __attribute__((noinline)) void fdb_after_raise(const char *name)
{
	leak(name);
	sink = 2;
}

/* The fds open at or above `from` (the library's, in this program), and
 * the number of those below. */
static int scan(int from, int *above, int max, int *nabove)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		perror("opendir");
		exit(99);
	}
	int self = dirfd(d), below = 0;
	struct dirent *e;
	*nabove = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == self)
			continue;
		if (fd < from)
			below++;
		else if (*nabove < max)
			above[(*nabove)++] = fd;
	}
	closedir(d);
	return below;
}

static int is_pipe(int fd)
{
	char p[64], t[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, t, sizeof t - 1);
	return n > 5 && !memcmp(t, "pipe:", 5);
}

static int opens_until_emfile(void)
{
	static int fds[1 << 16];
	int n = 0;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd < 0) {
			if (errno != EMFILE)
				bad("open: not EMFILE at the end");
			break;
		}
		fds[n++] = fd;
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return n;
}

static int mode_budget(const char *name)
{
	set_soft(LIM);
	event();
	int lib[8], nlib;
	printf("fds below the limit: %d\n", scan(LIM, lib, 8, &nlib));
	for (int i = 0; i < nlib; i++)
		fprintf(stderr, "lib %d\n", lib[i]);
	int d = fcntl(0, F_DUPFD, LIM - 16);
	printf("F_DUPFD(0, %d) = %d\n", LIM - 16, d);
	if (d >= 0)
		close(d);
	printf("open() before EMFILE: %d\n", opens_until_emfile());
	if (close_range(3, ~0U, 0) != 0) {
		perror("close_range");
		return 99;
	}
	printf("after close_range(3, ~0U, 0), open below the limit:");
	for (int fd = 0; fd < LIM; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			printf(" %d", fd);
	printf("\n");
	printf("open() before EMFILE: %d\n", opens_until_emfile());
	fdb_after_closerange(name);
	printf("fds below the limit: %d\n", scan(LIM, lib, 8, &nlib));
	for (int i = 0; i < nlib; i++)
		fprintf(stderr, "lib %d (after close_range)\n", lib[i]);
	printf("soft limit: %lu\n", (unsigned long)soft_now());
	return failed;
}

/* The library's fds: pipes at or above the limit, two of them. */
static void lib_fds(int lib[2], const char *when)
{
	int a[8], n;
	scan(LIM, a, 8, &n);
	if (n != 2 || !is_pipe(a[0]) || !is_pipe(a[1])) {
		fprintf(stderr, "fd_budget: %s: %d fds at or above %d, want libunwind's 2 pipes\n",
			when, n, LIM);
		exit(1);
	}
	lib[0] = a[0] < a[1] ? a[0] : a[1];
	lib[1] = a[0] < a[1] ? a[1] : a[0];
}

/* After the program closed the library's fds (how): an event puts them back
 * at the numbers in lib, and the soft limit is the program's again. */
static void put_back(const int lib[2], const char *how)
{
	int again[2];
	char msg[128];
	event();
	lib_fds(again, how);
	if (again[0] != lib[0] || again[1] != lib[1]) {
		snprintf(msg, sizeof msg, "%s: the pipe not put back at its numbers", how);
		bad(msg);
	}
	if (soft_now() != LIM) {
		snprintf(msg, sizeof msg, "%s: the soft limit is not the program's", how);
		bad(msg);
	}
}

static int mode_raise(const char *name)
{
	set_soft(LIM);
	event();
	int lib[2];
	lib_fds(lib, "after the first event");
	/* close: put back at the same numbers, above the limit (the
	 * library must raise the soft limit around its dup3, and lower it
	 * again). */
	for (int i = 0; i < 2; i++) {
		close(lib[i]);
		put_back(lib, "close()");
	}
	close_range((unsigned)lib[0], ~0U, 0);
	put_back(lib, "close_range");
	/* The program raises its limit and opens past the library's fds:
	 * open() skips them (the kernel's doing). */
	set_soft(LIM * 2);
	int got = 0, top = -1;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd < 0)
			break;
		if (fd == lib[0] || fd == lib[1])
			bad("open() returned the library's fd");
		if (fd > top)
			top = fd;
		got++;
		if (fd > lib[1] + 8)
			break;
	}
	if (top <= lib[1])
		bad("could not open past the library's fds");
	if (!is_pipe(lib[0]) || !is_pipe(lib[1]))
		bad("the library's fds are no longer pipes");
	fdb_after_raise(name);
	fprintf(stderr, "opened %d, up to fd %d, past the library's %d %d\n", got, top, lib[0], lib[1]);
	/* dup2 the program's own pipe over them: the library stops taking
	 * backtraces and must never read or write them. */
	int p[2];
	if (pipe2(p, O_NONBLOCK) != 0) {
		perror("pipe2");
		return 99;
	}
	if (dup2(p[0], lib[0]) < 0 || dup2(p[1], lib[1]) < 0) {
		perror("dup2");
		return 99;
	}
	if (write(p[1], "abc", 3) != 3)
		bad("write");
	for (int i = 0; i < 50; i++)
		event();
	char buf[8];
	if (read(p[0], buf, sizeof buf) != 3 || memcmp(buf, "abc", 3))
		bad("the library used the fds the program dup2'd over its own");
	return failed;
}

static __attribute__((noinline)) void fdb_after_lower(const char *name)
{
	leak(name);
	sink = 3;
}

static int mode_lower(const char *name)
{
	set_soft(LIM);
	event();
	int lib[2];
	lib_fds(lib, "after the first event");
	struct rlimit rl = { 200, 200 };
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("setrlimit");
		return 99;
	}
	close_range(3, ~0U, 0);
	for (int i = 0; i < 10; i++)
		event();
	fdb_after_lower(name);
	if (fcntl(lib[0], F_GETFD) >= 0 || fcntl(lib[1], F_GETFD) >= 0)
		fprintf(stderr, "the library's fds are back (%d %d)\n", lib[0], lib[1]);
	return failed;
}

static volatile int stop;
static int thread_high;

static void *opener(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= LIM)
			__atomic_store_n(&thread_high, fd, __ATOMIC_RELAXED);
		if (fd >= 0)
			close(fd);
	}
	return NULL;
}

static int mode_threads(void)
{
	set_soft(LIM);
	event();
	int lib[2], again[2];
	lib_fds(lib, "after the first event");
	/* Fill the table but for 16 numbers: the four threads each hold at
	 * most one, so fds below the limit stay free. */
	int n = 0;
	while (n < LIM && open("/dev/null", O_RDONLY) >= 0)
		n++;
	for (int fd = LIM - 16; fd < LIM; fd++)
		close(fd);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, opener, NULL);
	for (int i = 0; i < 300; i++) {
		close(lib[i % 2]);
		event();
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	if (thread_high) {
		fprintf(stderr, "fd_budget: a thread got fd %d, at or above the limit %d\n",
			thread_high, LIM);
		failed = 1;
	}
	if (soft_now() != LIM)
		bad("the soft limit is not the program's");
	lib_fds(again, "after the threads");
	if (again[0] != lib[0] || again[1] != lib[1])
		bad("the pipe not at its numbers");
	return failed;
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max < LIM) {
		fprintf(stderr, "fd_budget: the hard RLIMIT_NOFILE is below %d\n", LIM);
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "budget"))
		return mode_budget(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "raise"))
		return mode_raise(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "lower"))
		return mode_lower(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "threads"))
		return mode_threads();
	fprintf(stderr, "usage: fd_budget budget|raise|lower NAME | threads\n");
	return 2;
}
