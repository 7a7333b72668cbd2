/* diff.c - `shmkeeper report --diff OLD_LOGDIR NEW_LOGDIR`.
 *
 * Two runs never share a pid, an address or a shmid, so a leak is matched by
 * what stays the same from run to run: its kind and its creating stack, as
 * function names where symbols exist and as module basename + offset where
 * they do not (the offset is ASLR-free), down to main (the C runtime below
 * it differs between machines). Line numbers are left out so that an edit
 * elsewhere in a file does not make every leak "new". Leaks are counted per
 * stack: 1 old and 3 new from one stack are 1 unchanged and 2 new, as
 * heaptrack's --diff subtracts per allocation site.
 *
 * Suppressions apply to both runs. With --error-exitcode=N the status is N
 * only when there are new leaks, so a CI job can fail on regressions alone.
 */
#include <err.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tools/suppress.h"

#define DIFF_MAX_FRAMES 64

struct dgroup {
	char *key;
	enum seg_kind kind;
	unsigned n[2];              /* leaks in old [0] and new [1] */
	uint64_t bytes[2];
	char *example;              /* one leak, for people */
	char **frames;              /* printable frames, for people */
	size_t nframes;
	char *summary;              /* "f < g < main" */
};

struct dside {
	const char *dir;
	unsigned leaks, suppressed;
	uint64_t bytes;
	int rc;
};

struct diff {
	struct dgroup *g;
	size_t ng;
	struct dside side[2];
};


static const char *base_name(const char *p)
{
	const char *b = strrchr(p, '/');

	return b ? b + 1 : p;
}

/* Appends to a growing string. */
static void cat(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
		if (!*buf)
			err(EXIT_NOREPORT, "out of memory");
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

static size_t until_main(const struct sym_frame *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].function && strcmp(f[i].function, "main") == 0)
			return i + 1;
	return n;
}

static char *make_key(const struct tseg *s, const struct sym_frame *f, size_t n)
{
	char *k = NULL, part[512];
	size_t len = 0, cap = 0;

	cat(&k, &len, &cap, s->kind == SEG_SYSV ? "sysv" : "posix");
	for (size_t i = 0; i < n; i++) {
		if (f[i].function)
			snprintf(part, sizeof(part), "|%s", f[i].function);
		else if (f[i].module)
			snprintf(part, sizeof(part), "|%s+0x%" PRIx64, base_name(f[i].module), f[i].offset);
		else   /* no module: nothing stable to say; only equal PCs match */
			snprintf(part, sizeof(part), "|0x%" PRIx64, f[i].address);
		cat(&k, &len, &cap, part);
	}
	return k;
}

static struct dgroup *find_group(struct diff *d, const char *key)
{
	for (size_t i = 0; i < d->ng; i++)
		if (strcmp(d->g[i].key, key) == 0)
			return &d->g[i];
	return NULL;
}

static void describe(struct dgroup *g, const struct tseg *s, const struct sym_frame *f, size_t n)
{
	char buf[SK_EXE_MAX + SK_NAME_MAX + 256];

	if (s->kind == SEG_SYSV)
		snprintf(buf, sizeof(buf), "SysV shmid %d key 0x%08x, %" PRIu64 " bytes, created by pid %u (%s)",
			 s->shmid, (unsigned)s->key, s->size, s->create->p->hdr.pid, s->create->p->hdr.exe);
	else
		snprintf(buf, sizeof(buf), "POSIX %s, %" PRIu64 " bytes, created by pid %u (%s)",
			 s->name, s->size, s->create->p->hdr.pid, s->create->p->hdr.exe);
	g->example = xstrdup(buf);
	g->frames = calloc(n ? n : 1, sizeof(*g->frames));
	if (!g->frames)
		err(EXIT_NOREPORT, "out of memory");
	g->nframes = n;
	char *sum = NULL;
	size_t len = 0, cap = 0;
	cat(&sum, &len, &cap, "");
	for (size_t i = 0; i < n; i++) {
		const struct sym_frame *x = &f[i];
		int k;

		k = snprintf(buf, sizeof(buf), "%s", x->function ? x->function : "???");
		if (x->file && k >= 0 && (size_t)k < sizeof(buf))
			k += snprintf(buf + k, sizeof(buf) - (size_t)k, " %s:%d", base_name(x->file), x->line);
		if (x->module && k >= 0 && (size_t)k < sizeof(buf))
			snprintf(buf + k, sizeof(buf) - (size_t)k, " (%s+0x%" PRIx64 ")",
				 base_name(x->module), x->offset);
		g->frames[i] = xstrdup(buf);
		if (i)
			cat(&sum, &len, &cap, " < ");
		if (x->function)
			cat(&sum, &len, &cap, x->function);
		else {
			snprintf(buf, sizeof(buf), "%s+0x%" PRIx64,
				 x->module ? base_name(x->module) : "?", x->module ? x->offset : x->address);
			cat(&sum, &len, &cap, buf);
		}
	}
	g->summary = sum;
}

/* Loads one run and adds its leaks to the groups. */
static int load_side(struct diff *d, int which, const char *dir, const struct options *o,
		     struct symbolizer *sym)
{
	struct sym_frame f[DIFF_MAX_FRAMES];
	struct model m;
	int rc = model_load(&m, dir);

	d->side[which].dir = dir;
	if (rc < 0) {
		warnx("%s: %s", dir, strerror(-rc));
		model_free(&m);
		return EXIT_NOREPORT;
	}
	model_analyse(&m);
	supp_apply(o->supp, &m, sym);
	for (size_t i = 0; i < m.nsegs; i++) {
		const struct tseg *s = m.segs[i];
		struct dgroup *g;
		size_t n;
		char *key;

		if (!model_is_leak(s))
			continue;
		n = until_main(f, stack_frames(sym, s->create, f, DIFF_MAX_FRAMES));
		key = make_key(s, f, n);
		g = find_group(d, key);
		if (!g) {
			g = realloc(d->g, (d->ng + 1) * sizeof(*d->g));
			if (!g)
				err(EXIT_NOREPORT, "out of memory");
			d->g = g;
			g = &d->g[d->ng++];
			memset(g, 0, sizeof(*g));
			g->key = key;
			g->kind = s->kind;
			describe(g, s, f, n);
		} else
			free(key);
		g->n[which]++;
		g->bytes[which] += s->size;
	}
	d->side[which].leaks = m.n_leaked + m.n_leak_unknown;
	d->side[which].bytes = m.leaked_bytes;
	d->side[which].suppressed = m.n_suppressed;
	rc = (m.bad_files || m.damaged_files || m.nprocs == 0) ? EXIT_BADLOGS : EXIT_OK;
	model_free(&m);
	return rc;
}

static unsigned n_new(const struct dgroup *g)
{
	return g->n[1] > g->n[0] ? g->n[1] - g->n[0] : 0;
}

static unsigned n_gone(const struct dgroup *g)
{
	return g->n[0] > g->n[1] ? g->n[0] - g->n[1] : 0;
}

static unsigned n_same(const struct dgroup *g)
{
	return g->n[0] < g->n[1] ? g->n[0] : g->n[1];
}

/* JSON string: the strings here come from logs and symbols, so escape all
 * control bytes; bytes >= 0x80 are passed through (report_json replaces
 * invalid UTF-8; symbol and file names are ASCII in practice). */
static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f || *p >= 0x80)
			fprintf(f, "\\u%04x", *p < 0x80 ? *p : 0xfffd);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void print_json(FILE *f, const struct diff *d, unsigned tot[3])
{
	static const char *const names[2] = { "old", "new" };

	fprintf(f, "{\n  \"version\": 1,\n  \"tool\": \"shmkeeper %s\",\n", PACKAGE_VERSION);
	for (int w = 0; w < 2; w++) {
		fprintf(f, "  \"%s\": {\"log_dir\": ", names[w]);
		jstr(f, d->side[w].dir);
		fprintf(f, ", \"leaks\": %u, \"leaked_bytes\": %" PRIu64 ", \"suppressed\": %u},\n",
			d->side[w].leaks, d->side[w].bytes, d->side[w].suppressed);
	}
	fprintf(f, "  \"summary\": {\"new\": %u, \"gone\": %u, \"unchanged\": %u},\n  \"stacks\": [",
		tot[0], tot[1], tot[2]);
	for (size_t i = 0; i < d->ng; i++) {
		const struct dgroup *g = &d->g[i];
		const char *st = !g->n[0] ? "new" : !g->n[1] ? "gone" :
				 g->n[1] > g->n[0] ? "more" : g->n[1] < g->n[0] ? "fewer" : "unchanged";

		fprintf(f, "%s\n    {\"status\": \"%s\", \"kind\": \"%s\", \"old\": %u, \"new\": %u, "
			"\"added\": %u, \"removed\": %u, \"unchanged\": %u, "
			"\"old_bytes\": %" PRIu64 ", \"new_bytes\": %" PRIu64 ", \"key\": ",
			i ? "," : "", st, g->kind == SEG_SYSV ? "sysv" : "posix", g->n[0], g->n[1],
			n_new(g), n_gone(g), n_same(g), g->bytes[0], g->bytes[1]);
		jstr(f, g->key);
		fputs(", \"example\": ", f);
		jstr(f, g->example);
		fputs(", \"stack\": [", f);
		for (size_t j = 0; j < g->nframes; j++) {
			fputs(j ? ", " : "", f);
			jstr(f, g->frames[j]);
		}
		fputs("]}", f);
	}
	fputs(d->ng ? "\n  ]\n}\n" : "]\n}\n", f);
}

static void print_section(FILE *f, const struct diff *d, int what, const char *title)
{
	bool any = false;

	for (size_t i = 0; i < d->ng; i++) {
		const struct dgroup *g = &d->g[i];
		unsigned k = what == 0 ? n_new(g) : what == 1 ? n_gone(g) : n_same(g);

		if (!k)
			continue;
		if (!any)
			fprintf(f, "\n== %s:\n", title);
		any = true;
		fprintf(f, "   %c%u %s segment%s (%u in old, %u in new; %" PRIu64 " -> %" PRIu64 " bytes)\n",
			what == 0 ? '+' : what == 1 ? '-' : '=', k,
			g->kind == SEG_SYSV ? "SysV" : "POSIX", k == 1 ? "" : "s",
			g->n[0], g->n[1], g->bytes[0], g->bytes[1]);
		if (what == 2) {
			fprintf(f, "     created at %s\n", g->summary[0] ? g->summary : "(no backtrace)");
			continue;
		}
		fprintf(f, "     e.g. %s\n     created at:\n", g->example);
		if (!g->nframes)
			fprintf(f, "       (no backtrace recorded)\n");
		for (size_t j = 0; j < g->nframes; j++)
			fprintf(f, "       #%-2zu %s\n", j, g->frames[j]);
	}
}

int report_diff(FILE *f, const char *old_dir, const char *new_dir, const struct options *o)
{
	struct diff d = { 0 };
	struct symbolizer *sym;
	unsigned tot[3] = { 0, 0, 0 };
	int rc[2];
	bool out_file = false;

	if (o->format == FMT_HTML)
		errx(EXIT_USAGE, "--diff: the comparison is text or json, not html");
	sym = sym_new();
	rc[0] = load_side(&d, 0, old_dir, o, sym);
	rc[1] = rc[0] == EXIT_NOREPORT ? EXIT_NOREPORT : load_side(&d, 1, new_dir, o, sym);
	if (rc[0] == EXIT_NOREPORT || rc[1] == EXIT_NOREPORT) {
		sym_free(sym);
		return EXIT_NOREPORT;
	}
	for (size_t i = 0; i < d.ng; i++) {
		tot[0] += n_new(&d.g[i]);
		tot[1] += n_gone(&d.g[i]);
		tot[2] += n_same(&d.g[i]);
	}
	if (o->output) {
		f = fopen(o->output, "we");
		if (!f) {
			warn("--output: %s", o->output);
			sym_free(sym);
			return EXIT_NOREPORT;
		}
		out_file = true;
	}
	if (o->format == FMT_JSON)
		print_json(f, &d, tot);
	else {
		fprintf(f, "== shmkeeper diff: %s (%u leak%s) -> %s (%u leak%s)\n",
			old_dir, d.side[0].leaks, d.side[0].leaks == 1 ? "" : "s",
			new_dir, d.side[1].leaks, d.side[1].leaks == 1 ? "" : "s");
		print_section(f, &d, 0, "New leaks");
		print_section(f, &d, 1, "Gone (leaked before, not now)");
		print_section(f, &d, 2, "Unchanged");
		supp_print_used(f, o->supp);
		fprintf(f, "\nDIFF SUMMARY: %u new, %u gone, %u unchanged\n", tot[0], tot[1], tot[2]);
	}
	bool werr = fflush(f) != 0 || ferror(f);
	if (out_file && fclose(f) != 0)
		werr = true;
	if (werr)
		warnx("cannot write the comparison%s%s", o->output ? " to " : "",
		      o->output ? o->output : "");
	for (size_t i = 0; i < d.ng; i++) {
		struct dgroup *g = &d.g[i];

		for (size_t j = 0; j < g->nframes; j++)
			free(g->frames[j]);
		free(g->frames);
		free(g->key);
		free(g->example);
		free(g->summary);
	}
	free(d.g);
	sym_free(sym);
	if (werr)
		return EXIT_NOREPORT;
	if (tot[0] && o->error_exitcode)
		return o->error_exitcode;
	if (rc[0] == EXIT_BADLOGS || rc[1] == EXIT_BADLOGS)
		return EXIT_BADLOGS;
	return EXIT_OK;
}
