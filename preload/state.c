#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/record.h"
#include "core/segtab.h"
#include "core/span.h"
#include "core/util.h"
#include "preload/real.h"
#include "preload/state.h"

SK_TLS int sk_busy;
SK_HOTDATA int sk_state = SK_UNINIT;
uint64_t sk_page_size = 4096;
SK_HOTDATA uint32_t sk_euid;

/* What every call reads (sk_log_state, state.h), with the library's other hot
 * variables (SK_HOTDATA); in S, after the big tables of .bss, it cost a page
 * of its own in every call (valgrind lackey, pages touched between two
 * syscalls). */
SK_HOTDATA int sk_log_state;

/* The rest, the buffers last. */
static struct {
	size_t capacity;
	pid_t log_opener;         /* tid opening the log, or 0 */
	pid_t pid;                /* cached: getpid is a syscall */
	uint32_t parent_pid;      /* set in a fork child */
	uint64_t parent_start_ticks;
	uint64_t image_mono_ns;
	uint64_t image_tick;      /* the TSC with image_mono_ns, if sk_ticks_on */
	pid_t ppid;               /* at image start or fork */
	uint64_t start_ticks;     /* this process's, once known */
	uint64_t span_addr, span_size;
	uint64_t ipc_ns;          /* at image start, where a raw clone may change it */
	int argc;
	char dir[PATH_MAX];
	char *argv[64];
	char argbuf[SK_ARGS_MAX];
} S;

pid_t sk_pid(void)
{
	return S.pid;
}

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

/* The "this process" marker (state.h). Until the library is on, and where
 * the kernel does not wipe pages for us, a constant. */
static const uint32_t mark_fixed = SK_MARK_MINE;
SK_HOTDATA const uint32_t *sk_proc_mark = &mark_fixed;

/* In a private anonymous page of its own: MADV_WIPEONFORK applies to whole
 * pages of such a mapping (madvise(2); EINVAL before Linux 4.14). Raw
 * syscalls: the mmap wrapper must not see the library's own mappings. */
static void mark_init(void)
{
	void *p = (void *)syscall(SYS_mmap, NULL, (size_t)sk_page_size, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	if (syscall(SYS_madvise, p, (size_t)sk_page_size, MADV_WIPEONFORK) != 0) {
		syscall(SYS_munmap, p, (size_t)sk_page_size);
		return;
	}
	*(uint32_t *)p = SK_MARK_MINE;
	__atomic_store_n(&sk_proc_mark, (const uint32_t *)p, __ATOMIC_RELEASE);
}

static int mark_wiped(void)
{
	return sk_proc_mark != &mark_fixed;
}

static void copy_args(int argc, char **argv)
{
	size_t used = 0;
	S.argc = 0;
	for (int i = 0; argv && i < argc && argv[i] && i < (int)SK_ARRAY_SIZE(S.argv); i++) {
		size_t l = strlen(argv[i]) + 1;
		if (used + l > sizeof S.argbuf)
			break;
		memcpy(S.argbuf + used, argv[i], l);
		S.argv[S.argc++] = S.argbuf + used;
		used += l;
	}
}

static void args_from_proc(void)
{
	char buf[SK_ARGS_MAX];
	ssize_t n = sk_read_file("/proc/self/cmdline", buf, sizeof buf);
	char *argv[64];
	int argc = 0;
	for (ssize_t i = 0; i < n && argc < 64; i += (ssize_t)strlen(buf + i) + 1)
		argv[argc++] = buf + i;
	copy_args(argc, argv);
}

static uint64_t parse_size(const char *s, uint64_t dflt)
{
	if (!s || !*s)
		return dflt;
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	return *end ? dflt : v;
}

/* The library's own code range, so that its frames leave the backtraces. */
static int self_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	uint64_t me = (uint64_t)(uintptr_t)arg;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t s = info->dlpi_addr + ph->p_vaddr;
		if (s < lo) lo = s;
		if (s + ph->p_memsz > hi) hi = s + ph->p_memsz;
	}
	if (me >= lo && me < hi) {
		sk_rec_cfg.self_lo = lo;
		sk_rec_cfg.self_hi = hi;
		return 1;
	}
	return 0;
}

/* The log directory must not let another user swap or read our logs: like
 * /tmp, a world-writable one needs the sticky bit; it belongs to us or root. */
static const char *dir_problem(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return errno == ENOENT ? "does not exist" : "cannot be examined";
	if (!S_ISDIR(st.st_mode))
		return "is not a directory";
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
		return "is world-writable without the sticky bit";
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return "belongs to another user";
	if (access(dir, W_OK | X_OK) < 0)
		return "is not writable";
	return NULL;
}

static void say_dir(const char *what)
{
	char msg[PATH_MAX + 128];
	size_t n = sk_fmt_str(msg, 0, sizeof msg, "log directory ");
	n = sk_fmt_str(msg, n, sizeof msg, S.dir);
	n = sk_fmt_str(msg, n, sizeof msg, " ");
	n = sk_fmt_str(msg, n, sizeof msg, what);
	sk_fmt_str(msg, n, sizeof msg, ": not recording; the program goes on");
	sk_say(msg);
}

/* The span (core/span.h), reserved again in every image. A taken range is
 * said once here and recorded when the log opens. */
static int span_taken;

static void span_init(void)
{
	struct sk_span_cfg c;
	if (sk_span_config_env(&c) < 0)
		sk_say("bad SHMKEEPER_SPAN or SHMKEEPER_SPAN_POLICY: the defaults are used");
	if (sk_span_init(&c) == -EEXIST) {
		span_taken = 1;
		sk_say(c.policy == SK_SPAN_STRICT ?
		       "the span's address range is taken: attaches that need placement will fail (strict policy)" :
		       "the span's address range is taken: attaches go where the kernel puts them");
	}
	S.span_addr = c.addr;
	S.span_size = c.size;
}

static void atfork_prepare(void) { sk_span_fork_prepare(); sk_tab_atfork_prepare(); sk_rec_atfork_prepare(); }
static void atfork_parent(void) { sk_rec_atfork_parent(); sk_tab_atfork_parent(); sk_span_fork_parent(); }
static void atfork_child(void) { sk_child_after_fork(); }

static void do_init(void)
{
	sk_ticks_init();
	struct timespec m;
	S.image_tick = sk_tick_pair(&m);
	S.image_mono_ns = (uint64_t)m.tv_sec * 1000000000u + (uint64_t)m.tv_nsec;
	sk_say_init();
	S.pid = getpid();
	S.ppid = getppid();
	sk_page_size = getauxval(AT_PAGESZ);
	if (!sk_page_size)
		sk_page_size = 4096;
	sk_euid = geteuid();
	sk_real_resolve();
	/* setuid/setgid programs: record nothing, change nothing. */
	if (getauxval(AT_SECURE)) {
		__atomic_store_n(&sk_state, SK_OFF, __ATOMIC_RELEASE);
		return;
	}
	const char *dir = secure_getenv("SHMKEEPER_LOG_DIR");
	const char *span = secure_getenv("SHMKEEPER_SPAN");
	/* Recording needs a log directory; placement runs with recording, or
	 * alone when SHMKEEPER_SPAN asks for it. */
	if ((!dir || !*dir) && (!span || !*span || strcmp(span, "off") == 0)) {
		__atomic_store_n(&sk_state, SK_OFF, __ATOMIC_RELEASE);
		return;
	}
	sk_clock_init();
	if (!dir || !*dir)
		sk_log_state = 2;
	else if (dir[0] != '/') {
		/* The program may chdir later: keep the absolute path. */
		if (!getcwd(S.dir, sizeof S.dir - 2))
			S.dir[0] = '\0';
		size_t n = strlen(S.dir);
		sk_fmt_str(S.dir, sk_fmt_str(S.dir, n, sizeof S.dir, "/"), sizeof S.dir, dir);
	} else
		sk_strlcpy(S.dir, dir, sizeof S.dir);
	const char *d = secure_getenv("SHMKEEPER_BACKTRACE_DEPTH");
	uint64_t depth = parse_size(d, 16);
	sk_rec_cfg.bt_depth = depth > SK_MAX_FRAMES ? SK_MAX_FRAMES : (unsigned)depth;
	S.capacity = parse_size(secure_getenv("SHMKEEPER_LOG_SIZE"), 64u << 20);
	dl_iterate_phdr(self_cb, (void *)(uintptr_t)&do_init);
	span_init();
	mark_init();
	if (mark_wiped())
		S.ipc_ns = sk_ns_inode("ipc");
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	__atomic_store_n(&sk_state, SK_ON, __ATOMIC_RELEASE);
}

static int new_process(void);

int sk_on_slow(void)
{
	int expect = SK_UNINIT;
	if (__atomic_compare_exchange_n(&sk_state, &expect, SK_INITING, 0,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		int saved = errno, busy = sk_busy;
		sk_busy = 1;
		do_init();
		sk_busy = busy;
		errno = saved;
	} else if (expect == SK_INITING) {
		/* Another thread initialises, or this one re-entered (then the
		 * call is forwarded unrecorded). */
		return 0;
	} else if (expect == SK_ON) {
		return new_process();   /* the marker was not ours */
	}
	return __atomic_load_n(&sk_state, __ATOMIC_ACQUIRE) == SK_ON;
}

static void log_inherited(void);

int sk_log_ready_slow(void)
{
	int ls = __atomic_load_n(&sk_log_state, __ATOMIC_ACQUIRE);
	if (sk_likely(ls == 1))
		return 1;
	if (ls == 2)
		return 0;
	pid_t me = sk_tid(), none = 0;
	while (!__atomic_compare_exchange_n(&S.log_opener, &none, me, 0,
					    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		if (none == me)      /* a signal handler interrupted our own open */
			return sk_log_staging();
		none = 0;
		sched_yield();
	}
	ls = __atomic_load_n(&sk_log_state, __ATOMIC_ACQUIRE);
	if (ls == 0) {
		sk_log_stage_begin();
		const char *why = dir_problem(S.dir);
		if (why) {
			say_dir(why);
			ls = 2;
		} else {
			if (!S.argc)
				args_from_proc();
			if (S.parent_pid && !S.parent_start_ticks)
				S.parent_start_ticks = sk_proc_start_ticks((pid_t)S.parent_pid);
			struct sk_log_identity id = {
				.argc = S.argc, .argv = S.argv, .ppid = (uint32_t)S.ppid,
				.parent_pid = S.parent_pid,
				.parent_start_ticks = S.parent_start_ticks,
				.image_mono_ns = S.image_mono_ns,
				.image_tick = S.image_tick,
				.bt_depth = sk_rec_cfg.bt_depth,
			};
			int rc = sk_log_open(S.dir, S.capacity, &id);
			if (rc < 0) {
				errno = -rc;
				say_dir("refused the log file");
				ls = 2;
			} else {
				ls = 1;
				S.start_ticks = sk_log_start_ticks();
			}
		}
		/* What a handler recorded meanwhile goes in now (or is
		 * dropped with the log). */
		sk_log_stage_end();
		__atomic_store_n(&sk_log_state, ls, __ATOMIC_RELEASE);
		if (ls == 1 && S.parent_pid)
			log_inherited();  /* attachments that came through fork */
		if (ls == 1 && span_taken)
			sk_ev_warn(SK_W_SPAN_TAKEN, (int64_t)S.span_addr, (int64_t)S.span_size,
				   "the span's address range was taken at start-up");
	}
	__atomic_store_n(&S.log_opener, 0, __ATOMIC_RELEASE);
	return ls == 1;
}

SK_HOT void sk_count_failed(enum sk_fn fn)
{
	if (sk_log_ready())
		sk_log_count_failed(fn);
}

static void inherited_one(const struct sk_attach *a, void *arg)
{
	(void)arg;
	struct sk_attach c = *a;
	c.flags |= SK_F_INHERITED;
	if (c.shmid >= 0)
		sk_ev_sysv_at(c.shmid, 0, c.addr, 0, c.len, c.flags);
	else
		sk_ev_map(SK_EV_POSIX_MAP, &c, 0, 0);
}

static void log_inherited(void)
{
	if (sk_tab_lock()) {
		sk_att_foreach(inherited_one, NULL);
		sk_tab_unlock();
	}
}

/* Set on the thread that runs a new process's reset: a signal handler
 * that interrupts it is forwarded unrecorded. */
static SK_TLS int resetting;

/* raw_clone: the child of a raw clone, which may be in an IPC namespace of
 * its own (CLONE_NEWIPC; fork cannot make one). */
static void child_reset(int raw_clone)
{
	int other_ipc = 0;
	if (raw_clone && S.ipc_ns) {
		uint64_t ns = sk_ns_inode("ipc");
		other_ipc = ns && ns != S.ipc_ns;
		if (other_ipc)
			S.ipc_ns = ns;
	}
	sk_rec_atfork_child();
	sk_tid_reset();
	sk_cleanup_fork_child();      /* _Fork runs no atfork handlers */
	sk_tab_atfork_child();
	sk_tab_fork_child();
	if (other_ipc) {
		sk_tab_ipcns_child();
		sk_span_ipcns_child();
	} else {
		sk_span_fork_child();
	}
	if (__atomic_load_n(&sk_state, __ATOMIC_ACQUIRE) != SK_ON)
		return;
	/* The parent's pid and start time name it in the child's header; a
	 * parent that never logged has not read its start time: the child
	 * reads it when its own log opens. */
	S.parent_pid = (uint32_t)S.pid;
	S.parent_start_ticks = S.start_ticks;
	S.ppid = S.pid;
	S.pid = (pid_t)syscall(SYS_getpid);
	S.start_ticks = 0;
	sk_log_forget();
	sk_log_state = S.dir[0] ? 0 : 2;
	S.log_opener = 0;
}

/* Claims the reset of this process: 1 if the caller is to run it. */
static int reset_claim(uint32_t *seen)
{
	uint32_t m = SK_MARK_NEW;
	if (__atomic_compare_exchange_n((uint32_t *)sk_proc_mark, &m, SK_MARK_RESETTING, 0,
					__ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
		return 1;
	*seen = m;
	return 0;
}

static void reset_run(int raw_clone)
{
	int saved = errno;
	resetting = 1;
	child_reset(raw_clone);
	resetting = 0;
	errno = saved;
	/* release: the reset's stores before the word other threads wait on */
	__atomic_store_n((uint32_t *)sk_proc_mark, SK_MARK_MINE, __ATOMIC_RELEASE);
}

/* sk_on found the marker not ours: a child of a raw clone (or of fork,
 * before its atfork handler ran) at its first call into the library. The
 * thread that claims it runs the reset; any other thread of the child waits
 * for it (sched_yield, as the log's opener does). Async-signal-safe as the
 * atfork handler's reset is: atomics, raw syscalls, no lock taken but the
 * span table's, which no thread of this process holds yet. */
static int new_process(void)
{
	uint32_t m;
	if (reset_claim(&m)) {
		reset_run(1);
		return 1;
	}
	if (m == SK_MARK_MINE)
		return 1;
	if (resetting)
		return 0;            /* a handler interrupted our own reset */
	while (__atomic_load_n(sk_proc_mark, __ATOMIC_ACQUIRE) != SK_MARK_MINE)
		sched_yield();
	return 1;
}

void sk_child_after_fork(void)
{
	uint32_t m;
	/* Without the marker page, every fork child is reset here. With it, a
	 * signal handler of this child may have recorded, and so reset it,
	 * before the atfork handler ran (m is then SK_MARK_MINE). */
	if (!mark_wiped()) {
		child_reset(0);
		return;
	}
	if (reset_claim(&m))
		reset_run(0);
}

/* exit() and return from main pass their status to on_exit handlers (not to
 * destructors): the log's exit record carries it. */
static int exit_status = -1;
static void note_exit_status(int status, void *arg)
{
	(void)arg;
	exit_status = status;
}

__attribute__((constructor)) static void shmk_init(int argc, char **argv, char **envp)
{
	(void)envp;
	copy_args(argc, argv);
	on_exit(note_exit_status, NULL);
	sk_on();
}

__attribute__((destructor)) static void shmk_fini(void)
{
	/* exit() and return from main: the termination cleanups run here,
	 * before the log closes, so that their removals are recorded. */
	if (sk_cleanup_wanted() && sk_cleanup_in_owner())
		sk_cleanup_terminate(0, 10000);
	if (__atomic_load_n(&sk_state, __ATOMIC_ACQUIRE) == SK_ON &&
	    __atomic_load_n(&sk_log_state, __ATOMIC_ACQUIRE) == 1) {
		sk_busy = 1;
		sk_log_close(exit_status);
		sk_busy = 0;
	}
	/* Leave the span's table: the last process to go removes it. */
	if (__atomic_load_n(&sk_state, __ATOMIC_ACQUIRE) == SK_ON)
		sk_span_fini();
}
