/* progress.c - progress of a long report on stderr.
 *
 * Only when stderr is a terminal (a CI log must not fill with carriage
 * returns) and only once the report has run for a second (a short report
 * stays silent). Each update reads CLOCK_MONOTONIC_COARSE, ~3 ns here
 * (LESSONS.md, "cost of the pieces"), so it may be called once per event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tools/tool.h"

static struct {
	int tty;                /* -1 not yet asked */
	uint64_t start_ns, last_ns;
	bool shown;
} pg = { .tty = -1 };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void progress_start(void)
{
	if (pg.tty < 0)
		pg.tty = isatty(STDERR_FILENO) && !getenv("SHMKEEPER_NO_PROGRESS");
	pg.start_ns = pg.last_ns = now_ns();
	pg.shown = false;
}

void progress(const char *what, uint64_t done, uint64_t total)
{
	uint64_t t;

	if (pg.tty <= 0)
		return;
	t = now_ns();
	if (!pg.start_ns)
		pg.start_ns = pg.last_ns = t;
	/* After a second, then five times a second. */
	if (t - pg.start_ns < 1000000000u || t - pg.last_ns < 200000000u)
		return;
	pg.last_ns = t;
	pg.shown = true;
	if (total)
		fprintf(stderr, "\rshmkeeper: %s %llu of %llu (%u%%)\033[K", what,
			(unsigned long long)done, (unsigned long long)total,
			(unsigned)(done * 100 / total));
	else
		fprintf(stderr, "\rshmkeeper: %s %llu\033[K", what, (unsigned long long)done);
}

void progress_done(void)
{
	if (pg.shown)
		fputs("\r\033[K", stderr);
	pg.shown = false;
}
