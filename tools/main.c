/* main.c - `shmkeeper run` and `shmkeeper report`: options and dispatch.
 *
 * Options come from SHMKEEPER_OPTIONS first, then the command line, so the
 * command line wins (valgrind's VALGRIND_OPTS). Exit statuses: tool.h and
 * doc/shmkeeper.1.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"
#include "tools/suppress.h"
#include "tools/sweep.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: shmkeeper run [OPTIONS] [--] PROG [ARGS...]\n"
		"       shmkeeper report [OPTIONS] LOGDIR\n"
		"       shmkeeper report [OPTIONS] --diff OLD_LOGDIR NEW_LOGDIR\n"
		"       shmkeeper ls [--json] [--log-dir=DIR]\n"
		"       shmkeeper sweep [--dry-run] [--log-dir=DIR]\n"
		"\n"
		"Records the lifetime of the System V and POSIX shared-memory segments\n"
		"of PROG and its children, and reports the segments they leaked.\n"
		"\n"
		"Options:\n"
		"  --log-dir=DIR         run: keep the logs in DIR (default: a temporary\n"
		"                        directory, removed afterwards); report: LOGDIR\n"
		"  --format=text|json|html   the report's format (default text); html is\n"
		"                        one self-contained page with a timeline\n"
		"  --output=FILE         write the report to FILE\n"
		"  --suppressions=FILE   do not count the leaks FILE's blocks match\n"
		"                        (repeatable; doc/suppressions.md)\n"
		"  --gen-suppressions    print a suppression block for each leak\n"
		"  --diff OLD_LOGDIR     report: leaks new, gone and unchanged since OLD;\n"
		"                        --error-exitcode then counts new leaks only\n"
		"  --error-exitcode=N    exit with N (1-255) when leaks remain\n"
		"  --color=auto|always|never   colour in the text report (default auto)\n"
		"  --show-all            text: also list every segment and its uses\n"
		"  --wait-children=SECS  run: after PROG exits, wait this long for the\n"
		"                        processes it started (default 10; 0: do not)\n"
		"  --cleanup=none|owned  run: at exit or a fatal signal, each process\n"
		"                        removes what it created and did not remove\n"
		"                        (owned; default none)\n"
		"  --reap                run: wait for the whole process tree, then remove\n"
		"                        what it leaked (after SIGKILL too)\n"
		"  --dry-run             sweep: list stale segments, remove nothing\n"
		"  -h, --help            this help\n"
		"  -V, --version         the version\n"
		"\n"
		"Options are also read from $SHMKEEPER_OPTIONS, before the command line.\n"
		"See shmkeeper(1) for the report and the exit statuses.\n");
}

enum { OPT_LOG_DIR = 256, OPT_FORMAT, OPT_ERROR_EXITCODE, OPT_COLOR, OPT_SHOW_ALL,
       OPT_SUPPRESSIONS, OPT_GEN_SUPPRESSIONS, OPT_OUTPUT, OPT_DIFF, OPT_WAIT_CHILDREN,
       OPT_CLEANUP, OPT_REAP, OPT_DRY_RUN };

static const struct option longopts[] = {
	{ "log-dir", required_argument, NULL, OPT_LOG_DIR },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "error-exitcode", required_argument, NULL, OPT_ERROR_EXITCODE },
	{ "color", required_argument, NULL, OPT_COLOR },
	{ "colour", required_argument, NULL, OPT_COLOR },
	{ "show-all", no_argument, NULL, OPT_SHOW_ALL },
	{ "cleanup", required_argument, NULL, OPT_CLEANUP },
	{ "reap", no_argument, NULL, OPT_REAP },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "wait-children", required_argument, NULL, OPT_WAIT_CHILDREN },
	{ "suppressions", required_argument, NULL, OPT_SUPPRESSIONS },
	{ "gen-suppressions", no_argument, NULL, OPT_GEN_SUPPRESSIONS },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "diff", required_argument, NULL, OPT_DIFF },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static char *env_words;   /* SHMKEEPER_OPTIONS, split in place; main frees it */

/* argv for getopt: the command, SHMKEEPER_OPTIONS split at white space, then
 * the command line's arguments. */
static char **merge_env_options(int argc, char **argv, int *outc)
{
	const char *env = getenv("SHMKEEPER_OPTIONS");
	char *copy = env_words = env ? strdup(env) : NULL;
	size_t n = 0, cap = (size_t)argc + 2;
	char **v;

	if (env && !copy)
		err(EXIT_USAGE, "out of memory");
	for (const char *p = env; p && *p; p++)
		cap += *p == ' ' || *p == '\t' || *p == '\n';
	cap += 1;
	v = calloc(cap + 1, sizeof(*v));
	if (!v)
		err(EXIT_USAGE, "out of memory");
	v[n++] = (char *)"shmkeeper";   /* getopt's messages name it */
	for (char *save = NULL, *w = copy ? strtok_r(copy, " \t\n", &save) : NULL; w;
	     w = strtok_r(NULL, " \t\n", &save))
		v[n++] = w;
	for (int i = 1; i < argc; i++)
		v[n++] = argv[i];
	v[n] = NULL;
	*outc = (int)n;
	return v;
}

static int parse(int argc, char **argv, struct options *o, const char *cmd)
{
	int c;

	/* run stops at PROG, whose options are its own; report permutes. */
	optind = 1;
	while ((c = getopt_long(argc, argv, strcmp(cmd, "run") == 0 ? "+hV" : "hV",
				longopts, NULL)) != -1) {
		switch (c) {
		case OPT_LOG_DIR:
			o->log_dir = optarg;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "text") == 0)
				o->format = FMT_TEXT;
			else if (strcmp(optarg, "json") == 0)
				o->format = FMT_JSON;
			else if (strcmp(optarg, "html") == 0)
				o->format = FMT_HTML;
			else
				errx(EXIT_USAGE, "--format: '%s' is not text, json or html", optarg);
			break;
		case OPT_ERROR_EXITCODE: {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 || v > 255)
				errx(EXIT_USAGE, "--error-exitcode: '%s' is not a number from 1 to 255", optarg);
			o->error_exitcode = (int)v;
			break;
		}
		case OPT_COLOR:
			if (strcmp(optarg, "auto") == 0)
				o->color = -1;
			else if (strcmp(optarg, "always") == 0)
				o->color = 1;
			else if (strcmp(optarg, "never") == 0)
				o->color = 0;
			else
				errx(EXIT_USAGE, "--color: '%s' is not auto, always or never", optarg);
			break;
		case OPT_WAIT_CHILDREN: {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 0 || v > 86400)
				errx(EXIT_USAGE, "--wait-children: '%s' is not a number of seconds", optarg);
			o->wait_children = (int)v;
			break;
		}
		case OPT_SHOW_ALL:
			o->show_all = true;
			break;
		case OPT_SUPPRESSIONS:
			supp_load(&o->supp, optarg);
			break;
		case OPT_GEN_SUPPRESSIONS:
			o->gen_suppressions = true;
			break;
		case OPT_OUTPUT:
			o->output = optarg;
			break;
		case OPT_DIFF:
			o->diff_old = optarg;
			break;
		case OPT_CLEANUP:
			if (strcmp(optarg, "none") != 0 && strcmp(optarg, "owned") != 0)
				errx(EXIT_USAGE, "--cleanup: '%s' is not none or owned", optarg);
			cleanup_opts.policy = optarg;
			break;
		case OPT_REAP:
			cleanup_opts.reap = true;
			break;
		case OPT_DRY_RUN:
			cleanup_opts.dry_run = true;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		case 'V':
			printf("shmkeeper %s\n", PACKAGE_VERSION);
			exit(EXIT_OK);
		default:
			fprintf(stderr, "Try 'shmkeeper %s --help'.\n", cmd);
			exit(EXIT_USAGE);
		}
	}
	return optind;
}

int report_dir(FILE *f, const char *dir, const struct options *o, unsigned *leaks)
{
	struct model m;
	struct symbolizer *s;
	int rc = model_load(&m, dir);

	*leaks = 0;
	if (rc < 0) {
		warnx("%s: %s", dir, strerror(-rc));
		model_free(&m);
		return EXIT_NOREPORT;
	}
	model_analyse(&m);
	s = sym_new();
	supp_apply(o->supp, &m, s);
	if (o->output && !(f = fopen(o->output, "we"))) {
		warn("--output: %s", o->output);
		sym_free(s);
		model_free(&m);
		return EXIT_NOREPORT;
	}
	if (o->format == FMT_JSON)
		report_json(f, &m, s, o);
	else if (o->format == FMT_HTML)
		report_html(f, &m, s, o);
	else
		report_text(f, &m, s, o);
	/* Blocks to paste into a file: with the text report, or on stderr
	 * where they would break the JSON or the page. */
	if (o->gen_suppressions)
		supp_gen(o->format == FMT_TEXT ? f : stderr, &m, s);
	bool werr = fflush(f) != 0 || ferror(f);
	if (o->output && fclose(f) != 0 && !werr) {
		warn("--output: %s", o->output);
		werr = true;
	}
	sym_free(s);
	*leaks = m.n_leaked + m.n_leak_unknown;
	if (werr)
		rc = EXIT_NOREPORT;
	else if (*leaks && o->error_exitcode)
		rc = o->error_exitcode;
	else if (m.bad_files || m.damaged_files || m.nprocs == 0)
		rc = EXIT_BADLOGS;
	else
		rc = EXIT_OK;
	model_free(&m);
	return rc;
}

static int cmd_report(const struct options *o, int argc, char **argv)
{
	const char *dir = o->log_dir;
	unsigned leaks;

	if (argc > 1)
		errx(EXIT_USAGE, "report: one LOGDIR only (try 'shmkeeper report --help')");
	if (argc == 1)
		dir = argv[0];
	if (!dir)
		errx(EXIT_USAGE, "report: LOGDIR missing (try 'shmkeeper report --help')");
	if (o->diff_old)
		return report_diff(stdout, o->diff_old, dir, o);
	return report_dir(stdout, dir, o, &leaks);
}

int main(int argc, char **argv)
{
	struct options o = { .color = -1, .wait_children = 10 };
	const char *cmd;
	char **v;
	int n, i, rc;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
		printf("shmkeeper %s\n", PACKAGE_VERSION);
		return EXIT_OK;
	}
	if (strcmp(cmd, "ls") == 0)
		return cmd_ls(argc - 1, argv + 1);
	if (strcmp(cmd, "run") != 0 && strcmp(cmd, "report") != 0 && strcmp(cmd, "sweep") != 0) {
		warnx("unknown command '%s'", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	v = merge_env_options(argc - 1, argv + 1, &n);
	i = parse(n, v, &o, cmd);
	if (strcmp(cmd, "run") == 0) {
		if (i >= n)
			errx(EXIT_USAGE, "run: PROG missing (try 'shmkeeper run --help')");
		rc = cmd_run(&o, v + i);
	} else if (strcmp(cmd, "sweep") == 0)
		rc = cmd_sweep(&o, n - i, v + i);
	else
		rc = cmd_report(&o, n - i, v + i);
	free(v);
	free(env_words);
	return rc;
}
