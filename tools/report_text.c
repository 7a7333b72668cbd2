/* report_text.c - the report for people.
 *
 * Shape (doc/shmkeeper.1, REPORT): a summary; one block per leak, largest
 * first, leaks created from the same stack merged; the segments removed by a
 * process other than their creator; those that vanished outside the
 * recording; the process tree; a final summary line, as valgrind and
 * LeakSanitizer end theirs. Colour only on a terminal (or --color=always).
 */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/logread.h"
#include "tools/tool.h"
#include "tools/suppress.h"

struct ctx {
	FILE *f;
	struct model *m;
	struct symbolizer *s;
	const char *bold, *red, *green, *dim, *off;
};

static void fmt_time(char *buf, size_t n, const struct tproc *p, uint64_t mono)
{
	struct tev t = { .p = (struct tproc *)p };
	int64_t sec;
	long nsec;
	struct tm tm;
	time_t tt;

	t.mono = mono;
	model_wall_time(&t, &sec, &nsec);
	tt = (time_t)sec;
	if (!localtime_r(&tt, &tm)) {
		snprintf(buf, n, "?");
		return;
	}
	size_t k = strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + k, n - k, ".%03ld", nsec / 1000000);
}

static const char *proc_name(const struct tproc *p)
{
	const char *e = p->hdr.exe;

	return e[0] ? e : "?";
}

/* One argument as a shell would need it: quoted when it has anything but
 * plain characters, control characters escaped, so that a `python3 -c`
 * script stays on one line. */
static void print_arg(FILE *f, const char *a)
{
	const unsigned char *p = (const unsigned char *)a;
	bool plain = *p != '\0';

	for (; *p && plain; p++)
		plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			       "0123456789_./=:,+@%-", *p) != NULL;
	if (plain) {
		fputs(a, f);
		return;
	}
	fputc('\'', f);
	for (p = (const unsigned char *)a; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('\'', f);
}

static void print_argv(struct ctx *c, const struct tproc *p)
{
	const char *a = NULL;
	int first = 1;

	while ((a = sk_args_next(&p->hdr, a))) {
		if (!first)
			fputc(' ', c->f);
		print_arg(c->f, a);
		first = 0;
	}
}

static void seg_ident(char *buf, size_t n, const struct tseg *s)
{
	if (s->kind == SEG_SYSV && s->key == 0)
		snprintf(buf, n, "SysV shmid %d key IPC_PRIVATE", s->shmid);
	else if (s->kind == SEG_SYSV)
		snprintf(buf, n, "SysV shmid %d key 0x%08x", s->shmid, (unsigned)s->key);
	else {
		snprintf(buf, n, "POSIX %s", s->name);
		for (char *q = buf; *q; q++)   /* a name is any bytes: keep one line */
			if ((unsigned char)*q < 0x20 || *q == 0x7f)
				*q = '?';
	}
}

static void print_frames(struct ctx *c, const struct tev *ev, const char *indent)
{
	struct sym_frame fr[SYM_MAX_INLINE];
	unsigned k = 0;

	if (!ev->nframes) {
		fprintf(c->f, "%s(no backtrace recorded)\n", indent);
		return;
	}
	for (unsigned i = 0; i < ev->nframes; i++) {
		size_t n = sym_resolve(c->s, ev->p, ev->seq, ev->frames[i], fr, SYM_MAX_INLINE);

		for (size_t j = 0; j < n; j++, k++) {
			const struct sym_frame *x = &fr[j];

			/* No name (stripped, no debug file): module+offset, which
			 * addr2line -e MODULE and a later debug file can use. */
			if (x->function)
				fprintf(c->f, "%s#%-2u 0x%016" PRIx64 " %s%s%s", indent, k,
					x->address, c->bold, x->function, c->off);
			else if (x->module) {
				const char *b = strrchr(x->module, '/');
				fprintf(c->f, "%s#%-2u 0x%016" PRIx64 " %s+0x%" PRIx64, indent, k,
					x->address, b ? b + 1 : x->module, x->offset);
			} else
				fprintf(c->f, "%s#%-2u 0x%016" PRIx64 " ???", indent, k, x->address);
			if (x->inlined)
				fprintf(c->f, " (inlined)");
			if (x->file)
				fprintf(c->f, " %s:%d", x->file, x->line);
			if (x->module)
				fprintf(c->f, " %s(%s+0x%" PRIx64 ")%s", c->dim, x->module, x->offset, c->off);
			fputc('\n', c->f);
		}
	}
}

/* Key of a creating stack that is the same in every process whatever its
 * ASLR: module and offset of each frame. */
static char *stack_key(struct ctx *c, const struct tseg *s)
{
	const struct tev *ev = s->create;
	size_t cap = 64 + ev->nframes * 48, len = 0;
	char *k = malloc(cap);

	if (!k)
		return NULL;
	len += (size_t)snprintf(k, cap, "%d|", s->kind);
	for (unsigned i = 0; i < ev->nframes && len < cap; i++) {
		struct sym_frame fr;

		sym_resolve(c->s, ev->p, ev->seq, ev->frames[i], &fr, 1);
		if (fr.module)
			len += (size_t)snprintf(k + len, cap - len, "%s+%" PRIx64 ";", fr.module, fr.offset);
		else
			len += (size_t)snprintf(k + len, cap - len, "%" PRIx64 ";", fr.address);
	}
	if (ev->nframes == 0)   /* no stack: never merged */
		snprintf(k + len, cap - len, "#%d", s->idx);
	return k;
}

struct group {
	struct tseg **segs;
	size_t n;
	uint64_t bytes;
	char *key;
};

static int cmp_group(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->segs[0]->idx - y->segs[0]->idx;
}

static int cmp_seg_size(const void *a, const void *b)
{
	const struct tseg *x = *(struct tseg *const *)a, *y = *(struct tseg *const *)b;

	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return x->idx - y->idx;
}

static void print_uses(struct ctx *c, const struct tseg *s, const char *indent)
{
	char t[48];

	for (size_t i = 0; i < s->nuses; i++) {
		const struct tuse *u = &s->uses[i];
		const char *what = u->kind == USE_OPEN ? "opened" :
				   u->kind == USE_RESIZE ? "resized" :
				   u->kind == USE_MOVE ? "remapped" :
				   u->kind == USE_ATTACH ? (u->inherited ? "inherited" : "attached") :
				   "detached";

		if (u->kind == USE_OMITTED) {   /* a bounded history (model.c) */
			fprintf(c->f, "%s... and %" PRIu64 " more use%s by pid %u (%s)\n", indent,
				u->len, u->len == 1 ? "" : "s", u->p->hdr.pid, proc_name(u->p));
			continue;
		}
		fmt_time(t, sizeof(t), u->p, u->mono);
		fprintf(c->f, "%s%-9s by pid %u (%s)", indent, what, u->p->hdr.pid, proc_name(u->p));
		if (u->kind == USE_RESIZE)
			fprintf(c->f, " to %" PRIu64 " bytes", u->len);
		else if (u->kind == USE_MOVE)
			fprintf(c->f, " from 0x%" PRIx64 " to 0x%" PRIx64 ", %" PRIu64 " bytes", u->from,
				u->addr, u->len);
		else if (u->kind != USE_OPEN && u->addr)
			fprintf(c->f, " at 0x%" PRIx64, u->addr);
		if (u->placed)
			fprintf(c->f, ", placed in the span");
		if (u->at_end)
			fprintf(c->f, ", implicitly at %s", u->at_exec ? "exec" : "exit");
		else if (u->implicit)
			fprintf(c->f, ", implicitly (mapped over)");
		if (u->partial)
			fprintf(c->f, ", partly");
		fprintf(c->f, " %s%s%s\n", c->dim, t, c->off);
	}
}

/* "uid N (name)" for the user a process ran as (its effective uid: the
 * owner of what it created); the name where this machine knows it. */
static const char *user_of(const struct tproc *p, char *buf, size_t n)
{
	static uint32_t last_uid = UINT32_MAX;
	static char last_name[64];
	uint32_t uid = p->hdr.euid;
	if (uid != last_uid) {
		struct passwd *pw = getpwuid(uid);
		snprintf(last_name, sizeof last_name, "%s", pw ? pw->pw_name : "");
		last_uid = uid;
	}
	if (last_name[0])
		snprintf(buf, n, "uid %u (%s)", uid, last_name);
	else
		snprintf(buf, n, "uid %u", uid);
	return buf;
}

static void print_leak_seg(struct ctx *c, const struct tseg *s, bool detail)
{
	char id[SK_NAME_MAX + 64], t[48];
	const struct tev *ev = s->create;

	seg_ident(id, sizeof(id), s);
	fmt_time(t, sizeof(t), ev->p, ev->mono);
	fprintf(c->f, "   %s%s%s, %" PRIu64 " bytes, perms %04o, %u attach%s\n",
		c->bold, id, c->off, s->size, s->mode, s->attaches, s->attaches == 1 ? "" : "es");
	if (s->status == ST_LEAK_UNKNOWN)
		fprintf(c->f, "     status unknown: %s\n", s->gone_why);
	char who[96];
	fprintf(c->f, "     created by pid %u (%s) at %s, %s\n", ev->p->hdr.pid, proc_name(ev->p), t,
		user_of(ev->p, who, sizeof who));
	if (detail) {
		fprintf(c->f, "     argv: ");
		print_argv(c, ev->p);
		fputc('\n', c->f);
	}
	print_uses(c, s, "     ");
}

static void print_leaks(struct ctx *c)
{
	struct model *m = c->m;
	struct group *g = NULL;
	size_t ng = 0;

	for (size_t i = 0; i < m->nsegs; i++) {
		struct tseg *s = m->segs[i];
		char *key;
		size_t j;

		if (!model_is_leak(s))
			continue;
		key = stack_key(c, s);
		for (j = 0; j < ng; j++)
			if (key && g[j].key && strcmp(g[j].key, key) == 0)
				break;
		if (j == ng) {
			struct group *ng2 = realloc(g, (ng + 1) * sizeof(*g));
			if (!ng2)
				break;
			g = ng2;
			memset(&g[ng], 0, sizeof(*g));
			g[ng].key = key;
			key = NULL;
			ng++;
		}
		free(key);
		struct tseg **ns = realloc(g[j].segs, (g[j].n + 1) * sizeof(*ns));
		if (!ns)
			break;
		g[j].segs = ns;
		g[j].segs[g[j].n++] = s;
		g[j].bytes += s->size;
	}
	if (ng)   /* qsort(NULL, 0) is undefined */
		qsort(g, ng, sizeof(*g), cmp_group);
	for (size_t i = 0; i < ng; i++) {
		struct group *x = &g[i];
		struct tseg *s0;
		bool same = true;

		qsort(x->segs, x->n, sizeof(*x->segs), cmp_seg_size);
		s0 = x->segs[0];
		for (size_t j = 1; j < x->n; j++)
			same &= x->segs[j]->size == s0->size;
		fprintf(c->f, "\n%s== Leak %zu of %zu:%s ", c->red, i + 1, ng, c->off);
		if (x->n == 1)
			fprintf(c->f, "%s segment of %" PRIu64 " bytes leaked\n",
				s0->kind == SEG_SYSV ? "SysV" : "POSIX", s0->size);
		else if (same)
			fprintf(c->f, "%zu %s segments of %" PRIu64 " bytes leaked from the same stack (%" PRIu64 " bytes)\n",
				x->n, s0->kind == SEG_SYSV ? "SysV" : "POSIX", s0->size, x->bytes);
		else
			fprintf(c->f, "%zu %s segments leaked from the same stack (%" PRIu64 " bytes)\n",
				x->n, s0->kind == SEG_SYSV ? "SysV" : "POSIX", x->bytes);
		for (size_t j = 0; j < x->n; j++)
			print_leak_seg(c, x->segs[j], j == 0);
		fprintf(c->f, "   created at:\n");
		print_frames(c, s0->create, "     ");
		free(x->segs);
		free(x->key);
	}
	free(g);
}

static void print_removed_other(struct ctx *c)
{
	struct model *m = c->m;
	char id[SK_NAME_MAX + 64];
	bool title = false;

	for (size_t i = 0; i < m->nsegs; i++) {
		const struct tseg *s = m->segs[i];

		if (s->status != ST_REMOVED_OTHER)
			continue;
		if (!title)
			fprintf(c->f, "\n%s== Removed by a process other than their creator:%s\n",
				c->green, c->off);
		title = true;
		seg_ident(id, sizeof(id), s);
		fprintf(c->f, "   %s, %" PRIu64 " bytes: created by pid %u (%s), %s by pid %u (%s)\n",
			id, s->size, s->create->p->hdr.pid, proc_name(s->create->p),
			s->removed_by_cleanup ? "cleaned up" : "removed",
			s->remove->p->hdr.pid, proc_name(s->remove->p));
	}
	title = false;
	for (size_t i = 0; i < m->nsegs; i++) {
		const struct tseg *s = m->segs[i];

		if (s->status != ST_GONE)
			continue;
		if (!title)
			fprintf(c->f, "\n== Not removed by a recorded process, but gone:\n");
		title = true;
		seg_ident(id, sizeof(id), s);
		fprintf(c->f, "   %s, %" PRIu64 " bytes: created by pid %u (%s); %s\n",
			id, s->size, s->create->p->hdr.pid, proc_name(s->create->p), s->gone_why);
	}
}

/* Segments that a termination cleanup removed (issue 6: "the report lists
 * what cleanup removed"), and the cleanups that failed. */
static void print_cleanups(struct ctx *c)
{
	struct model *m = c->m;
	char id[SK_NAME_MAX + 64];
	bool title = false;

	for (size_t i = 0; i < m->nsegs; i++) {
		const struct tseg *s = m->segs[i];

		if (!s->removed_by_cleanup && !s->cleanup_err)
			continue;
		if (!title)
			fprintf(c->f, "\n== Removed by termination cleanup:\n");
		title = true;
		seg_ident(id, sizeof(id), s);
		fprintf(c->f, "   %s, %" PRIu64 " bytes", id, s->size);
		if (s->create)
			fprintf(c->f, ": created by pid %u (%s)", s->create->p->hdr.pid,
				proc_name(s->create->p));
		if (s->removed_by_cleanup) {
			fprintf(c->f, ", removed by pid %u (%s) ", s->remove->p->hdr.pid,
				proc_name(s->remove->p));
			if (s->cleanup_signo > 0 && s->cleanup_signo < NSIG)
				fprintf(c->f, "at signal %d (SIG%s)\n", s->cleanup_signo,
					sigabbrev_np(s->cleanup_signo) ? sigabbrev_np(s->cleanup_signo) : "?");
			else
				fprintf(c->f, "at exit\n");
		} else
			fprintf(c->f, ", cleanup by pid %u (%s) failed: %s\n",
				s->cleanup_failed_by->hdr.pid, proc_name(s->cleanup_failed_by),
				strerror(s->cleanup_err));
	}
}

static const char *warn_what(unsigned code)
{
	switch (code) {
	case SK_W_SPAN_TAKEN: return "the span's address range was taken at start-up";
	case SK_W_SPAN_FULL: return "not placed in the span, the kernel's address was used";
	case SK_W_PLACE_REFUSED: return "refused by the strict span policy";
	case SK_W_ADDR_IN_SPAN: return "an explicit address inside the span";
	case SK_W_UNKNOWN_DETACH: return "detach of an address not seen attached";
	default: return "a code this shmkeeper does not know";
	}
}

/* The arguments, as the library gives them (core/span.h). */
static void print_warn_args(struct ctx *c, const struct twarn *w)
{
	/* arg2 is the shmid of a shmat, the fd of an mmap */
	const char *what2 = strncmp(w->text, "mmap", 4) == 0 ? "fd" : "shmid";
	const char *en = w->arg1 > 0 && w->arg1 < 4096 ? strerrorname_np((int)w->arg1) : NULL;

	switch (w->code) {
	case SK_W_SPAN_TAKEN:
		fprintf(c->f, "span 0x%" PRIx64 ", %" PRId64 " bytes", (uint64_t)w->arg1, w->arg2);
		break;
	case SK_W_SPAN_FULL:
	case SK_W_PLACE_REFUSED:
		if (en)
			fprintf(c->f, "error %s, %s %" PRId64, en, what2, w->arg2);
		else
			fprintf(c->f, "error %" PRId64 ", %s %" PRId64, w->arg1, what2, w->arg2);
		break;
	case SK_W_ADDR_IN_SPAN:
		fprintf(c->f, "address 0x%" PRIx64 ", %s %" PRId64, (uint64_t)w->arg1, what2, w->arg2);
		break;
	default:
		fprintf(c->f, "arg1 %" PRId64 ", arg2 %" PRId64, w->arg1, w->arg2);
		break;
	}
}

static unsigned warn_slot(unsigned code)
{
	return code < MODEL_WARN_CODES ? code : 0;
}

static int cmp_warn(const void *a, const void *b)
{
	const struct twarn *x = *(const struct twarn *const *)a, *y = *(const struct twarn *const *)b;

	if (warn_slot(x->code) != warn_slot(y->code))
		return warn_slot(x->code) < warn_slot(y->code) ? -1 : 1;
	if (x->p->idx != y->p->idx)
		return x->p->idx < y->p->idx ? -1 : 1;
	return x < y ? -1 : x > y;   /* the array is in time order */
}

/* SK_EV_WARN records, by code, then process: each with its text and
 * arguments; the model keeps the first MODEL_WARN_KEEP of a code in an image. */
static void print_warnings(struct ctx *c)
{
	struct model *m = c->m;
	const struct twarn **v;
	char t[48];
	size_t i = 0;

	if (!m->nwarns)
		return;
	v = malloc(m->nwarns * sizeof(*v));
	if (!v)
		return;
	for (size_t k = 0; k < m->nwarns; k++)
		v[k] = &m->warns[k];
	qsort(v, m->nwarns, sizeof(*v), cmp_warn);
	fprintf(c->f, "\n== Warnings:\n");
	while (i < m->nwarns) {
		unsigned slot = warn_slot(v[i]->code), total = 0, nprocs = 0;

		for (size_t k = 0; k < m->nprocs; k++) {
			total += m->procs[k]->warn_count[slot];
			nprocs += m->procs[k]->warn_count[slot] != 0;
		}
		fprintf(c->f, "   %s%s%s: %s: %u in %u process%s\n", c->bold,
			slot ? model_warn_name(slot) : "unknown", c->off, warn_what(slot),
			total, nprocs, nprocs == 1 ? "" : "es");
		while (i < m->nwarns && warn_slot(v[i]->code) == slot) {
			const struct tproc *p = v[i]->p;
			unsigned shown = 0;

			fprintf(c->f, "     pid %u (%s):\n", p->hdr.pid, proc_name(p));
			for (; i < m->nwarns && warn_slot(v[i]->code) == slot && v[i]->p == p; i++, shown++) {
				const struct twarn *w = v[i];

				fmt_time(t, sizeof(t), p, w->mono);
				fprintf(c->f, "       %s", w->text[0] ? w->text : warn_what(w->code));
				if (slot == 0)
					fprintf(c->f, " (code %u)", w->code);
				fputs(": ", c->f);
				print_warn_args(c, w);
				fprintf(c->f, " %s%s%s\n", c->dim, t, c->off);
			}
			if (p->warn_count[slot] > shown)
				fprintf(c->f, "       ... and %u more\n", p->warn_count[slot] - shown);
		}
	}
	free(v);
}

static void print_tree(struct ctx *c, const struct tproc *p, int depth)
{
	fprintf(c->f, "   %*s%s%u %s", depth * 2, "", depth ? "`- " : "", p->hdr.pid, proc_name(p));
	fprintf(c->f, " [");
	print_argv(c, p);
	fprintf(c->f, "]");
	for (const struct tproc *q = p->exec_next; q; q = q->exec_next)
		fprintf(c->f, " -> exec %s", proc_name(q));
	const struct tproc *last = p;
	while (last->exec_next)
		last = last->exec_next;
	if (last->exited && last->exit_status >= 0)
		fprintf(c->f, ", exit %d", last->exit_status);
	else if (last->exited)
		fprintf(c->f, ", exited");
	fputc('\n', c->f);
	/* Children of every image of this process. */
	for (const struct tproc *img = p; img; img = img->exec_next)
		for (const struct tproc *ch = img->child; ch; ch = ch->sibling)
			if (!ch->exec_prev && depth < 64)
				print_tree(c, ch, depth + 1);
}

static void print_procs(struct ctx *c)
{
	struct model *m = c->m;

	if (m->nprocs < 2)
		return;
	fprintf(c->f, "\n== Processes (fork and exec):\n");
	for (size_t i = 0; i < m->nprocs; i++) {
		const struct tproc *p = m->procs[i];

		if (!p->parent && !p->exec_prev)
			print_tree(c, p, 0);
	}
}

void report_text(FILE *f, struct model *m, struct symbolizer *s, const struct options *o)
{
	struct ctx c = { .f = f, .m = m, .s = s };
	bool color = o->color > 0;

	if (o->color < 0) {
		const char *term = getenv("TERM");
		color = isatty(fileno(f)) && !getenv("NO_COLOR") && term && strcmp(term, "dumb") != 0;
	}
	c.bold = color ? "\033[1m" : "";
	c.red = color ? "\033[1;31m" : "";
	c.green = color ? "\033[32m" : "";
	c.dim = color ? "\033[2m" : "";
	c.off = color ? "\033[0m" : "";

	unsigned leaks = m->n_leaked + m->n_leak_unknown;
	fprintf(f, "%s== shmkeeper:%s %zu process%s, %u segment%s created, %u removed (%u by another process), "
		"%u leaked (%" PRIu64 " bytes)\n", c.bold, c.off,
		m->nprocs, m->nprocs == 1 ? "" : "es", m->n_created, m->n_created == 1 ? "" : "s",
		m->n_removed, m->n_removed_other, leaks, m->leaked_bytes);
	print_leaks(&c);
	print_removed_other(&c);
	print_cleanups(&c);
	print_warnings(&c);
	print_procs(&c);
	if (o->show_all) {
		char id[SK_NAME_MAX + 64];

		fprintf(f, "\n== All segments:\n");
		for (size_t i = 0; i < m->nsegs; i++) {
			const struct tseg *x = m->segs[i];
			static const char *const st[] = {
				[ST_LEAKED] = "leaked", [ST_LEAK_UNKNOWN] = "leaked (status unknown)",
				[ST_REMOVED] = "removed by its creator",
				[ST_REMOVED_OTHER] = "removed by another process",
				[ST_GONE] = "gone", [ST_NOT_CREATED] = "not created by a recorded process",
			};
			seg_ident(id, sizeof(id), x);
			fprintf(f, "   %s, %" PRIu64 " bytes: %s\n", id, x->size, st[x->status]);
			print_uses(&c, x, "     ");
		}
	}
	supp_print_used(f, o->supp);
	fprintf(f, "\n%sLEAK SUMMARY:%s %u segment%s leaked, %" PRIu64 " bytes",
		leaks ? c.red : c.green, c.off, leaks, leaks == 1 ? "" : "s", m->leaked_bytes);
	if (m->n_leak_unknown)
		fprintf(f, " (%u of unknown status)", m->n_leak_unknown);
	if (m->n_suppressed)
		fprintf(f, "; %u suppressed, %" PRIu64 " bytes", m->n_suppressed, m->suppressed_bytes);
	fputc('\n', f);
}
