/* The writer of a process log (format: core/logfmt.h).
 *
 * One log per process image, opened lazily by the first event, written
 * lock-free by any thread or signal handler: a record's space is reserved with
 * an atomic add on the header's cursor, its body written, and its head word
 * stored last with release ordering. The file is a MAP_SHARED mapping kept
 * pre-faulted ahead of the cursor, so a committed record is in the page cache
 * even if the process is SIGKILLed right after, and a store never faults.
 */
#ifndef SHMK_LOG_H
#define SHMK_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/logfmt.h"

struct sk_log_identity {
	int argc;
	char **argv;              /* may be NULL */
	uint32_t ppid;            /* getppid() when the image started */
	uint32_t parent_pid;      /* fork parent whose image logged, or 0 */
	uint64_t parent_start_ticks;
	uint64_t image_mono_ns;
	uint64_t image_tick;      /* TSC read with image_mono_ns (sk_ticks_on) */
	uint32_t exec_count;
	uint32_t bt_depth;
};

/* Opens a new log in dir (absolute). Returns 0 or -errno; on failure the
 * caller says so once and stops recording. Not reentrant: the caller
 * serialises opens (sk_log_open is called under the preload init state). */
int sk_log_open(const char *dir, size_t capacity, const struct sk_log_identity *id);

/* Is a log open for writing in this process? */
int sk_log_is_open(void);

/* Around the log's opening, on the opener's thread: a signal handler that
 * interrupts it records into a staging buffer (sk_log_reserve does), and
 * sk_log_stage_end copies what it recorded into the log if the open
 * succeeded (else drops it). sk_log_staging says whether a re-entered
 * handler may record: staging on, or the log already open. */
void sk_log_stage_begin(void);
void sk_log_stage_end(void);
int sk_log_staging(void);

/* Reserves len bytes (a multiple of 8) for one record. Returns NULL when the
 * log is not open (and not staging), is full or is closing: the record is
 * then counted in the header's `dropped`. Async-signal-safe. */
struct sk_rec *sk_log_reserve(size_t len);
/* The same for a record stamped t (sk_stamp), first writing the (tick, ns)
 * pair that is due by t, if one is (SK_HF_TICKS). */
struct sk_rec *sk_log_reserve_at(size_t len, uint64_t t);

/* Fills tid and time and publishes the record. */
void sk_log_commit(struct sk_rec *r, unsigned type, size_t len, uint64_t mono_ns);

/* Counts a failed call of fn in the header. */
void sk_log_count_failed(enum sk_fn fn);

/* Logs every loaded ELF object not logged yet (once at open, after dlopen),
 * and marks the ones gone (after dlclose). */
void sk_log_modules(void);

/* Normal termination: no more records; shrink the file to what was used. */
void sk_log_close(int status);

/* In a fork child: forget the parent's log without touching it. */
void sk_log_forget(void);

/* This process's start time as written in the header, or 0. */
uint64_t sk_log_start_ticks(void);

/* The path of the open log, or "". */
const char *sk_log_path(void);

#endif
