/* tool_mklog - writes synthetic shmkeeper logs for the tool's tests.
 *
 *   tool_mklog DIR leaks     a run of a few processes: leaks (real segments
 *                            made by this process, so that they exist), one
 *                            segment removed by another process (Python's
 *                            resource_tracker), one removed by its creator,
 *                            one removed outside the recording, the
 *                            library's own object, a fork and an exec
 *   tool_mklog DIR clean     the same without leaks
 *   tool_mklog DIR damaged   `leaks`, plus a cut log, a log with a hole, a
 *                            corrupt one, a newer version, a full one (records
 *                            dropped), not a log, empty
 *   tool_mklog DIR many=N    one process, N SysV and N POSIX segments made
 *                            and removed (the report's cost)
 *   tool_mklog --cleanup DIR removes the real segments listed in DIR/objects
 *
 * The creating backtraces are this program's own return addresses and its
 * module map is the real one, so the report can be checked for function,
 * file and line.
 */
#include <dlfcn.h>
#include <elf.h>
#include <err.h>
#include <errno.h>
#include <link.h>
#include <stdbool.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>

#include "tests/tool_logbuf.h"

static FILE *objects;
static char dir[4096];

/* ---- the module map, as the library records it ------------------------- */

static const char *module_filter;   /* log only modules whose path has this */

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct logbuf *b = arg;
	struct sk_ev_module m = { 0 };
	uint64_t lo = UINT64_MAX, hi = 0;
	const void *bid = NULL;
	size_t bid_len = 0;
	char exe[1024];
	const char *path = info->dlpi_name;

	(void)size;

	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD) {
			if (info->dlpi_addr + ph->p_vaddr < lo)
				lo = info->dlpi_addr + ph->p_vaddr;
			if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > hi)
				hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		}
		if (ph->p_type == PT_NOTE && !bid) {
			const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
			const char *end = p + ph->p_memsz;

			while (p + sizeof(ElfW(Nhdr)) <= end) {
				const ElfW(Nhdr) *n = (const void *)p;
				const char *name = p + sizeof(*n);
				const char *desc = name + ((n->n_namesz + 3) & ~3u);

				if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
				    memcmp(name, "GNU", 4) == 0) {
					bid = desc;
					bid_len = n->n_descsz;
					break;
				}
				p = desc + ((n->n_descsz + 3) & ~3u);
			}
		}
	}
	if (module_filter && (!path || !strstr(path, module_filter)))
		return 0;
	if (!path || !*path) {
		ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		if (k < 0)
			return 0;
		exe[k] = '\0';
		path = exe;
	}
	m.base = info->dlpi_addr;
	m.start = lo;
	m.end = hi;
	m.path_len = (uint16_t)strlen(path);
	m.build_id_len = (uint16_t)bid_len;
	lb_add(b, SK_EV_MODULE, &m, sizeof(m), bid, bid_len, path, NULL, 0);
	return 0;
}

/* ---- processes ---------------------------------------------------------- */

static struct logbuf A, B, C, C2;   /* creator, remover, fork child, its exec */
static uint64_t t0;
static char self_exe[1024];

static void start_logs(void)
{
	static const char *const argv_a[] = { "leaky", "--twice", NULL };
	static const char *const argv_b[] = { "python3", "-c", "from multiprocessing.resource_tracker import main", NULL };
	static const char *const argv_c2[] = { "true", NULL };
	ssize_t k = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);

	self_exe[k > 0 ? k : 0] = '\0';
	t0 = lb_now(CLOCK_MONOTONIC);
	lb_init(&A, (uint32_t)getpid(), self_exe, argv_a, t0);
	dl_iterate_phdr(add_module, &A);
	lb_init(&B, (uint32_t)getpid() + 100000, "/usr/bin/python3.11", argv_b, t0 + 10);
	lb_init(&C, (uint32_t)getpid() + 100001, self_exe, argv_a, t0 + 500000);
	lb_hdr(&C)->flags = SK_HF_FORKED;
	lb_hdr(&C)->parent_pid = lb_hdr(&A)->pid;
	lb_hdr(&C)->parent_start_ticks = lb_hdr(&A)->start_ticks;
	dl_iterate_phdr(add_module, &C);
	lb_init(&C2, lb_hdr(&C)->pid, "/usr/bin/true", argv_c2, t0 + 900000);
	lb_hdr(&C2)->start_ticks = lb_hdr(&C)->start_ticks;
	lb_hdr(&C2)->flags = SK_HF_FORKED;
	lb_hdr(&C2)->parent_pid = lb_hdr(&A)->pid;
	lb_hdr(&C2)->parent_start_ticks = lb_hdr(&A)->start_ticks;
	lb_hdr(&C2)->exec_count = 1;
	C.mono = t0 + 500000;
	C2.mono = t0 + 900000;
	B.mono = t0 + 100000;
}

/* ---- the events ---------------------------------------------------------- */

/* frames[0]: the return address into the function that made the segment;
 * frames[1]: that function's return address into main. */
__attribute__((noinline)) static void capture(uint64_t fr[2], void *outer)
{
	fr[0] = (uint64_t)(uintptr_t)__builtin_return_address(0);
	fr[1] = (uint64_t)(uintptr_t)outer;
	__asm__ volatile("" ::: "memory");
}

static void log_sysv_get(struct logbuf *b, int shmid, int key, uint64_t size, const uint64_t *fr)
{
	struct sk_ev_sysv_get e = { .key = key, .shmid = shmid, .size = size,
		.shmflg = IPC_CREAT | 0600, .flags = SK_F_CREATED, .nframes = 2,
		.mode = 0600, .cuid = (uint32_t)getuid() };

	lb_add(b, SK_EV_SYSV_GET, &e, sizeof(e), NULL, 0, NULL, fr, 2);
}

static void log_sysv_at(struct logbuf *b, int shmid, uint64_t addr, uint64_t size)
{
	struct sk_ev_sysv_at e = { .shmid = shmid, .addr = addr, .size = size };

	lb_add(b, SK_EV_SYSV_AT, &e, sizeof(e), NULL, 0, NULL, NULL, 0);
}

static void log_sysv_dt(struct logbuf *b, int shmid, uint64_t addr, uint64_t size)
{
	struct sk_ev_sysv_dt e = { .shmid = shmid, .addr = addr, .size = size };

	lb_add(b, SK_EV_SYSV_DT, &e, sizeof(e), NULL, 0, NULL, NULL, 0);
}

static void log_sysv_rmid(struct logbuf *b, int shmid, int key)
{
	struct sk_ev_sysv_ctl e = { .shmid = shmid, .cmd = IPC_RMID, .key = key };

	lb_add(b, SK_EV_SYSV_CTL, &e, sizeof(e), NULL, 0, NULL, NULL, 0);
}

static void log_posix_open(struct logbuf *b, const char *name, uint64_t dev, uint64_t ino,
			   uint64_t size, bool created, const uint64_t *fr)
{
	struct sk_ev_posix_open e = { .dev = dev, .ino = ino, .size = size, .fd = 3,
		.oflag = O_RDWR | (created ? O_CREAT | O_EXCL : 0), .mode = 0600,
		.flags = created ? SK_F_CREATED : 0, .nframes = fr ? 2 : 0,
		.uid = (uint32_t)getuid(), .name_len = (uint16_t)strlen(name) };

	lb_add(b, SK_EV_POSIX_OPEN, &e, sizeof(e), NULL, 0, name, fr, fr ? 2 : 0);
}

static void log_posix_unlink(struct logbuf *b, const char *name, uint64_t dev, uint64_t ino)
{
	struct sk_ev_posix_unlink e = { .dev = dev, .ino = ino,
		.name_len = (uint16_t)strlen(name) };

	lb_add(b, SK_EV_POSIX_UNLINK, &e, sizeof(e), NULL, 0, name, NULL, 0);
}

static void log_resize(struct logbuf *b, uint64_t dev, uint64_t ino, uint64_t size)
{
	struct sk_ev_resize e = { .dev = dev, .ino = ino, .size = size, .fd = 3 };

	lb_add(b, SK_EV_RESIZE, &e, sizeof(e), NULL, 0, NULL, NULL, 0);
}

static void log_map(struct logbuf *b, unsigned type, uint64_t dev, uint64_t ino,
		    uint64_t addr, uint64_t len)
{
	struct sk_ev_map e = { .dev = dev, .ino = ino, .addr = addr, .len = len,
		.shmid = -1, .prot = 3, .mflags = MAP_SHARED };

	lb_add(b, type, &e, sizeof(e), NULL, 0, NULL, NULL, 0);
}

static void log_exit(struct logbuf *b, int status)
{
	struct sk_ev_exit e = { .status = status };

	lb_add(b, SK_EV_EXIT, &e, sizeof(e), NULL, 0, NULL, NULL, 0);
}

/* ---- the scenario ---------------------------------------------------------- */

__attribute__((noinline)) static int make_sysv_leak(size_t size)
{
	uint64_t fr[2];
	int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);

	if (id < 0)
		err(1, "shmget");
	fprintf(objects, "sysv %d\n", id);
	capture(fr, __builtin_return_address(0));
	log_sysv_get(&A, id, 0, size, fr);
	log_sysv_at(&A, id, 0x7f0000100000, size);
	return id;
}

__attribute__((noinline)) static void make_posix_leak(int i, size_t size)
{
	uint64_t fr[2];
	char name[64];
	struct stat st;
	int fd;

	snprintf(name, sizeof(name), "/shmk-test-%d-%d", (int)getpid(), i);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 || fstat(fd, &st) < 0)
		err(1, "shm_open %s", name);
	close(fd);
	fprintf(objects, "posix %s\n", name);
	capture(fr, __builtin_return_address(0));
	log_posix_open(&A, name, st.st_dev, st.st_ino, 0, true, fr);
	log_resize(&A, st.st_dev, st.st_ino, size);
	log_map(&A, SK_EV_POSIX_MAP, st.st_dev, st.st_ino, 0x7f0000200000 + (uint64_t)i * 0x10000, size);
	log_map(&A, SK_EV_UNMAP, st.st_dev, st.st_ino, 0x7f0000200000 + (uint64_t)i * 0x10000, size);
}

__attribute__((noinline)) static void make_tracked_posix(void)
{
	uint64_t fr[2];
	char name[64];

	/* Left by A, unlinked by B: the resource_tracker case. Not a leak. */
	snprintf(name, sizeof(name), "/psm_%d", (int)getpid());
	capture(fr, __builtin_return_address(0));
	log_posix_open(&A, name, 25, 4242, 0, true, fr);
	log_resize(&A, 25, 4242, 65536);
	log_posix_unlink(&B, name, 25, 4242);
}

__attribute__((noinline)) static void make_removed_sysv(void)
{
	uint64_t fr[2];

	capture(fr, __builtin_return_address(0));
	log_sysv_get(&A, 1999999, 0x5eed, 1 << 20, fr);
	log_sysv_rmid(&A, 1999999, 0x5eed);
}

__attribute__((noinline)) static void make_gone_sysv(void)
{
	uint64_t fr[2];
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);

	/* Removed behind the recording's back, as `ipcrm` would. */
	if (id < 0 || shmctl(id, IPC_RMID, NULL) < 0)
		err(1, "shmget");
	capture(fr, __builtin_return_address(0));
	log_sysv_get(&A, id, 0, 4096, fr);
}

/* A module loaded with dlopen, a frame in it, then the module gone: the
 * frame resolves while the module is mapped and not after. */
__attribute__((noinline)) static void make_dlopen_frames(void)
{
	uint64_t fr[2];
	void *h = dlopen("libm.so.6", RTLD_NOW);
	void *fn = h ? dlsym(h, "cos") : NULL;

	if (!fn)
		errx(1, "dlopen libm.so.6: %s", dlerror());
	module_filter = "libm.so";
	dl_iterate_phdr(add_module, &A);
	module_filter = NULL;
	capture(fr, __builtin_return_address(0));
	fr[0] = (uint64_t)(uintptr_t)fn + 1;
	log_sysv_get(&A, 1999998, 0x5eee, 4096, fr);
	log_sysv_rmid(&A, 1999998, 0x5eee);

	/* dlclose: the library logs the module gone (base and start). */
	struct logbuf tmp;
	memset(&tmp, 0, sizeof(tmp));
	lb_init(&tmp, 1, "", NULL, 0);
	module_filter = "libm.so";
	dl_iterate_phdr(add_module, &tmp);
	module_filter = NULL;
	struct sk_ev_module gone = *(struct sk_ev_module *)(tmp.buf + SK_HEADER_SIZE);
	gone.path_len = 0;
	gone.build_id_len = 0;
	lb_add(&A, SK_EV_MODULE_GONE, &gone, sizeof(gone), NULL, 0, "", NULL, 0);
	free(tmp.buf);
	dlclose(h);
	log_sysv_get(&A, 1999997, 0x5eef, 4096, fr);
	log_sysv_rmid(&A, 1999997, 0x5eef);
}

static void write_all(void)
{
	char path[4200];
	struct { struct logbuf *b; int n; } logs[] = { { &A, 0 }, { &B, 0 }, { &C, 0 }, { &C2, 1 } };

	for (size_t i = 0; i < sizeof(logs) / sizeof(logs[0]); i++) {
		snprintf(path, sizeof(path), "%s/shmk-%u-%d.shmk", dir, lb_hdr(logs[i].b)->pid, logs[i].n);
		lb_hdr(logs[i].b)->flags |= SK_HF_CLOSED;
		if (lb_write(logs[i].b, path, logs[i].b->len) < 0)
			err(1, "%s", path);
	}
}

static void scenario(bool leaks)
{
	uint64_t fr[2] = { 0, 0 };
	int shmid = -1;

	start_logs();
	if (leaks) {
		shmid = make_sysv_leak(4096);
		/* One call site, as a loop in a program has (no unrolling). */
		for (volatile int i = 0; i < 2; i++)
			make_posix_leak(i, 4096);
	}
	make_tracked_posix();
	make_removed_sysv();
	make_gone_sysv();
	make_dlopen_frames();
	log_posix_open(&A, "/shmkeeper.span.1", 25, 77, 0, true, fr);
	/* A forks C (C inherits the attachment), C execs /usr/bin/true. */
	struct sk_ev_proc f = { .child_pid = lb_hdr(&C)->pid };
	A.mono = t0 + 400000;
	lb_add(&A, SK_EV_FORK, &f, sizeof(f), NULL, 0, NULL, NULL, 0);
	struct sk_ev_exec x = { .path_len = (uint16_t)strlen("/usr/bin/true") };
	lb_add(&C, SK_EV_EXEC, &x, sizeof(x), NULL, 0, "/usr/bin/true", NULL, 0);
	log_exit(&C2, 0);
	if (leaks)
		log_sysv_dt(&A, shmid, 0x7f0000100000, 4096);
	log_exit(&A, 0);
	log_exit(&B, 0);
	write_all();
}

/* ---- damaged logs ---------------------------------------------------------- */

static void damaged(void)
{
	static const char *const argv_d[] = { "damaged", NULL };
	struct logbuf d;
	char path[4200];
	uint64_t fr[2] = { 0x1000, 0x2000 };
	size_t r1, r2;
	int fd;

	/* Cut: the process's log copied short (the cursor says more). */
	lb_init(&d, 9001, "/bin/cut", argv_d, t0);
	log_posix_open(&d, "/cut-a", 25, 9001, 4096, true, fr);
	r2 = lb_add(&d, SK_EV_EXIT, &(struct sk_ev_exit){ .status = 0 }, sizeof(struct sk_ev_exit),
		    NULL, 0, NULL, NULL, 0);
	snprintf(path, sizeof(path), "%s/shmk-9001-0.shmk", dir);
	lb_write(&d, path, r2 + 8);
	free(d.buf);

	/* A hole: a record reserved but never committed (writer killed). */
	lb_init(&d, 9002, "/bin/hole", argv_d, t0);
	r1 = lb_add(&d, SK_EV_POSIX_OPEN, &(struct sk_ev_posix_open){ .name_len = 6 },
		    sizeof(struct sk_ev_posix_open), NULL, 0, "/hole1", fr, 2);
	memset(d.buf + r1, 0, sizeof(struct sk_ev_posix_open) + 8 + 16);
	log_exit(&d, 0);
	snprintf(path, sizeof(path), "%s/shmk-9002-0.shmk", dir);
	lb_write(&d, path, d.len);
	free(d.buf);

	/* Corrupt: a head word that is not one, and a name without its NUL. */
	lb_init(&d, 9003, "/bin/corrupt", argv_d, t0);
	r1 = lb_add(&d, SK_EV_EXIT, &(struct sk_ev_exit){ .status = 1 }, sizeof(struct sk_ev_exit),
		    NULL, 0, NULL, NULL, 0);
	memcpy(d.buf + r1, &(uint32_t){ 0xdeadbeef }, 4);
	r2 = lb_add(&d, SK_EV_POSIX_UNLINK, &(struct sk_ev_posix_unlink){ .name_len = 3 },
		    sizeof(struct sk_ev_posix_unlink), NULL, 0, "/ab", NULL, 0);
	d.buf[r2 + sizeof(struct sk_ev_posix_unlink) + 3] = 'x';
	log_exit(&d, 0);
	snprintf(path, sizeof(path), "%s/shmk-9003-0.shmk", dir);
	lb_write(&d, path, d.len);
	free(d.buf);

	/* A newer format. */
	lb_init(&d, 9004, "/bin/newer", argv_d, t0);
	lb_hdr(&d)->version = SK_VERSION + 1;
	snprintf(path, sizeof(path), "%s/shmk-9004-0.shmk", dir);
	lb_write(&d, path, d.len);
	free(d.buf);

	/* A writer whose log was full. */
	lb_init(&d, 9007, "/bin/full", argv_d, t0);
	lb_hdr(&d)->dropped = 5;
	log_exit(&d, 0);
	snprintf(path, sizeof(path), "%s/shmk-9007-0.shmk", dir);
	lb_write(&d, path, d.len);
	free(d.buf);

	/* Not a log at all, and an empty file. */
	snprintf(path, sizeof(path), "%s/shmk-9005-0.shmk", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "hello, world\n", 13) != 13)
		err(1, "%s", path);
	close(fd);
	snprintf(path, sizeof(path), "%s/shmk-9006-0.shmk", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	close(fd);
}

/* N SysV and N POSIX segments, each created, attached, detached and removed:
 * the report's cost grows with this (measured in tests/report_scale.sh). */
static void many(int n)
{
	uint64_t fr[2];
	char name[64], path[4200];

	start_logs();
	capture(fr, __builtin_return_address(0));
	for (int i = 0; i < n; i++) {
		log_sysv_get(&A, 1000000 + i, 0x10000 + i, 4096, fr);
		log_sysv_at(&A, 1000000 + i, 0x7f0000000000 + (uint64_t)i * 0x1000, 4096);
		log_sysv_dt(&A, 1000000 + i, 0x7f0000000000 + (uint64_t)i * 0x1000, 4096);
		log_sysv_rmid(&A, 1000000 + i, 0x10000 + i);
		snprintf(name, sizeof(name), "/many-%d", i);
		log_posix_open(&A, name, 25, 500000 + (uint64_t)i, 0, true, fr);
		log_resize(&A, 25, 500000 + (uint64_t)i, 4096);
		log_map(&A, SK_EV_POSIX_MAP, 25, 500000 + (uint64_t)i, 0x7e0000000000, 4096);
		log_map(&A, SK_EV_UNMAP, 25, 500000 + (uint64_t)i, 0x7e0000000000, 4096);
		log_posix_unlink(&A, name, 25, 500000 + (uint64_t)i);
	}
	log_exit(&A, 0);
	snprintf(path, sizeof(path), "%s/shmk-%u-0.shmk", dir, lb_hdr(&A)->pid);
	if (lb_write(&A, path, A.len) < 0)
		err(1, "%s", path);
}

static int cleanup(void)
{
	char path[4200], kind[16], what[256];
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/objects", dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fscanf(f, "%15s %255s", kind, what) == 2) {
		if (strcmp(kind, "sysv") == 0) {
			if (shmctl(atoi(what), IPC_RMID, NULL) < 0 && errno != EINVAL)
				rc = 1;
		} else if (shm_unlink(what) < 0 && errno != ENOENT)
			rc = 1;
	}
	fclose(f);
	return rc;
}

int main(int argc, char **argv)
{
	char path[4200];

	if (argc == 3 && strcmp(argv[1], "--cleanup") == 0) {
		snprintf(dir, sizeof(dir), "%s", argv[2]);
		return cleanup();
	}
	if (argc != 3) {
		fprintf(stderr, "usage: tool_mklog DIR leaks|clean|damaged | --cleanup DIR\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		err(1, "%s", dir);
	snprintf(path, sizeof(path), "%s/objects", dir);
	objects = fopen(path, "a");
	if (!objects)
		err(1, "%s", path);
	if (strcmp(argv[2], "leaks") == 0)
		scenario(true);
	else if (strcmp(argv[2], "clean") == 0)
		scenario(false);
	else if (strcmp(argv[2], "damaged") == 0) {
		scenario(true);
		damaged();
	} else if (strncmp(argv[2], "many=", 5) == 0)
		many(atoi(argv[2] + 5));
	else
		errx(2, "unknown scenario %s", argv[2]);
	fclose(objects);
	return 0;
}
