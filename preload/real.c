#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/real.h"

SK_HOTDATA struct sk_real sk_real;

/* dlsym may call calloc, and a malloc that is itself interposed may call
 * mmap before sk_real.mmap is known: these two forward to the kernel
 * directly meanwhile (glibc's own mmap and munmap are bare syscalls). */
static void *sys_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	return (void *)syscall(SYS_mmap, a, l, p, f, fd, o);
}

static int sys_munmap(void *a, size_t l)
{
	return (int)syscall(SYS_munmap, a, l);
}

static int sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

#define RESOLVE(fn, fallback)                                                  \
	do {                                                                   \
		if (!sk_real.fn) {                                             \
			void *p_ = dlsym(RTLD_NEXT, #fn);                       \
			__atomic_store_n((void **)&sk_real.fn,                 \
					 p_ ? p_ : (void *)(fallback), __ATOMIC_RELEASE); \
		}                                                              \
	} while (0)

/* Per thread: two threads resolving at once store the same values, but a
 * thread re-entered from inside dlsym must not call dlsym again. */
static SK_TLS int resolving;

void sk_real_resolve(void)
{
	if (resolving)
		return;
	resolving = 1;
	if (!sk_real.mmap)
		sk_real.mmap = sys_mmap;       /* until dlsym answers */
	if (!sk_real.munmap)
		sk_real.munmap = sys_munmap;
	if (!sk_real.close)
		sk_real.close = sys_close;
	void *p;
	if ((p = dlsym(RTLD_NEXT, "mmap")))
		__atomic_store_n((void **)&sk_real.mmap, p, __ATOMIC_RELEASE);
	if ((p = dlsym(RTLD_NEXT, "munmap")))
		__atomic_store_n((void **)&sk_real.munmap, p, __ATOMIC_RELEASE);
	if ((p = dlsym(RTLD_NEXT, "close")))
		__atomic_store_n((void **)&sk_real.close, p, __ATOMIC_RELEASE);
	RESOLVE(shmget, NULL);
	RESOLVE(shmat, NULL);
	RESOLVE(shmdt, NULL);
	RESOLVE(shmctl, NULL);
	RESOLVE(shm_open, NULL);
	RESOLVE(shm_unlink, NULL);
	RESOLVE(mremap, NULL);
	RESOLVE(ftruncate, NULL);
	RESOLVE(fallocate, NULL);
	RESOLVE(posix_fallocate, NULL);
	RESOLVE(close_range, NULL);
	RESOLVE(pipe2, NULL);
	RESOLVE(dup, NULL);
	RESOLVE(dup2, NULL);
	RESOLVE(dup3, NULL);
	RESOLVE(fcntl, NULL);
	RESOLVE(fork, NULL);
	RESOLVE(_Fork, NULL);
	RESOLVE(posix_spawn, NULL);
	RESOLVE(posix_spawnp, NULL);
	RESOLVE(execve, NULL);
	RESOLVE(execv, NULL);
	RESOLVE(execvp, NULL);
	RESOLVE(execvpe, NULL);
	RESOLVE(fexecve, NULL);
	RESOLVE(_exit, NULL);
	RESOLVE(_Exit, NULL);
	RESOLVE(signal, NULL);
	RESOLVE(sigaction, NULL);
	RESOLVE(dlclose, NULL);
	resolving = 0;
}
