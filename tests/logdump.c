/* logdump - print shmkeeper logs one event a line, for the shell tests.
 *
 * Usage: logdump [-a] [-t] FILE|DIR...
 *   -a  also print modules (left out by default: they are noise to a test)
 *   -t  print each record's time (CLOCK_MONOTONIC ns, as the reader gives
 *       it) as "t=NS" after its type
 *
 * Each file starts with a line
 *   file PATH pid=P ppid=P parent=P exec=N flags=F dropped=N failed=F0,F1,...
 * then one line per record, "TYPE key=value ...", addresses and ids in the
 * form the tests grep for (decimal ids, hex addresses), then
 *   end holes=N bad=N trunc=N
 * Exit: 0; 1 when a file could not be read or held a damaged record (a hole
 * is not damage: its writer was killed inside a call). Uses core/logread.h,
 * the same reader as the tool. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/logread.h"

static int show_modules, show_times;

static void dump_event(const struct sk_event *ev)
{
	const struct sk_rec *r = ev->rec;
	printf("%s", sk_event_type_name(ev->type));
	if (show_times)
		printf(" t=%" PRIu64, r->mono_ns);
	printf(" tid=%" PRIu32, r->tid);
	switch (ev->type) {
	case SK_EV_SYSV_GET: {
		const struct sk_ev_sysv_get *e = (const void *)r;
		printf(" key=%" PRId32 " shmid=%" PRId32 " size=%" PRIu64 " shmflg=%#" PRIx32
		       " flags=%u mode=%#o cuid=%" PRIu32,
		       e->key, e->shmid, e->size, (uint32_t)e->shmflg, e->flags, e->mode, e->cuid);
		break;
	}
	case SK_EV_SYSV_AT: {
		const struct sk_ev_sysv_at *e = (const void *)r;
		printf(" shmid=%" PRId32 " shmflg=%#" PRIx32 " addr=%#" PRIx64 " req=%#" PRIx64
		       " size=%" PRIu64 " flags=%u",
		       e->shmid, (uint32_t)e->shmflg, e->addr, e->req_addr, e->size, e->flags);
		break;
	}
	case SK_EV_SYSV_DT: {
		const struct sk_ev_sysv_dt *e = (const void *)r;
		printf(" shmid=%" PRId32 " addr=%#" PRIx64 " size=%" PRIu64 " flags=%u",
		       e->shmid, e->addr, e->size, e->flags);
		break;
	}
	case SK_EV_SYSV_CTL: {
		const struct sk_ev_sysv_ctl *e = (const void *)r;
		printf(" shmid=%" PRId32 " cmd=%" PRId32 " uid=%" PRIu32 " gid=%" PRIu32
		       " mode=%#o key=%" PRId32 " size=%" PRIu64 " flags=%u",
		       e->shmid, e->cmd, e->uid, e->gid, e->mode, e->key, e->size, e->flags);
		break;
	}
	case SK_EV_POSIX_OPEN: {
		const struct sk_ev_posix_open *e = (const void *)r;
		printf(" name=%s fd=%" PRId32 " oflag=%#" PRIx32 " ino=%" PRIu64 " size=%" PRIu64
		       " mode=%#o flags=%u",
		       ev->name ? ev->name : "", e->fd, (uint32_t)e->oflag, e->ino, e->size,
		       e->mode, e->flags);
		break;
	}
	case SK_EV_POSIX_UNLINK: {
		const struct sk_ev_posix_unlink *e = (const void *)r;
		printf(" name=%s ino=%" PRIu64, ev->name ? ev->name : "", e->ino);
		break;
	}
	case SK_EV_POSIX_MAP:
	case SK_EV_UNMAP: {
		const struct sk_ev_map *e = (const void *)r;
		printf(" ino=%" PRIu64 " shmid=%" PRId32 " addr=%#" PRIx64 " len=%" PRIu64
		       " offset=%" PRIu64 " prot=%" PRId32 " mflags=%#" PRIx32 " flags=%u",
		       e->ino, e->shmid, e->addr, e->len, e->offset, e->prot,
		       (uint32_t)e->mflags, e->flags);
		break;
	}
	case SK_EV_REMAP: {
		const struct sk_ev_remap *e = (const void *)r;
		printf(" ino=%" PRIu64 " shmid=%" PRId32 " old=%#" PRIx64 " old_len=%" PRIu64
		       " new=%#" PRIx64 " new_len=%" PRIu64 " mflags=%#" PRIx32 " flags=%u",
		       e->ino, e->shmid, e->old_addr, e->old_len, e->new_addr, e->new_len,
		       (uint32_t)e->mflags, e->flags);
		break;
	}
	case SK_EV_RESIZE: {
		const struct sk_ev_resize *e = (const void *)r;
		printf(" ino=%" PRIu64 " fd=%" PRId32 " size=%" PRIu64 " how=%" PRId32,
		       e->ino, e->fd, e->size, e->how);
		break;
	}
	case SK_EV_FORK: {
		const struct sk_ev_proc *e = (const void *)r;
		printf(" child=%" PRIu32 " how=%" PRIu32, e->child_pid, e->how);
		break;
	}
	case SK_EV_EXEC:
	case SK_EV_EXEC_FAILED: {
		const struct sk_ev_exec *e = (const void *)r;
		printf(" path=%s err=%" PRId32, ev->name ? ev->name : "", e->err);
		break;
	}
	case SK_EV_EXIT: {
		const struct sk_ev_exit *e = (const void *)r;
		printf(" status=%" PRId32, e->status);
		break;
	}
	case SK_EV_WARN: {
		const struct sk_ev_warn *e = (const void *)r;
		printf(" code=%" PRIu32 " arg1=%" PRId64 " arg2=%" PRId64 " text=%s", e->code,
		       e->arg1, e->arg2, ev->name ? ev->name : "");
		break;
	}
	case SK_EV_MODULE:
	case SK_EV_MODULE_GONE:
		printf(" path=%s", ev->name ? ev->name : "");
		break;
	default:
		break;
	}
	printf(" nframes=%u\n", ev->nframes);
}

static int dump_file(const char *path)
{
	struct sk_reader *r;
	int rc = sk_reader_open(&r, path);
	if (rc < 0) {
		fprintf(stderr, "logdump: %s: %s\n", path,
			rc == -EPROTO && r ? sk_reader_diag(r) : strerror(-rc));
		sk_reader_close(r);
		return 1;
	}
	const struct sk_file_header *h = sk_reader_header(r);
	printf("file %s pid=%" PRIu32 " ppid=%" PRIu32 " parent=%" PRIu32 " exec=%" PRIu32
	       " flags=%" PRIu32 " dropped=%" PRIu64 " failed=",
	       path, h->pid, h->ppid, h->parent_pid, h->exec_count, h->flags, h->dropped);
	for (int i = 0; i < SK_FN_SHM_OPEN + 7; i++)
		printf("%s%" PRIu64, i ? "," : "", h->failed[i]);
	printf(" exe=%s\n", h->exe);
	unsigned holes = 0, bad = 0, trunc = 0;
	struct sk_event ev;
	int status = 0;
	while ((rc = sk_reader_next(r, &ev)) != SK_RD_END) {
		if (rc < 0) {
			fprintf(stderr, "logdump: %s: %s\n", path, strerror(-rc));
			status = 1;
			break;
		}
		if (rc == SK_RD_EVENT) {
			if (show_modules || (ev.type != SK_EV_MODULE && ev.type != SK_EV_MODULE_GONE))
				dump_event(&ev);
		} else {
			fprintf(stderr, "logdump: %s: offset %" PRIu64 ": %s\n", path,
				sk_reader_diag_offset(r), sk_reader_diag(r));
			if (rc == SK_RD_HOLE)
				holes++;
			else if (rc == SK_RD_BAD)
				bad++, status = 1;
			else
				trunc++;
		}
	}
	printf("end holes=%u bad=%u trunc=%u\n", holes, bad, trunc);
	sk_reader_close(r);
	return status;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int only_logs(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return n > 5 && strcmp(d->d_name + n - 5, ".shmk") == 0;
}

int main(int argc, char **argv)
{
	int status = 0, i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1] && !argv[i][2]; i++) {
		if (argv[i][1] == 'a')
			show_modules = 1;
		else if (argv[i][1] == 't')
			show_times = 1;
		else
			break;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: logdump [-a] [-t] FILE|DIR...\n");
		return 2;
	}
	for (; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "logdump: %s: %s\n", argv[i], strerror(errno));
			status = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			status |= dump_file(argv[i]);
			continue;
		}
		struct dirent **names;
		int n = scandir(argv[i], &names, only_logs, by_name);
		if (n < 0) {
			fprintf(stderr, "logdump: %s: %s\n", argv[i], strerror(errno));
			status = 1;
			continue;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
			status |= dump_file(path);
			free(names[k]);
		}
		free(names);
	}
	return status;
}
