/* reap.c - `shmkeeper run --reap`: what the run leaked, removed once the
 * whole process tree has ended (the tool is its subreaper: daemons that
 * double-fork are still its descendants). SIGKILL runs no cleanup; this is
 * the cleanup that SIGKILL cannot prevent.
 *
 * Removed: a segment a process of this run created (its log began after the
 * run started, in this boot), that no recorded process removed, that still
 * exists as the same object (SysV: id, key and creator pid; POSIX: name,
 * device and inode), and that no process holds: every process of the run is
 * dead by now, so any holder is outside the run and keeps it.
 */
#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/logread.h"
#include "tools/sweep.h"

static const char *label(const struct tproc *p, char *buf, size_t n)
{
	const char *a = sk_args_next(&p->hdr, NULL);
	snprintf(buf, n, "%.200s", a && *a ? a : p->hdr.exe[0] ? p->hdr.exe : "?");
	return buf;
}

static bool of_this_run(const struct model *m, const struct tseg *s, uint64_t since)
{
	const struct tproc *p = s->create->p;
	if (p->hdr.image_mono_ns < since)
		return false;    /* a log of an earlier run in the same --log-dir */
	return !m->have_boot_id || memcmp(p->hdr.boot_id, m->self_boot_id, 16) == 0;
}

/* 0 removed, 1 kept (*why), -1 failed (errno). */
static int reap_sysv(const struct model *m, const struct tseg *s, const char **why)
{
	struct shmid_ds ds;
	if (s->ns != m->self_ipc_ns) {
		*why = "created in another IPC namespace";
		return 1;
	}
	if (shmctl(s->shmid, IPC_STAT, &ds) < 0) {
		*why = errno == EINVAL || errno == EIDRM ? "already gone" : "cannot be examined";
		return 1;
	}
	if (ds.shm_perm.__key != s->key || ds.shm_cpid != (pid_t)s->create->p->hdr.pid) {
		*why = "the id now names another segment";
		return 1;
	}
	if (ds.shm_nattch > 0) {
		*why = "attached by a process outside the run";
		return 1;
	}
	return shmctl(s->shmid, IPC_RMID, NULL) < 0 ? -1 : 0;
}

static int reap_posix(const struct model *m, const struct tseg *s, struct holders **h,
		      const char **why)
{
	char path[SK_NAME_MAX + 16];
	struct stat st;
	if (s->ns != m->self_mnt_ns) {
		*why = "created in another mount namespace";
		return 1;
	}
	snprintf(path, sizeof(path), "/dev/shm/%s", s->name + (s->name[0] == '/'));
	if (stat(path, &st) < 0) {
		*why = errno == ENOENT ? "already gone" : "cannot be examined";
		return 1;
	}
	if (st.st_dev != s->dev || st.st_ino != s->ino) {
		*why = "the name now names another object";
		return 1;
	}
	if (!*h)
		*h = holders_scan();
	if (holders_find(*h, st.st_dev, st.st_ino)) {
		*why = "mapped or open in a process outside the run";
		return 1;
	}
	if (holders_unreadable(*h)) {
		*why = "some processes' mappings could not be read";
		return 1;
	}
	return unlink(path) < 0 ? -1 : 0;
}

unsigned reap_after(FILE *f, const char *dir, uint64_t since_mono)
{
	struct model m;
	struct holders *h = NULL;
	unsigned failed = 0, n = 0;

	if (model_load(&m, dir) < 0) {
		warnx("--reap: %s cannot be read: nothing reaped", dir);
		model_free(&m);
		return 1;
	}
	model_analyse(&m);
	for (size_t i = 0; i < m.nsegs; i++) {
		const struct tseg *s = m.segs[i];
		const char *why = NULL;
		char who[256], id[SK_NAME_MAX + 64];
		int rc;

		if (!s->create || !model_is_leak(s) || !of_this_run(&m, s, since_mono))
			continue;
		if (s->kind == SEG_SYSV) {
			snprintf(id, sizeof(id), "SysV shmid %d key 0x%08x", s->shmid, (unsigned)s->key);
			rc = reap_sysv(&m, s, &why);
		} else {
			snprintf(id, sizeof(id), "POSIX %s", s->name);
			rc = reap_posix(&m, s, &h, &why);
		}
		if (n++ == 0)
			fprintf(f, "\n== Reaped after the process tree ended (--reap):\n");
		fprintf(f, "   %s, %" PRIu64 " bytes, created by pid %u (%s): ", id, s->size,
			s->create->p->hdr.pid, label(s->create->p, who, sizeof(who)));
		if (rc == 0)
			fprintf(f, "reaped\n");
		else if (rc > 0)
			fprintf(f, "kept: %s\n", why);
		else {
			fprintf(f, "removal failed: %s\n", strerror(errno));
			failed++;
		}
	}
	holders_free(h);
	model_free(&m);
	return failed;
}
