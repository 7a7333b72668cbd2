/* symbolize.c - recorded return addresses to function, file and line.
 *
 * The recorder keeps raw PCs and, per process, the module map (load bias,
 * address range, path, build-id) at each moment; this side does the slow
 * part offline with elfutils' libdwfl. Every distinct module file gets one
 * Dwfl in which it is reported at bias 0 (dwfl_report_elf with base 0 and
 * add_p_vaddr), so one Dwfl serves every process whatever its ASLR, and a
 * frame is looked up at pc - bias. Separate debug files are found through the
 * build-id (/usr/lib/debug/.build-id/) by dwfl_standard_find_debuginfo.
 *
 * Recorded PCs are return addresses: the call is the instruction before, so
 * the lookup is at pc - 1 (a return address after a noreturn call belongs to
 * the next function, and its line is the next statement's).
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <err.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/tool.h"

struct dwmod {
	char *path;
	uint8_t build_id[64];
	unsigned build_id_len;
	Dwfl *dwfl;
	Dwfl_Module *mod;           /* NULL: file missing or not ELF */
};

struct symbolizer {
	struct dwmod *mods;
	size_t nmods;
	char *debuginfo_path;       /* NULL: libdwfl's default */
	Dwfl_Callbacks cbs;         /* must outlive every Dwfl made with it */
};

struct symbolizer *sym_new(void)
{
	struct symbolizer *s = calloc(1, sizeof(*s));
	const char *dp = getenv("SHMKEEPER_DEBUGINFO_PATH");

	if (!s)
		err(EXIT_NOREPORT, "out of memory");
	if (dp)
		s->debuginfo_path = strdup(dp);
	s->cbs.find_elf = dwfl_build_id_find_elf;
	s->cbs.find_debuginfo = dwfl_standard_find_debuginfo;   /* .build-id, .debug */
	s->cbs.section_address = dwfl_offline_section_address;
	s->cbs.debuginfo_path = &s->debuginfo_path;
	return s;
}

void sym_free(struct symbolizer *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nmods; i++) {
		if (s->mods[i].dwfl)
			dwfl_end(s->mods[i].dwfl);
		free(s->mods[i].path);
	}
	free(s->mods);
	free(s->debuginfo_path);
	free(s);
}

static struct dwmod *get_mod(struct symbolizer *s, const struct tmodule *tm, const char *path)
{
	struct dwmod *d;

	for (size_t i = 0; i < s->nmods; i++) {
		d = &s->mods[i];
		if (strcmp(d->path, path) == 0 && d->build_id_len == tm->build_id_len &&
		    memcmp(d->build_id, tm->build_id, tm->build_id_len) == 0)
			return d;
	}
	d = realloc(s->mods, (s->nmods + 1) * sizeof(*s->mods));
	if (!d)
		err(EXIT_NOREPORT, "out of memory");
	s->mods = d;
	d = &s->mods[s->nmods++];
	memset(d, 0, sizeof(*d));
	d->path = strdup(path);
	if (!d->path)
		err(EXIT_NOREPORT, "out of memory");
	d->build_id_len = tm->build_id_len;
	memcpy(d->build_id, tm->build_id, tm->build_id_len);

	if (path[0] != '/' || access(path, R_OK) != 0)
		return d;   /* [vdso], a deleted file: module+offset only */
	d->dwfl = dwfl_begin(&s->cbs);
	if (!d->dwfl)
		return d;
	dwfl_report_begin(d->dwfl);
	d->mod = dwfl_report_elf(d->dwfl, path, path, -1, 0, true);
	dwfl_report_end(d->dwfl, NULL, NULL);
	if (d->mod && tm->build_id_len) {
		const unsigned char *bits;
		GElf_Addr vaddr;
		int n = dwfl_module_build_id(d->mod, &bits, &vaddr);

		/* The file was replaced since the run: its symbols would lie. */
		if (n > 0 && ((unsigned)n != tm->build_id_len ||
			      memcmp(bits, tm->build_id, (size_t)n) != 0))
			d->mod = NULL;
	}
	return d;
}

static const struct tmodule *find_module(const struct tproc *p, uint64_t seq, uint64_t pc)
{
	/* A fork child runs its parent's code until it logs its own map. */
	for (; p; p = p->parent, seq = UINT64_MAX - 1) {
		for (size_t i = p->nmods; i-- > 0; ) {
			const struct tmodule *m = &p->mods[i];

			if (m->from_seq <= seq && seq < m->to_seq && pc >= m->start && pc < m->end)
				return m;
		}
	}
	return NULL;
}

static const char *call_file(Dwarf_Die *cu, Dwarf_Die *scope)
{
	Dwarf_Attribute a;
	Dwarf_Word idx;
	Dwarf_Files *files;
	size_t nfiles;

	if (!dwarf_attr(scope, DW_AT_call_file, &a) || dwarf_formudata(&a, &idx) != 0)
		return NULL;
	if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0 || idx >= nfiles)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

static int call_line(Dwarf_Die *scope)
{
	Dwarf_Attribute a;
	Dwarf_Word line;

	if (!dwarf_attr(scope, DW_AT_call_line, &a) || dwarf_formudata(&a, &line) != 0)
		return 0;
	return (int)line;
}

size_t sym_resolve(struct symbolizer *s, const struct tproc *p, uint64_t seq,
		   uint64_t pc, struct sym_frame *out, size_t max)
{
	const struct tmodule *tm;
	struct dwmod *d;
	const char *path;

	if (max == 0)
		return 0;
	memset(out, 0, sizeof(*out));
	out->address = pc;
	tm = find_module(p, seq, pc);
	if (!tm)
		return 1;
	path = tm->path[0] ? tm->path : p->hdr.exe;
	out->module = path;
	out->offset = pc - tm->base;
	d = get_mod(s, tm, path);
	out->module = d->path;
	if (!d->mod)
		return 1;

	Dwarf_Addr addr = pc - tm->base - (pc > tm->base ? 1 : 0);
	GElf_Off symoff;
	GElf_Sym sym;
	const char *symname = dwfl_module_addrinfo(d->mod, addr, &symoff, &sym, NULL, NULL, NULL);
	const char *file = NULL;
	int line = 0;
	Dwfl_Line *l = dwfl_module_getsrc(d->mod, addr);

	if (l)
		file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);

	size_t n = 0;
	Dwarf_Addr bias;
	Dwarf_Die *cu = dwfl_module_addrdie(d->mod, addr, &bias);
	Dwarf_Die *scopes = NULL;
	int nscopes = cu ? dwarf_getscopes(cu, addr - bias, &scopes) : 0;

	/* Inlined calls, innermost first: each one's location is the line
	 * table's (or the previous call site); its call site is where the
	 * next outer function is. */
	for (int i = 0; i < nscopes && n + 1 < max; i++) {
		if (dwarf_tag(&scopes[i]) == DW_TAG_subprogram) {
			/* The source's name, not a clone's (foo.constprop.0). */
			const char *dn = dwarf_diename(&scopes[i]);
			if (dn)
				symname = dn;
			break;
		}
		if (dwarf_tag(&scopes[i]) != DW_TAG_inlined_subroutine)
			continue;
		out[n] = out[0];
		out[n].function = dwarf_diename(&scopes[i]);
		out[n].file = file;
		out[n].line = line;
		out[n].inlined = true;
		n++;
		file = call_file(cu, &scopes[i]);
		line = call_line(&scopes[i]);
	}
	free(scopes);
	out[n] = out[0];
	out[n].function = symname;
	out[n].file = file;
	out[n].line = line;
	out[n].inlined = false;
	return n + 1;
}
