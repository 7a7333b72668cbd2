/* model.c - every log of a directory, merged into processes and segments.
 *
 * Each process image logs on its own, so a segment's life is spread over
 * several files: created in one, attached in others, removed perhaps by a
 * third (ipcrm, Python's resource_tracker, a server). The events of all files
 * are merged in CLOCK_MONOTONIC order (one clock for the whole boot) and
 * replayed. A segment is named as the kernel names it: SysV by (ipc_ns, shmid)
 * with its key, POSIX by (mnt_ns, dev, ino) with its name; a later create of
 * the same id or name starts a new segment, as the kernel reuses both.
 */
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/logread.h"
#include "tools/tool.h"

#define OWN_PREFIX "/shmkeeper."   /* the library's own objects */

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		err(EXIT_NOREPORT, "out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		err(EXIT_NOREPORT, "out of memory");
	return d;
}

#define GROW(arr, n, cap) do { \
	if ((n) == (cap)) { \
		(cap) = (cap) ? 2 * (cap) : 16; \
		(arr) = xrealloc((arr), (cap) * sizeof(*(arr))); \
	} \
} while (0)

/* ---- loading ----------------------------------------------------------- */

struct loader {
	struct model *m;
	size_t evs_cap, procs_cap;
};

static void add_module(struct tproc *p, const struct sk_event *ev, uint64_t seq)
{
	const struct sk_ev_module *e = (const void *)ev->rec;
	size_t i;

	if (ev->type == SK_EV_MODULE_GONE) {
		for (i = 0; i < p->nmods; i++)
			if (p->mods[i].to_seq == UINT64_MAX && p->mods[i].base == e->base &&
			    p->mods[i].start == e->start)
				p->mods[i].to_seq = seq;
		return;
	}
	if (e->end <= e->start)
		return;
	p->mods = xrealloc(p->mods, (p->nmods + 1) * sizeof(*p->mods));
	struct tmodule *mod = &p->mods[p->nmods++];
	memset(mod, 0, sizeof(*mod));
	mod->base = e->base;
	mod->start = e->start;
	mod->end = e->end;
	mod->path = xstrdup(ev->name ? ev->name : "");
	mod->build_id_len = ev->build_id_len <= sizeof(mod->build_id) ? ev->build_id_len : 0;
	memcpy(mod->build_id, ev->build_id, mod->build_id_len);
	mod->from_seq = seq;
	mod->to_seq = UINT64_MAX;
}

static void keep_event(struct loader *ld, struct tproc *p, const struct sk_event *ev, uint64_t seq)
{
	struct model *m = ld->m;
	struct tev *t;

	GROW(m->evs, m->nevs, ld->evs_cap);
	t = &m->evs[m->nevs++];
	t->p = p;
	t->seq = seq;
	t->mono = ev->rec->mono_ns;
	t->type = ev->type;
	t->rec = xrealloc(NULL, ev->len);
	memcpy(t->rec, ev->rec, ev->len);
	t->name = ev->name ? (const char *)t->rec + (ev->name - (const char *)ev->rec) : NULL;
	t->frames = ev->frames ? (const uint64_t *)((const char *)t->rec +
			((const char *)ev->frames - (const char *)ev->rec)) : NULL;
	t->nframes = ev->nframes;
}

static void load_file(struct loader *ld, const char *path)
{
	struct model *m = ld->m;
	struct sk_reader *r;
	struct sk_event ev;
	struct tproc *p;
	uint64_t seq = 0;
	int rc = sk_reader_open(&r, path);

	if (rc < 0) {
		if (rc == -EPROTO)
			warnx("%s: offset %" PRIu64 ": %s", path, sk_reader_diag_offset(r),
			      sk_reader_diag(r));
		else
			warnx("%s: %s", path, strerror(-rc));
		sk_reader_close(r);
		m->bad_files++;
		return;
	}
	p = xrealloc(NULL, sizeof(*p));
	memset(p, 0, sizeof(*p));
	p->log_path = xstrdup(path);
	p->hdr = *sk_reader_header(r);
	p->exit_status = -1;
	bool damaged = false;
	while ((rc = sk_reader_next(r, &ev)) != SK_RD_END) {
		if (rc < 0) {
			warnx("%s: read error: %s", path, strerror(-rc));
			damaged = true;
			break;
		}
		if (rc != SK_RD_EVENT) {
			warnx("%s: offset %" PRIu64 ": %s", path, sk_reader_diag_offset(r),
			      sk_reader_diag(r));
			if (rc == SK_RD_HOLE)
				p->holes++;
			else if (rc == SK_RD_TRUNC)
				p->truncated = damaged = true;
			else {
				p->bad++;
				damaged = true;
			}
			continue;
		}
		if (ev.type == SK_EV_MODULE || ev.type == SK_EV_MODULE_GONE)
			add_module(p, &ev, seq);
		else
			keep_event(ld, p, &ev, seq);
		if (ev.rec->mono_ns > p->last_mono)
			p->last_mono = ev.rec->mono_ns;
		seq++;
	}
	p->nrecords = seq;
	if (p->hdr.dropped) {   /* the writer's log was full: events are missing */
		warnx("%s: %" PRIu64 " records were not written (log full): this process's "
		      "events are incomplete", path, p->hdr.dropped);
		damaged = true;
	}
	if (damaged)
		m->damaged_files++;
	sk_reader_close(r);
	GROW(m->procs, m->nprocs, ld->procs_cap);
	p->idx = (int)m->nprocs;
	m->procs[m->nprocs++] = p;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_ev(const void *a, const void *b)
{
	const struct tev *x = a, *y = b;

	if (x->mono != y->mono)
		return x->mono < y->mono ? -1 : 1;
	if (x->p->idx != y->p->idx)
		return x->p->idx < y->p->idx ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool same_process(const struct tproc *a, const struct tproc *b)
{
	return a->hdr.pid == b->hdr.pid && a->hdr.start_ticks == b->hdr.start_ticks &&
	       memcmp(a->hdr.boot_id, b->hdr.boot_id, 16) == 0;
}

/* Fork parents and exec chains, from the headers. */
static void link_procs(struct model *m)
{
	for (size_t i = 0; i < m->nprocs; i++) {
		struct tproc *p = m->procs[i], *best = NULL;

		for (size_t j = 0; j < m->nprocs; j++) {
			struct tproc *q = m->procs[j];

			if (q == p || !same_process(p, q) ||
			    q->hdr.image_mono_ns >= p->hdr.image_mono_ns)
				continue;
			if (!best || q->hdr.image_mono_ns > best->hdr.image_mono_ns)
				best = q;
		}
		if (best) {
			p->exec_prev = best;
			best->exec_next = p;
			continue;
		}
		/* The parent image that was running when the child was made. */
		for (size_t j = 0; (p->hdr.flags & SK_HF_FORKED) && j < m->nprocs; j++) {
			struct tproc *q = m->procs[j];

			if (q->hdr.pid != p->hdr.parent_pid ||
			    q->hdr.start_ticks != p->hdr.parent_start_ticks ||
			    memcmp(q->hdr.boot_id, p->hdr.boot_id, 16) != 0 ||
			    q->hdr.image_mono_ns > p->hdr.image_mono_ns)
				continue;
			if (!best || q->hdr.image_mono_ns > best->hdr.image_mono_ns)
				best = q;
		}
		/* A fork child that execs before it logs anything (Python's
		 * resource_tracker, every fork+exec of a shell) leaves only its
		 * exec'd image, which names its parent by ppid alone: take the
		 * parent's image that was running then. */
		for (size_t j = 0; !best && j < m->nprocs; j++) {
			struct tproc *q = m->procs[j];

			if (q == p || q->hdr.pid != p->hdr.ppid ||
			    memcmp(q->hdr.boot_id, p->hdr.boot_id, 16) != 0 ||
			    q->hdr.image_mono_ns > p->hdr.image_mono_ns)
				continue;
			struct tproc *last = q;
			while (last->exec_next && last->exec_next->hdr.image_mono_ns <= p->hdr.image_mono_ns)
				last = last->exec_next;
			best = last;
		}
		p->parent = best;
	}
}

static void read_self(struct model *m)
{
	struct stat st;
	char buf[64];
	int fd;

	if (stat("/proc/self/ns/ipc", &st) == 0)
		m->self_ipc_ns = st.st_ino;
	if (stat("/proc/self/ns/mnt", &st) == 0)
		m->self_mnt_ns = st.st_ino;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		unsigned k = 0;

		for (ssize_t i = 0; i < n && k < 32; i++) {
			int c = buf[i], v;

			if (c >= '0' && c <= '9') v = c - '0';
			else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
			else continue;
			m->self_boot_id[k / 2] |= (uint8_t)(k % 2 ? v : v << 4);
			k++;
		}
		m->have_boot_id = k == 32;
		close(fd);
	}
}

bool model_quiet_empty;

int model_load(struct model *m, const char *dir)
{
	struct loader ld = { .m = m };
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct stat st;
	DIR *d;

	memset(m, 0, sizeof(*m));
	m->dir = dir;
	read_self(m);
	if (stat(dir, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {    /* a single log */
		load_file(&ld, dir);
		goto loaded;
	}
	d = opendir(dir);
	if (!d)
		return -errno;
	for (struct dirent *de; (de = readdir(d)); ) {
		if (fnmatch("shmk-*.shmk", de->d_name, 0) != 0)
			continue;
		GROW(names, n, cap);
		names[n] = xrealloc(NULL, strlen(dir) + strlen(de->d_name) + 2);
		sprintf(names[n], "%s/%s", dir, de->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	progress_start();
	for (size_t i = 0; i < n; i++) {
		progress("reading logs:", i, n);
		load_file(&ld, names[i]);
		free(names[i]);
	}
	progress_done();
	free(names);
	if (n == 0)
		if (!model_quiet_empty)
			warnx("%s: no shmkeeper logs (shmk-*.shmk) in this directory", dir);
loaded:
	link_procs(m);
	if (m->nevs)
		qsort(m->evs, m->nevs, sizeof(*m->evs), cmp_ev);
	return 0;
}

/* ---- replay ------------------------------------------------------------ */

/* Open attachments of a process image, for detaches by address and the
 * implicit ones at fork, exec and exit. */
struct att {
	struct tproc *p;
	struct tseg *s;
	uint64_t addr, len;
};

struct replay {
	struct model *m;
	size_t segs_cap;
	struct att *atts;
	size_t natts, atts_cap;
};

/* Segments by identity: (ns, shmid) for SysV, (ns, dev, ino) and (ns, name)
 * for POSIX. Each chain holds the newest first, so a lookup finds the segment
 * that currently has the id (the kernel reuses ids and names). Measured here
 * (tool_mklog many=20000: 20000 SysV and 20000 POSIX segments made, used and
 * removed, 180000 records): 1.7 s with a scan from the newest segment, which
 * also turns quadratic when thousands stay alive at once; 0.6 s with this. */
#define IDX_SIZE (1u << 16)

struct ient {
	struct tseg *s;
	struct ient *next;
};

static struct ient **idx_id, **idx_name;   /* IDX_SIZE heads each */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
	return h;
}

static uint64_t hash_id(const struct tseg *s)
{
	return s->kind == SEG_SYSV ? mix(mix(1, s->ns), (uint32_t)s->shmid)
				   : mix(mix(mix(2, s->ns), s->dev), s->ino);
}

static uint64_t hash_name(uint64_t ns, const char *name)
{
	uint64_t h = mix(3, ns);

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3u;
	return h;
}

static void idx_add(struct ient **tab, uint64_t h, struct tseg *s)
{
	struct ient *e = xrealloc(NULL, sizeof(*e));

	e->s = s;
	e->next = tab[h % IDX_SIZE];
	tab[h % IDX_SIZE] = e;
}

static void idx_free(struct ient **tab)
{
	for (size_t i = 0; tab && i < IDX_SIZE; i++)
		for (struct ient *e = tab[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	free(tab);
}

static struct tseg *new_seg(struct replay *rp, enum seg_kind kind, uint64_t ns)
{
	struct model *m = rp->m;
	struct tseg *s = xrealloc(NULL, sizeof(*s));

	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->ns = ns;
	s->shmid = -1;
	s->live = true;
	GROW(m->segs, m->nsegs, rp->segs_cap);
	s->idx = (int)m->nsegs;
	m->segs[m->nsegs++] = s;
	return s;
}

static struct tseg *new_sysv(struct replay *rp, uint64_t ns, int32_t shmid)
{
	struct tseg *s = new_seg(rp, SEG_SYSV, ns);

	s->shmid = shmid;
	idx_add(idx_id, hash_id(s), s);
	return s;
}

static struct tseg *new_posix(struct replay *rp, uint64_t ns, const char *name,
			      uint64_t dev, uint64_t ino)
{
	struct tseg *s = new_seg(rp, SEG_POSIX, ns);

	s->name = xstrdup(name ? name : "");
	s->dev = dev;
	s->ino = ino;
	if (ino)
		idx_add(idx_id, hash_id(s), s);
	idx_add(idx_name, hash_name(ns, s->name), s);
	return s;
}

/* The segment that has this id now: the newest with it. */
static struct tseg *find_sysv(struct model *m, uint64_t ns, int32_t shmid)
{
	struct tseg key = { .kind = SEG_SYSV, .ns = ns, .shmid = shmid };

	(void)m;
	for (struct ient *e = idx_id[hash_id(&key) % IDX_SIZE]; e; e = e->next)
		if (e->s->kind == SEG_SYSV && e->s->ns == ns && e->s->shmid == shmid)
			return e->s;
	return NULL;
}

/* By dev/ino when known (ino != 0), else the live segment with the name. */
static struct tseg *find_posix(struct model *m, uint64_t ns, uint64_t dev, uint64_t ino,
			       const char *name)
{
	struct tseg key = { .kind = SEG_POSIX, .ns = ns, .dev = dev, .ino = ino };

	(void)m;
	if (ino) {
		for (struct ient *e = idx_id[hash_id(&key) % IDX_SIZE]; e; e = e->next)
			if (e->s->kind == SEG_POSIX && e->s->ns == ns && e->s->ino == ino &&
			    e->s->dev == dev)
				return e->s;
		return NULL;
	}
	if (!name)
		return NULL;
	for (struct ient *e = idx_name[hash_name(ns, name) % IDX_SIZE]; e; e = e->next)
		if (e->s->ns == ns && e->s->live && strcmp(e->s->name, name) == 0)
			return e->s;
	return NULL;
}

static struct tuse *add_use(struct tseg *s, enum use_kind kind, const struct tev *ev)
{
	struct tuse *u;

	GROW(s->uses, s->nuses, s->uses_cap);
	u = &s->uses[s->nuses++];
	memset(u, 0, sizeof(*u));
	u->kind = kind;
	u->ev = ev;
	if (ev) {
		u->p = ev->p;
		u->mono = ev->mono;
	}
	return u;
}

static void att_add(struct replay *rp, struct tproc *p, struct tseg *s, uint64_t addr, uint64_t len)
{
	GROW(rp->atts, rp->natts, rp->atts_cap);
	rp->atts[rp->natts++] = (struct att){ p, s, addr, len };
}

/* Removes p's attachment at addr (or of s when addr is 0); returns its segment. */
static struct tseg *att_remove(struct replay *rp, struct tproc *p, struct tseg *s, uint64_t addr)
{
	for (size_t i = 0; i < rp->natts; i++) {
		struct att *a = &rp->atts[i];

		if (a->p != p || (addr && a->addr != addr) || (!addr && a->s != s))
			continue;
		s = a->s;
		*a = rp->atts[--rp->natts];
		return s;
	}
	return addr ? NULL : s;
}

static void on_sysv_get(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_sysv_get *e = ev->rec;
	uint64_t ns = ev->p->hdr.ipc_ns;
	struct tseg *s = find_sysv(rp->m, ns, e->shmid);
	bool created = (e->flags & SK_F_CREATED) ||
		       ((e->flags & SK_F_CREATE_UNSURE) && (!s || !s->live));

	if (created || !s || !s->live) {
		s = new_sysv(rp, ns, e->shmid);
		s->key = e->key;
		s->size = e->size;
		s->mode = e->mode & 0777;
		s->uid = e->cuid;
		if (created)
			s->create = ev;
	}
	if (!created)
		add_use(s, USE_OPEN, ev);
}

static struct tseg *sysv_for(struct replay *rp, const struct tev *ev, int32_t shmid)
{
	struct tseg *s = find_sysv(rp->m, ev->p->hdr.ipc_ns, shmid);

	if (!s)   /* made before the recording began, or by others */
		s = new_sysv(rp, ev->p->hdr.ipc_ns, shmid);
	return s;
}

static void on_sysv_at(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_sysv_at *e = ev->rec;
	struct tseg *s = sysv_for(rp, ev, e->shmid);
	struct tuse *u = add_use(s, USE_ATTACH, ev);

	u->addr = e->addr;
	u->len = e->size;
	s->attaches++;
	att_add(rp, ev->p, s, e->addr, e->size);
}

static void on_sysv_dt(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_sysv_dt *e = ev->rec;
	struct tseg *s = att_remove(rp, ev->p, NULL, e->addr);

	if (!s && e->shmid >= 0)
		s = find_sysv(rp->m, ev->p->hdr.ipc_ns, e->shmid);
	if (!s)
		return;
	struct tuse *u = add_use(s, USE_DETACH, ev);
	u->addr = e->addr;
	u->len = e->size;
	u->implicit = e->flags & SK_F_IMPLICIT;
}

static void mark_removed(struct tseg *s, const struct tev *ev)
{
	if (!s->remove)
		s->remove = ev;
	s->live = false;
}

static void on_sysv_ctl(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_sysv_ctl *e = ev->rec;
	struct tseg *s = sysv_for(rp, ev, e->shmid);

	if (e->key && !s->key)
		s->key = e->key;
	if (e->size && !s->size)
		s->size = e->size;
	if (e->cmd == IPC_RMID)
		mark_removed(s, ev);
	else if (e->cmd == IPC_SET)
		s->mode = e->mode & 0777;
}

static bool own_object(const char *name)
{
	return name && strncmp(name, OWN_PREFIX, strlen(OWN_PREFIX)) == 0;
}

static void on_posix_open(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_posix_open *e = ev->rec;
	uint64_t ns = ev->p->hdr.mnt_ns;
	bool created = e->flags & SK_F_CREATED;
	struct tseg *s;

	if (own_object(ev->name))
		return;
	s = created ? NULL : find_posix(rp->m, ns, e->dev, e->ino, ev->name);
	if (!s) {
		s = new_posix(rp, ns, ev->name, e->dev, e->ino);
		s->mode = e->mode & 0777;
		s->uid = e->uid;
		if (created)
			s->create = ev;
	}
	if (e->size > s->size || !created)
		s->size = e->size;
	if (!created)
		add_use(s, USE_OPEN, ev);
}

static void on_posix_unlink(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_posix_unlink *e = ev->rec;
	uint64_t ns = ev->p->hdr.mnt_ns;
	struct tseg *s;

	if (own_object(ev->name))
		return;
	s = find_posix(rp->m, ns, e->dev, e->ino, ev->name);
	if (!s && e->ino)
		s = find_posix(rp->m, ns, 0, 0, ev->name);
	if (!s)
		s = new_posix(rp, ns, ev->name, e->dev, e->ino);
	mark_removed(s, ev);
}

static void on_map(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_map *e = ev->rec;
	struct tseg *s;

	if (e->shmid >= 0)
		s = sysv_for(rp, ev, e->shmid);
	else
		s = find_posix(rp->m, ev->p->hdr.mnt_ns, e->dev, e->ino, NULL);
	if (!s)
		return;   /* not a segment we know: an object made before recording */
	struct tuse *u = add_use(s, USE_ATTACH, ev);
	u->addr = e->addr;
	u->len = e->len;
	s->attaches++;
	att_add(rp, ev->p, s, e->addr, e->len);
}

static void on_unmap(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_map *e = ev->rec;
	struct tseg *s = NULL;

	if (!(e->flags & SK_F_PARTIAL))
		s = att_remove(rp, ev->p, NULL, e->addr);
	if (!s && e->shmid >= 0)
		s = find_sysv(rp->m, ev->p->hdr.ipc_ns, e->shmid);
	if (!s && e->ino)
		s = find_posix(rp->m, ev->p->hdr.mnt_ns, e->dev, e->ino, NULL);
	if (!s)
		return;
	struct tuse *u = add_use(s, USE_DETACH, ev);
	u->addr = e->addr;
	u->len = e->len;
	u->implicit = e->flags & SK_F_IMPLICIT;
	u->partial = e->flags & SK_F_PARTIAL;
}

static void on_remap(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_remap *e = ev->rec;

	for (size_t i = 0; i < rp->natts; i++)
		if (rp->atts[i].p == ev->p && rp->atts[i].addr == e->old_addr) {
			rp->atts[i].addr = e->new_addr;
			rp->atts[i].len = e->new_len;
		}
}

static void on_resize(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_resize *e = ev->rec;
	struct tseg *s = find_posix(rp->m, ev->p->hdr.mnt_ns, e->dev, e->ino, NULL);

	if (!s)
		return;
	s->size = e->size;
	add_use(s, USE_RESIZE, ev)->len = e->size;
}

static void on_fork(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_proc *e = ev->rec;
	struct model *m = rp->m;

	for (size_t i = 0; i < m->nprocs; i++) {
		struct tproc *c = m->procs[i];

		if (c->parent != ev->p || c->hdr.pid != e->child_pid)
			continue;
		/* Attachments are inherited through fork and never announced. */
		size_t n = rp->natts;
		for (size_t j = 0; j < n; j++) {
			if (rp->atts[j].p != ev->p)
				continue;
			struct att a = rp->atts[j];
			struct tuse *u = add_use(a.s, USE_ATTACH, ev);
			u->addr = a.addr;
			u->len = a.len;
			u->inherited = true;
			u->p = c;
			att_add(rp, c, a.s, a.addr, a.len);
		}
	}
}

static void on_cleanup(struct replay *rp, const struct tev *ev)
{
	const struct sk_ev_cleanup *e = ev->rec;
	struct tseg *s;

	if (e->err != 0)
		return;
	if (e->shmid >= 0)
		s = find_sysv(rp->m, ev->p->hdr.ipc_ns, e->shmid);
	else
		s = find_posix(rp->m, ev->p->hdr.mnt_ns, e->dev, e->ino, ev->name);
	if (!s)
		return;
	mark_removed(s, ev);
	s->removed_by_cleanup = true;
}

/* The creator is a process, not an image: an exec'd image of it counts. */
static bool is_creator(const struct tseg *s, const struct tproc *p)
{
	return same_process(s->create->p, p);
}

/* /proc/sysvipc/shm, read once. */
struct sysv_row {
	int32_t key, shmid;
	unsigned perms;
	uint64_t size;
	uint32_t cpid;
};

static struct sysv_row *sysv_rows;
static size_t sysv_nrows;
static int sysv_state;   /* 0 unread, 1 read, -1 unreadable */

static void read_sysv(void)
{
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	char line[512];
	size_t cap = 0;

	sysv_state = -1;
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f)) {   /* the column titles */
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		struct sysv_row r;
		long long key;

		if (sscanf(line, "%lld %d %o %" SCNu64 " %u", &key, &r.shmid, &r.perms,
			   &r.size, &r.cpid) != 5)
			continue;
		r.key = (int32_t)key;
		GROW(sysv_rows, sysv_nrows, cap);
		sysv_rows[sysv_nrows++] = r;
	}
	fclose(f);
	sysv_state = 1;
}

/* Does the segment still exist? 1 yes, 0 no (*why says what happened),
 * -1 cannot tell (*why says why). */
static int still_exists(const struct model *m, const struct tseg *s, const char **why)
{
	const struct tproc *p = s->create->p;

	if (m->have_boot_id && memcmp(p->hdr.boot_id, m->self_boot_id, 16) != 0) {
		*why = "the system has rebooted since";
		return 0;
	}
	if (s->kind == SEG_SYSV) {
		if (s->ns != m->self_ipc_ns) {
			*why = "created in another IPC namespace: existence not checked";
			return -1;
		}
		if (sysv_state == 0)
			read_sysv();
		if (sysv_state < 0) {
			*why = "/proc/sysvipc/shm unreadable: existence not checked";
			return -1;
		}
		for (size_t i = 0; i < sysv_nrows; i++) {
			const struct sysv_row *r = &sysv_rows[i];

			if (r->shmid != s->shmid)
				continue;
			if (r->perms & SHM_DEST) {
				*why = "marked for removal by an unrecorded process (still attached)";
				return 0;
			}
			if (r->key != s->key || r->cpid != p->hdr.pid) {
				*why = "removed by an unrecorded process (its id was reused)";
				return 0;
			}
			return 1;
		}
		*why = "removed by an unrecorded process";
		return 0;
	}
	if (s->ns != m->self_mnt_ns) {
		*why = "created in another mount namespace: existence not checked";
		return -1;
	}
	struct stat st;
	char path[SK_NAME_MAX + 16];
	snprintf(path, sizeof(path), "/dev/shm/%s", s->name[0] == '/' ? s->name + 1 : s->name);
	if (stat(path, &st) < 0) {
		if (errno == ENOENT) {
			*why = "removed by an unrecorded process";
			return 0;
		}
		*why = "stat failed: existence not checked";
		return -1;
	}
	if (s->ino && (st.st_ino != s->ino || st.st_dev != s->dev)) {
		*why = "removed by an unrecorded process (the name is now another object's)";
		return 0;
	}
	return 1;
}

void model_analyse(struct model *m)
{
	struct replay rp = { .m = m };

	idx_id = calloc(IDX_SIZE, sizeof(*idx_id));
	idx_name = calloc(IDX_SIZE, sizeof(*idx_name));
	if (!idx_id || !idx_name)
		err(EXIT_NOREPORT, "out of memory");

	for (size_t i = 0; i < m->nevs; i++) {
		const struct tev *ev = &m->evs[i];

		progress("replaying events:", i, m->nevs);
		switch (ev->type) {
		case SK_EV_SYSV_GET: on_sysv_get(&rp, ev); break;
		case SK_EV_SYSV_AT: on_sysv_at(&rp, ev); break;
		case SK_EV_SYSV_DT: on_sysv_dt(&rp, ev); break;
		case SK_EV_SYSV_CTL: on_sysv_ctl(&rp, ev); break;
		case SK_EV_POSIX_OPEN: on_posix_open(&rp, ev); break;
		case SK_EV_POSIX_UNLINK: on_posix_unlink(&rp, ev); break;
		case SK_EV_POSIX_MAP: on_map(&rp, ev); break;
		case SK_EV_UNMAP: on_unmap(&rp, ev); break;
		case SK_EV_REMAP: on_remap(&rp, ev); break;
		case SK_EV_RESIZE: on_resize(&rp, ev); break;
		case SK_EV_FORK: on_fork(&rp, ev); break;
		case SK_EV_CLEANUP: on_cleanup(&rp, ev); break;
		case SK_EV_EXIT: {
			const struct sk_ev_exit *e = ev->rec;
			ev->p->exited = true;
			ev->p->exit_status = e->status;
			break;
		}
		case SK_EV_EXEC: free(ev->p->exec_path);
			ev->p->exec_path = xstrdup(ev->name ? ev->name : "");
			break;
		case SK_EV_WARN: ev->p->warnings++; break;
		default: break;
		}
	}
	/* What is still attached was detached by exit or exec, unannounced. */
	for (size_t i = 0; i < rp.natts; i++) {
		struct att *a = &rp.atts[i];
		struct tuse *u = add_use(a->s, USE_DETACH, NULL);

		u->p = a->p;
		u->mono = a->p->last_mono;
		u->addr = a->addr;
		u->len = a->len;
		u->implicit = true;
		u->at_exec = a->p->exec_next != NULL;
	}
	progress_done();
	free(rp.atts);
	idx_free(idx_id);
	idx_free(idx_name);
	idx_id = idx_name = NULL;

	for (size_t i = 0; i < m->nsegs; i++) {
		struct tseg *s = m->segs[i];

		if (!s->create) {
			s->status = ST_NOT_CREATED;
			continue;
		}
		m->n_created++;
		if (s->remove) {
			m->n_removed++;
			if (is_creator(s, s->remove->p))
				s->status = ST_REMOVED;
			else {
				s->status = ST_REMOVED_OTHER;
				m->n_removed_other++;
			}
			continue;
		}
		int ex = still_exists(m, s, &s->gone_why);
		if (ex == 0) {
			s->status = ST_GONE;
			m->n_gone++;
			continue;
		}
		s->status = ex > 0 ? ST_LEAKED : ST_LEAK_UNKNOWN;
		if (ex > 0)
			m->n_leaked++;
		else
			m->n_leak_unknown++;
		m->leaked_bytes += s->size;
	}
}

bool model_is_leak(const struct tseg *s)
{
	return (s->status == ST_LEAKED || s->status == ST_LEAK_UNKNOWN) && !s->suppressed;
}

void model_wall_time(const struct tev *ev, int64_t *sec, long *nsec)
{
	const struct sk_file_header *h = &ev->p->hdr;
	int64_t d = (int64_t)(ev->mono - h->open_mono_ns);
	int64_t ns = h->open_wall_nsec + d % 1000000000;

	*sec = h->open_wall_sec + d / 1000000000 + ns / 1000000000;
	ns %= 1000000000;
	if (ns < 0) {
		ns += 1000000000;
		(*sec)--;
	}
	*nsec = (long)ns;
}

void model_free(struct model *m)
{
	for (size_t i = 0; i < m->nsegs; i++) {
		struct tseg *s = m->segs[i];

		free(s->uses);
		free(s->name);
		free(s);
	}
	free(m->segs);
	for (size_t i = 0; i < m->nevs; i++)
		free(m->evs[i].rec);
	free(m->evs);
	for (size_t i = 0; i < m->nprocs; i++) {
		struct tproc *p = m->procs[i];

		for (size_t j = 0; j < p->nmods; j++)
			free(p->mods[j].path);
		free(p->mods);
		free(p->log_path);
		free(p->exec_path);
		free(p);
	}
	free(m->procs);
	free(sysv_rows);
	sysv_rows = NULL;
	sysv_nrows = 0;
	sysv_state = 0;
	memset(m, 0, sizeof(*m));
}
