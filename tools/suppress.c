/* suppress.c - valgrind-style suppression files for leaks.
 *
 * Globs are fnmatch(3) without FNM_PATHNAME, so `*` crosses slashes as in
 * valgrind's obj: lines; a backslash quotes the next character (the
 * generator quotes C++ names, whose `[abi:cxx11]` would be a bracket
 * expression). Frames are the report's frames: inlined calls count as frames
 * of their own, so a suppression written from the text report matches.
 */
#include <err.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tools/suppress.h"

#define GEN_MAX_FRAMES 24       /* valgrind's default --num-callers is 12 */

enum sfr_type { SFR_FUN, SFR_OBJ, SFR_DOTS };

struct sfr {
	enum sfr_type type;
	char *glob;
};

struct supp {
	char *name;
	char *file;
	unsigned line;              /* of the opening brace */
	int kind;                   /* -1 any, else enum seg_kind */
	char *key, *seg_name, *exe; /* NULL: any */
	struct sfr *frames;
	size_t nframes;
	unsigned used;
	uint64_t used_bytes;
};

struct supp_set {
	struct supp *v;
	size_t n;
};



static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* ---- parsing ----------------------------------------------------------- */

static void add_frame(struct supp *sp, enum sfr_type t, const char *glob)
{
	struct sfr *v;

	/* "... ..." is "...", and the matcher's backtracking stays linear per "...". */
	if (t == SFR_DOTS && sp->nframes && sp->frames[sp->nframes - 1].type == SFR_DOTS)
		return;
	v = realloc(sp->frames, (sp->nframes + 1) * sizeof(*v));
	if (!v)
		err(EXIT_NOREPORT, "out of memory");
	sp->frames = v;
	v[sp->nframes].type = t;
	v[sp->nframes].glob = glob ? xstrdup(glob) : NULL;
	sp->nframes++;
}

static struct supp *add_supp(struct supp_set *set)
{
	struct supp *v = realloc(set->v, (set->n + 1) * sizeof(*v));

	if (!v)
		err(EXIT_NOREPORT, "out of memory");
	set->v = v;
	memset(&v[set->n], 0, sizeof(*v));
	v[set->n].kind = -1;
	return &v[set->n++];
}

/* One line inside a block, after the name and the kind line. */
static void parse_attr(struct supp *sp, char *l, const char *path, unsigned ln)
{
	char *v = strchr(l, ':');

	if (strcmp(l, "...") == 0) {
		add_frame(sp, SFR_DOTS, NULL);
		return;
	}
	if (!v || v == l || !v[1])
		errx(EXIT_USAGE, "%s:%u: '%s' is not WORD:VALUE or '...'", path, ln, l);
	*v++ = '\0';
	v = trim(v);
	if (strcmp(l, "fun") == 0)
		add_frame(sp, SFR_FUN, v);
	else if (strcmp(l, "obj") == 0)
		add_frame(sp, SFR_OBJ, v);
	else if (sp->nframes)
		errx(EXIT_USAGE, "%s:%u: '%s:' after the frames (kind, key, name and exe "
		     "come before fun:, obj: and ...)", path, ln, l);
	else if (strcmp(l, "kind") == 0) {
		if (strcmp(v, "sysv") == 0)
			sp->kind = SEG_SYSV;
		else if (strcmp(v, "posix") == 0)
			sp->kind = SEG_POSIX;
		else if (strcmp(v, "*") == 0)
			sp->kind = -1;
		else
			errx(EXIT_USAGE, "%s:%u: kind:%s is not sysv, posix or *", path, ln, v);
	} else if (strcmp(l, "key") == 0) {
		free(sp->key);
		sp->key = xstrdup(v);
	} else if (strcmp(l, "name") == 0) {
		free(sp->seg_name);
		sp->seg_name = xstrdup(v);
	} else if (strcmp(l, "exe") == 0) {
		free(sp->exe);
		sp->exe = xstrdup(v);
	} else
		errx(EXIT_USAGE, "%s:%u: unknown line '%s:' (kind, key, name, exe, fun, obj)",
		     path, ln, l);
}

void supp_load(struct supp_set **setp, const char *path)
{
	FILE *f = fopen(path, "re");
	struct supp_set *set;
	struct supp *sp = NULL;
	char *line = NULL;
	size_t cap = 0;
	unsigned ln = 0, in_block = 0;   /* 0 outside, 1 want name, 2 want kind, 3 body */

	if (!f)
		err(EXIT_USAGE, "--suppressions: %s", path);
	if (!*setp)
		*setp = xcalloc(1, sizeof(**setp));
	set = *setp;
	while (getline(&line, &cap, f) > 0) {
		char *l = trim(line);

		ln++;
		if (!*l || *l == '#')
			continue;
		switch (in_block) {
		case 0:
			if (strcmp(l, "{") != 0)
				errx(EXIT_USAGE, "%s:%u: '{' expected, not '%s'", path, ln, l);
			sp = add_supp(set);
			sp->file = xstrdup(path);
			sp->line = ln;
			in_block = 1;
			break;
		case 1:
			if (strcmp(l, "}") == 0 || strcmp(l, "{") == 0)
				errx(EXIT_USAGE, "%s:%u: the suppression's name expected", path, ln);
			sp->name = xstrdup(l);
			in_block = 2;
			break;
		case 2:
			/* valgrind's TOOL:KIND line; Leak is the only kind there is. */
			if (strcmp(l, "shmkeeper:Leak") != 0 && strcmp(l, "shmkeeper:*") != 0)
				errx(EXIT_USAGE, "%s:%u: 'shmkeeper:Leak' expected, not '%s'", path, ln, l);
			in_block = 3;
			break;
		default:
			if (strcmp(l, "}") == 0)
				in_block = 0;
			else
				parse_attr(sp, l, path, ln);
			break;
		}
	}
	if (ferror(f))
		err(EXIT_USAGE, "--suppressions: %s", path);
	if (in_block)
		errx(EXIT_USAGE, "%s:%u: the block opened at line %u has no '}'", path, ln, sp->line);
	free(line);
	fclose(f);
}

void supp_free(struct supp_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		struct supp *sp = &set->v[i];

		for (size_t j = 0; j < sp->nframes; j++)
			free(sp->frames[j].glob);
		free(sp->frames);
		free(sp->name);
		free(sp->file);
		free(sp->key);
		free(sp->seg_name);
		free(sp->exe);
	}
	free(set->v);
	free(set);
}

/* ---- stacks ------------------------------------------------------------ */

size_t stack_frames(struct symbolizer *s, const struct tev *ev, struct sym_frame *out, size_t max)
{
	size_t n = 0;

	for (unsigned i = 0; ev && i < ev->nframes && n < max; i++)
		n += sym_resolve(s, ev->p, ev->seq, ev->frames[i], out + n,
				 max - n < SYM_MAX_INLINE ? max - n : SYM_MAX_INLINE);
	return n;
}

static const char *base_name(const char *p)
{
	const char *b = p ? strrchr(p, '/') : NULL;

	return b ? b + 1 : p ? p : "?";
}

void stack_summary(struct symbolizer *s, const struct tev *ev, unsigned n, char *buf, size_t len)
{
	struct sym_frame fr[16];
	size_t k = stack_frames(s, ev, fr, n < 16 ? n : 16), used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < k && used < len; i++) {
		int w;

		if (fr[i].function)
			w = snprintf(buf + used, len - used, "%s%s", i ? " < " : "", fr[i].function);
		else if (fr[i].module)
			w = snprintf(buf + used, len - used, "%s%s+0x%" PRIx64, i ? " < " : "",
				     base_name(fr[i].module), fr[i].offset);
		else
			w = snprintf(buf + used, len - used, "%s0x%" PRIx64, i ? " < " : "",
				     fr[i].address);
		if (w < 0)
			break;
		used += (size_t)w;
		/* main is where a reader stops; the C runtime's frames follow it. */
		if (fr[i].function && strcmp(fr[i].function, "main") == 0)
			break;
	}
}

/* ---- matching ---------------------------------------------------------- */

static bool glob(const char *pat, const char *s)
{
	return fnmatch(pat, s ? s : "???", 0) == 0;
}

static bool frames_match(const struct sfr *p, size_t np, const struct sym_frame *f, size_t nf)
{
	for (;;) {
		if (np == 0)
			return true;    /* a prefix of the stack: the rest may be anything */
		if (p->type == SFR_DOTS) {
			/* "..." matches zero or more frames; try each split. The
			 * depth is bounded by the stack's, so this stays small. */
			for (size_t k = 0; k <= nf; k++)
				if (frames_match(p + 1, np - 1, f + k, nf - k))
					return true;
			return false;
		}
		if (nf == 0)
			return false;
		if (p->type == SFR_FUN ? !glob(p->glob, f->function) : !glob(p->glob, f->module))
			return false;
		p++, np--, f++, nf--;
	}
}

static bool key_match(const char *pat, int32_t key)
{
	char buf[16], *end;
	long long v;

	if (strcmp(pat, "IPC_PRIVATE") == 0)
		return key == 0;
	errno = 0;
	v = strtoll(pat, &end, 0);
	if (!errno && end != pat && !*end)
		return (uint32_t)v == (uint32_t)key;
	snprintf(buf, sizeof(buf), "0x%08x", (unsigned)key);
	return fnmatch(pat, buf, FNM_CASEFOLD) == 0;
}

static bool supp_match(const struct supp *sp, const struct tseg *s,
		       const struct sym_frame *f, size_t nf)
{
	if (sp->kind >= 0 && sp->kind != (int)s->kind)
		return false;
	if (sp->key && strcmp(sp->key, "*") != 0 &&
	    (s->kind != SEG_SYSV || !key_match(sp->key, s->key)))
		return false;
	if (sp->seg_name && strcmp(sp->seg_name, "*") != 0 &&
	    (s->kind != SEG_POSIX || !glob(sp->seg_name, s->name)))
		return false;
	if (sp->exe && !glob(sp->exe, s->create->p->hdr.exe))
		return false;
	return frames_match(sp->frames, sp->nframes, f, nf);
}

void supp_apply(struct supp_set *set, struct model *m, struct symbolizer *s)
{
	struct sym_frame f[SK_MAX_FRAMES * 2];

	if (!set || !set->n)
		return;
	for (size_t i = 0; i < m->nsegs; i++) {
		struct tseg *seg = m->segs[i];
		size_t nf;

		if (!model_is_leak(seg))
			continue;
		nf = stack_frames(s, seg->create, f, sizeof(f) / sizeof(*f));
		for (size_t j = 0; j < set->n; j++) {
			struct supp *sp = &set->v[j];

			if (!supp_match(sp, seg, f, nf))
				continue;
			sp->used++;
			sp->used_bytes += seg->size;
			seg->suppressed = sp->name;
			if (seg->status == ST_LEAKED)
				m->n_leaked--;
			else
				m->n_leak_unknown--;
			m->leaked_bytes -= seg->size;
			m->n_suppressed++;
			m->suppressed_bytes += seg->size;
			break;
		}
	}
}

void supp_print_used(FILE *f, const struct supp_set *set)
{
	bool title = false;

	for (size_t i = 0; set && i < set->n; i++) {
		const struct supp *sp = &set->v[i];

		if (!sp->used)
			continue;
		if (!title)
			fprintf(f, "\n== Suppressions used:\n");
		title = true;
		fprintf(f, "   %4u  %s  (%s:%u, %" PRIu64 " bytes)\n", sp->used, sp->name,
			sp->file, sp->line, sp->used_bytes);
	}
}

/* ---- generation -------------------------------------------------------- */

/* Writes s as a glob that matches exactly s. */
static void put_quoted(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (strchr("*?[]\\", *s))
			fputc('\\', f);
		fputc(*s, f);
	}
}

/* A POSIX name as a glob, with every run of 3 or more digits (a pid, a
 * counter, a time) as `*`: the next run's names differ there. */
static void put_name_glob(FILE *f, const char *s)
{
	while (*s) {
		size_t d = strspn(s, "0123456789");

		if (d >= 3) {
			fputc('*', f);
			s += d;
			continue;
		}
		if (d) {
			fwrite(s, 1, d, f);
			s += d;
			continue;
		}
		if (strchr("*?[]\\", *s))
			fputc('\\', f);
		fputc(*s++, f);
	}
}

void supp_gen(FILE *f, struct model *m, struct symbolizer *s)
{
	struct sym_frame fr[GEN_MAX_FRAMES];

	for (size_t i = 0; i < m->nsegs; i++) {
		const struct tseg *seg = m->segs[i];
		size_t nf, last;

		if (!model_is_leak(seg))
			continue;
		nf = stack_frames(s, seg->create, fr, GEN_MAX_FRAMES);
		/* Up to main: the C runtime below it adds nothing. */
		for (last = 0; last < nf; last++)
			if (fr[last].function && strcmp(fr[last].function, "main") == 0)
				break;
		if (last < nf)
			nf = last + 1;
		if (seg->kind == SEG_SYSV)
			fprintf(f, "\n# SysV shmid %d, %" PRIu64 " bytes, created by pid %u\n",
				seg->shmid, seg->size, seg->create->p->hdr.pid);
		else
			fprintf(f, "\n# POSIX %s, %" PRIu64 " bytes, created by pid %u\n",
				seg->name, seg->size, seg->create->p->hdr.pid);
		fprintf(f, "{\n   leak-%s-", seg->kind == SEG_SYSV ? "sysv" : "posix");
		if (nf && fr[0].function)
			fputs(fr[0].function, f);
		else
			fprintf(f, "%d", seg->idx);
		fprintf(f, "\n   shmkeeper:Leak\n   kind:%s\n", seg->kind == SEG_SYSV ? "sysv" : "posix");
		if (seg->kind == SEG_SYSV && seg->key == 0)
			fputs("   key:IPC_PRIVATE\n", f);
		else if (seg->kind == SEG_SYSV)
			fprintf(f, "   key:0x%08x\n", (unsigned)seg->key);
		else {
			fputs("   name:", f);
			put_name_glob(f, seg->name);
			fputc('\n', f);
		}
		fputs("   exe:*/", f);
		put_quoted(f, base_name(seg->create->p->hdr.exe));
		fputc('\n', f);
		for (size_t j = 0; j < nf; j++) {
			fputs(fr[j].function ? "   fun:" : "   obj:", f);
			put_quoted(f, fr[j].function ? fr[j].function :
					  fr[j].module ? fr[j].module : "???");
			fputc('\n', f);
		}
		fputs("}\n", f);
	}
}
