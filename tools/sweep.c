/* sweep.c - `shmkeeper sweep`: stale segments on the whole machine.
 *
 * A segment is removed only when it is proven abandoned: its creator is dead
 * and no process maps or holds it. Liveness is decided by pid and start time,
 * never by pid alone (pid_max is 32768 here: pids wrap, LESSONS.md):
 *   - with a log that recorded the creation, the creator is the process
 *     (pid, start_ticks) of the log's header: alive iff /proc/PID/stat still
 *     shows that start time;
 *   - SysV without a log: the kernel's creator pid is dead if no process has
 *     it, or if the process that has it now started after the segment's
 *     ctime (it cannot be the creator). A process that started before is
 *     taken as the creator, alive.
 * POSIX objects carry no creator in the kernel: only a log can name one.
 * (PostgreSQL decides the same way for its own segment: creator pid alive?
 * nattch == 0?)
 */
#include <ctype.h>
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/logread.h"
#include "tools/sweep.h"

struct cleanup_opts cleanup_opts;

/* ---- /proc ------------------------------------------------------------- */

struct hold {
	uint64_t dev, ino;
	pid_t pid;
};

struct holders {
	struct hold *v;
	size_t n, cap;
	unsigned unreadable;
};

static void hold_add(struct holders *h, uint64_t dev, uint64_t ino, pid_t pid)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct hold *v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			err(EXIT_NOREPORT, "out of memory");
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n++] = (struct hold){ dev, ino, pid };
}

/* /proc/PID/maps: "start-end perms offset MAJ:MIN inode path". The device
 * there is the kernel's encoding (major:minor in hex), as st_dev splits. */
static int scan_maps(struct holders *h, const char *pid_s, pid_t pid)
{
	char path[300], line[4096];
	snprintf(path, sizeof(path), "/proc/%.255s/maps", pid_s);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -1;   /* ENOENT: it has just exited */
	int got = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		unsigned long long ino;
		got = 1;
		if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) != 3 || ino == 0)
			continue;
		hold_add(h, makedev(maj, min), ino, pid);
	}
	fclose(f);
	/* Kernel threads have empty maps; a process we may not read gives an
	 * empty file too when it is not ours (no error): tell them apart. */
	if (!got && access(path, R_OK) < 0)
		return -1;
	return 0;
}

static int scan_fds(struct holders *h, const char *pid_s, pid_t pid)
{
	char path[300];
	snprintf(path, sizeof(path), "/proc/%.255s/fd", pid_s);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -1;
	for (struct dirent *de; (de = readdir(d)); ) {
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			hold_add(h, st.st_dev, st.st_ino, pid);
	}
	closedir(d);
	return 0;
}

struct holders *holders_scan(void)
{
	struct holders *h = calloc(1, sizeof(*h));
	if (!h)
		err(EXIT_NOREPORT, "out of memory");
	DIR *d = opendir("/proc");
	if (!d) {
		h->unreadable = 1;
		return h;
	}
	pid_t self = getpid();
	for (struct dirent *de; (de = readdir(d)); ) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid == self)
			continue;
		if (scan_maps(h, de->d_name, pid) < 0 || scan_fds(h, de->d_name, pid) < 0)
			h->unreadable++;
	}
	closedir(d);
	return h;
}

void holders_free(struct holders *h)
{
	if (h)
		free(h->v);
	free(h);
}

pid_t holders_find(const struct holders *h, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].ino == ino && h->v[i].dev == dev)
			return h->v[i].pid;
	return 0;
}

unsigned holders_unreadable(const struct holders *h)
{
	return h->unreadable;
}

uint64_t proc_start(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command may hold spaces and parentheses: count from the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	unsigned long long v = 0;
	/* fields 3..22 follow: state is field 3, starttime field 22 */
	p++;
	for (int field = 3; field <= 22 && *p; field++) {
		while (*p == ' ')
			p++;
		if (field == 22) {
			v = strtoull(p, NULL, 10);
			break;
		}
		while (*p && *p != ' ')
			p++;
	}
	return v;
}

/* ---- what the logs say --------------------------------------------------- */

static const char *proc_label(const struct tproc *p, char *buf, size_t n)
{
	const char *a = sk_args_next(&p->hdr, NULL);
	const char *exe = p->hdr.exe[0] ? p->hdr.exe : "?";
	snprintf(buf, n, "%.200s", a && *a ? a : exe);
	return buf;
}

static void created_at(const struct tev *ev, char *buf, size_t n)
{
	int64_t sec;
	long nsec;
	struct tm tm;
	model_wall_time(ev, &sec, &nsec);
	time_t t = (time_t)sec;
	localtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

/* The recorded creation of a SysV id or a POSIX object in this boot and
 * namespace, the newest one. */
static const struct tseg *logged_sysv(const struct model *m, int32_t shmid, int32_t key)
{
	const struct tseg *best = NULL;
	for (size_t i = 0; m && i < m->nsegs; i++) {
		const struct tseg *s = m->segs[i];
		if (s->kind != SEG_SYSV || !s->create || s->shmid != shmid || s->key != key ||
		    s->ns != m->self_ipc_ns)
			continue;
		if (m->have_boot_id && memcmp(s->create->p->hdr.boot_id, m->self_boot_id, 16))
			continue;
		if (!best || s->create->mono > best->create->mono)
			best = s;
	}
	return best;
}

static const struct tseg *logged_posix(const struct model *m, const char *name,
				       uint64_t dev, uint64_t ino)
{
	const struct tseg *best = NULL;
	for (size_t i = 0; m && i < m->nsegs; i++) {
		const struct tseg *s = m->segs[i];
		if (s->kind != SEG_POSIX || !s->create || !s->name || s->ns != m->self_mnt_ns ||
		    strcmp(s->name + (s->name[0] == '/'), name) != 0 || s->dev != dev || s->ino != ino)
			continue;
		if (m->have_boot_id && memcmp(s->create->p->hdr.boot_id, m->self_boot_id, 16))
			continue;
		if (!best || s->create->mono > best->create->mono)
			best = s;
	}
	return best;
}

static void origin(const struct tseg *s, char *buf, size_t n)
{
	char who[256], when[64];
	if (!s) {
		snprintf(buf, n, "no recorded origin");
		return;
	}
	created_at(s->create, when, sizeof(when));
	snprintf(buf, n, "created by pid %u (%s) at %s", s->create->p->hdr.pid,
		 proc_label(s->create->p, who, sizeof(who)), when);
}

/* ---- the sweep ------------------------------------------------------------ */

static uint64_t boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	char line[256];
	unsigned long long bt = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &bt) == 1)
			break;
	if (f)
		fclose(f);
	return bt;
}

struct tally {
	unsigned removed, kept, failed;
};

static void verdict(struct tally *t, const char *what, bool remove, const char *why,
		    const char *orig, int (*rm)(const void *), const void *arg)
{
	if (!remove) {
		printf("kept     %s: %s; %s\n", what, why, orig);
		t->kept++;
		return;
	}
	if (cleanup_opts.dry_run) {
		printf("stale    %s: %s; %s (--dry-run: not removed)\n", what, why, orig);
		t->removed++;
		return;
	}
	if (rm(arg) < 0) {
		printf("FAILED   %s: %s; %s: %s\n", what, why, orig, strerror(errno));
		t->failed++;
		return;
	}
	printf("removed  %s: %s; %s\n", what, why, orig);
	t->removed++;
}

static int rm_sysv(const void *arg)
{
	return shmctl(*(const int *)arg, IPC_RMID, NULL);
}

static int rm_path(const void *arg)
{
	return unlink((const char *)arg);
}

static int sweep_sysv(const struct model *m, struct tally *t)
{
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	char line[512];
	if (!f) {
		warn("/proc/sysvipc/shm");
		return -1;
	}
	uint64_t btime = boot_time();
	long hz = sysconf(_SC_CLK_TCK);
	if (!fgets(line, sizeof(line), f)) {   /* the titles */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		long long key;
		int shmid;
		unsigned perms, cpid, lpid, nattch;
		unsigned long long size, ctime_s;
		char what[128], why[256], orig[512];
		if (sscanf(line, "%lld %d %o %llu %u %u %u %*u %*u %*u %*u %*u %*u %llu",
			   &key, &shmid, &perms, &size, &cpid, &lpid, &nattch, &ctime_s) != 8)
			continue;
		snprintf(what, sizeof(what), "SysV shmid %d key 0x%08x, %llu bytes", shmid,
			 (unsigned)key, size);
		const struct tseg *s = logged_sysv(m, shmid, (int32_t)key);
		origin(s, orig, sizeof(orig));
		if (perms & SHM_DEST) {
			snprintf(why, sizeof(why), "already marked for removal, %u attached", nattch);
			verdict(t, what, false, why, orig, NULL, NULL);
			continue;
		}
		if (nattch > 0) {
			snprintf(why, sizeof(why), "attached by %u process%s", nattch,
				 nattch == 1 ? "" : "es");
			verdict(t, what, false, why, orig, NULL, NULL);
			continue;
		}
		if (s && s->create->p->hdr.pid == cpid) {
			uint64_t st = proc_start((pid_t)cpid);
			bool alive = st && st == s->create->p->hdr.start_ticks;
			snprintf(why, sizeof(why), alive ? "creator pid %u is alive" :
				 "creator pid %u is dead (pid and start time from its log), nobody attached",
				 cpid);
			verdict(t, what, !alive, why, orig, rm_sysv, &shmid);
			continue;
		}
		if (cpid == 0) {
			verdict(t, what, false, "creator pid unknown (created in another pid namespace)",
				orig, NULL, NULL);
			continue;
		}
		uint64_t st = proc_start((pid_t)cpid);
		if (st == 0) {
			snprintf(why, sizeof(why), "creator pid %u is dead, nobody attached", cpid);
			verdict(t, what, true, why, orig, rm_sysv, &shmid);
			continue;
		}
		/* Start time against the segment's ctime (creation, or its last
		 * IPC_SET: later than creation, so only ever too cautious). Two
		 * seconds of margin: ctime is in seconds, the start in ticks. */
		if (btime && hz > 0 && btime + st / (uint64_t)hz > ctime_s + 1) {
			snprintf(why, sizeof(why), "creator pid %u is dead (the pid now belongs to a "
				 "process started after the segment), nobody attached", cpid);
			verdict(t, what, true, why, orig, rm_sysv, &shmid);
			continue;
		}
		snprintf(why, sizeof(why), "creator pid %u is alive", cpid);
		verdict(t, what, false, why, orig, NULL, NULL);
	}
	fclose(f);
	return 0;
}

static void sweep_posix(const struct model *m, struct tally *t)
{
	DIR *d = opendir("/dev/shm");
	if (!d) {
		warn("/dev/shm");
		return;
	}
	struct holders *h = NULL;
	for (struct dirent *de; (de = readdir(d)); ) {
		struct stat st;
		char what[512], why[256], orig[512], path[512];
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		snprintf(what, sizeof(what), "POSIX /%s, %llu bytes", de->d_name,
			 (unsigned long long)st.st_size);
		snprintf(path, sizeof(path), "/dev/shm/%s", de->d_name);
		if (strncmp(de->d_name, "shmkeeper.span.", 15) == 0) {
			/* The library's placement table: every user maps it
			 * until it ends, and the last one unlinks it; one that
			 * nobody maps was left by a SIGKILLed last user. */
			snprintf(what, sizeof(what), "span table /dev/shm/%s", de->d_name);
			if (!h)
				h = holders_scan();
			pid_t who = holders_find(h, st.st_dev, st.st_ino);
			if (who) {
				snprintf(why, sizeof(why), "in use by pid %d", (int)who);
				verdict(t, what, false, why, "shmkeeper's own", NULL, NULL);
			} else if (holders_unreadable(h)) {
				verdict(t, what, false, "the mappings of some processes could not be read",
					"shmkeeper's own", NULL, NULL);
			} else {
				verdict(t, what, true, "no process maps it (its last user was killed)",
					"shmkeeper's own", rm_path, path);
			}
			continue;
		}
		const struct tseg *s = logged_posix(m, de->d_name, st.st_dev, st.st_ino);
		origin(s, orig, sizeof(orig));
		if (!s) {
			verdict(t, what, false, m ? "no log records its creator" :
				"no log records its creator (give --log-dir)", orig, NULL, NULL);
			continue;
		}
		uint64_t ps = proc_start((pid_t)s->create->p->hdr.pid);
		if (ps && ps == s->create->p->hdr.start_ticks) {
			snprintf(why, sizeof(why), "creator pid %u is alive", s->create->p->hdr.pid);
			verdict(t, what, false, why, orig, NULL, NULL);
			continue;
		}
		if (!h)
			h = holders_scan();
		pid_t who = holders_find(h, st.st_dev, st.st_ino);
		if (who) {
			snprintf(why, sizeof(why), "creator dead, but mapped or open in pid %d", (int)who);
			verdict(t, what, false, why, orig, NULL, NULL);
			continue;
		}
		if (holders_unreadable(h)) {
			snprintf(why, sizeof(why), "creator dead, but the mappings of %u process%s "
				 "could not be read", holders_unreadable(h),
				 holders_unreadable(h) == 1 ? "" : "es");
			verdict(t, what, false, why, orig, NULL, NULL);
			continue;
		}
		snprintf(why, sizeof(why), "creator pid %u is dead (pid and start time from its log), "
			 "nobody maps or holds it", s->create->p->hdr.pid);
		verdict(t, what, true, why, orig, rm_path, path);
	}
	closedir(d);
	holders_free(h);
}

int cmd_sweep(const struct options *o, int argc, char **argv)
{
	struct model m, *mp = NULL;
	struct tally t = { 0, 0, 0 };

	if (argc > 0)
		errx(EXIT_USAGE, "sweep: unexpected argument '%s' (try 'shmkeeper --help')", argv[0]);
	memset(&m, 0, sizeof(m));
	if (o->log_dir) {
		int rc = model_load(&m, o->log_dir);
		if (rc < 0) {
			warnx("%s: %s", o->log_dir, strerror(-rc));
			return EXIT_NOREPORT;
		}
		model_analyse(&m);
		mp = &m;
	}
	int rc = sweep_sysv(mp, &t);
	sweep_posix(mp, &t);
	printf("%u %s, %u kept, %u failed\n", t.removed,
	       cleanup_opts.dry_run ? "stale (not removed: --dry-run)" : "removed", t.kept, t.failed);
	if (mp)
		model_free(mp);
	if (rc < 0)
		return EXIT_NOREPORT;
	return t.failed ? SWEEP_EXIT_FAILED : EXIT_OK;
}
