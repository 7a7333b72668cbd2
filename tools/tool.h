/* tool.h - the shmkeeper command's internal interfaces.
 *
 *   main.c          options (and SHMKEEPER_OPTIONS), dispatch, exit statuses
 *   run.c           `shmkeeper run`: preload, wait, report
 *   model.c         reads every log of a directory and rebuilds the processes
 *                   and the lifetime of every segment across them
 *   symbolize.c     return addresses to function/file/line (libdw)
 *   report_text.c   the text report
 *   report_json.c   the JSON report (doc/report-json.md)
 *   suppress.c      --suppressions, --gen-suppressions (doc/suppressions.md)
 *   diff.c          report --diff OLD NEW: leaks new, gone and unchanged
 *   html.c          --format=html: the JSON report and a timeline in one page
 *   ls.c            `shmkeeper ls`: the segments that exist now, with origins
 *   progress.c      progress of a long report on a terminal
 */
#ifndef SHMK_TOOL_H
#define SHMK_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/logfmt.h"

/* Exit statuses of the tool itself (doc/shmkeeper.1, EXIT STATUS). */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,        /* bad command line or SHMKEEPER_OPTIONS */
	EXIT_NOREPORT = 2,     /* no report: LOGDIR missing or unreadable, no memory */
	EXIT_BADLOGS = 3,      /* report printed, but some log could not be used fully */
	EXIT_RUN_FAILED = 125, /* run: the tool failed before PROG could start */
	EXIT_CANNOT_EXEC = 126,/* run: PROG found but not executable */
	EXIT_NOT_FOUND = 127,  /* run: PROG not found */
};

enum fmt { FMT_TEXT, FMT_JSON, FMT_HTML };

struct supp_set;

struct options {
	const char *log_dir;
	enum fmt format;
	int error_exitcode;      /* 0: not given */
	int color;               /* -1 auto, 0 never, 1 always */
	bool show_all;           /* text: also list every segment (--show-all) */
	int wait_children;       /* run: seconds to wait for PROG's descendants */
	struct supp_set *supp;   /* --suppressions (suppress.c), or NULL */
	bool gen_suppressions;   /* --gen-suppressions */
	const char *output;      /* --output=FILE: the report goes there */
	const char *diff_old;    /* report --diff OLD_LOGDIR (diff.c) */
};

/* ---- model.c ---------------------------------------------------------- */

struct tmodule {
	uint64_t base, start, end;
	char *path;
	uint8_t build_id[64];
	unsigned build_id_len;
	uint64_t from_seq, to_seq;   /* record indexes during which it was loaded */
};

/* SK_W_* codes 1 to MODEL_WARN_CODES - 1; 0 counts any other. */
#define MODEL_WARN_CODES 8

struct tproc {
	int idx;                    /* in model.procs */
	char *log_path;
	struct sk_file_header hdr;
	struct tproc *parent;       /* the image it forked from (fork child) */
	struct tproc *exec_prev;    /* the image of the same process before exec */
	struct tproc *exec_next;
	struct tmodule *mods;
	size_t nmods;
	uint64_t nrecords;
	uint64_t last_mono;         /* of its last record */
	bool exited;                /* SK_EV_EXIT seen */
	int exit_status;
	char *exec_path;            /* last SK_EV_EXEC path */
	bool exec_last;             /* its last exec record did not fail: the
				     * image ended by exec, logged next or not */
	unsigned holes, bad;        /* reader diagnostics in this file */
	bool truncated;
	unsigned warnings;          /* SK_EV_WARN records */
	unsigned warn_count[MODEL_WARN_CODES]; /* by code (0: codes unknown here) */
	struct tproc *child, *sibling; /* fork children of this image, in idx order */
	uint64_t first_mono;        /* model.c: no record of it is earlier */
};

/* A SK_EV_WARN record. The model keeps the first MODEL_WARN_KEEP of each
 * code in each process image and counts the rest (tproc.warnings and
 * model.warns_omitted). */
#define MODEL_WARN_KEEP 16

struct twarn {
	const struct tproc *p;
	uint64_t mono;
	unsigned code;              /* SK_W_* */
	int64_t arg1, arg2;
	const char *text;           /* interned */
};

/* An event kept after its record is gone: a segment's creation or removal,
 * a warning. Nothing else is kept per event: the model streams the logs
 * (model.c) and its memory follows the segments and processes. */
struct tev {
	struct tproc *p;
	uint64_t seq;               /* record index within its file */
	uint64_t mono;
	unsigned type;
	const uint64_t *frames;     /* interned: one copy per distinct stack */
	unsigned nframes;
};

enum seg_kind { SEG_SYSV, SEG_POSIX };

enum seg_status {
	ST_LEAKED,          /* created by a recorded process, never removed, exists */
	ST_LEAK_UNKNOWN,    /* ... existence could not be checked (other namespace) */
	ST_REMOVED,         /* removed by its creator */
	ST_REMOVED_OTHER,   /* removed by another recorded process */
	ST_GONE,            /* not removed by a recorded process, yet gone */
	ST_NOT_CREATED,     /* a recorded process only opened or attached it */
};

/* USE_OMITTED stands for uses that a bounded history left out: the first and
 * last MODEL_HIST_KEEP uses of a segment by each process image are kept, the
 * ones between are counted (len) and stand here, in time order after the
 * first ones kept. */
/* USE_MOVE: mremap moved or resized an attachment (addr, len: where it is
 * now; from: where it was). */
enum use_kind { USE_OPEN, USE_ATTACH, USE_DETACH, USE_RESIZE, USE_MOVE, USE_OMITTED };

#define MODEL_HIST_KEEP 32

struct tuse {
	enum use_kind kind;
	const struct tproc *p;      /* the process image that used it */
	uint64_t mono;
	uint64_t addr, len;         /* USE_OMITTED: len = uses left out */
	uint64_t from;              /* USE_MOVE: the address before */
	uint64_t order;             /* replay order, across processes */
	bool at_end;                /* detach never announced: at exit or exec */
	bool implicit;              /* detach at exit/exec, or SK_F_IMPLICIT */
	bool inherited;             /* attachment inherited through fork */
	bool partial;               /* munmap of part of it */
	bool at_exec;               /* implicit detach by exec (else by exit) */
	bool placed;                /* attach placed in the span (SK_F_PLACED, SK_EV_PLACE) */
};

struct tseg {
	int idx;
	enum seg_kind kind;
	uint64_t ns;                /* ipc_ns (SysV) or mnt_ns (POSIX) */
	int32_t shmid, key;
	char *name;                 /* POSIX, with its leading slash */
	uint64_t dev, ino;
	uint64_t size;
	uint32_t mode, uid;
	const struct tev *create;   /* NULL: made by an unrecorded process */
	const struct tev *remove;   /* NULL: no recorded removal */
	bool removed_by_cleanup;    /* SK_EV_CLEANUP (library policy) */
	int cleanup_signo;          /* ... at this fatal signal, 0 at exit */
	int cleanup_err;            /* a termination cleanup failed with this errno */
	const struct tproc *cleanup_failed_by;
	bool removed_pending;       /* SysV: marked for removal, still attached */
	enum seg_status status;
	const char *gone_why;       /* ST_GONE / ST_LEAK_UNKNOWN: why */
	struct tuse *uses;          /* in time order, bounded (MODEL_HIST_KEEP) */
	size_t nuses;
	uint64_t uses_omitted;      /* uses left out of `uses`, all processes */
	unsigned attaches;          /* all of them, none left out */
	unsigned placed;            /* of which placed in the span */
	bool live;                  /* replay: may still receive events */
	struct tseg *name_next;     /* model.c: older segments of the same name */
	const char *suppressed;     /* leak matched this suppression (suppress.c) */
};

struct model {
	const char *dir;
	struct tproc **procs;
	size_t nprocs;
	uint64_t nevents;           /* records replayed */
	struct twarn *warns;        /* in time order */
	size_t nwarns;
	uint64_t warns_omitted;
	struct tseg **segs;
	size_t nsegs;
	unsigned bad_files;         /* files not used at all */
	unsigned damaged_files;     /* files with holes-that-matter, corruption, cuts */
	/* summary */
	unsigned n_created, n_removed, n_leaked, n_leak_unknown, n_removed_other, n_gone;
	uint64_t leaked_bytes;
	/* the reporting process */
	uint64_t self_ipc_ns, self_mnt_ns;
	uint8_t self_boot_id[16];
	bool have_boot_id;
	/* leaks matched by a suppression: not in n_leaked/leaked_bytes */
	unsigned n_suppressed;
	uint64_t suppressed_bytes;
	void *mem;                  /* model.c: kept events, interned stacks */
};

/* model_load - read every shmk-*.shmk file of dir, merged in time order as
 * a stream, and replay them: processes, segments and their uses. Problems are
 * reported with warnx, one line each. Returns 0, or -errno when dir cannot be
 * read (then nothing is loaded). */
int model_load(struct model *m, const char *dir);

/* model_quiet_empty - when set, model_load says nothing of a directory with
 * no logs: `run` of a program that used no shared memory (the library opens
 * its log at the first event) is not a problem. */
extern bool model_quiet_empty;

/* model_analyse - decide every segment's status (after model_load). */
void model_analyse(struct model *m);

void model_free(struct model *m);

/* model_is_leak - ST_LEAKED or ST_LEAK_UNKNOWN, and not suppressed. */
bool model_is_leak(const struct tseg *s);

/* The wall-clock time of an event, from its process's header. */
void model_wall_time(const struct tev *ev, int64_t *sec, long *nsec);

/* model_warn_name - "span_taken", "span_full", ... ("unknown" otherwise). */
const char *model_warn_name(unsigned code);

/* ---- symbolize.c ------------------------------------------------------ */

struct symbolizer;

struct sym_frame {
	uint64_t address;           /* as recorded */
	const char *module;         /* path, or NULL when unknown */
	uint64_t offset;            /* address - module base */
	const char *function;       /* or NULL */
	const char *file;           /* or NULL */
	int line;                   /* 0 when unknown */
	bool inlined;               /* this frame is inlined into the next one */
};

struct symbolizer *sym_new(void);
void sym_free(struct symbolizer *s);

/* sym_resolve - the frames of one recorded return address (more than one
 * when functions were inlined there, innermost first) using the module map of
 * proc p at record seq. Strings belong to the symbolizer.
 * Returns: the number of frames stored (at least 1 when max >= 1). */
size_t sym_resolve(struct symbolizer *s, const struct tproc *p, uint64_t seq,
		   uint64_t pc, struct sym_frame *out, size_t max);

/* ---- reports ----------------------------------------------------------- */

#define SYM_MAX_INLINE 8

void report_text(FILE *f, struct model *m, struct symbolizer *s, const struct options *o);
void report_json(FILE *f, struct model *m, struct symbolizer *s, const struct options *o);

/* report_dir - load, analyse and report dir to f.
 * Returns: EXIT_OK, EXIT_NOREPORT, EXIT_BADLOGS, or o->error_exitcode when
 * leaks were found and it is set; *leaks gets the number of leaks. */
int report_dir(FILE *f, const char *dir, const struct options *o, unsigned *leaks);

/* ---- run.c ------------------------------------------------------------- */

int cmd_run(const struct options *o, char **argv);

/* ---- html.c, diff.c, ls.c ---------------------------------------------- */

/* report_html - one self-contained page (no network): the JSON report
 * embedded, and a timeline drawn from it by inline script. */
void report_html(FILE *f, struct model *m, struct symbolizer *s, const struct options *o);

/* report_diff - `report --diff OLD NEW`: leaks new, gone and unchanged,
 * matched by kind and creating stack. Returns: EXIT_OK, EXIT_NOREPORT,
 * EXIT_BADLOGS, or o->error_exitcode when there are new leaks and it is set. */
int report_diff(FILE *f, const char *old_dir, const char *new_dir, const struct options *o);

/* cmd_ls - `shmkeeper ls [--json] [--log-dir=DIR]`: the segments that exist
 * now. Returns an exit status. */
int cmd_ls(int argc, char **argv);

/* ---- progress.c -------------------------------------------------------- */

/* Progress of a long report: "\rshmkeeper: WHAT DONE of TOTAL (N%)" on
 * stderr, only when stderr is a terminal and only after the first second
 * since progress_start() (SHMKEEPER_NO_PROGRESS turns it off). progress() is
 * cheap enough to call once per event; progress_done() clears the line. */
void progress_start(void);
void progress(const char *what, uint64_t done, uint64_t total);
void progress_done(void);

/* tools/xalloc.c: allocation that ends the tool with EXIT_NOREPORT and a
 * message when memory runs out. xstrdup(NULL) gives "". */
void *xrealloc(void *p, size_t n);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);

#endif
