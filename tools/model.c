/* model.c - every log of a directory, merged into processes and segments.
 *
 * Each process image logs on its own, so a segment's life is spread over
 * several files: created in one, attached in others, removed perhaps by a
 * third (ipcrm, Python's resource_tracker, a server). The logs are merged in
 * CLOCK_MONOTONIC order (one clock for the whole boot) as a stream: a heap of
 * readers, one per file, each reading ahead through its own window, gives the
 * next record of all files; it is replayed and forgotten. A segment is named
 * as the kernel names it: SysV by (ipc_ns, shmid) with its key, POSIX by
 * (mnt_ns, dev, ino) with its name; a later create of the same id or name
 * starts a new segment, as the kernel reuses both.
 *
 * Memory follows the segments and processes, not the events (issue 4): per
 * segment its creation and removal, counts, and a bounded history (the first
 * and last MODEL_HIST_KEEP uses by each process image, the rest counted);
 * stacks and warning texts are interned, stored once however often they
 * repeat. Measured with bench/reportscale.sh (1000 processes, 5000
 * segments): a copy of every event and a sort took 255 bytes an event and
 * ~0.4M events/s; see the figures in bench/reportscale.sh.
 */
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/logread.h"
#include "tools/tool.h"

#define OWN_PREFIX "/shmkeeper."   /* the library's own objects */




#define GROW(arr, n, cap) do { \
	if ((n) == (cap)) { \
		(cap) = (cap) ? 2 * (cap) : 16; \
		(arr) = xrealloc((arr), (cap) * sizeof(*(arr))); \
	} \
} while (0)

/* ---- a hash map ----------------------------------------------------------
 *
 * Open addressing, linear probing, deletion by backward shift (no
 * tombstones). Keys are four words; k[3] is a tag naming the table's use and
 * is never 0, which marks an empty slot. */

struct hkey { uint64_t k[4]; };

struct hent {
	struct hkey key;
	uint64_t v;
};

struct hmap {
	struct hent *e;
	size_t cap, n;   /* cap: a power of two */
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdu;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53u;
	x ^= x >> 33;
	return x;
}

static uint64_t hkey_hash(const struct hkey *k)
{
	return mix64(k->k[0] * 0x9e3779b97f4a7c15u ^ k->k[1] * 0xc2b2ae3d27d4eb4fu ^
		     k->k[2] * 0x165667b19e3779f9u ^ k->k[3]);
}

static bool hkey_eq(const struct hkey *a, const struct hkey *b)
{
	return a->k[0] == b->k[0] && a->k[1] == b->k[1] && a->k[2] == b->k[2] && a->k[3] == b->k[3];
}

static struct hent *hm_slot(const struct hmap *h, const struct hkey *k)
{
	size_t i = hkey_hash(k) & (h->cap - 1);

	while (h->e[i].key.k[3] && !hkey_eq(&h->e[i].key, k))
		i = (i + 1) & (h->cap - 1);
	return &h->e[i];
}

static void hm_grow(struct hmap *h)
{
	struct hent *old = h->e;
	size_t ocap = h->cap;

	h->cap = ocap ? 2 * ocap : 64;
	h->e = xcalloc(h->cap, sizeof(*h->e));
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key.k[3])
			*hm_slot(h, &old[i].key) = old[i];
	free(old);
}

/* The value of k, or NULL when absent. */
static uint64_t *hm_get(const struct hmap *h, const struct hkey *k)
{
	struct hent *e;

	if (!h->cap)
		return NULL;
	e = hm_slot(h, k);
	return e->key.k[3] ? &e->v : NULL;
}

/* The value of k, added (0) when absent. */
static uint64_t *hm_put(struct hmap *h, const struct hkey *k)
{
	struct hent *e;

	if ((h->n + 1) * 4 > h->cap * 3)   /* load <= 3/4 */
		hm_grow(h);
	e = hm_slot(h, k);
	if (!e->key.k[3]) {
		e->key = *k;
		e->v = 0;
		h->n++;
	}
	return &e->v;
}

static void hm_del(struct hmap *h, const struct hkey *k)
{
	size_t mask = h->cap - 1, i, j;
	struct hent *e;

	if (!h->cap)
		return;
	e = hm_slot(h, k);
	if (!e->key.k[3])
		return;
	i = (size_t)(e - h->e);
	/* Backward shift: move up each later entry of the cluster that may
	 * live at the hole (its home is not cyclically in (i, j]). */
	for (j = (i + 1) & mask; h->e[j].key.k[3]; j = (j + 1) & mask) {
		size_t home = hkey_hash(&h->e[j].key) & mask;

		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		h->e[i] = h->e[j];
		i = j;
	}
	memset(&h->e[i], 0, sizeof(h->e[i]));
	h->n--;
}

static void hm_free(struct hmap *h)
{
	free(h->e);
	memset(h, 0, sizeof(*h));
}

/* Tags of the tables (k[3]). */
enum { K_SYSV = 1, K_POSIX, K_NAME, K_ATT, K_HIST, K_WARN, K_STR, K_FRAMES };

static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3u;
	return h;
}

/* ---- the state of one load ---------------------------------------------- */

/* An open attachment of a process image, for detaches by address and the
 * implicit ones at fork, exec and exit. Kept in an array in the order they
 * were made (a removal moves the last into the hole) with an index by
 * (image, address): the end of the replay lists the survivors in that order. */
struct att {
	struct tproc *p;
	struct tseg *s;
	uint64_t addr, len;
	struct hist *h;             /* the uses of s by p: no lookup at detach */
};

/* The uses of one segment by one process image: the first MODEL_HIST_KEEP in
 * u[0..KEEP), then a ring of the last KEEP in u[KEEP..2*KEEP). */
struct hist {
	struct tseg *s;
	const struct tproc *p;
	struct tuse *u;
	unsigned n, cap;            /* stored; n <= 2 * KEEP */
	unsigned head;              /* once full: the oldest of the ring */
	unsigned last;              /* index of the newest */
	uint64_t omitted;
};

/* An interned blob (a stack, a text), chained by hash. */
struct iblob {
	struct iblob *next;
	size_t len;
	uint64_t data[];            /* 8-aligned: frames or a string */
};

/* A heap entry: the key is copied out of the reader's window, so that
 * comparisons stay in the heap's own cache lines (measured: a pointer into a
 * cold window per comparison took 15% of the time at 10M events). */
struct hnode {
	uint64_t mono;
	size_t idx;
	struct src *s;
};

/* One log file: its reader while it is being merged. */
struct src {
	struct tproc *p;
	struct sk_reader *r;
	struct sk_event ev;         /* the next record, while in the heap */
	uint64_t seq;               /* record index of ev */
	bool damaged;
};

struct state {
	struct model *m;
	size_t procs_cap, segs_cap, warns_cap;
	struct hmap ids, names, atts_by, hists, warn_counts, interned;
	struct att *atts;
	size_t natts, atts_cap;
	struct hist **histv;
	size_t nhists, hists_cap;
	uint64_t order;             /* of the next use */
	struct src *srcs;           /* per process, by idx */
	struct hnode *heap;
	size_t nheap;
	uint64_t total_bytes;       /* of all logs, for the progress */
	size_t nfiles;              /* named shmk-*.shmk, usable or not */
	size_t *file_of;            /* by process idx: its place among the files */
	size_t file_cap;
	struct diag *diags;
	size_t ndiags, diags_cap;
};

/* Problems found while merging come in time order; they are said at the
 * end of the load by file, in the order of the names, as a reader of the
 * files one by one would say them. At most DIAG_MAX lines a file. */
#define DIAG_MAX 1000

struct diag {
	size_t file, seq;
	char *line;
};

/* The model owns its interned blobs and kept events after the load. */
struct model_mem {
	struct iblob *blobs;
	struct tev **tevs;
	size_t ntevs, tevs_cap;
};

static struct model_mem *mem_of(struct model *m);

static const void *intern(struct state *st, const void *data, size_t len)
{
	uint64_t h = hash_bytes(data, len);
	struct hkey k = { { h, len, 0, K_STR } };
	uint64_t *slot = hm_put(&st->interned, &k);

	for (struct iblob *b = (struct iblob *)(uintptr_t)*slot; b; b = b->next)
		if (b->len == len && memcmp(b->data, data, len) == 0)
			return b->data;
	struct iblob *b = xrealloc(NULL, sizeof(*b) + SK_ALIGN8(len + 1));
	b->next = (struct iblob *)(uintptr_t)*slot;
	b->len = len;
	memcpy(b->data, data, len);
	((char *)b->data)[len] = '\0';
	*slot = (uint64_t)(uintptr_t)b;
	return b->data;
}

/* ---- loading ----------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static void diag(struct state *st, size_t file, const char *fmt, ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		err(EXIT_NOREPORT, "out of memory");
	va_end(ap);
	GROW(st->diags, st->ndiags, st->diags_cap);
	st->diags[st->ndiags] = (struct diag){ file, st->ndiags, line };
	st->ndiags++;
}

static int cmp_diag(const void *a, const void *b)
{
	const struct diag *x = a, *y = b;

	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void say_diags(struct state *st)
{
	size_t per_file = 0;

	if (st->ndiags)
		qsort(st->diags, st->ndiags, sizeof(*st->diags), cmp_diag);
	for (size_t i = 0; i < st->ndiags; i++) {
		struct diag *d = &st->diags[i];

		per_file = i && st->diags[i - 1].file == d->file ? per_file + 1 : 0;
		if (per_file < DIAG_MAX)
			warnx("%s", d->line);
		else if (i + 1 == st->ndiags || st->diags[i + 1].file != d->file)
			warnx("... and %zu more problems in that log", per_file + 1 - DIAG_MAX);
		free(d->line);
	}
	free(st->diags);
	st->diags = NULL;
	st->ndiags = 0;
}

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
	if (mod->build_id_len)   /* ev->build_id is NULL without one */
		memcpy(mod->build_id, ev->build_id, mod->build_id_len);
	mod->from_seq = seq;
	mod->to_seq = UINT64_MAX;
}

/* Opens path and takes its header: the process image exists from here on,
 * its records are read later, in the merge. */
static void add_file(struct state *st, const char *path)
{
	struct model *m = st->m;
	struct sk_reader *r;
	struct tproc *p;
	size_t file = st->nfiles++;
	int rc = sk_reader_open(&r, path);

	if (rc < 0) {
		if (rc == -EPROTO)
			diag(st, file, "%s: offset %" PRIu64 ": %s", path, sk_reader_diag_offset(r),
			     sk_reader_diag(r));
		else
			diag(st, file, "%s: %s", path, strerror(-rc));
		sk_reader_close(r);
		m->bad_files++;
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->log_path = xstrdup(path);
	p->hdr = *sk_reader_header(r);
	p->exit_status = -1;
	st->total_bytes += sk_reader_file_size(r);
	/* Records of an image follow its start; its log may open later than
	 * its first record's clock was read (the library opens it lazily). */
	p->first_mono = p->hdr.image_mono_ns < p->hdr.open_mono_ns ?
			p->hdr.image_mono_ns : p->hdr.open_mono_ns;
	sk_reader_close(r);   /* reopened when the merge reaches first_mono */
	if (m->nprocs == st->procs_cap) {
		st->file_cap = st->procs_cap ? 2 * st->procs_cap : 16;
		st->file_of = xrealloc(st->file_of, st->file_cap * sizeof(*st->file_of));
	}
	st->file_of[m->nprocs] = file;
	GROW(m->procs, m->nprocs, st->procs_cap);
	p->idx = (int)m->nprocs;
	m->procs[m->nprocs++] = p;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool same_process(const struct tproc *a, const struct tproc *b)
{
	return a->hdr.pid == b->hdr.pid && a->hdr.start_ticks == b->hdr.start_ticks &&
	       memcmp(a->hdr.boot_id, b->hdr.boot_id, 16) == 0;
}

static int cmp_pid(const void *a, const void *b)
{
	const struct tproc *x = *(struct tproc *const *)a, *y = *(struct tproc *const *)b;

	if (x->hdr.pid != y->hdr.pid)
		return x->hdr.pid < y->hdr.pid ? -1 : 1;
	return x->idx - y->idx;
}

/* The images with this pid: [*lo, return) in byp. */
static size_t pid_range(struct tproc **byp, size_t n, uint32_t pid, size_t *lo)
{
	size_t a = 0, b = n;

	while (a < b) {
		size_t mid = a + (b - a) / 2;

		if (byp[mid]->hdr.pid < pid)
			a = mid + 1;
		else
			b = mid;
	}
	*lo = a;
	while (b < n && byp[b]->hdr.pid == pid)
		b++;
	return a < n && byp[a]->hdr.pid == pid ? b : a;
}

/* Fork parents and exec chains, from the headers. Candidates are found by
 * pid in a sorted copy: a directory of thousands of short-lived processes
 * must not cost a scan of all images for each. */
static void link_procs(struct model *m)
{
	size_t n = m->nprocs, lo, hi;
	struct tproc **byp;

	if (!n)
		return;
	byp = xrealloc(NULL, n * sizeof(*byp));
	memcpy(byp, m->procs, n * sizeof(*byp));
	qsort(byp, n, sizeof(*byp), cmp_pid);
	for (size_t i = 0; i < n; i++) {
		struct tproc *p = m->procs[i], *best = NULL;

		hi = pid_range(byp, n, p->hdr.pid, &lo);
		for (size_t j = lo; j < hi; j++) {
			struct tproc *q = byp[j];

			if (q == p || !same_process(p, q) ||
			    q->hdr.image_mono_ns >= p->hdr.image_mono_ns)
				continue;
			if (!best || q->hdr.image_mono_ns > best->hdr.image_mono_ns ||
			    (q->hdr.image_mono_ns == best->hdr.image_mono_ns && q->idx < best->idx))
				best = q;
		}
		if (best) {
			p->exec_prev = best;
			best->exec_next = p;
			continue;
		}
		/* The parent image that was running when the child was made. */
		if (p->hdr.flags & SK_HF_FORKED) {
			hi = pid_range(byp, n, p->hdr.parent_pid, &lo);
			for (size_t j = lo; j < hi; j++) {
				struct tproc *q = byp[j];

				if (q->hdr.start_ticks != p->hdr.parent_start_ticks ||
				    memcmp(q->hdr.boot_id, p->hdr.boot_id, 16) != 0 ||
				    q->hdr.image_mono_ns > p->hdr.image_mono_ns)
					continue;
				if (!best || q->hdr.image_mono_ns > best->hdr.image_mono_ns ||
				    (q->hdr.image_mono_ns == best->hdr.image_mono_ns && q->idx < best->idx))
					best = q;
			}
		}
		/* A fork child that execs before it logs anything (Python's
		 * resource_tracker, every fork+exec of a shell) leaves only its
		 * exec'd image, which names its parent by ppid alone: take the
		 * parent's image that was running then. */
		if (!best) {
			struct tproc *first = NULL;

			hi = pid_range(byp, n, p->hdr.ppid, &lo);
			for (size_t j = lo; j < hi; j++) {
				struct tproc *q = byp[j];

				if (q == p || memcmp(q->hdr.boot_id, p->hdr.boot_id, 16) != 0 ||
				    q->hdr.image_mono_ns > p->hdr.image_mono_ns)
					continue;
				if (!first || q->idx < first->idx)
					first = q;
			}
			if (first) {
				struct tproc *last = first;
				while (last->exec_next &&
				       last->exec_next->hdr.image_mono_ns <= p->hdr.image_mono_ns)
					last = last->exec_next;
				best = last;
			}
		}
		p->parent = best;
	}
	free(byp);
	/* Children of each image, in idx order (the process tree, fork). */
	for (size_t i = n; i-- > 0; ) {
		struct tproc *p = m->procs[i];

		if (p->parent) {
			p->sibling = p->parent->child;
			p->parent->child = p;
		}
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

/* ---- segments ------------------------------------------------------------ */

static struct hkey id_key(enum seg_kind kind, uint64_t ns, int32_t shmid, uint64_t dev, uint64_t ino)
{
	if (kind == SEG_SYSV)
		return (struct hkey){ { ns, (uint32_t)shmid, 0, K_SYSV } };
	return (struct hkey){ { ns, dev, ino, K_POSIX } };
}

static struct hkey name_key(uint64_t ns, const char *name)
{
	return (struct hkey){ { ns, hash_bytes(name, strlen(name)), 0, K_NAME } };
}

static struct tseg *new_seg(struct state *st, enum seg_kind kind, uint64_t ns)
{
	struct model *m = st->m;
	struct tseg *s = xcalloc(1, sizeof(*s));

	s->kind = kind;
	s->ns = ns;
	s->shmid = -1;
	s->live = true;
	GROW(m->segs, m->nsegs, st->segs_cap);
	s->idx = (int)m->nsegs;
	m->segs[m->nsegs++] = s;
	return s;
}

/* The index holds the newest segment of each id: a lookup finds the one
 * that has the id now (the kernel reuses ids). */
static struct tseg *new_sysv(struct state *st, uint64_t ns, int32_t shmid)
{
	struct tseg *s = new_seg(st, SEG_SYSV, ns);
	struct hkey k = id_key(SEG_SYSV, ns, shmid, 0, 0);

	s->shmid = shmid;
	*hm_put(&st->ids, &k) = (uint64_t)(uintptr_t)s;
	return s;
}

static struct tseg *new_posix(struct state *st, uint64_t ns, const char *name,
			      uint64_t dev, uint64_t ino)
{
	struct tseg *s = new_seg(st, SEG_POSIX, ns);

	s->name = xstrdup(name ? name : "");
	s->dev = dev;
	s->ino = ino;
	if (ino) {
		struct hkey k = id_key(SEG_POSIX, ns, -1, dev, ino);
		*hm_put(&st->ids, &k) = (uint64_t)(uintptr_t)s;
	}
	/* Names: a chain per name, newest first. */
	struct hkey k = name_key(ns, s->name);
	uint64_t *head = hm_put(&st->names, &k);
	s->name_next = (struct tseg *)(uintptr_t)*head;
	*head = (uint64_t)(uintptr_t)s;
	return s;
}

static struct tseg *find_sysv(struct state *st, uint64_t ns, int32_t shmid)
{
	struct hkey k = id_key(SEG_SYSV, ns, shmid, 0, 0);
	uint64_t *v = hm_get(&st->ids, &k);

	return v ? (struct tseg *)(uintptr_t)*v : NULL;
}

/* By dev/ino when known (ino != 0), else the newest live segment with the name. */
static struct tseg *find_posix(struct state *st, uint64_t ns, uint64_t dev, uint64_t ino,
			       const char *name)
{
	if (ino) {
		struct hkey k = id_key(SEG_POSIX, ns, -1, dev, ino);
		uint64_t *v = hm_get(&st->ids, &k);

		return v ? (struct tseg *)(uintptr_t)*v : NULL;
	}
	if (!name)
		return NULL;
	struct hkey k = name_key(ns, name);
	uint64_t *v = hm_get(&st->names, &k);
	for (struct tseg *s = v ? (struct tseg *)(uintptr_t)*v : NULL; s; s = s->name_next)
		if (s->ns == ns && s->live && strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* ---- the event being replayed ------------------------------------------- */

struct cur {
	struct tproc *p;
	uint64_t seq, mono;
	const struct sk_event *ev;
};

#define REC(c, T) ((const T *)(const void *)(c)->ev->rec)

/* A creation or a removal: kept, with its stack interned. */
static const struct tev *keep_ev(struct state *st, const struct cur *c)
{
	struct model_mem *mm = mem_of(st->m);
	struct tev *t = xrealloc(NULL, sizeof(*t));

	t->p = c->p;
	t->seq = c->seq;
	t->mono = c->mono;
	t->type = c->ev->type;
	t->nframes = c->ev->nframes;
	t->frames = t->nframes ? intern(st, c->ev->frames, t->nframes * sizeof(uint64_t)) : NULL;
	GROW(mm->tevs, mm->ntevs, mm->tevs_cap);
	mm->tevs[mm->ntevs++] = t;
	return t;
}

/* ---- uses: a bounded history per (segment, process image) ---------------- */

#define KEEP MODEL_HIST_KEEP

static struct hist *hist_of(struct state *st, struct tseg *s, const struct tproc *p)
{
	struct hkey k = { { (uint64_t)(uintptr_t)s, (uint64_t)(uintptr_t)p, 0, K_HIST } };
	uint64_t *v = hm_put(&st->hists, &k);
	struct hist *h = (struct hist *)(uintptr_t)*v;

	if (!h) {
		h = xcalloc(1, sizeof(*h));
		h->s = s;
		h->p = p;
		*v = (uint64_t)(uintptr_t)h;
		GROW(st->histv, st->nhists, st->hists_cap);
		st->histv[st->nhists++] = h;
	}
	return h;
}

static struct tuse *hist_add(struct state *st, struct hist *h, enum use_kind kind, uint64_t mono)
{
	struct tuse *u;

	if (h->n < 2 * KEEP) {
		if (h->n == h->cap) {
			h->cap = h->cap ? 2 * h->cap : 4;
			if (h->cap > 2 * KEEP)
				h->cap = 2 * KEEP;
			h->u = xrealloc(h->u, h->cap * sizeof(*h->u));
		}
		h->last = h->n++;
	} else {   /* the oldest of the last ones is left out */
		h->last = KEEP + h->head;
		h->head = (h->head + 1) % KEEP;
		h->omitted++;
		h->s->uses_omitted++;
	}
	u = &h->u[h->last];
	memset(u, 0, sizeof(*u));
	u->kind = kind;
	u->p = h->p;
	u->mono = mono;
	u->order = st->order++;
	return u;
}

static struct tuse *add_use(struct state *st, struct tseg *s, const struct tproc *p,
			    enum use_kind kind, uint64_t mono)
{
	return hist_add(st, hist_of(st, s, p), kind, mono);
}

static int cmp_use(const void *a, const void *b)
{
	const struct tuse *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return (x->kind == USE_OMITTED) - (y->kind == USE_OMITTED);
}

/* Each segment's kept uses in replay order, with a USE_OMITTED after the
 * first ones of each history that was cut. */
static void flatten_uses(struct state *st)
{
	struct model *m = st->m;
	size_t *cap = xcalloc(m->nsegs, sizeof(*cap));

	for (size_t i = 0; i < st->nhists; i++) {
		struct hist *h = st->histv[i];
		struct tseg *s = h->s;
		size_t need = s->nuses + h->n + (h->omitted ? 1 : 0);

		if (need > cap[s->idx]) {
			cap[s->idx] = need > 2 * cap[s->idx] ? need : 2 * cap[s->idx];
			s->uses = xrealloc(s->uses, cap[s->idx] * sizeof(*s->uses));
		}
		memcpy(s->uses + s->nuses, h->u, h->n * sizeof(*h->u));
		s->nuses += h->n;
		if (h->omitted) {
			struct tuse *o = &s->uses[s->nuses++];

			memset(o, 0, sizeof(*o));
			o->kind = USE_OMITTED;
			o->p = h->p;
			o->mono = h->u[KEEP - 1].mono;
			o->order = h->u[KEEP - 1].order;
			o->len = h->omitted;
		}
		free(h->u);
		free(h);
	}
	for (size_t i = 0; i < m->nsegs; i++)
		if (m->segs[i]->nuses > 1)
			qsort(m->segs[i]->uses, m->segs[i]->nuses, sizeof(struct tuse), cmp_use);
	free(cap);
	free(st->histv);
	st->histv = NULL;
	st->nhists = 0;
	hm_free(&st->hists);
}

/* ---- attachments ----------------------------------------------------------- */

static struct hkey att_key(const struct tproc *p, uint64_t addr)
{
	return (struct hkey){ { (uint64_t)(uintptr_t)p, addr, 0, K_ATT } };
}

static struct att *att_add(struct state *st, struct tproc *p, struct tseg *s, uint64_t addr,
			   uint64_t len, struct hist *h)
{
	struct hkey k = att_key(p, addr);
	uint64_t *v;

	GROW(st->atts, st->natts, st->atts_cap);
	st->atts[st->natts++] = (struct att){ p, s, addr, len, h };
	/* A second attachment at an address already indexed: the first stays
	 * indexed (detaches find it first, as the kernel had only one). */
	v = hm_put(&st->atts_by, &k);
	if (!*v)
		*v = st->natts;   /* index + 1 */
	return &st->atts[st->natts - 1];
}

static void att_drop(struct state *st, size_t i)
{
	struct hkey k = att_key(st->atts[i].p, st->atts[i].addr);
	uint64_t *v = hm_get(&st->atts_by, &k);

	if (v && *v == i + 1)
		hm_del(&st->atts_by, &k);
	if (i != --st->natts) {
		st->atts[i] = st->atts[st->natts];
		k = att_key(st->atts[i].p, st->atts[i].addr);
		v = hm_get(&st->atts_by, &k);
		if (v && *v == st->natts + 1)
			*v = i + 1;
	}
}

/* Removes p's attachment at addr; returns its segment (and *h its uses by
 * p), or NULL. */
static struct tseg *att_remove(struct state *st, struct tproc *p, uint64_t addr, struct hist **h)
{
	struct hkey k = att_key(p, addr);
	uint64_t *v;
	struct tseg *s;

	if (!addr || !(v = hm_get(&st->atts_by, &k)))
		return NULL;
	s = st->atts[*v - 1].s;
	*h = st->atts[*v - 1].h;
	att_drop(st, *v - 1);
	return s;
}

/* ---- replay ------------------------------------------------------------ */

static void on_sysv_get(struct state *st, const struct cur *c)
{
	const struct sk_ev_sysv_get *e = REC(c, struct sk_ev_sysv_get);
	uint64_t ns = c->p->hdr.ipc_ns;
	struct tseg *s = find_sysv(st, ns, e->shmid);
	bool created = (e->flags & SK_F_CREATED) ||
		       ((e->flags & SK_F_CREATE_UNSURE) && (!s || !s->live));

	if (created || !s || !s->live) {
		s = new_sysv(st, ns, e->shmid);
		s->key = e->key;
		s->size = e->size;
		s->mode = e->mode & 0777;
		s->uid = e->cuid;
		if (created)
			s->create = keep_ev(st, c);
	}
	if (!created)
		add_use(st, s, c->p, USE_OPEN, c->mono);
}

static struct tseg *sysv_for(struct state *st, const struct cur *c, int32_t shmid)
{
	struct tseg *s = find_sysv(st, c->p->hdr.ipc_ns, shmid);

	if (!s)   /* made before the recording began, or by others */
		s = new_sysv(st, c->p->hdr.ipc_ns, shmid);
	return s;
}

/* Whether p holds an attachment of s at addr. */
static bool att_has(struct state *st, const struct tproc *p, const struct tseg *s, uint64_t addr)
{
	struct hkey k = att_key(p, addr);
	uint64_t *v = hm_get(&st->atts_by, &k);

	return v && st->atts[*v - 1].s == s;
}

static void attach(struct state *st, const struct cur *c, struct tseg *s,
		   uint64_t addr, uint64_t len, unsigned flags)
{
	bool inherited = flags & SK_F_INHERITED;

	/* Made by an unrecorded process (an X client of a preloaded server):
	 * the attach knows the size. */
	if (s->kind == SEG_SYSV && !s->size && len)
		s->size = len;

	/* A fork child's log lists what it inherited; the parent's fork
	 * record gave it already (on_fork), whichever came first. */
	if (inherited && att_has(st, c->p, s, addr))
		return;
	struct hist *h = hist_of(st, s, c->p);
	struct tuse *u = hist_add(st, h, USE_ATTACH, c->mono);

	u->addr = addr;
	u->len = len;
	u->inherited = inherited;
	if (!inherited) {   /* attach calls, as the header counts them */
		u->placed = flags & SK_F_PLACED;
		s->attaches++;
		s->placed += u->placed;
	}
	att_add(st, c->p, s, addr, len, h);
}

static void on_sysv_at(struct state *st, const struct cur *c)
{
	const struct sk_ev_sysv_at *e = REC(c, struct sk_ev_sysv_at);

	attach(st, c, sysv_for(st, c, e->shmid), e->addr, e->size, e->flags);
}

static void on_sysv_dt(struct state *st, const struct cur *c)
{
	const struct sk_ev_sysv_dt *e = REC(c, struct sk_ev_sysv_dt);
	struct hist *h = NULL;
	struct tseg *s = att_remove(st, c->p, e->addr, &h);

	if (!s && e->shmid >= 0)
		s = find_sysv(st, c->p->hdr.ipc_ns, e->shmid);
	if (!s)
		return;
	struct tuse *u = hist_add(st, h ? h : hist_of(st, s, c->p), USE_DETACH, c->mono);
	u->addr = e->addr;
	u->len = e->size;
	u->implicit = e->flags & SK_F_IMPLICIT;
}

static void mark_removed(struct state *st, struct tseg *s, const struct cur *c)
{
	if (!s->remove)
		s->remove = keep_ev(st, c);
	s->live = false;
}

static void on_sysv_ctl(struct state *st, const struct cur *c)
{
	const struct sk_ev_sysv_ctl *e = REC(c, struct sk_ev_sysv_ctl);
	struct tseg *s = sysv_for(st, c, e->shmid);

	if (e->key && !s->key)
		s->key = e->key;
	if (e->size && !s->size)
		s->size = e->size;
	if (e->cmd == IPC_RMID)
		mark_removed(st, s, c);
	else if (e->cmd == IPC_SET)
		s->mode = e->mode & 0777;
}

static bool own_object(const char *name)
{
	return name && strncmp(name, OWN_PREFIX, strlen(OWN_PREFIX)) == 0;
}

static void on_posix_open(struct state *st, const struct cur *c)
{
	const struct sk_ev_posix_open *e = REC(c, struct sk_ev_posix_open);
	const char *name = c->ev->name;
	uint64_t ns = c->p->hdr.mnt_ns;
	bool created = e->flags & SK_F_CREATED;
	struct tseg *s;

	if (own_object(name))
		return;
	s = created ? NULL : find_posix(st, ns, e->dev, e->ino, name);
	if (!s) {
		s = new_posix(st, ns, name, e->dev, e->ino);
		s->mode = e->mode & 0777;
		s->uid = e->uid;
		if (created)
			s->create = keep_ev(st, c);
	}
	if (e->size > s->size || !created)
		s->size = e->size;
	if (!created)
		add_use(st, s, c->p, USE_OPEN, c->mono);
}

static void on_posix_unlink(struct state *st, const struct cur *c)
{
	const struct sk_ev_posix_unlink *e = REC(c, struct sk_ev_posix_unlink);
	const char *name = c->ev->name;
	uint64_t ns = c->p->hdr.mnt_ns;
	struct tseg *s;

	if (own_object(name))
		return;
	s = find_posix(st, ns, e->dev, e->ino, name);
	if (!s && e->ino)
		s = find_posix(st, ns, 0, 0, name);
	if (!s)
		s = new_posix(st, ns, name, e->dev, e->ino);
	mark_removed(st, s, c);
}

static void on_map(struct state *st, const struct cur *c)
{
	const struct sk_ev_map *e = REC(c, struct sk_ev_map);
	struct tseg *s;

	if (e->shmid >= 0)
		s = sysv_for(st, c, e->shmid);
	else
		s = find_posix(st, c->p->hdr.mnt_ns, e->dev, e->ino, NULL);
	if (!s)
		return;   /* not a segment we know: an object made before recording */
	attach(st, c, s, e->addr, e->len, e->flags);
}

static void on_unmap(struct state *st, const struct cur *c)
{
	const struct sk_ev_map *e = REC(c, struct sk_ev_map);
	struct hist *h = NULL;
	struct tseg *s = NULL;

	if (!(e->flags & SK_F_PARTIAL))
		s = att_remove(st, c->p, e->addr, &h);
	if (!s && e->shmid >= 0)
		s = find_sysv(st, c->p->hdr.ipc_ns, e->shmid);
	if (!s && e->ino)
		s = find_posix(st, c->p->hdr.mnt_ns, e->dev, e->ino, NULL);
	if (!s)
		return;
	struct tuse *u = hist_add(st, h ? h : hist_of(st, s, c->p), USE_DETACH, c->mono);
	u->addr = e->addr;
	u->len = e->len;
	u->implicit = e->flags & SK_F_IMPLICIT;
	u->partial = e->flags & SK_F_PARTIAL;
}

static void on_remap(struct state *st, const struct cur *c)
{
	const struct sk_ev_remap *e = REC(c, struct sk_ev_remap);
	struct hkey k = att_key(c->p, e->old_addr);
	uint64_t *v = hm_get(&st->atts_by, &k);

	if (!v)
		return;
	size_t i = *v - 1;
	struct att a = st->atts[i];

	/* Moved: the same attachment, indexed at its new address, in its place,
	 * and a use that says so (else its detach names an address it never
	 * had). */
	struct tuse *u = hist_add(st, a.h, USE_MOVE, c->mono);
	u->from = e->old_addr;
	u->addr = e->new_addr;
	u->len = e->new_len;
	hm_del(&st->atts_by, &k);
	st->atts[i].addr = e->new_addr;
	st->atts[i].len = e->new_len;
	k = att_key(a.p, e->new_addr);
	v = hm_put(&st->atts_by, &k);
	if (!*v)
		*v = i + 1;
}

/* SK_EV_PLACE follows the attach it placed: mark that one, should the
 * attach record lack SK_F_PLACED. */
static void on_place(struct state *st, const struct cur *c)
{
	const struct sk_ev_place *e = REC(c, struct sk_ev_place);
	struct hkey k = att_key(c->p, e->addr);
	uint64_t *v = hm_get(&st->atts_by, &k);

	if (!v)
		return;
	struct tseg *s = st->atts[*v - 1].s;
	struct hist *h = st->atts[*v - 1].h;
	struct tuse *u = &h->u[h->last];
	if (u->kind == USE_ATTACH && u->addr == e->addr && !u->placed) {
		u->placed = true;
		s->placed++;
	}
}

static void on_resize(struct state *st, const struct cur *c)
{
	const struct sk_ev_resize *e = REC(c, struct sk_ev_resize);
	struct tseg *s = find_posix(st, c->p->hdr.mnt_ns, e->dev, e->ino, NULL);

	if (!s)
		return;
	s->size = e->size;
	add_use(st, s, c->p, USE_RESIZE, c->mono)->len = e->size;
}

static void on_fork(struct state *st, const struct cur *c)
{
	const struct sk_ev_proc *e = REC(c, struct sk_ev_proc);

	for (struct tproc *ch = c->p->child; ch; ch = ch->sibling) {
		if (ch->hdr.pid != e->child_pid)
			continue;
		/* Attachments are inherited through fork and never announced. */
		size_t n = st->natts;
		for (size_t j = 0; j < n; j++) {
			if (st->atts[j].p != c->p)
				continue;
			struct att a = st->atts[j];
			if (att_has(st, ch, a.s, a.addr))
				continue;   /* the child's own record came first */
			struct hist *h = hist_of(st, a.s, ch);
			struct tuse *u = hist_add(st, h, USE_ATTACH, c->mono);
			u->addr = a.addr;
			u->len = a.len;
			u->inherited = true;
			att_add(st, ch, a.s, a.addr, a.len, h);
		}
	}
}

static void on_cleanup(struct state *st, const struct cur *c)
{
	const struct sk_ev_cleanup *e = REC(c, struct sk_ev_cleanup);
	struct tseg *s;

	if (e->shmid >= 0)
		s = find_sysv(st, c->p->hdr.ipc_ns, e->shmid);
	else
		s = find_posix(st, c->p->hdr.mnt_ns, e->dev, e->ino, c->ev->name);
	if (!s)
		return;
	if (e->err != 0) {
		s->cleanup_err = e->err;
		s->cleanup_failed_by = c->p;
		return;
	}
	mark_removed(st, s, c);
	s->removed_by_cleanup = true;
	s->cleanup_signo = e->signo;
}

/* The first MODEL_WARN_KEEP of each code in each image; the rest counted. */
static void on_warn(struct state *st, const struct cur *c)
{
	const struct sk_ev_warn *e = REC(c, struct sk_ev_warn);
	struct model *m = st->m;
	struct hkey k = { { (uint64_t)(uintptr_t)c->p, e->code, 0, K_WARN } };
	uint64_t *n = hm_put(&st->warn_counts, &k);

	c->p->warnings++;
	c->p->warn_count[e->code < MODEL_WARN_CODES ? e->code : 0]++;
	if ((*n)++ >= MODEL_WARN_KEEP) {
		m->warns_omitted++;
		return;
	}
	GROW(m->warns, m->nwarns, st->warns_cap);
	struct twarn *w = &m->warns[m->nwarns++];
	w->p = c->p;
	w->mono = c->mono;
	w->code = e->code;
	w->arg1 = e->arg1;
	w->arg2 = e->arg2;
	w->text = intern(st, c->ev->name ? c->ev->name : "", c->ev->name ? c->ev->name_len : 0);
}

static void replay(struct state *st, const struct cur *c)
{
	switch (c->ev->type) {
	case SK_EV_SYSV_GET: on_sysv_get(st, c); break;
	case SK_EV_SYSV_AT: on_sysv_at(st, c); break;
	case SK_EV_SYSV_DT: on_sysv_dt(st, c); break;
	case SK_EV_SYSV_CTL: on_sysv_ctl(st, c); break;
	case SK_EV_POSIX_OPEN: on_posix_open(st, c); break;
	case SK_EV_POSIX_UNLINK: on_posix_unlink(st, c); break;
	case SK_EV_POSIX_MAP: on_map(st, c); break;
	case SK_EV_UNMAP: on_unmap(st, c); break;
	case SK_EV_REMAP: on_remap(st, c); break;
	case SK_EV_RESIZE: on_resize(st, c); break;
	case SK_EV_FORK: on_fork(st, c); break;
	case SK_EV_CLEANUP: on_cleanup(st, c); break;
	case SK_EV_PLACE: on_place(st, c); break;
	case SK_EV_WARN: on_warn(st, c); break;
	case SK_EV_EXIT:
		c->p->exited = true;
		c->p->exit_status = REC(c, struct sk_ev_exit)->status;
		break;
	case SK_EV_EXEC:
		free(c->p->exec_path);
		c->p->exec_path = xstrdup(c->ev->name ? c->ev->name : "");
		c->p->exec_last = true;
		break;
	case SK_EV_EXEC_FAILED:
		c->p->exec_last = false;
		break;
	default: break;
	}
}

/* ---- the merge ----------------------------------------------------------- */

/* Order of the merge: time, then the file's place in the directory (as a
 * sort of all events by (mono, file, record) would give). Within a file the
 * records keep their order: the writer reserved them in that order. */
static bool before(const struct hnode *a, const struct hnode *b)
{
	return a->mono != b->mono ? a->mono < b->mono : a->idx < b->idx;
}

static void heap_down(struct state *st, size_t i)
{
	struct hnode *h = st->heap, x = h[i];
	size_t n = st->nheap;

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min;

		if (l >= n)
			break;
		min = r < n && before(&h[r], &h[l]) ? r : l;
		if (!before(&h[min], &x))
			break;
		h[i] = h[min];
		i = min;
	}
	h[i] = x;
}

static void heap_push(struct state *st, struct src *s)
{
	struct hnode x = { s->ev.rec->mono_ns, (size_t)s->p->idx, s };
	size_t i = st->nheap++;

	while (i > 0 && before(&x, &st->heap[(i - 1) / 2])) {
		st->heap[i] = st->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	st->heap[i] = x;
}

/* The file is read: what the reader learnt, and its window freed. */
static void src_finish(struct state *st, struct src *s)
{
	struct tproc *p = s->p;

	p->nrecords = s->seq;
	if (p->hdr.dropped) {   /* the writer's log was full: events are missing */
		diag(st, st->file_of[p->idx], "%s: %" PRIu64 " records were not written (log "
		     "full): this process's events are incomplete", p->log_path, p->hdr.dropped);
		s->damaged = true;
	}
	if (s->damaged)
		st->m->damaged_files++;
	sk_reader_close(s->r);
	s->r = NULL;
}

/* Reads up to the next record that takes part in the merge (modules are the
 * image's own business: taken at once). Returns false at the end of the file. */
static bool src_next(struct state *st, struct src *s)
{
	struct tproc *p = s->p;
	int rc;

	if (s->ev.rec)
		s->seq++;
	while ((rc = sk_reader_next(s->r, &s->ev)) != SK_RD_END) {
		if (rc < 0) {
			diag(st, st->file_of[p->idx], "%s: read error: %s", p->log_path,
			     strerror(-rc));
			s->damaged = true;
			break;
		}
		if (rc != SK_RD_EVENT) {
			diag(st, st->file_of[p->idx], "%s: offset %" PRIu64 ": %s", p->log_path,
			     sk_reader_diag_offset(s->r), sk_reader_diag(s->r));
			if (rc == SK_RD_HOLE)
				p->holes++;
			else if (rc == SK_RD_TRUNC)
				p->truncated = s->damaged = true;
			else {
				p->bad++;
				s->damaged = true;
			}
			continue;
		}
		if (s->ev.rec->mono_ns > p->last_mono)
			p->last_mono = s->ev.rec->mono_ns;
		if (s->ev.type != SK_EV_MODULE && s->ev.type != SK_EV_MODULE_GONE)
			return true;
		add_module(p, &s->ev, s->seq);
		s->seq++;
	}
	s->ev.rec = NULL;
	src_finish(st, s);
	return false;
}

/* Descriptors: one per log being merged. Raise the soft limit to the hard
 * one when the directory has more logs than the soft limit allows. */
static void want_fds(size_t n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= n + 64 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > n + 64 ? n + 64 : rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

static void src_start(struct state *st, struct src *s)
{
	struct tproc *p = s->p;
	int rc = sk_reader_open(&s->r, p->log_path);

	if (rc < 0) {   /* it was readable a moment ago */
		diag(st, st->file_of[p->idx], "%s: %s", p->log_path,
		     rc == -EPROTO ? sk_reader_diag(s->r) : strerror(-rc));
		if (rc == -EMFILE || rc == -ENFILE)
			warnx("%s: too many logs being read at once: raise the limit of open files "
			      "(ulimit -n)", st->m->dir);
		sk_reader_close(s->r);
		s->r = NULL;
		st->m->damaged_files++;
		return;
	}
	if (src_next(st, s))
		heap_push(st, s);
}

static int cmp_first(const void *a, const void *b)
{
	const struct tproc *x = *(struct tproc *const *)a, *y = *(struct tproc *const *)b;

	if (x->first_mono != y->first_mono)
		return x->first_mono < y->first_mono ? -1 : 1;
	return x->idx - y->idx;
}

/* The k-way merge. A file joins the heap when the merge reaches the time its
 * image began (none of its records is earlier), and leaves it at its end:
 * the open files are those of the images alive at that moment of the run, so
 * a directory of thousands of short-lived processes needs few descriptors. */
static void merge(struct state *st)
{
	struct model *m = st->m;
	size_t n = m->nprocs, next = 0;
	struct tproc **order;
	uint64_t done = 0;

	if (!n)
		return;
	st->srcs = xcalloc(n, sizeof(*st->srcs));
	st->heap = xcalloc(n, sizeof(*st->heap));
	order = xrealloc(NULL, n * sizeof(*order));
	memcpy(order, m->procs, n * sizeof(*order));
	qsort(order, n, sizeof(*order), cmp_first);
	for (size_t i = 0; i < n; i++)
		st->srcs[i].p = m->procs[i];
	want_fds(n);
	for (;;) {
		while (next < n && (!st->nheap || order[next]->first_mono <= st->heap[0].mono))
			src_start(st, &st->srcs[order[next++]->idx]);
		if (!st->nheap)
			break;
		struct src *s = st->heap[0].s;
		struct cur c = { .p = s->p, .seq = s->seq, .mono = s->ev.rec->mono_ns, .ev = &s->ev };

		replay(st, &c);
		done += s->ev.len;
		if ((++m->nevents & 4095) == 0)
			progress("reading logs, MB:", done >> 20, st->total_bytes >> 20);
		if (src_next(st, s))
			st->heap[0].mono = s->ev.rec->mono_ns;
		else
			st->heap[0] = st->heap[--st->nheap];
		if (st->nheap)
			heap_down(st, 0);
	}
	free(order);
	free(st->heap);
	free(st->srcs);
	st->heap = NULL;
	st->srcs = NULL;
}

/* What is still attached was detached by exit or exec, unannounced. */
static void end_attachments(struct state *st)
{
	for (size_t i = 0; i < st->natts; i++) {
		struct att *a = &st->atts[i];
		struct tuse *u = hist_add(st, a->h, USE_DETACH, a->p->last_mono);

		u->addr = a->addr;
		u->len = a->len;
		u->implicit = true;
		u->at_end = true;
		/* The next image logs only if it makes a call of its own. */
		u->at_exec = a->p->exec_next != NULL || a->p->exec_last;
	}
	free(st->atts);
	st->atts = NULL;
	st->natts = 0;
	hm_free(&st->atts_by);
}

bool model_quiet_empty;

/* Kept events and interned blobs live as long as the model. */
static struct model_mem *mem_of(struct model *m)
{
	if (!m->mem)
		m->mem = xcalloc(1, sizeof(struct model_mem));
	return m->mem;
}

int model_load(struct model *m, const char *dir)
{
	struct state st = { .m = m };
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct stat sb;
	DIR *d;

	memset(m, 0, sizeof(*m));
	m->dir = dir;
	read_self(m);
	if (stat(dir, &sb) < 0)
		return -errno;
	if (S_ISREG(sb.st_mode)) {    /* a single log */
		add_file(&st, dir);
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
		progress("reading log headers:", i, n);
		add_file(&st, names[i]);
		free(names[i]);
	}
	free(names);
	if (n == 0)
		if (!model_quiet_empty)
			warnx("%s: no shmkeeper logs (shmk-*.shmk) in this directory", dir);
loaded:
	link_procs(m);
	merge(&st);
	end_attachments(&st);
	flatten_uses(&st);
	progress_done();
	say_diags(&st);
	free(st.file_of);
	hm_free(&st.ids);
	hm_free(&st.names);
	hm_free(&st.warn_counts);
	/* The interned blobs stay (kept events point into them); the index
	 * goes, the blobs are found again through the model's list. */
	struct model_mem *mm = mem_of(m);
	for (size_t i = 0; i < st.interned.cap; i++)
		for (struct iblob *b = (struct iblob *)(uintptr_t)st.interned.e[i].v, *nx; b; b = nx) {
			nx = b->next;
			b->next = mm->blobs;
			mm->blobs = b;
		}
	hm_free(&st.interned);
	return 0;
}

/* ---- status ------------------------------------------------------------- */

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

static int cmp_row(const void *a, const void *b)
{
	const struct sysv_row *x = a, *y = b;

	return x->shmid < y->shmid ? -1 : x->shmid > y->shmid;
}

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
	if (sysv_nrows)   /* found by bsearch: thousands of leaks, thousands of rows */
		qsort(sysv_rows, sysv_nrows, sizeof(*sysv_rows), cmp_row);
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
		struct sysv_row key = { .shmid = s->shmid };
		const struct sysv_row *r = sysv_nrows ?
			bsearch(&key, sysv_rows, sysv_nrows, sizeof(*sysv_rows), cmp_row) : NULL;
		if (r) {
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

const char *model_warn_name(unsigned code)
{
	static const char *const names[] = {
		[SK_W_SPAN_TAKEN] = "span_taken", [SK_W_SPAN_FULL] = "span_full",
		[SK_W_PLACE_REFUSED] = "place_refused", [SK_W_ADDR_IN_SPAN] = "addr_in_span",
		[SK_W_UNKNOWN_DETACH] = "unknown_detach",
	};
	return code < sizeof(names) / sizeof(*names) && names[code] ? names[code] : "unknown";
}

void model_free(struct model *m)
{
	struct model_mem *mm = m->mem;

	for (size_t i = 0; i < m->nsegs; i++) {
		struct tseg *s = m->segs[i];

		free(s->uses);
		free(s->name);
		free(s);
	}
	free(m->segs);
	free(m->warns);
	if (mm) {
		for (size_t i = 0; i < mm->ntevs; i++)
			free(mm->tevs[i]);
		free(mm->tevs);
		for (struct iblob *b = mm->blobs, *nx; b; b = nx) {
			nx = b->next;
			free(b);
		}
		free(mm);
	}
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
