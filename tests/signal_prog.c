/* signal_prog - a program that registers cleanups and ends in every way the
 * cleanup tests need. Each argument is one step, done in order:
 *
 *   reg:N          shmk_cleanup_register: the cleanup writes "cleanup N"
 *   regi:N         the same with SHMK_CLEANUP_INHERIT
 *   unreg:N        shmk_cleanup_unregister of reg:N's handle
 *   cfault         register a cleanup that dereferences NULL
 *   creg:N:SIG     reg:N, then a cleanup that sends SIG to the process
 *   handler:SIG:K  sigaction(SIG): K = ret (writes "handler SIG", returns),
 *                  info (SA_SIGINFO, checks si_signo and the ucontext),
 *                  reset (SA_RESETHAND), exit (writes, then exit(3)),
 *                  fix (SIGSEGV/SIGBUS: makes the page of `touch` writable)
 *   signal:SIG     signal(SIG, the "ret" handler)
 *   ign:SIG        sigaction(SIG, SIG_IGN)
 *   view:SIG:K     sigaction(SIG, NULL, &old) must return what this program
 *                  installed last (K: dfl, ign, ret, info, reset): "view ok"
 *   raise:SIG      raise(SIG);  kill:SIG  kill(getpid(), SIG)
 *   thread:SIG     every thread but a new one blocks SIG; the new one sends
 *                  SIG to the process and waits; main waits too
 *   tkill:SIG      pthread_kill(SIG) of a new thread that waits
 *   two:S1:S2      two threads pthread_kill themselves S1 and S2 at once
 *   segv           write through NULL;  touch  write a PROT_NONE page
 *   exit:N _exit:N _Exit:N   end so;  return:N  return N from main
 *   fork           fork; the child writes "child", exits 0; parent waits
 *   exec           exec /bin/sh -c 'echo execd'
 *   pause          sleep until a signal ends it (5 s at most, then exit 99)
 *   say:TEXT       write TEXT
 *   wait ARGS...   run this program with ARGS in a child and write how it
 *                  ended: "exit N" or "signal S core C"
 *
 * Output goes through write(2), so that it is safe in handlers and cleanups
 * and is never lost in a stdio buffer.
 */
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "include/shmkeeper.h"

static void out(const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = write(1, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void out_num(const char *pre, long v, const char *post)
{
	char buf[32];
	int i = (int)sizeof buf - 1;
	int neg = v < 0;
	unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
	buf[i] = '\0';
	do {
		buf[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (neg)
		buf[--i] = '-';
	out(pre);
	out(buf + i);
	out(post);
}

static long nums[10];
static int handles[10];
static pid_t main_pid;

static void cleanup(void *p)
{
	long n = *(long *)p;
	out_num("cleanup ", n, getpid() == main_pid ? "\n" : " in child\n");
}

static void faulty(void *p)
{
	(void)p;
	out("cleanup faults\n");
	*(volatile int *)(uintptr_t)64 = 1;   /* not NULL: UBSan would stop it first */
	out("not reached\n");
}

static int send_sig;

static void sender(void *p)
{
	out_num("cleanup ", *(long *)p, "");
	out_num(" sends ", send_sig, "\n");
	kill(getpid(), send_sig);
}

static void *volatile touch_page;

static void h_ret(int sig)
{
	out_num("handler ", sig, "\n");
}

static void h_info(int sig, siginfo_t *si, void *uc)
{
	ucontext_t *u = uc;
	if (si && si->si_signo == sig && u)
		out_num("handler ", sig, " info\n");
	else
		out_num("handler ", sig, " BAD info\n");
}

static void h_exit(int sig)
{
	out_num("handler ", sig, " exits\n");
	exit(3);
}

static void h_fix(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	out_num("handler ", sig, " fixes\n");
	if (touch_page && si->si_addr == touch_page)
		mprotect(touch_page, 4096, PROT_READ | PROT_WRITE);
	else
		_exit(97);   /* not the fault this program made */
}

static int parse_sig(const char *s)
{
	return atoi(s);
}

static void install(int sig, const char *k)
{
	struct sigaction a;
	memset(&a, 0, sizeof a);
	sigemptyset(&a.sa_mask);
	if (strcmp(k, "ret") == 0) {
		a.sa_handler = h_ret;
	} else if (strcmp(k, "info") == 0) {
		a.sa_sigaction = h_info;
		a.sa_flags = SA_SIGINFO;
	} else if (strcmp(k, "reset") == 0) {
		a.sa_handler = h_ret;
		a.sa_flags = SA_RESETHAND;
	} else if (strcmp(k, "exit") == 0) {
		a.sa_handler = h_exit;
	} else if (strcmp(k, "fix") == 0) {
		a.sa_sigaction = h_fix;
		a.sa_flags = SA_SIGINFO;
	} else {
		fprintf(stderr, "signal_prog: unknown handler %s\n", k);
		exit(100);
	}
	sigaddset(&a.sa_mask, SIGUSR2);    /* a mask, to check it comes back */
	if (sigaction(sig, &a, NULL) < 0) {
		perror("sigaction");
		exit(100);
	}
}

static void view(int sig, const char *k)
{
	struct sigaction o;
	memset(&o, 0xa5, sizeof o);
	if (sigaction(sig, NULL, &o) < 0) {
		perror("sigaction");
		exit(100);
	}
	int ok;
	if (strcmp(k, "dfl") == 0)
		ok = o.sa_handler == SIG_DFL;
	else if (strcmp(k, "ign") == 0)
		ok = o.sa_handler == SIG_IGN;
	else if (strcmp(k, "ret") == 0)
		ok = o.sa_handler == h_ret && !(o.sa_flags & SA_SIGINFO) &&
		     sigismember(&o.sa_mask, SIGUSR2);
	else if (strcmp(k, "reset") == 0)   /* fired: SIG_DFL, flags kept */
		ok = o.sa_handler == SIG_DFL && (o.sa_flags & SA_RESETHAND);
	else if (strcmp(k, "info") == 0)
		ok = o.sa_sigaction == h_info && (o.sa_flags & SA_SIGINFO) &&
		     sigismember(&o.sa_mask, SIGUSR2);
	else if (strcmp(k, "signal") == 0)  /* installed by signal(): BSD flags */
		ok = o.sa_handler == h_ret && (o.sa_flags & SA_RESTART);
	else
		ok = 0;
	out(ok ? "view ok\n" : "view BAD\n");
}

static void *waiter(void *arg)
{
	int sig = (int)(long)arg;
	if (sig) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, sig);
		pthread_sigmask(SIG_UNBLOCK, &s, NULL);  /* the only taker */
		kill(getpid(), sig);
	}
	for (int i = 0; i < 500; i++)
		usleep(10000);
	out("thread timed out\n");
	_exit(98);
}

static pthread_barrier_t bar;

static void *self_killer(void *arg)
{
	int sig = (int)(long)arg;
	pthread_barrier_wait(&bar);
	pthread_kill(pthread_self(), sig);
	for (int i = 0; i < 500; i++)
		usleep(10000);
	_exit(98);
}

static void block_sig(int sig)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static int do_wait(char **argv)
{
	pid_t p = fork();
	if (p == 0) {
		execv("/proc/self/exe", argv - 1);   /* argv[-1] is "wait": any name */
		_exit(127);
	}
	int st;
	if (waitpid(p, &st, 0) < 0)
		return 100;
	if (WIFEXITED(st))
		out_num("exit ", WEXITSTATUS(st), "\n");
	else if (WIFSIGNALED(st)) {
		out_num("signal ", WTERMSIG(st), "");
		out_num(" core ", WCOREDUMP(st) ? 1 : 0, "\n");
	}
	return 0;
}

int main(int argc, char **argv)
{
	main_pid = getpid();
	for (int i = 1; i < argc; i++) {
		char *a = argv[i], *c1 = strchr(a, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		const char *arg1 = c1 ? c1 + 1 : "";
		if (strcmp(a, "wait") == 0)
			return do_wait(argv + i + 1);
		if (!strncmp(a, "reg:", 4) || !strncmp(a, "regi:", 5)) {
			int n = atoi(arg1);
			nums[n] = n;
			handles[n] = shmk_cleanup_register_flags(cleanup, &nums[n],
								 a[3] == 'i' ? SHMK_CLEANUP_INHERIT : 0);
			if (handles[n] < 0) {
				perror("shmk_cleanup_register");
				return 100;
			}
		} else if (!strncmp(a, "unreg:", 6)) {
			if (shmk_cleanup_unregister(handles[atoi(arg1)]) < 0) {
				perror("shmk_cleanup_unregister");
				return 100;
			}
		} else if (!strncmp(a, "creg:", 5) && c2) {
			int n = atoi(arg1);
			nums[n] = n;
			send_sig = atoi(c2 + 1);
			if (shmk_cleanup_register(cleanup, &nums[n]) < 0 ||
			    shmk_cleanup_register(sender, &nums[n]) < 0)
				return 100;
		} else if (!strcmp(a, "cfault")) {
			if (shmk_cleanup_register(faulty, NULL) < 0)
				return 100;
		} else if (!strncmp(a, "handler:", 8) && c2) {
			*c2 = '\0';
			install(parse_sig(arg1), c2 + 1);
		} else if (!strncmp(a, "signal:", 7)) {
			if (signal(parse_sig(arg1), h_ret) == SIG_ERR)
				return 100;
		} else if (!strncmp(a, "ign:", 4)) {
			struct sigaction ig;
			memset(&ig, 0, sizeof ig);
			ig.sa_handler = SIG_IGN;
			sigaction(parse_sig(arg1), &ig, NULL);
		} else if (!strncmp(a, "view:", 5) && c2) {
			*c2 = '\0';
			view(parse_sig(arg1), c2 + 1);
		} else if (!strncmp(a, "raise:", 6)) {
			raise(parse_sig(arg1));
		} else if (!strncmp(a, "kill:", 5)) {
			kill(getpid(), parse_sig(arg1));
		} else if (!strncmp(a, "thread:", 7)) {
			pthread_t t;
			/* Blocked here and inherited; the new thread unblocks it. */
			block_sig(parse_sig(arg1));
			pthread_create(&t, NULL, waiter, (void *)(long)parse_sig(arg1));
			pthread_join(t, NULL);
		} else if (!strncmp(a, "tkill:", 6)) {
			pthread_t t;
			pthread_create(&t, NULL, waiter, (void *)0L);
			usleep(20000);
			pthread_kill(t, parse_sig(arg1));
			pthread_join(t, NULL);
		} else if (!strncmp(a, "two:", 4) && c2) {
			pthread_t t1, t2;
			*c2 = '\0';
			pthread_barrier_init(&bar, NULL, 2);
			pthread_create(&t1, NULL, self_killer, (void *)(long)parse_sig(arg1));
			pthread_create(&t2, NULL, self_killer, (void *)(long)parse_sig(c2 + 1));
			pthread_join(t1, NULL);
		} else if (!strcmp(a, "segv")) {
			*(volatile int *)((uintptr_t)argc * 64) = 0;   /* near 0, aligned: UBSan lets it fault */
		} else if (!strcmp(a, "touch")) {
			touch_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			*(volatile int *)touch_page = 1;
			out("touched\n");
		} else if (!strncmp(a, "exit:", 5)) {
			exit(atoi(arg1));
		} else if (!strncmp(a, "_exit:", 6)) {
			_exit(atoi(arg1));
		} else if (!strncmp(a, "_Exit:", 6)) {
			_Exit(atoi(arg1));
		} else if (!strncmp(a, "return:", 7)) {
			return atoi(arg1);
		} else if (!strcmp(a, "fork")) {
			pid_t p = fork();
			if (p == 0) {
				out("child\n");
				exit(0);
			}
			int st;
			waitpid(p, &st, 0);
			out("parent\n");
		} else if (!strcmp(a, "exec")) {
			execl("/bin/sh", "sh", "-c", "echo execd", (char *)NULL);
			return 100;
		} else if (!strcmp(a, "pause")) {
			for (int k = 0; k < 500; k++)
				usleep(10000);
			return 99;
		} else if (!strncmp(a, "say:", 4)) {
			out(arg1);
			out("\n");
		} else {
			fprintf(stderr, "signal_prog: unknown step %s\n", a);
			return 100;
		}
	}
	return 0;
}
