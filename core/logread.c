/* logread.c - the log reader; see logread.h for the contract and logfmt.h
 * for the format. Nothing read from the file is used as an offset, a length
 * or a count before it has been checked against the record and the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/logread.h"

#define WINDOW  (1024u * 1024u)  /* > the largest record (0xffff * 8 bytes) */
/* The window starts at WINDOW_MIN and grows only for a record larger than
 * it: the report merges a thousand logs at once (issue 4), and a megabyte
 * each was a gigabyte of windows. 16 KiB is ~130 records of a pread. */
#define WINDOW_MIN (16u * 1024u)
#define HEADER_SIZE_MAX (1u << 20)

struct sk_reader {
	int fd;                   /* -1 for a memory source */
	const uint8_t *mem;
	uint64_t size;            /* of the file when opened */
	uint64_t cursor;          /* header.cursor, clamped to >= header_size */
	uint64_t off;             /* of the next record */
	int done;
	int full;                 /* the writer ran out of room: see start() */
	struct sk_file_header hdr;
	uint8_t *win;             /* malloc'd, so 8-aligned at win_off (8-aligned) */
	uint64_t win_off;
	size_t win_len, win_cap;  /* win_cap: min(WINDOW, file size) */
	char diag[320];
	uint64_t diag_off;
	/* SK_HF_TICKS: record times are turned into ns by the latest pair
	 * (b) at the rate between it and the one before (a). */
	int ticks;
	uint64_t a_tick, a_ns, b_tick, b_ns;
};

static const size_t min_sizes[SK_EV_TYPE_MAX] = {
	[SK_EV_SYSV_GET] = sizeof(struct sk_ev_sysv_get),
	[SK_EV_SYSV_AT] = sizeof(struct sk_ev_sysv_at),
	[SK_EV_SYSV_DT] = sizeof(struct sk_ev_sysv_dt),
	[SK_EV_SYSV_CTL] = sizeof(struct sk_ev_sysv_ctl),
	[SK_EV_POSIX_OPEN] = sizeof(struct sk_ev_posix_open),
	[SK_EV_POSIX_UNLINK] = sizeof(struct sk_ev_posix_unlink),
	[SK_EV_POSIX_MAP] = sizeof(struct sk_ev_map),
	[SK_EV_UNMAP] = sizeof(struct sk_ev_map),
	[SK_EV_REMAP] = sizeof(struct sk_ev_remap),
	[SK_EV_RESIZE] = sizeof(struct sk_ev_resize),
	[SK_EV_FORK] = sizeof(struct sk_ev_proc),
	[SK_EV_EXEC] = sizeof(struct sk_ev_exec),
	[SK_EV_EXEC_FAILED] = sizeof(struct sk_ev_exec),
	[SK_EV_EXIT] = sizeof(struct sk_ev_exit),
	[SK_EV_MODULE] = sizeof(struct sk_ev_module),
	[SK_EV_MODULE_GONE] = sizeof(struct sk_ev_module),
	[SK_EV_WARN] = sizeof(struct sk_ev_warn),
	[SK_EV_PLACE] = sizeof(struct sk_ev_place),
	[SK_EV_CLEANUP] = sizeof(struct sk_ev_cleanup),
	[SK_EV_CLOCK] = sizeof(struct sk_ev_clock),
};

static const char *const type_names[SK_EV_TYPE_MAX] = {
	[SK_EV_SYSV_GET] = "sysv_get", [SK_EV_SYSV_AT] = "sysv_at",
	[SK_EV_SYSV_DT] = "sysv_dt", [SK_EV_SYSV_CTL] = "sysv_ctl",
	[SK_EV_POSIX_OPEN] = "posix_open", [SK_EV_POSIX_UNLINK] = "posix_unlink",
	[SK_EV_POSIX_MAP] = "posix_map", [SK_EV_UNMAP] = "unmap",
	[SK_EV_REMAP] = "remap", [SK_EV_RESIZE] = "resize", [SK_EV_FORK] = "fork",
	[SK_EV_EXEC] = "exec", [SK_EV_EXEC_FAILED] = "exec_failed",
	[SK_EV_EXIT] = "exit", [SK_EV_MODULE] = "module",
	[SK_EV_MODULE_GONE] = "module_gone", [SK_EV_WARN] = "warn",
	[SK_EV_PLACE] = "place", [SK_EV_CLEANUP] = "cleanup", [SK_EV_CLOCK] = "clock",
};

size_t sk_event_min_size(unsigned type)
{
	return type < SK_EV_TYPE_MAX ? min_sizes[type] : 0;
}

const char *sk_event_type_name(unsigned type)
{
	return type < SK_EV_TYPE_MAX && type_names[type] ? type_names[type] : "unknown";
}

__attribute__((format(printf, 3, 4)))
static void set_diag(struct sk_reader *r, uint64_t off, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->diag, sizeof(r->diag), fmt, ap);
	va_end(ap);
	r->diag_off = off;
}

/* Copies bytes [off, off+n) of the source into buf; returns the count read
 * (short at end of file) or -errno. */
static ssize_t src_read(struct sk_reader *r, uint64_t off, void *buf, size_t n)
{
	if (off >= r->size)
		return 0;
	if (n > r->size - off)
		n = r->size - off;
	if (r->fd < 0) {
		memcpy(buf, r->mem + off, n);
		return (ssize_t)n;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(r->fd, (char *)buf + got, n - got, (off_t)(off + got));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;    /* the file shrank since fstat */
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* Points *p at n bytes at off (n <= WINDOW), refilling the window as needed.
 * Returns 0, -ENODATA when the file ends first, or -errno. */
static int view(struct sk_reader *r, uint64_t off, size_t n, const uint8_t **p)
{
	if (n > r->win_cap) {   /* a record larger than the window: grow it */
		size_t cap = r->win_cap;
		uint8_t *w;

		while (cap < n)
			cap *= 2;
		if (cap > WINDOW)
			cap = WINDOW;
		if (cap < n || !(w = realloc(r->win, cap)))
			return -ENOMEM;
		r->win = w;
		r->win_cap = cap;
		r->win_len = 0;   /* refill below */
	}
	if (off < r->win_off || off + n > r->win_off + r->win_len) {
		ssize_t k = src_read(r, off, r->win, r->win_cap);
		if (k < 0)
			return (int)k;
		r->win_off = off;
		r->win_len = (size_t)k;
	}
	if (off + n > r->win_off + r->win_len)
		return -ENODATA;
	*p = r->win + (off - r->win_off);
	return 0;
}

static int head_at(struct sk_reader *r, uint64_t off, uint32_t *h)
{
	const uint8_t *p = NULL;
	int rc = view(r, off, sizeof(*h), &p);

	*h = 0;
	if (rc == 0)
		memcpy(h, p, sizeof(*h));
	return rc;
}

/* Why a head word at off is not a committed record's, or NULL if it is. */
static const char *head_problem(const struct sk_reader *r, uint64_t off, uint32_t h)
{
	unsigned type = SK_HEAD_TYPE(h);
	uint64_t len = SK_HEAD_LEN(h);

	if (SK_HEAD_MAGIC(h) != SK_REC_MAGIC)
		return "bad record magic";
	if (type == 0 || type >= SK_EV_TYPE_MAX)
		return "unknown record type";
	if (len < min_sizes[type])
		return "record shorter than its type";
	if (off + len > r->size)
		return "record runs past the end of the file";
	if (off < r->cursor && off + len > r->cursor)
		return "record runs past the header's cursor";
	return NULL;
}

/* The offset of the next committed-looking head word after off, stopping at
 * a zero word at or beyond the cursor, or at the end of the file. */
static uint64_t resync(struct sk_reader *r, uint64_t off)
{
	uint32_t h;

	for (off += 8; off + 8 <= r->size; off += 8) {
		if (head_at(r, off, &h) < 0)
			break;
		if (h == 0 && off >= r->cursor)
			return off;
		if (h != 0 && !head_problem(r, off, h))
			return off;
	}
	return r->size;
}

static void clean_header(struct sk_file_header *h)
{
	h->exe[SK_EXE_MAX - 1] = '\0';
	if (h->args_len > SK_ARGS_MAX)
		h->args_len = SK_ARGS_MAX;
	if (h->args_len > 0 && h->args[h->args_len - 1] != '\0') {
		if (h->args_len < SK_ARGS_MAX)
			h->args[h->args_len++] = '\0';
		else
			h->args[SK_ARGS_MAX - 1] = '\0';
	}
}

static int start(struct sk_reader *r)
{
	static const char magic[8] = SK_MAGIC;
	uint8_t raw[sizeof(struct sk_file_header)];
	ssize_t k;

	/* No bigger than the file: a record never is, and a small log (or the
	 * fuzz target's thousands of them) should not cost a megabyte each. */
	r->win_cap = r->size < WINDOW_MIN ? (size_t)SK_ALIGN8(r->size) + 8 : WINDOW_MIN;
	r->win = malloc(r->win_cap);
	if (!r->win)
		return -ENOMEM;
	r->done = 1;
	if (r->size == 0) {
		set_diag(r, 0, "empty file, not a shmkeeper log");
		return -EPROTO;
	}
	memset(raw, 0, sizeof(raw));
	k = src_read(r, 0, raw, sizeof(raw));
	if (k < 0)
		return (int)k;
	if ((size_t)k < sizeof(magic) || memcmp(raw, magic, sizeof(magic)) != 0) {
		set_diag(r, 0, "not a shmkeeper log (bad magic)");
		return -EPROTO;
	}
	memcpy(&r->hdr, raw, sizeof(r->hdr));
	if ((size_t)k < offsetof(struct sk_file_header, header_size) + 4) {
		set_diag(r, (uint64_t)k, "header cut short: %zd bytes", k);
		return -EPROTO;
	}
	if (r->hdr.version == 0 || r->hdr.version > SK_VERSION) {
		set_diag(r, offsetof(struct sk_file_header, version),
			 "log format version %u is not one this shmkeeper reads (1 to %u)",
			 r->hdr.version, SK_VERSION);
		return -EPROTO;
	}
	if ((size_t)k < sizeof(raw)) {
		set_diag(r, (uint64_t)k, "header cut short: %zd of %zu bytes", k, sizeof(raw));
		return -EPROTO;
	}
	if (r->hdr.header_size < sizeof(struct sk_file_header) ||
	    r->hdr.header_size > HEADER_SIZE_MAX || r->hdr.header_size % 8) {
		set_diag(r, offsetof(struct sk_file_header, header_size),
			 "bad header size %u", r->hdr.header_size);
		return -EPROTO;
	}
	clean_header(&r->hdr);
	r->off = r->hdr.header_size;
	r->cursor = r->hdr.cursor;
	if (r->cursor < r->off)
		r->cursor = r->off;
	r->cursor &= ~(uint64_t)7;
	r->done = 0;
	/* A full log (capacity or disk): every record that did not fit still
	 * moved the cursor, past the file's end, and the first of them left
	 * its start uncommitted. Those records are the header's dropped
	 * count, not damage: the records end where the file does. (A full
	 * log that was also cut short reads as ending there.) */
	r->full = (r->hdr.flags & SK_HF_FULL) != 0;
	r->ticks = r->hdr.version >= 2 && (r->hdr.flags & SK_HF_TICKS);
	r->a_tick = r->hdr.image_tick;
	r->a_ns = r->hdr.image_mono_ns;
	r->b_tick = r->hdr.open_tick;
	r->b_ns = r->hdr.open_mono_ns;
	if (r->full && r->cursor > r->size)
		r->cursor = r->size & ~(uint64_t)7;
	if (r->size < r->off) {
		set_diag(r, r->size, "file ends inside its header (%llu of %u bytes)",
			 (unsigned long long)r->size, r->hdr.header_size);
		return -EPROTO;
	}
	return 0;
}

int sk_reader_open(struct sk_reader **out, const char *path)
{
	struct sk_reader *r;
	struct stat st;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (r->fd < 0 || fstat(r->fd, &st) < 0) {
		rc = -errno;
		sk_reader_close(r);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		sk_reader_close(r);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	r->size = (uint64_t)st.st_size;
	rc = start(r);
	if (rc < 0 && rc != -EPROTO) {
		sk_reader_close(r);
		return rc;
	}
	*out = r;
	return rc;
}

int sk_reader_open_mem(struct sk_reader **out, const void *buf, size_t size)
{
	struct sk_reader *r;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = -1;
	r->mem = buf;
	r->size = size;
	rc = start(r);
	if (rc < 0 && rc != -EPROTO) {
		sk_reader_close(r);
		return rc;
	}
	*out = r;
	return rc;
}

/* Nanoseconds per tick between the two latest pairs, or, when they do not
 * give one (a damaged header), 1/3: a 3 GHz TSC. Held to [1/64, 64], so
 * that no pair a log holds makes a time run backwards or explode. */
static double tick_rate(const struct sk_reader *r)
{
	if (r->b_tick <= r->a_tick || r->b_ns < r->a_ns)
		return 1.0 / 3;
	double rate = (double)(r->b_ns - r->a_ns) / (double)(r->b_tick - r->a_tick);
	return rate < 1.0 / 64 ? 1.0 / 64 : rate > 64 ? 64 : rate;
}

/* CLOCK_MONOTONIC ns of a record stamped with tick t: from the latest pair,
 * forward or (a thread stamped before that pair was written) back. */
static uint64_t tick_ns(const struct sk_reader *r, uint64_t t)
{
	double d = t >= r->b_tick ? (double)(t - r->b_tick) : -(double)(r->b_tick - t);
	double ns = (double)r->b_ns + d * tick_rate(r);

	/* 2^63: no conversion of an out-of-range double (undefined) */
	return ns <= 0 ? 0 : ns >= 9223372036854775808.0 ? (uint64_t)INT64_MAX : (uint64_t)ns;
}

/* A record read from a SK_HF_TICKS log gets its time in ns, in the window
 * (ours) it was read into; a SK_EV_CLOCK moves the pairs on if it goes
 * forward (else it is ignored). */
static void tick_convert(struct sk_reader *r, struct sk_event *ev)
{
	struct sk_rec *rec = (struct sk_rec *)(uintptr_t)ev->rec;

	if (ev->type == SK_EV_CLOCK) {
		const struct sk_ev_clock *c = (const void *)rec;
		if (c->tick > r->b_tick && c->mono_ns >= r->b_ns) {
			r->a_tick = r->b_tick;
			r->a_ns = r->b_ns;
			r->b_tick = c->tick;
			r->b_ns = c->mono_ns;
		}
	}
	rec->mono_ns = tick_ns(r, rec->mono_ns);
}

/* Fills the variable parts of ev from a record of checked length; returns a
 * problem or NULL. */
static const char *decode(struct sk_event *ev)
{
	const uint8_t *base = (const uint8_t *)ev->rec;
	size_t fixed = min_sizes[ev->type], pos = fixed;
	size_t name_len = 0, bid_len = 0;
	unsigned nframes = 0;
	int has_name = 0;

	switch (ev->type) {
	case SK_EV_SYSV_GET: nframes = ((const struct sk_ev_sysv_get *)base)->nframes; break;
	case SK_EV_SYSV_AT: nframes = ((const struct sk_ev_sysv_at *)base)->nframes; break;
	case SK_EV_SYSV_DT: nframes = ((const struct sk_ev_sysv_dt *)base)->nframes; break;
	case SK_EV_SYSV_CTL: nframes = ((const struct sk_ev_sysv_ctl *)base)->nframes; break;
	case SK_EV_POSIX_OPEN: {
		const struct sk_ev_posix_open *e = (const void *)base;
		nframes = e->nframes; name_len = e->name_len; has_name = 1;
		break;
	}
	case SK_EV_POSIX_UNLINK: {
		const struct sk_ev_posix_unlink *e = (const void *)base;
		nframes = e->nframes; name_len = e->name_len; has_name = 1;
		break;
	}
	case SK_EV_POSIX_MAP:
	case SK_EV_UNMAP: nframes = ((const struct sk_ev_map *)base)->nframes; break;
	case SK_EV_REMAP: nframes = ((const struct sk_ev_remap *)base)->nframes; break;
	case SK_EV_RESIZE: nframes = ((const struct sk_ev_resize *)base)->nframes; break;
	case SK_EV_FORK: nframes = ((const struct sk_ev_proc *)base)->nframes; break;
	case SK_EV_EXEC:
	case SK_EV_EXEC_FAILED: {
		const struct sk_ev_exec *e = (const void *)base;
		nframes = e->nframes; name_len = e->path_len; has_name = 1;
		break;
	}
	case SK_EV_MODULE:
	case SK_EV_MODULE_GONE: {
		const struct sk_ev_module *e = (const void *)base;
		name_len = e->path_len; bid_len = e->build_id_len; has_name = 1;
		break;
	}
	case SK_EV_WARN: {
		const struct sk_ev_warn *e = (const void *)base;
		nframes = e->nframes; name_len = e->text_len; has_name = 1;
		break;
	}
	case SK_EV_PLACE: nframes = ((const struct sk_ev_place *)base)->nframes; break;
	case SK_EV_CLEANUP: {
		const struct sk_ev_cleanup *e = (const void *)base;
		name_len = e->name_len; has_name = 1;
		break;
	}
	default: break;
	}
	if (nframes > SK_MAX_FRAMES)
		return "more frames than the format allows";
	if (bid_len) {
		if (SK_ALIGN8(bid_len) > ev->len - pos)
			return "build-id runs past the record";
		ev->build_id = base + pos;
		ev->build_id_len = (unsigned)bid_len;
		pos += SK_ALIGN8(bid_len);
	}
	if (has_name) {
		if (SK_ALIGN8(name_len + 1) > ev->len - pos)
			return "name runs past the record";
		if (base[pos + name_len] != '\0')
			return "name not terminated";
		ev->name = (const char *)base + pos;
		ev->name_len = strnlen(ev->name, name_len);
		pos += SK_ALIGN8(name_len + 1);
	}
	if ((size_t)nframes * 8 > ev->len - pos)
		return "frames run past the record";
	ev->nframes = nframes;
	ev->frames = nframes ? (const uint64_t *)(base + pos) : NULL;
	return NULL;
}

int sk_reader_next(struct sk_reader *r, struct sk_event *ev)
{
	uint64_t off = r->off;
	const uint8_t *p;
	const char *why;
	uint32_t h;
	int rc;

	memset(ev, 0, sizeof(*ev));
	r->diag[0] = '\0';
	if (r->done)
		return SK_RD_END;
	if (off + 8 > r->size) {
		r->done = 1;
		if (off < r->cursor) {
			set_diag(r, r->size, "file cut short: it ends before the header's cursor (%llu)",
				 (unsigned long long)r->cursor);
			return SK_RD_TRUNC;
		}
		return SK_RD_END;
	}
	rc = head_at(r, off, &h);
	if (rc < 0) {
		r->done = 1;
		return rc == -ENODATA ? SK_RD_END : rc;
	}
	if (h == 0) {
		if (off >= r->cursor) {
			r->done = 1;
			return SK_RD_END;
		}
		r->off = resync(r, off);
		if (r->full && r->off >= r->size) {
			r->done = 1;   /* the one that did not fit: dropped */
			return SK_RD_END;
		}
		set_diag(r, off, "hole of %llu bytes (a record its writer did not commit: killed during a call)",
			 (unsigned long long)(r->off - off));
		return SK_RD_HOLE;
	}
	why = head_problem(r, off, h);
	if (why) {
		if (off + SK_HEAD_LEN(h) > r->size && r->cursor > r->size &&
		    SK_HEAD_MAGIC(h) == SK_REC_MAGIC) {
			r->done = 1;
			set_diag(r, off, "file cut short inside a record");
			return SK_RD_TRUNC;
		}
		r->off = resync(r, off);
		set_diag(r, off, "%s (head word 0x%08x); skipped %llu bytes", why, h,
			 (unsigned long long)(r->off - off));
		return SK_RD_BAD;
	}
	ev->offset = off;
	ev->type = SK_HEAD_TYPE(h);
	ev->len = SK_HEAD_LEN(h);
	rc = view(r, off, ev->len, &p);
	if (rc < 0) {
		r->done = 1;
		if (rc == -ENODATA) {
			set_diag(r, off, "file cut short inside a record");
			return SK_RD_TRUNC;
		}
		return rc;
	}
	ev->rec = (const struct sk_rec *)p;
	r->off = off + ev->len;
	why = decode(ev);
	if (why) {
		set_diag(r, off, "%s record: %s", sk_event_type_name(ev->type), why);
		memset(ev, 0, sizeof(*ev));
		return SK_RD_BAD;
	}
	if (r->ticks)
		tick_convert(r, ev);
	return SK_RD_EVENT;
}

const struct sk_file_header *sk_reader_header(const struct sk_reader *r)
{
	return &r->hdr;
}

uint64_t sk_reader_file_size(const struct sk_reader *r)
{
	return r->size;
}

const char *sk_reader_diag(const struct sk_reader *r)
{
	return r->diag;
}

uint64_t sk_reader_diag_offset(const struct sk_reader *r)
{
	return r->diag_off;
}

void sk_reader_close(struct sk_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->win);
	free(r);
}

const char *sk_args_next(const struct sk_file_header *h, const char *prev)
{
	const char *end = h->args + h->args_len;
	const char *p = prev ? prev + strlen(prev) + 1 : h->args;

	return p < end ? p : NULL;
}
