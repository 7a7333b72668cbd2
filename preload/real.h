/* The real functions behind the wrappers, resolved once with
 * dlsym(RTLD_NEXT) in the constructor and again lazily by any wrapper that
 * runs first (another library's constructor may call us before ours ran). */
#ifndef SHMK_REAL_H
#define SHMK_REAL_H

#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/types.h>

#include "core/compiler.h"

struct sk_real {
	int (*shmget)(key_t, size_t, int);
	void *(*shmat)(int, const void *, int);
	int (*shmdt)(const void *);
	int (*shmctl)(int, int, struct shmid_ds *);
	int (*shm_open)(const char *, int, mode_t);
	int (*shm_unlink)(const char *);
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	void *(*mremap)(void *, size_t, size_t, int, ...);
	int (*ftruncate)(int, off_t);
	int (*fallocate)(int, int, off_t, off_t);
	int (*posix_fallocate)(int, off_t, off_t);
	int (*close)(int);
	int (*pipe2)(int[2], int);
	int (*close_range)(unsigned, unsigned, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	pid_t (*fork)(void);
	pid_t (*_Fork)(void);
	int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			   const posix_spawnattr_t *, char *const[], char *const[]);
	int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			    const posix_spawnattr_t *, char *const[], char *const[]);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execv)(const char *, char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	/* termination (preload/signal.c) */
	void (*_exit)(int);
	void (*_Exit)(int);
	void (*(*signal)(int, void (*)(int)))(int);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	int (*dlclose)(void *);
};

extern struct sk_real sk_real;

/* Resolves every symbol; safe to call more than once and from any thread. */
void sk_real_resolve(void);

/* The pointer to the real fn, resolving on first use. */
#define REAL(fn) (sk_likely(sk_real.fn != NULL) ? sk_real.fn : (sk_real_resolve(), sk_real.fn))

#endif
