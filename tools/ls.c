/* ls.c - `shmkeeper ls [--json] [--bytes] [--log-dir=DIR]`: the segments that
 * exist now, System V from /proc/sysvipc/shm and POSIX from /dev/shm, in the
 * columns of util-linux's `lsipc -m` (KEY ID PERMS OWNER SIZE NATTCH STATUS
 * CTIME CPID LPID COMMAND). A POSIX object has no key and no id: its name is
 * in the KEY column, its NATTCH counts the processes that map it (from
 * /proc/PID/maps, as the kernel keeps no count), CPID and LPID are unknown.
 *
 * With --log-dir, each segment is joined with its recorded origin: a SysV
 * segment by shmid, key and creator pid (the kernel reuses ids), a POSIX one
 * by device and inode (names are reused), both in this process's namespaces.
 */
#include <ctype.h>
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "core/logread.h"
#include "tools/suppress.h"

#define SHM_DIR "/dev/shm"
#ifndef SHM_HUGETLB
#define SHM_HUGETLB 04000
#endif
#ifndef SHM_NORESERVE
#define SHM_NORESERVE 010000
#endif

struct lsrow {
	bool posix;
	char *name;                 /* POSIX, with its leading slash */
	int32_t key, shmid;
	unsigned mode;              /* with SHM_DEST etc. for SysV */
	uint64_t size;
	uint32_t uid;
	long cpid, lpid;            /* -1 unknown */
	long nattch;
	int64_t ctime;
	uint64_t dev, ino;
	char *command;              /* creator's command line, or NULL */
	const struct tseg *origin;  /* with --log-dir */
	char origin_stack[512];
};

struct ls {
	struct lsrow *rows;
	size_t n, cap;
};


static struct lsrow *new_row(struct ls *ls)
{
	if (ls->n == ls->cap) {
		ls->cap = ls->cap ? 2 * ls->cap : 32;
		ls->rows = xrealloc(ls->rows, ls->cap * sizeof(*ls->rows));
	}
	memset(&ls->rows[ls->n], 0, sizeof(*ls->rows));
	ls->rows[ls->n].cpid = ls->rows[ls->n].lpid = -1;
	return &ls->rows[ls->n++];
}

/* /proc/PID/cmdline with the NULs as spaces, or NULL. */
static char *cmdline(long pid)
{
	char path[64], buf[4096];
	FILE *f;
	size_t n;

	if (pid <= 0)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (!n)
		return NULL;
	while (n && buf[n - 1] == '\0')
		n--;
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\0' || !isprint((unsigned char)buf[i]))
			buf[i] = buf[i] ? '?' : ' ';
	buf[n] = '\0';
	return strdup(buf);
}

/* The columns are found by their titles (the kernel has added some). */
static int read_sysv(struct ls *ls)
{
	static const char *const want[] = { "key", "shmid", "perms", "size", "cpid", "lpid",
		"nattch", "uid", "ctime" };
	enum { C_KEY, C_SHMID, C_PERMS, C_SIZE, C_CPID, C_LPID, C_NATTCH, C_UID, C_CTIME, C_N };
	int col[C_N];
	char line[1024], *save, *w;
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	int ncol = 0;

	if (!f) {
		warn("/proc/sysvipc/shm");
		return -1;
	}
	for (int i = 0; i < C_N; i++)
		col[i] = -1;
	if (fgets(line, sizeof(line), f))
		for (w = strtok_r(line, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save), ncol++)
			for (int i = 0; i < C_N; i++)
				if (strcmp(w, want[i]) == 0)
					col[i] = ncol;
	for (int i = 0; i < C_N; i++)
		if (col[i] < 0) {
			warnx("/proc/sysvipc/shm: no '%s' column", want[i]);
			fclose(f);
			return -1;
		}
	while (fgets(line, sizeof(line), f)) {
		long long v[32];
		int k = 0;

		for (w = strtok_r(line, " \t\n", &save); w && k < 32; w = strtok_r(NULL, " \t\n", &save)) {
			v[k] = strtoll(w, NULL, k == col[C_PERMS] ? 8 : 10);
			k++;
		}
		if (k < ncol)
			continue;
		struct lsrow *r = new_row(ls);
		r->key = (int32_t)v[col[C_KEY]];
		r->shmid = (int32_t)v[col[C_SHMID]];
		r->mode = (unsigned)v[col[C_PERMS]];
		r->size = (uint64_t)v[col[C_SIZE]];
		r->cpid = (long)v[col[C_CPID]];
		r->lpid = (long)v[col[C_LPID]];
		r->nattch = (long)v[col[C_NATTCH]];
		r->uid = (uint32_t)v[col[C_UID]];
		r->ctime = v[col[C_CTIME]];
		r->command = cmdline(r->cpid);
	}
	fclose(f);
	return 0;
}

/* Processes mapping each POSIX row's object, counted once per process. */
static void count_posix_maps(struct ls *ls)
{
	DIR *d = opendir("/proc");
	bool any = false;

	for (size_t i = 0; i < ls->n; i++)
		any |= ls->rows[i].posix;
	if (!d || !any) {
		if (d)
			closedir(d);
		return;
	}
	bool *seen = xrealloc(NULL, ls->n * sizeof(*seen));
	for (struct dirent *de; (de = readdir(d)); ) {
		char path[300], line[1024];
		FILE *f;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/maps", de->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		memset(seen, 0, ls->n * sizeof(*seen));
		while (fgets(line, sizeof(line), f)) {
			unsigned maj, min;
			unsigned long long ino;

			if (sscanf(line, "%*x-%*x %*s %*x %x:%x %llu", &maj, &min, &ino) != 3 || !ino)
				continue;
			for (size_t i = 0; i < ls->n; i++) {
				struct lsrow *r = &ls->rows[i];

				if (r->posix && !seen[i] && r->ino == ino && r->dev == makedev(maj, min)) {
					seen[i] = true;
					r->nattch++;
				}
			}
		}
		fclose(f);
	}
	free(seen);
	closedir(d);
}

static int read_posix(struct ls *ls)
{
	DIR *d = opendir(SHM_DIR);

	if (!d) {
		if (errno == ENOENT)
			return 0;
		warn("%s", SHM_DIR);
		return -1;
	}
	for (struct dirent *de; (de = readdir(d)); ) {
		struct stat st;

		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		struct lsrow *r = new_row(ls);
		r->posix = true;
		r->name = xrealloc(NULL, strlen(de->d_name) + 2);
		sprintf(r->name, "/%s", de->d_name);
		r->mode = st.st_mode & 07777;
		r->size = (uint64_t)st.st_size;
		r->uid = st.st_uid;
		r->ctime = st.st_ctim.tv_sec;
		r->dev = st.st_dev;
		r->ino = st.st_ino;
	}
	closedir(d);
	count_posix_maps(ls);
	return 0;
}

static int cmp_row(const void *a, const void *b)
{
	const struct lsrow *x = a, *y = b;

	if (x->posix != y->posix)
		return x->posix ? 1 : -1;
	if (x->posix)
		return strcmp(x->name, y->name);
	return x->shmid < y->shmid ? -1 : x->shmid > y->shmid;
}

/* ---- the join with the logs ------------------------------------------- */

static void join(struct ls *ls, struct model *m, struct symbolizer *sym)
{
	for (size_t i = 0; i < ls->n; i++) {
		struct lsrow *r = &ls->rows[i];

		/* Newest first: ids and names are reused. */
		for (size_t j = m->nsegs; j-- > 0; ) {
			const struct tseg *s = m->segs[j];

			if (!s->create)
				continue;
			if (r->posix) {
				if (s->kind != SEG_POSIX || s->ns != m->self_mnt_ns ||
				    s->ino != r->ino || s->dev != r->dev)
					continue;
			} else if (s->kind != SEG_SYSV || s->ns != m->self_ipc_ns ||
				   s->shmid != r->shmid || s->key != r->key ||
				   (long)s->create->p->hdr.pid != r->cpid)
				continue;
			if (m->have_boot_id && memcmp(s->create->p->hdr.boot_id, m->self_boot_id, 16))
				continue;
			r->origin = s;
			stack_summary(sym, s->create, 8, r->origin_stack, sizeof(r->origin_stack));
			break;
		}
	}
}

/* ---- output ------------------------------------------------------------ */

static void perms_str(char out[10], unsigned mode)
{
	static const char rwx[] = "rwxrwxrwx";

	for (int i = 0; i < 9; i++)
		out[i] = mode & (0400u >> i) ? rwx[i] : '-';
	out[9] = '\0';
}

static void status_str(char *out, size_t n, const struct lsrow *r)
{
	out[0] = '\0';
	if (r->posix)
		return;
	snprintf(out, n, "%s%s%s%s",
		 r->mode & SHM_DEST ? "dest," : "", r->mode & SHM_LOCKED ? "locked," : "",
		 r->mode & SHM_HUGETLB ? "hugetlb," : "", r->mode & SHM_NORESERVE ? "noreserve," : "");
	size_t l = strlen(out);
	if (l)
		out[l - 1] = '\0';
}

static void owner_str(char *out, size_t n, uint32_t uid)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(out, n, "%s", pw->pw_name);
	else
		snprintf(out, n, "%u", uid);
}

static void time_str(char *out, size_t n, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t || !localtime_r(&tt, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, n, "-");
}

static void size_str(char *out, size_t n, uint64_t v, bool bytes)
{
	static const char units[] = "KMGTPE";
	double d = (double)v;
	int u = -1;

	if (bytes || v < 1024) {
		snprintf(out, n, "%" PRIu64 "%s", v, bytes ? "" : "B");
		return;
	}
	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (d < 10 && d != (double)(uint64_t)d)
		snprintf(out, n, "%.1f%c", d, units[u]);
	else
		snprintf(out, n, "%.0f%c", d, units[u]);
}

static const char *command_of(const struct lsrow *r)
{
	static char buf[SK_ARGS_MAX + 8];

	if (r->command)
		return r->command;
	if (r->origin) {   /* the process has gone; its recorded argv */
		const struct sk_file_header *h = &r->origin->create->p->hdr;
		size_t k = 0;

		buf[0] = '\0';
		for (const char *a = NULL; (a = sk_args_next(h, a)) && k < sizeof(buf) - 1; )
			k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%s", k ? " " : "", a);
		return buf[0] ? buf : h->exe;
	}
	return "-";
}

static void jstr(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			printf("\\u%04x", *p < 0x80 ? *p : 0xfffd);
		else
			putchar(*p);
	}
	putchar('"');
}

static void print_json(const struct ls *ls, bool joined)
{
	printf("{\n   \"sharedmemory\": [");
	for (size_t i = 0; i < ls->n; i++) {
		const struct lsrow *r = &ls->rows[i];
		char perms[10], owner[64], status[64], ct[32];

		perms_str(perms, r->mode);
		owner_str(owner, sizeof(owner), r->uid);
		status_str(status, sizeof(status), r);
		time_str(ct, sizeof(ct), r->ctime);
		printf("%s\n      {", i ? "," : "");
		if (r->posix) {
			printf("\"type\": \"posix\", \"key\": null, \"id\": null, \"name\": ");
			jstr(r->name);
		} else
			printf("\"type\": \"sysv\", \"key\": \"0x%08x\", \"id\": %d", (unsigned)r->key, r->shmid);
		printf(", \"owner\": ");
		jstr(owner);
		printf(", \"uid\": %u, \"perms\": \"%s\", \"mode\": %u, \"size\": %" PRIu64 ", \"nattch\": %ld, "
		       "\"status\": ", r->uid, perms, r->mode & 0777, r->size, r->nattch);
		jstr(status);
		printf(", \"ctime\": ");
		jstr(ct);
		if (r->cpid >= 0)
			printf(", \"cpid\": %ld, \"lpid\": %ld", r->cpid, r->lpid);
		else
			printf(", \"cpid\": null, \"lpid\": null");
		printf(", \"command\": ");
		if (r->command || r->origin)
			jstr(command_of(r));
		else
			printf("null");
		if (joined) {
			printf(",\n       \"origin\": ");
			if (r->origin) {
				const struct tproc *p = r->origin->create->p;

				printf("{\"pid\": %u, \"exe\": ", p->hdr.pid);
				jstr(p->hdr.exe);
				printf(", \"log\": ");
				jstr(p->log_path);
				printf(", \"segment\": %d, \"stack\": ", r->origin->idx);
				jstr(r->origin_stack);
				printf("}");
			} else
				printf("null");
		}
		printf("}");
	}
	printf(ls->n ? "\n   ]\n}\n" : "]\n}\n");
}

static void print_table(const struct ls *ls, bool joined, bool bytes)
{
	enum { K, I, P, O, S, N, ST, CT, CP, LP, CM, OR, NC };
	static const char *const title[NC] = { "KEY", "ID", "PERMS", "OWNER", "SIZE", "NATTCH",
		"STATUS", "CTIME", "CPID", "LPID", "COMMAND", "ORIGIN" };
	static const bool right[NC] = { [I] = true, [S] = true, [N] = true, [CP] = true, [LP] = true };
	int ncol = joined ? NC : NC - 1;
	size_t w[NC];
	char *cell = xrealloc(NULL, (ls->n + 1) * NC * 96);   /* formatted short cells */

#define CELL(row, c) (cell + ((size_t)(row) * NC + (c)) * 96)
	for (int c = 0; c < NC; c++)
		w[c] = strlen(title[c]);
	for (size_t i = 0; i < ls->n; i++) {
		const struct lsrow *r = &ls->rows[i];
		char perms[10];

		perms_str(perms, r->mode);
		if (r->posix) {
			snprintf(CELL(i, K), 96, "%s", "-");
			snprintf(CELL(i, I), 96, "%s", "-");
		} else {
			snprintf(CELL(i, K), 96, "0x%08x", (unsigned)r->key);
			snprintf(CELL(i, I), 96, "%d", r->shmid);
		}
		owner_str(CELL(i, O), 96, r->uid);
		snprintf(CELL(i, P), 96, "%s", perms);
		size_str(CELL(i, S), 96, r->size, bytes);
		snprintf(CELL(i, N), 96, "%ld", r->nattch);
		status_str(CELL(i, ST), 96, r);
		time_str(CELL(i, CT), 96, r->ctime);
		snprintf(CELL(i, CP), 96, r->cpid >= 0 ? "%ld" : "-", r->cpid);
		snprintf(CELL(i, LP), 96, r->lpid >= 0 ? "%ld" : "-", r->lpid);
		for (int c = 0; c < CM; c++)
			if (strlen(CELL(i, c)) > w[c])
				w[c] = strlen(CELL(i, c));
	}
	/* POSIX names go in the KEY column: they are what names the object. */
	for (size_t i = 0; i < ls->n; i++)
		if (ls->rows[i].posix && strlen(ls->rows[i].name) > w[K])
			w[K] = strlen(ls->rows[i].name) > 40 ? 40 : strlen(ls->rows[i].name);
	for (int c = 0; c < ncol; c++)
		if (c == CM || c == ncol - 1)
			printf("%s%s", c ? " " : "", title[c]);
		else
			printf("%s%*s", c ? " " : "", right[c] ? (int)w[c] : -(int)w[c], title[c]);
	putchar('\n');
	for (size_t i = 0; i < ls->n; i++) {
		const struct lsrow *r = &ls->rows[i];

		for (int c = 0; c < CM; c++) {
			const char *v = c == K && r->posix ? r->name : CELL(i, c);

			printf("%s%*s", c ? " " : "", right[c] ? (int)w[c] : -(int)w[c], v[0] ? v : "-");
		}
		if (joined) {
			printf(" %-*s", 20, command_of(r));
			if (r->origin)
				printf(" pid %u: %s", r->origin->create->p->hdr.pid,
				       r->origin_stack[0] ? r->origin_stack : "(no backtrace)");
			else
				printf(" -");
		} else
			printf(" %s", command_of(r));
		putchar('\n');
	}
#undef CELL
	free(cell);
}

static void ls_usage(FILE *f)
{
	fprintf(f,
		"Usage: shmkeeper ls [--json] [--bytes] [--log-dir=DIR]\n"
		"\n"
		"Lists the System V shared-memory segments and the POSIX objects in /dev/shm\n"
		"that exist now, in the columns of lsipc -m. With --log-dir, joins each with\n"
		"its recorded origin (creator and creating stack) from the logs in DIR.\n"
		"\n"
		"  --json          JSON, like lsipc --json (sizes in bytes)\n"
		"  -b, --bytes     sizes in bytes\n"
		"  --log-dir=DIR   the shmkeeper logs to join with\n"
		"  -h, --help      this help\n");
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "bytes", no_argument, NULL, 'b' },
		{ "log-dir", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ls ls = { 0 };
	struct model m;
	struct symbolizer *sym = NULL;
	const char *log_dir = NULL;
	bool json = false, bytes = false, joined = false;
	int c, rc = EXIT_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "bhJ", opts, NULL)) != -1) {
		switch (c) {
		case 'J': json = true; break;
		case 'b': bytes = true; break;
		case 'L': log_dir = optarg; break;
		case 'h': ls_usage(stdout); return EXIT_OK;
		default:
			fprintf(stderr, "Try 'shmkeeper ls --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		errx(EXIT_USAGE, "ls: unexpected argument '%s' (try 'shmkeeper ls --help')", argv[optind]);
	if (read_sysv(&ls) < 0)
		rc = EXIT_BADLOGS;
	if (read_posix(&ls) < 0)
		rc = EXIT_BADLOGS;
	qsort(ls.rows, ls.n, sizeof(*ls.rows), cmp_row);
	if (log_dir) {
		int lr = model_load(&m, log_dir);

		if (lr < 0) {
			warnx("%s: %s", log_dir, strerror(-lr));
			model_free(&m);
			rc = EXIT_NOREPORT;
		} else {
			model_analyse(&m);
			sym = sym_new();
			join(&ls, &m, sym);
			joined = true;
			if (m.bad_files || m.damaged_files)
				rc = EXIT_BADLOGS;
		}
	}
	if (json)
		print_json(&ls, joined);
	else
		print_table(&ls, joined, bytes);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		warnx("write error");
		rc = EXIT_NOREPORT;
	}
	if (joined) {
		sym_free(sym);
		model_free(&m);
	}
	for (size_t i = 0; i < ls.n; i++) {
		free(ls.rows[i].name);
		free(ls.rows[i].command);
	}
	free(ls.rows);
	return rc;
}
