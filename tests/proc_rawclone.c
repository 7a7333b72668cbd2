/* proc_rawclone - children that no atfork handler announces, for
 * tests/proc_rawclone.sh.
 *
 * Usage: proc_rawclone HOW END PRIOR KEY
 *   HOW    raw     syscall(SYS_clone, SIGCHLD, 0, ...) (LTP's SAFE_CLONE)
 *          clone3  syscall(SYS_clone3) with exit_signal SIGCHLD
 *          glibc   glibc's clone(fn, stack, SIGCHLD, arg)
 *          mt      raw, and the child starts a thread that makes the first
 *                  call of the child, then makes its own (the tid cache of
 *                  the thread that did not run the reset)
 *          inherit raw; the parent attaches the segment before the clone,
 *                  the child detaches what it inherited
 *          newipc  raw with CLONE_NEWIPC; the parent attaches a segment of
 *                  KEY+3 before the clone (printed as "pshmid ID"), the
 *                  child makes its own in its namespace (exits 77 without
 *                  the privilege)
 *          thread  a pthread of the parent, not a process
 *          vmthread glibc's clone with CLONE_VM|CLONE_THREAD|..., no TLS of
 *                  its own: the same process too
 *   END    rm: the child removes the segment; leak: it does not
 *   PRIOR  1: the parent records a create/remove of KEY+1 before the clone
 *          (its log is open, its pid and tid are cached); 0: not
 *   KEY    SysV key (decimal) of the segment the child creates
 * Prints "parent PID", "child PID" (the thread's tid for the thread modes),
 * "shmid ID" for the segment, and "thread TID" in mt, one a line.
 * Exits 0, or 1 with a message when a call failed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static key_t key;
static int leak, shmid = -1;
static volatile int done;

static void die(const char *what)
{
	fprintf(stderr, "proc_rawclone: %s: %s\n", what, strerror(errno));
	_exit(1);
}

/* create, attach, detach, and remove unless leaking */
static int cycle(key_t k, int remove)
{
	int id = shmget(k, 4096, IPC_CREAT | IPC_EXCL | 0600);
	if (id < 0)
		return -1;
	void *p = shmat(id, NULL, 0);
	if (p == (void *)-1 || shmdt(p) != 0)
		return -1;
	if (remove && shmctl(id, IPC_RMID, NULL) != 0)
		return -1;
	return id;
}

static void *thread_fn(void *arg)
{
	(void)arg;
	printf("thread %ld\n", (long)syscall(SYS_gettid));
	fflush(stdout);
	if (cycle(key + 2, 1) < 0)
		die("thread's segment");
	return NULL;
}

/* The child's side. Returns the exit status. */
static int child(const char *how)
{
	printf("child %ld\n", (long)syscall(SYS_getpid));
	fflush(stdout);
	if (!strcmp(how, "mt")) {
		pthread_t t;
		if (pthread_create(&t, NULL, thread_fn, NULL) != 0 || pthread_join(t, NULL) != 0)
			die("pthread");
	}
	if (!strcmp(how, "inherit"))
		return 0;    /* the caller detaches what came through the clone */
	int id = cycle(key, !leak);
	if (id < 0)
		die("child's segment");
	printf("shmid %d\n", id);
	fflush(stdout);
	return 0;
}

static int glibc_child(void *arg)
{
	_exit(child(arg));
}

static int vmthread_fn(void *arg)
{
	(void)arg;
	/* Shares the parent thread's TLS: only the calls under test. */
	shmid = cycle(key, !leak);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	return 0;
}

static void *pthread_fn(void *arg)
{
	(void)arg;
	printf("child %ld\n", (long)syscall(SYS_gettid));
	fflush(stdout);
	shmid = cycle(key, !leak);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: proc_rawclone HOW rm|leak 0|1 KEY\n");
		return 2;
	}
	const char *how = argv[1];
	leak = !strcmp(argv[2], "leak");
	key = (key_t)strtol(argv[4], NULL, 10);
	printf("parent %ld\n", (long)getpid());
	fflush(stdout);
	if (atoi(argv[3]) && cycle(key + 1, 1) < 0)
		die("parent's segment");

	static char stack[256 * 1024] __attribute__((aligned(16)));
	void *top = stack + sizeof stack;
	if (!strcmp(how, "thread") || !strcmp(how, "vmthread")) {
		if (how[0] == 't') {
			pthread_t t;
			if (pthread_create(&t, NULL, pthread_fn, NULL) != 0 ||
			    pthread_join(t, NULL) != 0)
				die("pthread");
		} else {
			int fl = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
				 CLONE_THREAD | CLONE_SYSVSEM;
			long t = clone(vmthread_fn, top, fl, NULL);
			if (t < 0)
				die("clone(CLONE_VM)");
			printf("child %ld\n", t);
			fflush(stdout);
			while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
				;   /* no TLS, no call: the clone runs on ours */
		}
		if (shmid < 0)
			die("thread's segment");
		printf("shmid %d\n", shmid);
		return 0;
	}

	void *att = NULL;
	int newipc = !strcmp(how, "newipc");
	if (!strcmp(how, "inherit") || newipc) {
		shmid = shmget(key + 3 * newipc, 4096, IPC_CREAT | IPC_EXCL | 0600);
		if (shmid < 0 || (att = shmat(shmid, NULL, 0)) == (void *)-1)
			die("parent's attach");
		printf("%s %d\n", newipc ? "pshmid" : "shmid", shmid);
		fflush(stdout);
	}
	long pid;
	if (!strcmp(how, "glibc")) {
		pid = clone(glibc_child, top, SIGCHLD, (void *)how);
	} else if (!strcmp(how, "clone3")) {
		struct clone_args ca;
		memset(&ca, 0, sizeof ca);
		ca.exit_signal = SIGCHLD;
		pid = syscall(SYS_clone3, &ca, sizeof ca);
		if (pid < 0 && errno == ENOSYS) {
			fprintf(stderr, "proc_rawclone: clone3: not in this kernel\n");
			return 77;
		}
	} else {
		pid = syscall(SYS_clone, SIGCHLD | (newipc ? CLONE_NEWIPC : 0), NULL, NULL, NULL, NULL);
		if (pid < 0 && newipc && errno == EPERM) {
			shmdt(att);
			shmctl(shmid, IPC_RMID, NULL);
			fprintf(stderr, "proc_rawclone: CLONE_NEWIPC: not permitted\n");
			return 77;
		}
	}
	if (pid < 0)
		die("clone");
	if (pid == 0) {
		int st = child(how);
		if (att && !newipc && shmdt(att) != 0)
			die("child's detach");
		_exit(st);
	}
	int st;
	if (waitpid((pid_t)pid, &st, 0) != (pid_t)pid)
		die("waitpid");
	if (att && (shmdt(att) != 0 || shmctl(shmid, IPC_RMID, NULL) != 0))
		die("parent's removal");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
