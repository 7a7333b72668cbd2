/* report_json.c - the report for programs; the schema is doc/report-json.md
 * and doc/report.schema.json (checked by tests/report_json.sh).
 *
 * Addresses are strings ("0x7f..."), everything else numeric is a JSON
 * integer. Strings from the logs are bytes: invalid UTF-8 is written as
 * U+FFFD so the output always parses.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/logread.h"
#include "tools/tool.h"

#define REPORT_VERSION 1

struct jw {
	FILE *f;
	struct model *m;
	struct symbolizer *s;
};

static void jstr(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	fputc('"', f);
	while (*p) {
		unsigned c = *p;
		size_t n = 0;

		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc((int)c, f);
			p++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			p++;
			continue;
		}
		if (c < 0x80) {
			fputc((int)c, f);
			p++;
			continue;
		}
		/* Copy a well-formed UTF-8 sequence; replace anything else. */
		if (c >= 0xc2 && c <= 0xdf) n = 1;
		else if (c >= 0xe0 && c <= 0xef) n = 2;
		else if (c >= 0xf0 && c <= 0xf4) n = 3;
		size_t k;
		for (k = 1; n && k <= n; k++)
			if ((p[k] & 0xc0) != 0x80)
				break;
		if (!n || k <= n ||
		    (c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0) ||
		    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		fwrite(p, 1, n + 1, f);
		p += n + 1;
	}
	fputc('"', f);
}

static void jtime(FILE *f, const struct tproc *p, uint64_t mono)
{
	struct tev t = { .p = (struct tproc *)p, .mono = mono };
	int64_t sec;
	long nsec;
	struct tm tm;
	time_t tt;
	char buf[64];

	model_wall_time(&t, &sec, &nsec);
	tt = (time_t)sec;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm)) {
		fputs("null", f);
		return;
	}
	fprintf(f, "\"%s.%06ldZ\"", buf, nsec / 1000);
}

static void jbacktrace(struct jw *w, const struct tev *ev)
{
	struct sym_frame fr[SYM_MAX_INLINE];
	bool first = true;

	fputc('[', w->f);
	for (unsigned i = 0; ev && i < ev->nframes; i++) {
		size_t n = sym_resolve(w->s, ev->p, ev->seq, ev->frames[i], fr, SYM_MAX_INLINE);

		for (size_t j = 0; j < n; j++) {
			const struct sym_frame *x = &fr[j];

			fprintf(w->f, "%s{\"address\": \"0x%" PRIx64 "\"", first ? "" : ", ", x->address);
			first = false;
			if (x->module) {
				fputs(", \"module\": ", w->f);
				jstr(w->f, x->module);
				fprintf(w->f, ", \"offset\": \"0x%" PRIx64 "\"", x->offset);
			}
			if (x->function) {
				fputs(", \"function\": ", w->f);
				jstr(w->f, x->function);
			}
			if (x->file) {
				fputs(", \"file\": ", w->f);
				jstr(w->f, x->file);
				fprintf(w->f, ", \"line\": %d", x->line);
			}
			if (x->inlined)
				fputs(", \"inlined\": true", w->f);
			fputc('}', w->f);
		}
	}
	fputc(']', w->f);
}

static const char *status_name(enum seg_status st)
{
	static const char *const names[] = {
		[ST_LEAKED] = "leaked", [ST_LEAK_UNKNOWN] = "leaked_unknown",
		[ST_REMOVED] = "removed", [ST_REMOVED_OTHER] = "removed_by_other",
		[ST_GONE] = "gone", [ST_NOT_CREATED] = "not_created",
	};
	return names[st];
}

static void jident(FILE *f, const struct tseg *s)
{
	if (s->kind == SEG_SYSV)
		fprintf(f, "\"kind\": \"sysv\", \"shmid\": %d, \"key\": %d", s->shmid, s->key);
	else {
		fputs("\"kind\": \"posix\", \"name\": ", f);
		jstr(f, s->name);
	}
}

static void jproc_ref(FILE *f, const struct tproc *p)
{
	fprintf(f, "{\"pid\": %u, \"exe\": ", p->hdr.pid);
	jstr(f, p->hdr.exe);
	fprintf(f, ", \"process\": %d}", p->idx);
}

static void jleaks(struct jw *w)
{
	bool first = true;

	fputs("  \"leaks\": [", w->f);
	for (size_t i = 0; i < w->m->nsegs; i++) {
		const struct tseg *s = w->m->segs[i];

		if (!model_is_leak(s))
			continue;
		fprintf(w->f, "%s\n    {", first ? "" : ",");
		first = false;
		jident(w->f, s);
		fprintf(w->f, ", \"size\": %" PRIu64 ", \"mode\": %u, \"attaches\": %u, \"segment\": %d",
			s->size, s->mode, s->attaches, s->idx);
		fprintf(w->f, ", \"exists\": %s", s->status == ST_LEAKED ? "true" : "null");
		if (s->status == ST_LEAK_UNKNOWN) {
			fputs(", \"status_reason\": ", w->f);
			jstr(w->f, s->gone_why);
		}
		fputs(",\n     \"creator\": ", w->f);
		jproc_ref(w->f, s->create->p);
		fputs(", \"created\": ", w->f);
		jtime(w->f, s->create->p, s->create->mono);
		fputs(",\n     \"backtrace\": ", w->f);
		jbacktrace(w, s->create);
		fputc('}', w->f);
	}
	fputs(first ? "],\n" : "\n  ],\n", w->f);
}

static void jsegments(struct jw *w)
{
	static const char *const use_names[] = {
		[USE_OPEN] = "open", [USE_ATTACH] = "attach", [USE_DETACH] = "detach",
		[USE_RESIZE] = "resize", [USE_MOVE] = "move",
	};

	fputs("  \"segments\": [", w->f);
	for (size_t i = 0; i < w->m->nsegs; i++) {
		const struct tseg *s = w->m->segs[i];

		fprintf(w->f, "%s\n    {\"id\": %d, ", i ? "," : "", s->idx);
		jident(w->f, s);
		if (s->kind == SEG_POSIX)
			fprintf(w->f, ", \"dev\": %" PRIu64 ", \"ino\": %" PRIu64, s->dev, s->ino);
		fprintf(w->f, ", \"size\": %" PRIu64 ", \"mode\": %u, \"status\": \"%s\"",
			s->size, s->mode, status_name(s->status));
		if (s->gone_why) {
			fputs(", \"status_reason\": ", w->f);
			jstr(w->f, s->gone_why);
		}
		if (s->suppressed) {
			fputs(", \"suppressed\": ", w->f);
			jstr(w->f, s->suppressed);
		}
		fprintf(w->f, ", \"attaches\": %u", s->attaches);
		if (s->placed)
			fprintf(w->f, ", \"placed\": %u", s->placed);
		if (s->cleanup_err && s->cleanup_failed_by) {
			const char *en = strerrorname_np(s->cleanup_err);

			fprintf(w->f, ", \"cleanup_failed\": {\"process\": %d, \"pid\": %u, \"error\": ",
				s->cleanup_failed_by->idx, s->cleanup_failed_by->hdr.pid);
			if (en)
				jstr(w->f, en);
			else
				fprintf(w->f, "\"%d\"", s->cleanup_err);
			fputc('}', w->f);
		}
		fputs(",\n     \"created\": ", w->f);
		if (s->create) {
			fprintf(w->f, "{\"process\": %d, \"pid\": %u, \"time\": ", s->create->p->idx,
				s->create->p->hdr.pid);
			jtime(w->f, s->create->p, s->create->mono);
			fprintf(w->f, ", \"mono_ns\": %" PRIu64 ", \"backtrace\": ", s->create->mono);
			jbacktrace(w, s->create);
			fputc('}', w->f);
		} else
			fputs("null", w->f);
		fputs(",\n     \"removed\": ", w->f);
		if (s->remove) {
			fprintf(w->f, "{\"process\": %d, \"pid\": %u, \"how\": \"%s\", ",
				s->remove->p->idx, s->remove->p->hdr.pid,
				s->removed_by_cleanup ? "cleanup" : "call");
			if (s->removed_by_cleanup && s->cleanup_signo > 0)
				fprintf(w->f, "\"signal\": %d, ", s->cleanup_signo);
			fputs("\"time\": ", w->f);
			jtime(w->f, s->remove->p, s->remove->mono);
			fprintf(w->f, ", \"mono_ns\": %" PRIu64 ", \"backtrace\": ", s->remove->mono);
			jbacktrace(w, s->remove);
			fputc('}', w->f);
		} else
			fputs("null", w->f);
		fputs(",\n     \"events\": [", w->f);
		bool first = true;
		for (size_t j = 0; j < s->nuses; j++) {
			const struct tuse *u = &s->uses[j];

			if (u->kind == USE_OMITTED)
				continue;
			fprintf(w->f, "%s{\"type\": \"%s\", \"process\": %d, \"pid\": %u, \"time\": ",
				first ? "" : ", ", use_names[u->kind], u->p->idx, u->p->hdr.pid);
			first = false;
			jtime(w->f, u->p, u->mono);
			fprintf(w->f, ", \"mono_ns\": %" PRIu64, u->mono);
			if (u->kind == USE_ATTACH || u->kind == USE_DETACH || u->kind == USE_MOVE)
				fprintf(w->f, ", \"address\": \"0x%" PRIx64 "\", \"length\": %" PRIu64,
					u->addr, u->len);
			if (u->kind == USE_MOVE)
				fprintf(w->f, ", \"from\": \"0x%" PRIx64 "\"", u->from);
			if (u->kind == USE_RESIZE)
				fprintf(w->f, ", \"size\": %" PRIu64, u->len);
			if (u->implicit)
				fprintf(w->f, ", \"implicit\": \"%s\"",
					!u->at_end ? "mapped_over" : u->at_exec ? "exec" : "exit");
			if (u->placed)
				fputs(", \"placed\": true", w->f);
			if (u->inherited)
				fputs(", \"inherited\": true", w->f);
			if (u->partial)
				fputs(", \"partial\": true", w->f);
			fputc('}', w->f);
		}
		fputc(']', w->f);
		if (s->uses_omitted) {   /* histories cut (model.c, MODEL_HIST_KEEP) */
			first = true;
			fputs(",\n     \"events_omitted\": [", w->f);
			for (size_t j = 0; j < s->nuses; j++) {
				const struct tuse *u = &s->uses[j];

				if (u->kind != USE_OMITTED)
					continue;
				fprintf(w->f, "%s{\"process\": %d, \"pid\": %u, \"count\": %" PRIu64
					", \"after_mono_ns\": %" PRIu64 "}", first ? "" : ", ",
					u->p->idx, u->p->hdr.pid, u->len, u->mono);
				first = false;
			}
			fputc(']', w->f);
		}
		fputc('}', w->f);
	}
	fputs(w->m->nsegs ? "\n  ],\n" : "],\n", w->f);
}

/* SK_EV_WARN records kept by the model (the first MODEL_WARN_KEEP of each
 * code in each image), in time order. */
static void jwarnings(struct jw *w)
{
	fputs("  \"warnings\": [", w->f);
	for (size_t i = 0; i < w->m->nwarns; i++) {
		const struct twarn *x = &w->m->warns[i];

		fprintf(w->f, "%s\n    {\"code\": \"%s\", \"code_number\": %u, \"process\": %d, "
			"\"pid\": %u, \"time\": ", i ? "," : "", model_warn_name(x->code), x->code,
			x->p->idx, x->p->hdr.pid);
		jtime(w->f, x->p, x->mono);
		fprintf(w->f, ", \"mono_ns\": %" PRIu64 ", \"text\": ", x->mono);
		jstr(w->f, x->text);
		fprintf(w->f, ", \"arg1\": %" PRId64 ", \"arg2\": %" PRId64, x->arg1, x->arg2);
		if (x->code == SK_W_ADDR_IN_SPAN || x->code == SK_W_SPAN_TAKEN)
			fprintf(w->f, ", \"address\": \"0x%" PRIx64 "\"", (uint64_t)x->arg1);
		if ((x->code == SK_W_SPAN_FULL || x->code == SK_W_PLACE_REFUSED) &&
		    x->arg1 > 0 && x->arg1 < 4096 && strerrorname_np((int)x->arg1)) {
			fputs(", \"error\": ", w->f);
			jstr(w->f, strerrorname_np((int)x->arg1));
		}
		fputc('}', w->f);
	}
	fputs(w->m->nwarns ? "\n  ],\n" : "],\n", w->f);
}

static void jopt_idx(FILE *f, const char *key, const struct tproc *p)
{
	if (p)
		fprintf(f, ", \"%s\": %d", key, p->idx);
	else
		fprintf(f, ", \"%s\": null", key);
}

static void jprocs(struct jw *w)
{
	fputs("  \"processes\": [", w->f);
	for (size_t i = 0; i < w->m->nprocs; i++) {
		const struct tproc *p = w->m->procs[i];
		const char *a = NULL;
		bool first = true;

		fprintf(w->f, "%s\n    {\"id\": %d, \"pid\": %u, \"ppid\": %u, \"uid\": %u, "
			"\"start_ticks\": %" PRIu64 ", \"exe\": ", i ? "," : "", p->idx,
			p->hdr.pid, p->hdr.ppid, p->hdr.uid, p->hdr.start_ticks);
		jstr(w->f, p->hdr.exe);
		fputs(", \"argv\": [", w->f);
		while ((a = sk_args_next(&p->hdr, a))) {
			fputs(first ? "" : ", ", w->f);
			jstr(w->f, a);
			first = false;
		}
		fputs("], \"started\": ", w->f);
		jtime(w->f, p, p->hdr.image_mono_ns);
		fprintf(w->f, ", \"forked\": %s", p->hdr.flags & SK_HF_FORKED ? "true" : "false");
		jopt_idx(w->f, "parent", p->parent);
		jopt_idx(w->f, "exec_prev", p->exec_prev);
		jopt_idx(w->f, "exec_next", p->exec_next);
		if (p->exited && p->exit_status >= 0)   /* -1: exit seen, status unknown */
			fprintf(w->f, ", \"exit_status\": %d", p->exit_status);
		else
			fputs(", \"exit_status\": null", w->f);
		fputs(",\n     \"log\": ", w->f);
		jstr(w->f, p->log_path);
		fprintf(w->f, ", \"records\": %" PRIu64 ", \"holes\": %u, \"bad_records\": %u, "
			"\"truncated\": %s, \"dropped\": %" PRIu64 ", \"warnings\": %u}",
			p->nrecords, p->holes, p->bad, p->truncated ? "true" : "false",
			p->hdr.dropped, p->warnings);
	}
	fputs(w->m->nprocs ? "\n  ]\n" : "]\n", w->f);
}

static uint64_t events_omitted(const struct model *m)
{
	uint64_t n = 0;

	for (size_t i = 0; i < m->nsegs; i++)
		n += m->segs[i]->uses_omitted;
	return n;
}

void report_json(FILE *f, struct model *m, struct symbolizer *s, const struct options *o)
{
	struct jw w = { .f = f, .m = m, .s = s };

	(void)o;
	fprintf(f, "{\n  \"version\": %d,\n  \"tool\": \"shmkeeper %s\",\n  \"log_dir\": ",
		REPORT_VERSION, PACKAGE_VERSION);
	jstr(f, m->dir);
	fprintf(f, ",\n  \"summary\": {\"processes\": %zu, \"segments_created\": %u, "
		"\"segments_removed\": %u, \"removed_by_other\": %u, \"gone\": %u, "
		"\"leaks\": %u, \"leaks_unknown_status\": %u, \"leaked_bytes\": %" PRIu64 ", "
		"\"logs_unreadable\": %u, \"logs_damaged\": %u, "
		"\"suppressed\": %u, \"suppressed_bytes\": %" PRIu64 ", "
		"\"warnings\": %zu, \"warnings_omitted\": %" PRIu64 ", "
		"\"events_omitted\": %" PRIu64 "},\n",
		m->nprocs, m->n_created, m->n_removed, m->n_removed_other, m->n_gone,
		m->n_leaked + m->n_leak_unknown, m->n_leak_unknown, m->leaked_bytes,
		m->bad_files, m->damaged_files, m->n_suppressed, m->suppressed_bytes,
		m->nwarns + (size_t)m->warns_omitted, m->warns_omitted, events_omitted(m));
	jleaks(&w);
	jsegments(&w);
	jwarnings(&w);
	jprocs(&w);
	fputs("}\n", f);
}
