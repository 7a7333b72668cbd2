/* reportscale - writes synthetic shmkeeper logs for the report's scale
 * benchmark (bench/reportscale.sh), with the structs of core/logfmt.h.
 *
 * Usage: reportscale DIR [PROCESSES [EVENTS [SEGMENTS_PER_PROCESS [FRAMES]]]]
 *        defaults:        1000       10000000  5                     8
 *
 * Each process creates its segments (SysV and POSIX alternately), then
 * attaches and detaches them in turn until its share of EVENTS is spent,
 * forks no one, and removes all of them but one in every tenth process (the
 * leaks). That is the shape of a long-running server fleet: few segments,
 * many attaches, so the report's memory should follow the segments and its
 * time the events. Processes run at the same time: their clocks interleave,
 * so the report merges for real. The namespaces are made up, so the report
 * never looks at this machine's segments: the leaks are reported as leaks
 * of unknown status ("created in another IPC namespace").
 * Prints the number of events and bytes written.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/logfmt.h"

struct buf {
	uint8_t *p;
	size_t len, cap;
	uint64_t mono;
	uint32_t pid;
};

static void *reserve(struct buf *b, size_t n)
{
	if (b->len + n > b->cap) {
		while (b->len + n > b->cap)
			b->cap = b->cap ? 2 * b->cap : 1 << 20;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			err(1, "out of memory");
	}
	memset(b->p + b->len, 0, n);
	return b->p + b->len;
}

/* A record: fixed part (its head filled here), a name, then frames. */
static void add(struct buf *b, unsigned type, void *fixed, size_t size, const char *name,
		const uint64_t *frames, unsigned nframes, uint64_t step)
{
	size_t nlen = name ? SK_ALIGN8(strlen(name) + 1) : 0;
	size_t len = size + nlen + (size_t)nframes * 8;
	uint8_t *at = reserve(b, len);
	struct sk_rec *r = fixed;

	b->mono += step;
	r->tid = b->pid;
	r->mono_ns = b->mono;
	r->head = SK_HEAD(type, len);
	memcpy(at, fixed, size);
	if (name)
		memcpy(at + size, name, strlen(name) + 1);
	if (nframes)
		memcpy(at + size + nlen, frames, (size_t)nframes * 8);
	b->len += len;
}

static unsigned long arg(int argc, char **argv, int i, unsigned long def)
{
	char *end;
	unsigned long v;

	if (argc <= i)
		return def;
	errno = 0;
	v = strtoul(argv[i], &end, 10);
	if (errno || *end || !v)
		errx(2, "'%s' is not a positive number", argv[i]);
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		errx(2, "usage: reportscale DIR [PROCESSES [EVENTS [SEGMENTS [FRAMES]]]]");
	const char *dir = argv[1];
	unsigned long nproc = arg(argc, argv, 2, 1000), nev = arg(argc, argv, 3, 10000000);
	unsigned long nseg = arg(argc, argv, 4, 5), nfr = arg(argc, argv, 5, 8);
	const uint64_t base = 1000000000000ull, text = 0x555555554000ull;
	uint64_t total_ev = 0, total_bytes = 0, frames[SK_MAX_FRAMES];
	struct buf b = { 0 };

	/* This boot's id: a log from another boot is "gone: rebooted". */
	uint8_t boot_id[16] = { 0 };
	FILE *bf = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (bf) {
		unsigned k = 0;
		for (int c; (c = fgetc(bf)) != EOF && k < 32; ) {
			int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (v < 0)
				continue;
			boot_id[k / 2] |= (uint8_t)(k % 2 ? v : v << 4);
			k++;
		}
		fclose(bf);
	}
	if (nfr > SK_MAX_FRAMES)
		errx(2, "at most %d frames", SK_MAX_FRAMES);
	if (mkdir(dir, 0777) < 0 && errno != EEXIST)
		err(1, "%s", dir);
	for (unsigned long p = 0; p < nproc; p++) {
		unsigned long share = nev / nproc + (p < nev % nproc), done = 0;
		uint32_t pid = (uint32_t)(100000 + p);
		struct sk_file_header *h;
		char path[4096], name[64];

		b.len = 0;
		b.pid = pid;
		b.mono = base + p * 3000;   /* interleaved with the others */
		h = reserve(&b, SK_HEADER_SIZE);
		b.len = SK_HEADER_SIZE;
		memcpy(h->magic, SK_MAGIC, 8);
		h->version = SK_VERSION;
		h->arch = 1;
		h->header_size = SK_HEADER_SIZE;
		h->pid = pid;
		h->ppid = 1;
		h->start_ticks = 5000 + p;
		h->ipc_ns = 1;   /* no real namespace has inode 1 */
		h->mnt_ns = 1;
		h->image_mono_ns = b.mono;
		h->open_mono_ns = b.mono;
		h->open_wall_sec = 1700000000;
		h->bt_depth = (uint32_t)nfr;
		h->flags = SK_HF_CLOSED;
		memcpy(h->boot_id, boot_id, sizeof(h->boot_id));
		snprintf(h->exe, sizeof(h->exe), "/opt/bench/server");
		memcpy(h->args, "server\0--worker\0", 16);
		h->argc = 2;
		h->args_len = 16;

		/* The executable's map: frames resolve to module+offset (no
		 * file behind it, so no symbol lookups are timed). */
		{
			struct sk_ev_module m = { .base = text, .start = text, .end = text + 0x100000,
						  .path_len = 17 };
			add(&b, SK_EV_MODULE, &m, sizeof(m), "/opt/bench/server", NULL, 0, 10);
			done++;
		}
		for (unsigned k = 0; k < nfr; k++)
			frames[k] = text + 0x1000 + (p % 7) * 0x100 + k * 0x40;

#define EV_TIME 997   /* ns between a process's events */
		/* Create. */
		for (unsigned long s = 0; s < nseg && done < share; s++, done++) {
			if (s % 2 == 0) {
				struct sk_ev_sysv_get e = { .key = 0, .shmid = (int32_t)(p * 64 + s),
					.size = 4096 * (s + 1), .shmflg = 01600, .flags = SK_F_CREATED,
					.nframes = (uint16_t)nfr, .mode = 0600 };
				add(&b, SK_EV_SYSV_GET, &e, sizeof(e), NULL, frames, (unsigned)nfr, EV_TIME);
			} else {
				snprintf(name, sizeof(name), "/bench-%u-%lu", pid, s);
				struct sk_ev_posix_open e = { .dev = 26, .ino = 1000000 + p * 64 + s,
					.size = 0, .fd = 3, .oflag = 0302, .mode = 0600, .flags = SK_F_CREATED,
					.nframes = (uint16_t)nfr, .name_len = (uint16_t)strlen(name) };
				add(&b, SK_EV_POSIX_OPEN, &e, sizeof(e), name, frames, (unsigned)nfr, EV_TIME);
			}
		}
		/* Use: attach and detach each in turn; keep room for the removals
		 * and the exit. */
		unsigned long tail = nseg + 1;
		for (unsigned long i = 0; done + 2 + tail <= share; i++, done += 2) {
			unsigned long s = i % nseg;
			uint64_t addr = 0x7f0000000000ull + (s << 24);

			if (s % 2 == 0) {
				struct sk_ev_sysv_at a = { .shmid = (int32_t)(p * 64 + s), .addr = addr,
					.size = 4096 * (s + 1), .nframes = (uint16_t)nfr };
				add(&b, SK_EV_SYSV_AT, &a, sizeof(a), NULL, frames, (unsigned)nfr, EV_TIME);
				struct sk_ev_sysv_dt d = { .shmid = (int32_t)(p * 64 + s), .addr = addr,
					.size = 4096 * (s + 1), .nframes = (uint16_t)nfr };
				add(&b, SK_EV_SYSV_DT, &d, sizeof(d), NULL, frames, (unsigned)nfr, EV_TIME);
			} else {
				struct sk_ev_map m = { .dev = 26, .ino = 1000000 + p * 64 + s, .addr = addr,
					.len = 4096 * (s + 1), .shmid = -1, .prot = 3, .mflags = 1,
					.nframes = (uint16_t)nfr };
				add(&b, SK_EV_POSIX_MAP, &m, sizeof(m), NULL, frames, (unsigned)nfr, EV_TIME);
				add(&b, SK_EV_UNMAP, &m, sizeof(m), NULL, frames, (unsigned)nfr, EV_TIME);
			}
		}
		/* Remove, but leave segment 0 in every tenth process. */
		for (unsigned long s = 0; s < nseg && done + 1 < share; s++) {
			if (s == 0 && p % 10 == 0)
				continue;
			if (s % 2 == 0) {
				struct sk_ev_sysv_ctl c = { .shmid = (int32_t)(p * 64 + s), .cmd = 0,
					.nframes = (uint16_t)nfr };
				add(&b, SK_EV_SYSV_CTL, &c, sizeof(c), NULL, frames, (unsigned)nfr, EV_TIME);
			} else {
				snprintf(name, sizeof(name), "/bench-%u-%lu", pid, s);
				struct sk_ev_posix_unlink u = { .dev = 26, .ino = 1000000 + p * 64 + s,
					.nframes = (uint16_t)nfr, .name_len = (uint16_t)strlen(name) };
				add(&b, SK_EV_POSIX_UNLINK, &u, sizeof(u), name, frames, (unsigned)nfr, EV_TIME);
			}
			done++;
		}
		/* An odd share: one failed exec fills it. */
		while (done + 1 < share) {
			struct sk_ev_exec f = { .err = ENOENT };
			add(&b, SK_EV_EXEC_FAILED, &f, sizeof(f), "", NULL, 0, EV_TIME);
			done++;
		}
		struct sk_ev_exit x = { .status = 0 };
		add(&b, SK_EV_EXIT, &x, sizeof(x), NULL, NULL, 0, EV_TIME);
		done++;

		h = (struct sk_file_header *)b.p;
		h->cursor = b.len;
		h->capacity = b.len;
		snprintf(path, sizeof(path), "%s/shmk-%u-0.shmk", dir, pid);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			err(1, "%s", path);
		for (size_t off = 0; off < b.len; ) {
			ssize_t n = write(fd, b.p + off, b.len - off);
			if (n < 0)
				err(1, "%s", path);
			off += (size_t)n;
		}
		if (close(fd) < 0)
			err(1, "%s", path);
		total_ev += done;
		total_bytes += b.len;
	}
	free(b.p);
	printf("%llu events, %llu bytes, %lu processes, %lu segments\n",
	       (unsigned long long)total_ev, (unsigned long long)total_bytes, nproc, nproc * nseg);
	return 0;
}
