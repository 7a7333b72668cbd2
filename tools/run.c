/* run.c - `shmkeeper run`: PROG under the library, then the report.
 *
 * The exit status is PROG's (128+signo when a signal killed it, as shells
 * report it), or --error-exitcode's N when leaks remain; 125/126/127 when
 * PROG could not be started, as env(1) and timeout(1) do.
 */
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "tools/tool.h"
#include "tools/sweep.h"

#ifndef SHMK_LIBDIR
#define SHMK_LIBDIR "/usr/local/lib"
#endif

static pid_t child;

/* SIGTERM and SIGHUP sent to the tool are meant for the program; the tool
 * reports once the program has gone. */
static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static char *find_library(void)
{
	const char *env = getenv("SHMKEEPER_LIB");
	char self[PATH_MAX], cand[PATH_MAX + 32];
	char *abs;
	ssize_t n;

	if (env && *env) {
		abs = realpath(env, NULL);
		if (!abs)
			err(EXIT_RUN_FAILED, "SHMKEEPER_LIB=%s", env);
		return abs;
	}
	/* The build tree: libtool leaves the library in .libs beside us. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(cand, sizeof(cand), "%s/.libs/libshmkeeper.so", self);
			if (access(cand, R_OK) == 0 && (abs = realpath(cand, NULL)))
				return abs;
		}
	}
	snprintf(cand, sizeof(cand), "%s/libshmkeeper.so", SHMK_LIBDIR);
	if (access(cand, R_OK) == 0 && (abs = realpath(cand, NULL)))
		return abs;
	errx(EXIT_RUN_FAILED, "cannot find libshmkeeper.so (looked beside the tool and in %s; "
	     "set SHMKEEPER_LIB)", SHMK_LIBDIR);
}

/* PROG as execvp will find it, into buf. Returns: buf, or NULL. */
static const char *find_prog(const char *prog, char *buf, size_t len)
{
	struct stat st;

	if (strchr(prog, '/'))
		return snprintf(buf, len, "%s", prog) < (int)len ? buf : NULL;
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/bin:/usr/bin";
	for (const char *p = path; ; p++) {
		const char *e = strchrnul(p, ':');
		int n = snprintf(buf, len, "%.*s%s%s", (int)(e - p), p, e == p ? "" : "/", prog);
		if (n > 0 && (size_t)n < len && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(buf, X_OK) == 0)
			return buf;
		if (!*e)
			return NULL;
		p = e;
	}
}

/* Why LD_PRELOAD cannot reach PROG itself, or NULL. A static executable has
 * no dynamic loader to preload anything; one that gains privileges at exec
 * (set-user-ID, set-group-ID, file capabilities) runs in the loader's secure
 * mode, where the library, if loaded at all, stays inert. Programs PROG starts
 * are recorded as usual. Read with libelf: a static-pie (ET_DYN) and a static
 * ET_EXEC both lack PT_INTERP. */
static const char *preload_blind(const char *prog)
{
	char path[PATH_MAX];
	struct stat st;
	const char *why = NULL;

	if (!find_prog(prog, path, sizeof path) || stat(path, &st) < 0)
		return NULL;   /* execvp will say what is wrong */
	if (((st.st_mode & S_ISUID) && st.st_uid != getuid()) ||
	    ((st.st_mode & S_ISGID) && st.st_gid != getgid()))
		return "it is set-user-ID or set-group-ID, and the library stays inert in it";
	if (getxattr(path, "security.capability", NULL, 0) > 0)
		return "it has file capabilities, and the library stays inert in it";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	GElf_Ehdr eh;
	size_t n;
	if (e && elf_kind(e) == ELF_K_ELF && gelf_getehdr(e, &eh) &&
	    (eh.e_type == ET_EXEC || eh.e_type == ET_DYN) && elf_getphdrnum(e, &n) == 0) {
		bool interp = false;
		for (size_t i = 0; i < n && !interp; i++) {
			GElf_Phdr ph;
			interp = gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_INTERP;
		}
		if (!interp)
			why = "it is statically linked, and LD_PRELOAD cannot reach it";
	}
	elf_end(e);
	close(fd);
	return why;
}

/* PROG's descendants may outlive it and still change the picture: Python's
 * resource_tracker unlinks what the program left only after the program has
 * exited. As a subreaper the tool inherits the orphans, and waits for them
 * (ECHILD: none left) up to `secs` before it reports.
 * Returns: true when all are gone. */
static bool wait_descendants(int secs)
{
	struct timespec now, end, nap = { 0, 20 * 1000 * 1000 };
	int st;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += secs;
	for (;;) {
		pid_t p = waitpid(-1, &st, WNOHANG);

		if (p > 0)
			continue;
		if (p < 0 && errno == ECHILD)
			return true;
		if (p < 0 && errno != EINTR)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec ||
		    (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
			return false;
		nanosleep(&nap, NULL);
	}
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);

	if (!d) {
		warn("%s", dir);
		return;
	}
	for (struct dirent *de; (de = readdir(d)); ) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* A directory someone made in a shared log directory: only
		 * when empty (nothing of theirs is followed). */
		if (unlinkat(dirfd(d), de->d_name, 0) < 0 &&
		    (errno != EISDIR || unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0))
			warn("%s/%s", dir, de->d_name);
	}
	closedir(d);
	if (rmdir(dir) < 0)
		warn("%s", dir);
}

/* The temporary log directory, and the directory it sits in when the tool
 * runs as root (see make_log_dir). */
static void remove_temp_dir(const char *dir)
{
	remove_dir(dir);
	if (geteuid() == 0) {
		char *up = strdup(dir), *slash = up ? strrchr(up, '/') : NULL;
		if (slash) {
			*slash = '\0';
			if (rmdir(up) < 0)
				warn("%s", up);
		}
		free(up);
	}
}

static char *make_log_dir(const struct options *o, bool *temp)
{
	char *abs;

	*temp = !o->log_dir;
	if (o->log_dir) {
		if (mkdir(o->log_dir, 0777) < 0 && errno != EEXIST)
			err(EXIT_RUN_FAILED, "%s", o->log_dir);
		abs = realpath(o->log_dir, NULL);
		if (!abs)
			err(EXIT_RUN_FAILED, "%s", o->log_dir);
		return abs;
	}
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	abs = malloc(strlen(tmp) + 40);
	if (!abs)
		err(EXIT_RUN_FAILED, "out of memory");
	sprintf(abs, "%s/shmkeeper.XXXXXX", tmp);
	if (!mkdtemp(abs))
		err(EXIT_RUN_FAILED, "mkdtemp %s", abs);
	if (geteuid() != 0)
		return abs;
	/* Run as root, PROG may drop privileges (a server's workers) and
	 * still make the calls to record: a 0700 directory of root's left
	 * them unable to log, and their leaks out of the report. They log
	 * into a sticky directory that anyone may write to but no one else
	 * list (1733, as the library wants a shared one: its files are 0600,
	 * O_EXCL, O_NOFOLLOW), under a random name inside a 0711 directory,
	 * so that no other user can find it to plant a log in it. */
	size_t n = strlen(abs);
	strcpy(abs + n, "/XXXXXX");
	if (!mkdtemp(abs)) {
		abs[n] = '\0';
		rmdir(abs);
		err(EXIT_RUN_FAILED, "mkdtemp %s/XXXXXX", abs);
	}
	abs[n] = '\0';
	int bad = chmod(abs, 0711);
	abs[n] = '/';
	if (bad < 0 || chmod(abs, 01733) < 0) {
		warn("chmod %s", abs);
		remove_temp_dir(abs);
		exit(EXIT_RUN_FAILED);
	}
	return abs;
}

/* A build made with --enable-sanitizers: the library needs the ASan runtime
 * loaded before it in every program, and the tool, built the same way, has
 * it loaded already: its path goes first in LD_PRELOAD. */
static int find_asan(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, "/libasan.so")) {
		*(const char **)arg = info->dlpi_name;
		return 1;
	}
	return 0;
}

static void set_env(const char *lib, const char *dir)
{
	const char *old = getenv("LD_PRELOAD"), *asan = NULL;
	char *v;
	char *withrt = NULL;

	dl_iterate_phdr(find_asan, &asan);
	if (asan && (!old || !strstr(old, "libasan.so"))) {
		withrt = malloc(strlen(asan) + strlen(lib) + 2);
		if (!withrt)
			err(EXIT_RUN_FAILED, "out of memory");
		sprintf(withrt, "%s:%s", asan, lib);
		lib = withrt;
	}

	if (setenv("SHMKEEPER_LOG_DIR", dir, 1) < 0)
		err(EXIT_RUN_FAILED, "setenv");
	/* Ours first, so that our wrappers see the calls before any other
	 * preloaded library forwards them. */
	if (old && *old) {
		v = malloc(strlen(lib) + strlen(old) + 2);
		if (!v)
			err(EXIT_RUN_FAILED, "out of memory");
		sprintf(v, "%s:%s", lib, old);
	} else
		v = strdup(lib);
	if (!v || setenv("LD_PRELOAD", v, 1) < 0)
		err(EXIT_RUN_FAILED, "setenv");
	free(v);
	free(withrt);
}

int cmd_run(const struct options *o, char **argv)
{
	char *lib = find_library();
	bool temp;
	char *dir = make_log_dir(o, &temp);
	int pfd[2], status, code, exec_err = 0;
	struct sigaction ign = { .sa_handler = SIG_IGN }, fwd = { .sa_handler = forward };
	struct sigaction old_int, old_quit;
	unsigned leaks;

	const char *blind = preload_blind(argv[0]);
	if (blind)
		warnx("warning: %s: %s: nothing it does itself is recorded "
		      "(programs it starts are)", argv[0], blind);
	set_env(lib, dir);
	if (cleanup_opts.policy && setenv("SHMKEEPER_CLEANUP", cleanup_opts.policy, 1) < 0)
		err(EXIT_RUN_FAILED, "setenv");
	/* --reap removes only what processes started after this moment made. */
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t run_start = (uint64_t)t0.tv_sec * 1000000000u + (uint64_t)t0.tv_nsec;
	if (cleanup_opts.reap && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		err(EXIT_RUN_FAILED, "--reap: prctl(PR_SET_CHILD_SUBREAPER)");
	if (o->wait_children > 0 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		warn("prctl(PR_SET_CHILD_SUBREAPER): processes PROG leaves running are not waited for");
	if (pipe2(pfd, O_CLOEXEC) < 0)
		err(EXIT_RUN_FAILED, "pipe");
	fflush(NULL);
	child = fork();
	if (child < 0)
		err(EXIT_RUN_FAILED, "fork");
	if (child == 0) {
		close(pfd[0]);
		execvp(argv[0], argv);
		exec_err = errno;
		if (write(pfd[1], &exec_err, sizeof(exec_err)) < 0)
			_exit(EXIT_RUN_FAILED);
		_exit(exec_err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
	}
	close(pfd[1]);
	/* As system(3) does: ^C and ^\ go to the program, the tool outlives it
	 * to write the report. */
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	sigaction(SIGTERM, &fwd, NULL);
	sigaction(SIGHUP, &fwd, NULL);
	ssize_t k;
	while ((k = read(pfd[0], &exec_err, sizeof(exec_err))) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	/* As the subreaper, orphans of PROG's tree are our children too: reap
	 * them as they end, not when PROG does. A zombie keeps its pid and
	 * counts against RLIMIT_NPROC, and a test suite that daemonises
	 * thousands of helpers would run out of processes under us. */
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, 0);

		if (p == child) {
			status = st;
			break;
		}
		if (p < 0 && errno != EINTR)
			err(EXIT_RUN_FAILED, "waitpid");
	}
	/* --reap: the tree has ended only when no descendant is left, however
	 * long daemons live (as the subreaper, every orphan is our child). */
	if (k != (ssize_t)sizeof(exec_err) && cleanup_opts.reap)
		while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
			;
	if (k != (ssize_t)sizeof(exec_err) && o->wait_children > 0 &&
	    !wait_descendants(o->wait_children))
		warnx("processes started by %s still run after %d s (--wait-children): "
		      "they are reported as far as they have got", argv[0], o->wait_children);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (k == (ssize_t)sizeof(exec_err)) {
		warnx("%s: %s", argv[0], strerror(exec_err));
		if (temp)
			remove_temp_dir(dir);
		free(dir);
		free(lib);
		return exec_err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
	}
	code = WIFEXITED(status) ? WEXITSTATUS(status) :
	       WIFSIGNALED(status) ? 128 + WTERMSIG(status) : EXIT_RUN_FAILED;

	/* The report's own troubles were said on stderr; the status is PROG's.
	 * No logs is normal: the library opens its log at the first event. */
	model_quiet_empty = true;
	(void)report_dir(stderr, dir, o, &leaks);
	if (cleanup_opts.reap)
		reap_after(stderr, dir, run_start);
	if (temp)
		remove_temp_dir(dir);
	free(dir);
	free(lib);
	if (leaks && o->error_exitcode)
		return o->error_exitcode;
	return code;
}
