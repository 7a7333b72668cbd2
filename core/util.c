#include <dlfcn.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include <shmkeeper.h>

/* gettid costs a syscall (~1 us on these machines, LESSONS.md); a thread
 * asks once. */
SK_TLS struct sk_tid_tls sk_tid_cache;
SK_HOTDATA uint32_t sk_tid_gen = 1;

SK_HOTDATA sk_vdso_gettime_fn sk_vdso_gettime;
SK_TLS int *sk_errno_at;

#if defined(__x86_64__) || defined(__i386__)
#define SK_VDSO_GETTIME "__vdso_clock_gettime", "LINUX_2.6"
#elif defined(__aarch64__)
#define SK_VDSO_GETTIME "__kernel_clock_gettime", "LINUX_2.6.39"
#endif

SK_HOTDATA int sk_ticks_on;

void sk_ticks_init(void)
{
#if defined(__x86_64__)
	unsigned a, b, c, d;
	char cs[16];

	/* CPUID 0x80000007 EDX bit 8: the TSC runs at a constant rate in
	 * every P- and C-state. And the kernel keeps time with it: a TSC it
	 * found unsynchronised between CPUs or unstable, it would not. */
	if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8)))
		return;
	if (sk_read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource",
			 cs, sizeof cs) <= 0 || strncmp(cs, "tsc\n", 4) != 0)
		return;
	sk_ticks_on = 1;
#endif
}

uint64_t sk_tick_pair(struct timespec *mono)
{
	uint64_t t0 = 0, t1 = 0;

	/* The clock read between two reads of the TSC, the pair kept when
	 * they are close: a pair whose reads a preemption or a VM exit
	 * separated skews the rate, and every time the reader derives from
	 * it (tests/clock_ticks.sh saw a record 62 ns after its call under
	 * make -j2 check). The later tick is the pair's: the clock read its
	 * TSC before it, so a record's time comes out a few ns early, never
	 * late (the middle made them 10 ns late). */
	for (int i = 0; i < 8; i++) {
		t0 = sk_tick();
		sk_clock(CLOCK_MONOTONIC, mono);
		t1 = sk_tick();
		if (t1 - t0 < SK_TICK_PAIR_MAX)
			break;
	}
	return t1;
}

void sk_clock_init(void)
{
#ifdef SK_VDSO_GETTIME
	/* glibc lists the vDSO among the loaded objects by this name */
	void *h = dlopen("linux-vdso.so.1", RTLD_LAZY | RTLD_NOLOAD);
	struct timespec ts;

	if (!h)
		return;
	void *f = dlvsym(h, SK_VDSO_GETTIME);
	/* relaxed: see sk_clock; used only if it answers */
	if (f && ((sk_vdso_gettime_fn)f)(CLOCK_MONOTONIC, &ts) == 0)
		__atomic_store_n(&sk_vdso_gettime, (sk_vdso_gettime_fn)f, __ATOMIC_RELAXED);
	dlclose(h);
#endif
}

pid_t sk_tid_slow(void)
{
	pid_t t = (pid_t)syscall(SYS_gettid);
	/* The tid before the generation that makes it current: a handler
	 * that interrupts these stores finds the cache stale, not wrong. */
	sk_tid_cache.tid = t;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	sk_tid_cache.gen = __atomic_load_n(&sk_tid_gen, __ATOMIC_RELAXED);
	return t;
}

void sk_tid_reset(void)
{
	/* 0 is never current (see sk_tid): skip it when the count wraps */
	uint32_t g = __atomic_load_n(&sk_tid_gen, __ATOMIC_RELAXED) + 1;
	__atomic_store_n(&sk_tid_gen, g ? g : 1, __ATOMIC_RELAXED);
}

ssize_t sk_read_file(const char *path, char *buf, size_t len)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	/* Raw syscall: the close wrapper must not see the library's own fds. */
	syscall(SYS_close, fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

int sk_proc_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	size_t n = sk_fmt_str(path, 0, sizeof path, "/proc/");
	if (pid == 0)
		n = sk_fmt_str(path, n, sizeof path, "self");
	else
		n = sk_fmt_u64(path, n, sizeof path, (uint64_t)pid);
	sk_fmt_str(path, n, sizeof path, "/stat");
	if (sk_read_file(path, buf, sizeof buf) <= 0)
		return -1;
	/* comm (field 2) may hold spaces and parentheses: count from the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -1;
	*state = p[2];
	int field = 2;
	for (; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	uint64_t v = 0;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	*start = v;
	return 0;
}

uint64_t sk_proc_start_ticks(pid_t pid)
{
	char state;
	uint64_t start;
	return sk_proc_stat(pid, &state, &start) == 0 ? start : 0;
}

uint64_t sk_ns_inode(const char *name)
{
	char path[64], link[64];
	size_t n = sk_fmt_str(path, 0, sizeof path, "/proc/self/ns/");
	sk_fmt_str(path, n, sizeof path, name);
	ssize_t len = readlink(path, link, sizeof link - 1);
	if (len <= 0)
		return 0;
	link[len] = '\0';
	/* "ipc:[4026531839]" */
	char *p = strchr(link, '[');
	if (!p)
		return 0;
	uint64_t v = 0;
	for (p++; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	return v;
}

size_t sk_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);
	if (size) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

size_t sk_fmt_str(char *dst, size_t at, size_t size, const char *s)
{
	while (*s && at + 1 < size)
		dst[at++] = *s++;
	if (at < size)
		dst[at] = '\0';
	return at;
}

size_t sk_fmt_u64(char *dst, size_t at, size_t size, uint64_t v)
{
	char tmp[24];
	int i = 0;
	do
		tmp[i++] = (char)('0' + v % 10);
	while ((v /= 10) && i < (int)sizeof tmp);
	while (i > 0 && at + 1 < size)
		dst[at++] = tmp[--i];
	if (at < size)
		dst[at] = '\0';
	return at;
}

/* Which file fd 2 was when the library started: a daemon that closed it
 * may have reused the number for a socket, and our message must not land in
 * the program's protocol. */
static int say_state;   /* 0 not initialised (write), 1 compare, 2 never */
static dev_t say_dev;
static ino_t say_ino;

void sk_say_init(void)
{
	struct stat st;
	say_state = fstat(2, &st) == 0 ? 1 : 2;
	say_dev = st.st_dev;
	say_ino = st.st_ino;
}

void sk_say(const char *msg)
{
	struct stat st;
	if (say_state == 2 || (say_state == 1 && (fstat(2, &st) < 0 ||
	    st.st_dev != say_dev || st.st_ino != say_ino)))
		return;
	char buf[512];
	size_t n = sk_fmt_str(buf, 0, sizeof buf - 1, "shmkeeper: ");
	n = sk_fmt_str(buf, n, sizeof buf - 1, msg);
	buf[n++] = '\n';
	int saved = errno;
	ssize_t w = write(2, buf, n);
	(void)w;
	errno = saved;
}

const char *shmk_version(void)
{
	return PACKAGE_VERSION;
}
