/* fault_host - hosts that are hard on an interposer (issue 8, "Faults").
 * Run under the library by tests/fault_host.sh, one mode at a time; each
 * prints "calls N" (the lifetime events it expects in its own log) and
 * exits 0, or 1 with a message. A watchdog (alarm) turns a deadlock into a
 * failure.
 *
 *   threads T N   T threads, N calls each (shmget+IPC_RMID pairs)
 *   forkmt        fork 100 times while 4 threads make calls
 *   vfork         vfork then exec, vfork then _exit, posix_spawn
 *   exec K        exec itself K times, one segment per image
 *   closeall      close_range(3, ~0) and dup2 over every fd it did not open,
 *                 between calls; the data of its own fds must be untouched
 *   fds           lists /proc/self/fd after recording: no fd of the library
 *   signal S      S seconds of calls from a SIGALRM handler and from main
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void die(const char *msg)
{
	fprintf(stderr, "fault_host: %s (errno %d)\n", msg, errno);
	exit(1);
}

static void on_alarm_watchdog(int s)
{
	(void)s;
	static const char m[] = "fault_host: watchdog: no progress (deadlock?)\n";
	ssize_t w = write(2, m, sizeof m - 1);
	(void)w;
	_exit(2);
}

static void watchdog(unsigned secs)
{
	signal(SIGALRM, on_alarm_watchdog);
	alarm(secs);
}

/* One create+remove pair: two events. */
static void pair(void)
{
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (id < 0)
		die("shmget");
	if (shmctl(id, IPC_RMID, NULL) < 0)
		die("shmctl");
}

static long per_thread;
static void *worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < per_thread / 2; i++)
		pair();
	return NULL;
}

static int mode_threads(int t, long n)
{
	watchdog(120);
	pthread_t th[64];
	per_thread = n;
	for (int i = 0; i < t; i++)
		if (pthread_create(&th[i], NULL, worker, NULL))
			die("pthread_create");
	for (int i = 0; i < t; i++)
		pthread_join(th[i], NULL);
	printf("calls %ld\n", (long)t * (n / 2) * 2);
	return 0;
}

static volatile int stop;
static void *spinner(void *arg)
{
	(void)arg;
	struct timespec ts = { 0, 50000 };
	while (!stop) {
		pair();
		nanosleep(&ts, NULL);    /* busy, without filling the log */
	}
	return NULL;
}

static int mode_forkmt(void)
{
	watchdog(120);
	pair();         /* the log is open before the first fork (fork events need one) */
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, spinner, NULL);
	for (int i = 0; i < 100; i++) {
		pid_t c = fork();
		if (c < 0)
			die("fork");
		if (c == 0) {
			/* Any lock a thread held at the fork must be free here. */
			alarm(10);
			pair();
			_exit(0);
		}
		int st;
		if (waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "fault_host: fork child %d: status %#x\n", i, st);
			stop = 1;
			return 1;
		}
	}
	stop = 1;
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	printf("forks 100\n");
	return 0;
}

static int mode_vfork(void)
{
	watchdog(60);
	for (int i = 0; i < 50; i++) {
		pair();
		pid_t c = vfork();
		if (c == 0) {
			if (i % 2)
				execl("/bin/true", "true", (char *)NULL);
			_exit(0);
		}
		int st;
		if (c < 0 || waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			die("vfork child");
		pid_t sp;
		char *av[] = { (char *)"true", NULL };
		if (posix_spawnp(&sp, "true", NULL, NULL, av, environ) != 0 ||
		    waitpid(sp, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			die("posix_spawn");
	}
	printf("calls 100\n");
	return 0;
}

static int mode_exec(const char *self, int k)
{
	pair();
	printf("calls 2\n");
	fflush(stdout);
	if (k > 0) {
		char buf[16];
		snprintf(buf, sizeof buf, "%d", k - 1);
		execl(self, self, "exec", buf, (char *)NULL);
		die("execl");
	}
	return 0;
}

static int fd_is_ours(int fd, const int *ours, int n)
{
	for (int i = 0; i < n; i++)
		if (ours[i] == fd)
			return 1;
	return fd <= 2;
}

/* fds open now that this program did not open (and that are not the
 * directory being read). */
static int foreign_fds(const int *ours, int n, int *out, int max)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		die("opendir /proc/self/fd");
	int k = 0, self = dirfd(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int fd = atoi(de->d_name);
		if (fd != self && !fd_is_ours(fd, ours, n) && k < max)
			out[k++] = fd;
	}
	closedir(d);
	return k;
}

static void describe(int fd)
{
	char p[64], t[256];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, t, sizeof t - 1);
	t[n > 0 ? n : 0] = 0;
	fprintf(stderr, "fault_host: fd %d (%s) is not the program's\n", fd, t);
}

static int mode_fds(const int *inherited, int ninh)
{
	for (int i = 0; i < 50; i++)
		pair();
	int shm = shm_open("/shmk-fault-fds", O_RDWR | O_CREAT, 0600);
	shm_unlink("/shmk-fault-fds");
	void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, shm, 0);
	(void)m;
	int ours[64], n = 0;
	for (int i = 0; i < ninh; i++)
		ours[n++] = inherited[i];
	ours[n++] = shm;
	int f[64];
	int k = foreign_fds(ours, n, f, 64);
	for (int i = 0; i < k; i++)
		describe(f[i]);
	printf("calls 100\n");
	return k ? 1 : 0;
}

/* Takes every fd this program did not open and puts its own pipe there;
 * then makes calls; the pipe must be untouched. */
static int mode_closeall(const int *inherited, int ninh)
{
	watchdog(60);
	int bad = 0;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 20; i++)
			pair();
		/* close_range over everything above stderr, except what the
		 * test harness passed in. */
		if (round == 0) {
			int lo = 3;
			for (int i = 0; i < ninh; i++)
				if (inherited[i] >= lo)
					lo = inherited[i] + 1;
			if (close_range((unsigned)lo, ~0u, 0) < 0)
				die("close_range");
		}
		for (int i = 0; i < 20; i++)
			pair();
		int p[2];
		if (pipe(p) < 0)
			die("pipe");
		int ours[64], n = 0;
		for (int i = 0; i < ninh; i++)
			ours[n++] = inherited[i];
		ours[n++] = p[0];
		ours[n++] = p[1];
		int f[64], k = foreign_fds(ours, n, f, 64);
		/* The library keeps libunwind's pipe at or above the soft
		 * RLIMIT_NOFILE, where dup2 cannot reach: a program that
		 * takes those numbers raises its limit first. */
		struct rlimit rl;
		for (int i = 0; i < k; i++)
			if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)f[i] >= rl.rlim_cur &&
			    (rlim_t)f[i] < rl.rlim_max) {
				rl.rlim_cur = (rlim_t)f[i] + 1;
				setrlimit(RLIMIT_NOFILE, &rl);
			}
		/* dup2 over each: the library must not read or write them. */
		for (int i = 0; i < k; i++)
			if (dup2(i % 2 ? p[1] : p[0], f[i]) < 0)
				die("dup2");
		if (write(p[1], "abc", 3) != 3)
			die("write");
		for (int i = 0; i < 200; i++)
			pair();
		char buf[8];
		fcntl(p[0], F_SETFL, O_NONBLOCK);
		ssize_t got = read(p[0], buf, sizeof buf);
		if (got != 3 || memcmp(buf, "abc", 3) != 0) {
			fprintf(stderr, "fault_host: round %d: the library used an fd the program took "
				"over (%d of %d foreign fds): read %zd bytes\n", round, k, k, got);
			bad = 1;
		}
		for (int i = 0; i < k; i++)
			close(f[i]);
		close(p[0]);
		close(p[1]);
	}
	printf("calls %d\n", 3 * 240 * 2);
	return bad;
}

static volatile sig_atomic_t in_handler;
static volatile long handler_pairs;
static char *attach_area;

static void on_tick(int s)
{
	(void)s;
	/* The wrapped calls from a signal handler, interrupting the same
	 * calls in main: get, attach, detach, remove. */
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (id >= 0) {
		void *a = shmat(id, NULL, 0);
		if (a != (void *)-1)
			shmdt(a);
		shmctl(id, IPC_RMID, NULL);
		handler_pairs++;
	}
}

static int mode_signal(int secs)
{
	signal(SIGALRM, on_alarm_watchdog);
	alarm((unsigned)secs + 30);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_tick;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGPROF, &sa, NULL);
	/* From before the first recorded call, which opens the log: a handler
	 * may interrupt that too (signalopen makes sure it does). */
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	setitimer(ITIMER_PROF, &it, NULL);
	int first = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (first < 0 || shmctl(first, IPC_RMID, NULL) < 0)
		die("shmget/shmctl");
	(void)attach_area;
	long main_pairs = 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (id < 0)
			die("shmget");
		void *a = shmat(id, NULL, 0);
		if (a == (void *)-1)
			die("shmat");
		if (shmdt(a) < 0)
			die("shmdt");
		if (shmctl(id, IPC_RMID, NULL) < 0)
			die("shmctl");
		main_pairs++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < secs);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_PROF, &off, NULL);
	printf("handler %ld main %ld\ncalls %ld\n", handler_pairs, main_pairs,
	       4 * (handler_pairs + main_pairs) + 2);
	return handler_pairs ? 0 : 1;
}

/* The signalopen handler: on_tick's calls, and at most 200 ticks, so that a
 * machine too slow for the timer's pace cannot keep a child in its handler
 * for ever. */
static volatile sig_atomic_t ticks;
static void on_open_tick(int s)
{
	if (++ticks >= 200) {
		struct itimerval off = { { 0, 0 }, { 0, 0 } };
		setitimer(ITIMER_REAL, &off, NULL);
	}
	on_tick(s);
}

/* K children, each with a fast wall-clock timer running from before its first
 * recorded call, which opens its log: handlers interrupt that opening (on
 * the opener's own thread) and must be recorded all the same. Prints the
 * calls made and how many handler calls completed inside the first call. */
static int mode_signalopen(int k)
{
	signal(SIGALRM, on_alarm_watchdog);
	alarm(60);
	fflush(stdout);
	for (int i = 0; i < k; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			/* A wall-clock timer (high resolution; the CPU-time ones
			 * tick at the scheduler's rate, coarser than the open),
			 * in place of the watchdog the parent keeps. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);   /* the watchdog's */
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = on_open_tick;
			sa.sa_flags = SA_RESTART;
			sigaction(SIGALRM, &sa, NULL);
			struct itimerval it = { { 0, 500 }, { 0, 1 + 15 * i } };
			struct itimerval off = { { 0, 0 }, { 0, 0 } };
			setitimer(ITIMER_REAL, &it, NULL);
			int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
			long during = handler_pairs;
			if (id < 0 || shmctl(id, IPC_RMID, NULL) < 0)
				_exit(3);
			setitimer(ITIMER_REAL, &off, NULL);
			char line[64];
			int n = snprintf(line, sizeof line, "calls %ld\nduring_open %ld\n",
					 4 * handler_pairs + 2, during);
			if (write(1, line, (size_t)n) != n)
				_exit(4);
			_exit(0);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "fault_host: signalopen child %d: status %#x\n", i, st);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* fds the harness passed in count as the program's own. */
	int inherited[64], ninh = 0;
	{
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		int self = d ? dirfd(d) : -1;
		while (d && (de = readdir(d)) && ninh < 64)
			if (de->d_name[0] != '.' && atoi(de->d_name) != self)
				inherited[ninh++] = atoi(de->d_name);
		if (d)
			closedir(d);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "threads"))
		return mode_threads(atoi(argv[2]), atol(argv[3]));
	if (argc >= 2 && !strcmp(argv[1], "forkmt"))
		return mode_forkmt();
	if (argc >= 2 && !strcmp(argv[1], "vfork"))
		return mode_vfork();
	if (argc >= 3 && !strcmp(argv[1], "exec"))
		return mode_exec(argv[0], atoi(argv[2]));
	if (argc >= 2 && !strcmp(argv[1], "closeall"))
		return mode_closeall(inherited, ninh);
	if (argc >= 2 && !strcmp(argv[1], "fds"))
		return mode_fds(inherited, ninh);
	if (argc >= 3 && !strcmp(argv[1], "signal"))
		return mode_signal(atoi(argv[2]));
	if (argc >= 3 && !strcmp(argv[1], "signalopen"))
		return mode_signalopen(atoi(argv[2]));
	fprintf(stderr, "usage: fault_host threads T N | forkmt | vfork | exec K | closeall | fds | signal S | signalopen K\n");
	return 2;
}
