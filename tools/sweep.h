/* sweep.h - termination cleanups on the tool's side (issue 6):
 *
 *   sweep.c   `shmkeeper sweep`: segments on the machine whose creator is dead
 *             and that nobody holds; and the /proc scan that proves a segment
 *             is held by nobody, shared with reap.c
 *   reap.c    `shmkeeper run --reap`: after the whole process tree of the run
 *             has ended, remove what the run created and leaked
 */
#ifndef SHMK_SWEEP_H
#define SHMK_SWEEP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "tools/tool.h"

/* Options of these commands, set by main.c's parser (struct options belongs
 * to the report). */
struct cleanup_opts {
	const char *policy;      /* run --cleanup=none|owned, or NULL */
	bool reap;               /* run --reap */
	bool dry_run;            /* sweep --dry-run */
};
extern struct cleanup_opts cleanup_opts;

/* Who maps or holds open a POSIX object, from every /proc/PID/maps and
 * /proc/PID/fd. */
struct holders;

/* holders_scan - read /proc. Never fails: what it could not read is counted
 * (holders_unreadable), and a caller that must prove "nobody" then cannot. */
struct holders *holders_scan(void);
void holders_free(struct holders *h);
/* The pid of one process that maps or holds (dev, ino), or 0. */
pid_t holders_find(const struct holders *h, uint64_t dev, uint64_t ino);
/* Processes whose maps or fds could not be read. */
unsigned holders_unreadable(const struct holders *h);

/* The start time of pid (field 22 of /proc/PID/stat, clock ticks since
 * boot), or 0 when there is no such process. */
uint64_t proc_start(pid_t pid);

/* `shmkeeper sweep [--dry-run] [--log-dir=DIR]`.
 * Returns: 0, EXIT_USAGE, EXIT_NOREPORT (the kernel's table unreadable),
 * SWEEP_EXIT_FAILED (some removal failed). */
#define SWEEP_EXIT_FAILED 4
int cmd_sweep(const struct options *o, int argc, char **argv);

/* reap_after - the run's process tree has ended: remove every segment that
 * the logs in dir show a process of this run (started after since_mono)
 * created and left, unless a process outside the run holds it. Writes one
 * line per segment to f.
 * Returns: the number of segments that could not be removed. */
unsigned reap_after(FILE *f, const char *dir, uint64_t since_mono);

#endif
