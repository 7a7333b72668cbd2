/* Process events: which process started which (fork, _Fork, posix_spawn)
 * and when an image ends by exec, so that the report knows the attachments a
 * process held: inherited by fork, dropped at exec and exit.
 *
 * vfork is not wrapped: its child shares our memory and stack, and a wrapper
 * frame cannot survive the child's return. The exec wrappers notice a vfork
 * child (its pid is not the cached one) and only forward. A process that has
 * no log yet does not open one for these events. */
#include <alloca.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/span.h"
#include "core/log.h"
#include "core/record.h"
#include "preload/real.h"
#include "preload/state.h"

enum { HOW_FORK, HOW__FORK, HOW_SPAWN, HOW_SPAWNP };

static int logging(void)
{
	return sk_on() && sk_log_is_open();
}

SK_EXPORT pid_t fork(void)
{
	pid_t ret = REAL(fork)();   /* the atfork child handler resets the child */
	if (ret > 0 && logging()) {
		SK_ENTER();
		sk_ev_proc(SK_EV_FORK, (uint32_t)ret, HOW_FORK);
		SK_LEAVE();
	}
	return ret;
}

/* _Fork runs no atfork handlers: the child is reset here. */
SK_EXPORT pid_t _Fork(void)
{
	if (sk_unlikely(!REAL(_Fork))) {
		errno = ENOSYS;
		return -1;
	}
	pid_t ret = sk_real._Fork();
	if (ret == 0) {
		int saved = errno;
		sk_child_after_fork();
		errno = saved;
	} else if (ret > 0 && logging()) {
		SK_ENTER();
		sk_ev_proc(SK_EV_FORK, (uint32_t)ret, HOW__FORK);
		SK_LEAVE();
	}
	return ret;
}

SK_EXPORT int posix_spawn(pid_t *pid, const char *path,
			  const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
			  char *const argv[], char *const envp[])
{
	pid_t child = 0;
	int ret = REAL(posix_spawn)(&child, path, fa, attr, argv, envp);
	if (pid)
		*pid = child;
	if (ret == 0 && logging()) {
		SK_ENTER();
		sk_ev_proc(SK_EV_FORK, (uint32_t)child, HOW_SPAWN);
		SK_LEAVE();
	}
	return ret;
}

SK_EXPORT int posix_spawnp(pid_t *pid, const char *file,
			   const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
			   char *const argv[], char *const envp[])
{
	pid_t child = 0;
	int ret = REAL(posix_spawnp)(&child, file, fa, attr, argv, envp);
	if (pid)
		*pid = child;
	if (ret == 0 && logging()) {
		SK_ENTER();
		sk_ev_proc(SK_EV_FORK, (uint32_t)child, HOW_SPAWNP);
		SK_LEAVE();
	}
	return ret;
}

/* ---- exec ------------------------------------------------------------- */

/* Before an exec: 1 if it was recorded (then a failure is recorded too). */
static int exec_begin(const char *path)
{
	sk_span_flush();   /* the new image does not know the removals queued */
	if (!logging())
		return 0;
	/* A vfork child runs on its parent's memory: not ours to record. */
	if ((pid_t)syscall(SYS_getpid) != sk_pid())
		return 0;
	SK_ENTER();
	sk_ev_exec(SK_EV_EXEC, path, 0);
	SK_LEAVE();
	return 1;
}

static void exec_failed(int recorded, const char *path)
{
	if (!recorded)
		return;
	SK_ENTER();
	sk_ev_exec(SK_EV_EXEC_FAILED, path, sk_errno_);
	SK_LEAVE();
}

SK_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	int rec = exec_begin(path);
	int ret = REAL(execve)(path, argv, envp);
	exec_failed(rec, path);
	return ret;
}

SK_EXPORT int execv(const char *path, char *const argv[])
{
	int rec = exec_begin(path);
	int ret = REAL(execv)(path, argv);
	exec_failed(rec, path);
	return ret;
}

SK_EXPORT int execvp(const char *file, char *const argv[])
{
	int rec = exec_begin(file);
	int ret = REAL(execvp)(file, argv);
	exec_failed(rec, file);
	return ret;
}

SK_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	int rec = exec_begin(file);
	int ret = REAL(execvpe)(file, argv, envp);
	exec_failed(rec, file);
	return ret;
}

SK_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	int rec = exec_begin("");
	int ret = REAL(fexecve)(fd, argv, envp);
	exec_failed(rec, "");
	return ret;
}

/* The list forms gather their arguments as glibc does, then go through the
 * vector forms above. */
#define GATHER_ARGS(first, last_arg, extra_env)                                \
	size_t argc_ = 1;                                                      \
	va_list ap_;                                                           \
	va_start(ap_, last_arg);                                               \
	while (va_arg(ap_, const char *))                                      \
		argc_++;                                                       \
	va_end(ap_);                                                           \
	if (argc_ > 1u << 20) {                                                \
		errno = E2BIG;                                                 \
		return -1;                                                     \
	}                                                                      \
	char **argv_ = alloca((argc_ + 1) * sizeof *argv_);                    \
	argv_[0] = (char *)(first);                                            \
	va_start(ap_, last_arg);                                               \
	for (size_t i_ = 1; i_ <= argc_; i_++)                                 \
		argv_[i_] = i_ < argc_ ? va_arg(ap_, char *) : NULL;            \
	if (extra_env) {                                                       \
		(void)va_arg(ap_, char *);                                     \
		env_ = va_arg(ap_, char **);                                   \
	}                                                                      \
	va_end(ap_);

SK_EXPORT int execl(const char *path, const char *arg, ...)
{
	char **env_ = NULL;
	GATHER_ARGS(arg, arg, 0);
	(void)env_;
	return execv(path, argv_);
}

SK_EXPORT int execlp(const char *file, const char *arg, ...)
{
	char **env_ = NULL;
	GATHER_ARGS(arg, arg, 0);
	(void)env_;
	return execvp(file, argv_);
}

SK_EXPORT int execle(const char *path, const char *arg, ...)
{
	char **env_ = NULL;
	GATHER_ARGS(arg, arg, 1);
	return execve(path, argv_, env_);
}
