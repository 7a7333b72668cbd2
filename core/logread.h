/* logread.h - a streaming reader of one shmkeeper process log (core/logfmt.h).
 *
 * The reader trusts nothing in the file: every length and count is checked
 * against the record and the file before it is used, strings are bounded, and
 * a damaged record is skipped with a diagnostic rather than followed. It never
 * maps the file (a writer may still be truncating it; SIGBUS would follow), it
 * reads it with pread() through a window, or walks a caller's buffer (the
 * fuzz target and the unit tests use that).
 *
 * Errors: functions return 0 (or a positive SK_RD_* code) on success and
 * -errno on failure, like the rest of core/. A diagnostic, when there is one,
 * is in sk_reader_diag(): one line, no file name, with the byte offset it
 * concerns in sk_reader_diag_offset().
 *
 * Example:
 *
 *	struct sk_reader *r;
 *	struct sk_event ev;
 *	int rc = sk_reader_open(&r, path);
 *	if (rc < 0) { warnx("%s: %s", path, rc == -EPROTO ?
 *	              sk_reader_diag(r) : strerror(-rc)); ... }
 *	while ((rc = sk_reader_next(r, &ev)) != SK_RD_END) {
 *		if (rc == SK_RD_EVENT) use(&ev);
 *		else warnx("%s: offset %llu: %s", path, ..., sk_reader_diag(r));
 *	}
 *	sk_reader_close(r);
 */
#ifndef SHMK_LOGREAD_H
#define SHMK_LOGREAD_H

#include <stddef.h>
#include <stdint.h>

#include "core/logfmt.h"

struct sk_reader;

/* One decoded record. Pointers point into the reader's buffer and stay valid
 * until the next sk_reader_next() or sk_reader_close(). */
struct sk_event {
	uint64_t offset;              /* of the record in the file */
	unsigned type;                /* SK_EV_* */
	uint32_t len;                 /* whole record, bytes */
	const struct sk_rec *rec;     /* the record; cast by type (size checked) */
	const char *name;             /* name/path/text, NUL-terminated, or NULL */
	size_t name_len;
	const uint64_t *frames;       /* return addresses, innermost first */
	unsigned nframes;
	const uint8_t *build_id;      /* SK_EV_MODULE only */
	unsigned build_id_len;
};

/* sk_reader_next() results. */
enum sk_rd {
	SK_RD_END = 0,      /* no more records */
	SK_RD_EVENT,        /* *ev holds a record */
	SK_RD_HOLE,         /* uncommitted space before the cursor (writer killed
			     * inside a call) skipped; not an error */
	SK_RD_BAD,          /* a damaged record skipped: corruption */
	SK_RD_TRUNC,        /* the file ends before the records do (it was cut) */
};

/* sk_reader_open - open the log at path and check its header.
 * out:  receives the reader, also on -EPROTO (for the diagnostic); NULL on
 *       other errors.
 * Returns: 0; -EPROTO when the file is not a usable log (not a shmkeeper log,
 * newer version, truncated header: see sk_reader_diag()); -ENOMEM; or the
 * -errno of open/fstat/pread. */
int sk_reader_open(struct sk_reader **out, const char *path);

/* sk_reader_open_mem - the same over a caller's buffer, which must outlive the
 * reader. */
int sk_reader_open_mem(struct sk_reader **out, const void *buf, size_t size);

/* sk_reader_header - the file's header, with exe and args NUL-terminated and
 * args_len, argc and header_size clamped to what is valid. */
const struct sk_file_header *sk_reader_header(const struct sk_reader *r);

/* sk_reader_file_size - bytes in the file when it was opened. */
uint64_t sk_reader_file_size(const struct sk_reader *r);

/* sk_reader_next - the next record.
 * Returns: an SK_RD_* value; for SK_RD_HOLE, SK_RD_BAD and SK_RD_TRUNC a
 * diagnostic is set and reading may continue (SK_RD_TRUNC is followed by
 * SK_RD_END). -errno on a read error (then reading stops). */
int sk_reader_next(struct sk_reader *r, struct sk_event *ev);

/* sk_reader_diag - the last diagnostic ("" if none), and the offset it names. */
const char *sk_reader_diag(const struct sk_reader *r);
uint64_t sk_reader_diag_offset(const struct sk_reader *r);

/* sk_reader_close - free the reader (NULL is fine). */
void sk_reader_close(struct sk_reader *r);

/* sk_event_min_size - the fixed size of a record of the given type, or 0 for
 * an unknown type. */
size_t sk_event_min_size(unsigned type);

/* sk_event_type_name - "sysv_get", "posix_open", ...; "unknown" otherwise. */
const char *sk_event_type_name(unsigned type);

/* sk_args_next - walk the NUL-separated args of a header: pass NULL first.
 * Returns: the next argument, or NULL after the last. */
const char *sk_args_next(const struct sk_file_header *h, const char *prev);

#endif
