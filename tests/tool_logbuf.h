/* tool_logbuf.h - builds shmkeeper logs in memory with the structs of
 * core/logfmt.h, for the tool's tests (synthetic logs, damaged variants).
 * Header-only: the test programs include it. */
#ifndef SHMK_TOOL_LOGBUF_H
#define SHMK_TOOL_LOGBUF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "core/logfmt.h"

struct logbuf {
	uint8_t *buf;
	size_t len, cap;
	uint64_t mono;            /* time of the next record */
};

static inline struct sk_file_header *lb_hdr(struct logbuf *b)
{
	return (struct sk_file_header *)b->buf;
}

static inline void lb_reserve(struct logbuf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	while (b->len + n > b->cap)
		b->cap = b->cap ? 2 * b->cap : 65536;
	b->buf = realloc(b->buf, b->cap);
	if (!b->buf)
		abort();
	memset(b->buf + b->len, 0, b->cap - b->len);
}

static inline uint64_t lb_now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t lb_ns_ino(const char *which)
{
	struct stat st;
	char p[64];

	snprintf(p, sizeof(p), "/proc/self/ns/%s", which);
	return stat(p, &st) == 0 ? st.st_ino : 0;
}

static inline void lb_boot_id(uint8_t out[16])
{
	char buf[64];
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	unsigned k = 0;

	memset(out, 0, 16);
	for (ssize_t i = 0; i < n && k < 32; i++) {
		int c = buf[i], v;

		if (c >= '0' && c <= '9') v = c - '0';
		else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
		else continue;
		out[k / 2] |= (uint8_t)(k % 2 ? v : v << 4);
		k++;
	}
	if (fd >= 0)
		close(fd);
}

/* A log of a process with this pid, the rest of the header from the caller
 * (this process's namespaces, boot and clocks). */
static inline void lb_init(struct logbuf *b, uint32_t pid, const char *exe,
			   const char *const *argv, uint64_t mono)
{
	struct sk_file_header *h;

	memset(b, 0, sizeof(*b));
	lb_reserve(b, SK_HEADER_SIZE);
	b->len = SK_HEADER_SIZE;
	b->mono = mono;
	h = lb_hdr(b);
	memcpy(h->magic, SK_MAGIC, 8);
	h->version = SK_VERSION;
	h->arch = 1;
	h->header_size = SK_HEADER_SIZE;
	h->pid = pid;
	h->ppid = (uint32_t)getppid();
	h->uid = h->euid = (uint32_t)getuid();
	h->gid = h->egid = (uint32_t)getgid();
	h->start_ticks = 1000 + pid;
	h->ipc_ns = lb_ns_ino("ipc");
	h->mnt_ns = lb_ns_ino("mnt");
	h->image_mono_ns = mono;
	h->open_mono_ns = lb_now(CLOCK_MONOTONIC);
	uint64_t wall = lb_now(CLOCK_REALTIME);
	h->open_wall_sec = (int64_t)(wall / 1000000000u);
	h->open_wall_nsec = (int64_t)(wall % 1000000000u);
	h->bt_depth = 16;
	lb_boot_id(h->boot_id);
	h->capacity = 1 << 20;
	snprintf(h->exe, sizeof(h->exe), "%s", exe);
	for (size_t i = 0; argv && argv[i]; i++) {
		size_t n = strlen(argv[i]) + 1;

		if (h->args_len + n > SK_ARGS_MAX)
			break;
		memcpy(h->args + h->args_len, argv[i], n);
		h->args_len += (uint32_t)n;
		h->argc++;
	}
}

/* Appends a record: the fixed struct (its sk_rec filled here), then an
 * optional blob (build-id), an optional name, then frames. Returns its offset. */
static inline size_t lb_add(struct logbuf *b, unsigned type, void *fixed, size_t fixed_size,
			    const void *blob, size_t blob_len, const char *name,
			    const uint64_t *frames, unsigned nframes)
{
	size_t len = fixed_size + (blob_len ? SK_ALIGN8(blob_len) : 0) +
		     (name ? SK_ALIGN8(strlen(name) + 1) : 0) + (size_t)nframes * 8;
	size_t off = b->len;
	struct sk_rec *r = fixed;

	lb_reserve(b, len);
	r->head = 0;
	r->tid = lb_hdr(b)->pid;
	r->mono_ns = (b->mono += 1000);
	memcpy(b->buf + off, fixed, fixed_size);
	size_t pos = off + fixed_size;
	if (blob_len) {
		memcpy(b->buf + pos, blob, blob_len);
		pos += SK_ALIGN8(blob_len);
	}
	if (name) {
		memcpy(b->buf + pos, name, strlen(name) + 1);
		pos += SK_ALIGN8(strlen(name) + 1);
	}
	if (nframes)
		memcpy(b->buf + pos, frames, (size_t)nframes * 8);
	b->len = off + len;
	uint32_t head = SK_HEAD(type, len);
	memcpy(b->buf + off, &head, 4);
	lb_hdr(b)->cursor = b->len;
	return off;
}

static inline int lb_write(struct logbuf *b, const char *path, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	fwrite(b->buf, 1, len, f);
	return fclose(f);
}

#endif
