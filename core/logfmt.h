/* The on-disk format of a shmkeeper process log, version 2.
 *
 * This header is the format's definition; doc/log-format.md describes it for
 * readers in other languages. Everything is little-endian, native x86-64/aarch64
 * layout, naturally aligned; every struct size is asserted below.
 *
 * A log is one file per process image (a fork child or an exec'd image gets a
 * file of its own), named "shmk-<pid>-<n>.shmk" in SHMKEEPER_LOG_DIR:
 *
 *   offset 0            struct sk_file_header (SK_HEADER_SIZE bytes)
 *   SK_HEADER_SIZE      records, 8-byte aligned, back to back
 *
 * The writer maps the file MAP_SHARED, so a record is in the page cache (and
 * survives SIGKILL of the writer) the moment its head word is stored. A record
 * is written body first; its head word, which carries the magic, type and
 * length, is stored last with release ordering. The file is created sparse and
 * larger than needed and truncated to the used length at normal exit, so a
 * reader stops at the first zero head word at or beyond header.cursor. A zero
 * or invalid head word before header.cursor is a hole: a record whose writer was
 * killed between reserving the space and committing it (its call had not
 * returned). A reader resynchronises by scanning forward 8 bytes at a time for
 * a valid head word.
 */
#ifndef SHMK_LOGFMT_H
#define SHMK_LOGFMT_H

#include <stdint.h>
#include <stddef.h>

#define SK_MAGIC        "SHMKLOG"   /* 8 bytes with its NUL */
#define SK_VERSION      2           /* bumped on any incompatible change:
				     * 2: record times may be TSC ticks */
#define SK_HEADER_SIZE  4096u
#define SK_REC_MAGIC    0xA5u       /* top byte of every committed head word */
#define SK_MAX_FRAMES   64
#define SK_EXE_MAX      1024
#define SK_ARGS_MAX     1536
#define SK_NAME_MAX     256         /* a POSIX name with its NUL (NAME_MAX + 1) */

/* Counters of failed calls, by wrapped function (header.failed[]). Failed calls
 * are counted, not recorded as lifetime events. */
enum sk_fn {
	SK_FN_SHMGET, SK_FN_SHMAT, SK_FN_SHMDT, SK_FN_SHMCTL,
	SK_FN_SHM_OPEN, SK_FN_SHM_UNLINK, SK_FN_MMAP, SK_FN_MUNMAP,
	SK_FN_MREMAP, SK_FN_FTRUNCATE, SK_FN_FALLOCATE,
	SK_FN_MAX = 16
};

struct sk_file_header {
	char     magic[8];        /* SK_MAGIC */
	uint16_t version;         /* SK_VERSION; a reader refuses a newer one */
	uint16_t arch;            /* 1 = x86_64, 2 = aarch64 */
	uint32_t header_size;     /* SK_HEADER_SIZE: records start here */
	uint32_t pid, ppid;
	uint32_t uid, gid, euid, egid;
	uint64_t start_ticks;     /* /proc/self/stat field 22: with pid, names the process */
	uint64_t ipc_ns;          /* inode of /proc/self/ns/ipc */
	uint64_t mnt_ns;          /* inode of /proc/self/ns/mnt (/dev/shm lives there) */
	uint64_t image_mono_ns;   /* CLOCK_MONOTONIC when this image loaded the library */
	uint64_t open_mono_ns;    /* CLOCK_MONOTONIC when the log was opened ... */
	int64_t  open_wall_sec;   /* ... and CLOCK_REALTIME at the same moment: the */
	int64_t  open_wall_nsec;  /* wall time of a record is derived from this pair */
	uint32_t bt_depth;        /* SHMKEEPER_BACKTRACE_DEPTH in effect */
	uint32_t flags;           /* SK_HF_* */
	uint32_t parent_pid;      /* pid of the process this one forked from, or 0 */
	uint32_t exec_count;      /* 0 for the first image of this pid that logged */
	uint64_t parent_start_ticks;
	uint8_t  boot_id[16];     /* /proc/sys/kernel/random/boot_id */
	/* Written by the writer while it runs; read with care (may be torn). */
	uint64_t cursor;          /* end of the reserved records (atomic) */
	uint64_t dropped;         /* records not written: log full or closing */
	uint64_t failed[SK_FN_MAX];
	uint64_t capacity;        /* bytes the writer may use in all */
	/* With SK_HF_TICKS: the TSC read with image_mono_ns and with
	 * open_mono_ns, the first two (tick, ns) pairs (version 2). */
	uint64_t image_tick;
	uint64_t open_tick;
	uint8_t  reserved[40];
	char     exe[SK_EXE_MAX]; /* readlink /proc/self/exe, NUL-terminated */
	uint32_t argc;
	uint32_t args_len;        /* bytes used in args[] */
	char     args[SK_ARGS_MAX]; /* argv strings, each NUL-terminated, truncated */
};

enum sk_hf {
	SK_HF_FORKED  = 1u << 0,   /* image began by fork of a logged parent image */
	SK_HF_SETID   = 1u << 1,   /* never set: setid programs do not log */
	SK_HF_CLOSED  = 1u << 2,   /* the writer exited normally */
	SK_HF_FULL    = 1u << 3,   /* capacity or disk ran out: see `dropped`;
				    * the cursor then runs past the records */
	SK_HF_TICKS   = 1u << 4,   /* record times (sk_rec.mono_ns) are TSC
				    * ticks: a reader turns them into
				    * CLOCK_MONOTONIC ns by the latest pair
				    * before the record (the header's two, then
				    * each SK_EV_CLOCK's), at the rate between
				    * that pair and the one before it */
};

/* The head of every record. `head` is stored last. */
struct sk_rec {
	uint32_t head;            /* SK_REC_MAGIC<<24 | type<<16 | length/8 */
	uint32_t tid;
	uint64_t mono_ns;         /* CLOCK_MONOTONIC at completion of the call */
};

#define SK_HEAD(type, len)   ((SK_REC_MAGIC << 24) | ((uint32_t)(type) << 16) | ((uint32_t)(len) >> 3))
#define SK_HEAD_MAGIC(h)     ((h) >> 24)
#define SK_HEAD_TYPE(h)      (((h) >> 16) & 0xffu)
#define SK_HEAD_LEN(h)       (((h) & 0xffffu) << 3)

enum sk_type {
	SK_EV_SYSV_GET = 1,   /* struct sk_ev_sysv_get */
	SK_EV_SYSV_AT,        /* struct sk_ev_sysv_at */
	SK_EV_SYSV_DT,        /* struct sk_ev_sysv_dt */
	SK_EV_SYSV_CTL,       /* struct sk_ev_sysv_ctl: RMID, SET, LOCK, UNLOCK */
	SK_EV_POSIX_OPEN,     /* struct sk_ev_posix_open */
	SK_EV_POSIX_UNLINK,   /* struct sk_ev_posix_unlink */
	SK_EV_POSIX_MAP,      /* struct sk_ev_map: mmap of a POSIX object */
	SK_EV_UNMAP,          /* struct sk_ev_map: munmap, or implicit (MAP_FIXED, SHM_REMAP) */
	SK_EV_REMAP,          /* struct sk_ev_remap: mremap of an attachment */
	SK_EV_RESIZE,         /* struct sk_ev_resize: ftruncate, fallocate */
	SK_EV_FORK,           /* struct sk_ev_proc: fork/_Fork/posix_spawn child */
	SK_EV_EXEC,           /* struct sk_ev_exec: about to exec */
	SK_EV_EXEC_FAILED,    /* struct sk_ev_exec: exec returned */
	SK_EV_EXIT,           /* struct sk_ev_exit: normal termination */
	SK_EV_MODULE,         /* struct sk_ev_module: a loaded ELF object */
	SK_EV_MODULE_GONE,    /* struct sk_ev_module (path empty): dlclose'd */
	SK_EV_WARN,           /* struct sk_ev_warn */
	SK_EV_PLACE,          /* struct sk_ev_place: read, no longer written (SK_F_PLACED says it) */
	SK_EV_CLEANUP,        /* struct sk_ev_cleanup: removed by a cleanup policy */
	SK_EV_CLOCK,          /* struct sk_ev_clock: a (tick, ns) pair (SK_HF_TICKS) */
	SK_EV_TYPE_MAX
};

/* Flags common to events. */
enum sk_evf {
	SK_F_CREATED   = 1u << 0, /* get/open created the segment */
	SK_F_CREATE_UNSURE = 1u << 1, /* could not tell created from opened */
	SK_F_IMPLICIT  = 1u << 2, /* detach not asked for: MAP_FIXED/SHM_REMAP/mremap over it */
	SK_F_PARTIAL   = 1u << 3, /* unmap of part of an attachment */
	SK_F_PRIVATE   = 1u << 4, /* MAP_PRIVATE mapping of a POSIX object */
	SK_F_PLACED    = 1u << 5, /* address chosen by shmkeeper inside the span */
	SK_F_INHERITED = 1u << 6, /* attachment came through fork */
};

/* Every event body ends with `nframes` uint64_t return addresses (raw PCs of
 * the caller's stack, innermost first, the library's own frames removed). */

struct sk_ev_sysv_get {
	struct sk_rec r;
	int32_t  key;
	int32_t  shmid;
	uint64_t size;            /* segment size (the request, or IPC_STAT's) */
	int32_t  shmflg;
	uint16_t flags;           /* SK_F_* */
	uint16_t nframes;
	uint32_t mode;            /* permissions of the segment (low 9 bits) */
	uint32_t cuid;
	/* frames */
};

struct sk_ev_sysv_at {
	struct sk_rec r;
	int32_t  shmid;
	int32_t  shmflg;
	uint64_t addr;            /* where it was attached */
	uint64_t req_addr;        /* what the caller asked for */
	uint64_t size;            /* attached length, 0 when unknown */
	uint16_t flags;
	uint16_t nframes;
	uint32_t pad;
};

struct sk_ev_sysv_dt {
	struct sk_rec r;
	int32_t  shmid;           /* -1 when the address was not a known attachment */
	uint16_t flags;
	uint16_t nframes;
	uint64_t addr;
	uint64_t size;
};

struct sk_ev_sysv_ctl {
	struct sk_rec r;
	int32_t  shmid;
	int32_t  cmd;             /* IPC_RMID, IPC_SET, SHM_LOCK, SHM_UNLOCK */
	uint32_t uid, gid, mode;  /* IPC_SET: the values set */
	uint16_t flags;
	uint16_t nframes;
	int32_t  key;             /* from IPC_STAT where known, else 0 */
	uint32_t pad;
	uint64_t size;            /* segment size where known, else 0 */
};

struct sk_ev_posix_open {
	struct sk_rec r;
	uint64_t dev, ino;        /* identity of the object behind the name */
	uint64_t size;            /* st_size after the open */
	int32_t  fd;
	int32_t  oflag;
	uint32_t mode;            /* st_mode & 07777 */
	uint16_t flags;
	uint16_t nframes;
	uint32_t uid;
	uint16_t name_len;        /* strlen(name) */
	uint16_t pad;
	/* char name[name_len + 1], padded to 8, then frames */
};

struct sk_ev_posix_unlink {
	struct sk_rec r;
	uint64_t dev, ino;        /* from a stat just before; 0 if it failed */
	uint16_t flags;
	uint16_t nframes;
	uint16_t name_len;
	uint16_t pad;
	/* char name[name_len + 1], padded to 8, then frames */
};

struct sk_ev_map {
	struct sk_rec r;
	uint64_t dev, ino;        /* POSIX object; 0,0 for a SysV attachment */
	uint64_t addr, len;
	uint64_t offset;          /* file offset of the mapping */
	int32_t  shmid;           /* SysV attachment, else -1 */
	int32_t  prot;
	int32_t  mflags;          /* mmap flags */
	uint16_t flags;
	uint16_t nframes;
};

struct sk_ev_remap {
	struct sk_rec r;
	uint64_t dev, ino;
	uint64_t old_addr, old_len, new_addr, new_len;
	int32_t  shmid;
	int32_t  mflags;          /* mremap flags */
	uint16_t flags;
	uint16_t nframes;
	uint32_t pad;
};

struct sk_ev_resize {
	struct sk_rec r;
	uint64_t dev, ino;
	uint64_t size;            /* size after the call */
	int32_t  fd;
	int32_t  how;             /* 0 ftruncate, 1 fallocate, 2 posix_fallocate */
	uint16_t flags;
	uint16_t nframes;
	uint32_t pad;
};

struct sk_ev_proc {
	struct sk_rec r;
	uint32_t child_pid;
	uint32_t how;             /* 0 fork, 1 _Fork, 2 posix_spawn, 3 posix_spawnp */
	uint16_t flags;
	uint16_t nframes;
	uint32_t pad;
};

struct sk_ev_exec {
	struct sk_rec r;
	int32_t  err;             /* EXEC_FAILED: errno */
	uint16_t flags;
	uint16_t nframes;
	uint16_t path_len;
	uint16_t pad[3];
	/* char path[path_len + 1], padded to 8, then frames */
};

struct sk_ev_exit {
	struct sk_rec r;
	int32_t  status;          /* exit status, or -1 when unknown (destructor) */
	uint32_t pad;
};

struct sk_ev_module {
	struct sk_rec r;
	uint64_t base;            /* load bias (dlpi_addr) */
	uint64_t start, end;      /* lowest and highest address of its PT_LOAD segments */
	uint16_t path_len;
	uint16_t build_id_len;    /* bytes of the GNU build-id, 0 if none */
	uint32_t pad;
	/* uint8_t build_id[build_id_len], padded to 8;
	 * char path[path_len + 1], padded to 8 */
};

/* With SK_HF_TICKS, written at least as often as the ticks since the last
 * pair reach the span between the header's first pair and the last one
 * (at least 2^14 ticks, at most 2^22, ~1.5 ms at 2.8 GHz): so a record is
 * never far from the pair it is read by, and the rate is measured over a
 * span at least as long as the one it is used over. r.mono_ns holds
 * `tick` as every record's does. */
struct sk_ev_clock {
	struct sk_rec r;
	uint64_t tick;
	uint64_t mono_ns;         /* CLOCK_MONOTONIC read just before tick */
};

struct sk_ev_warn {
	struct sk_rec r;
	uint32_t code;            /* SK_W_* */
	uint16_t flags;
	uint16_t nframes;
	int64_t  arg1, arg2;      /* code-specific */
	uint16_t text_len;
	uint16_t pad[3];
	/* char text[text_len + 1], padded to 8, then frames */
};

enum sk_warn {
	SK_W_SPAN_TAKEN = 1,      /* the span could not be reserved */
	SK_W_SPAN_FULL,           /* no room to place a segment: kernel's address used */
	SK_W_PLACE_REFUSED,       /* strict policy failed a call */
	SK_W_ADDR_IN_SPAN,        /* explicit address inside the span, not the placement */
	SK_W_UNKNOWN_DETACH,      /* shmdt of an address this process did not see attached */
};

struct sk_ev_place {
	struct sk_rec r;
	uint64_t dev, ino;
	uint64_t addr, len;
	int32_t  shmid;
	uint16_t flags;
	uint16_t nframes;
};

struct sk_ev_cleanup {
	struct sk_rec r;
	uint64_t dev, ino;
	int32_t  shmid;
	int32_t  err;             /* 0, or the errno of the failed removal */
	int32_t  signo;           /* the fatal signal, or 0 at exit */
	uint16_t name_len;
	uint16_t pad;
	/* char name[name_len + 1], padded to 8 (POSIX) */
};

#define SK_ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

_Static_assert(sizeof(struct sk_file_header) <= SK_HEADER_SIZE, "header fits");
_Static_assert(sizeof(struct sk_rec) == 16, "rec");
_Static_assert(sizeof(struct sk_ev_sysv_get) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_clock) == 32, "size");
_Static_assert(sizeof(struct sk_ev_sysv_at) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_sysv_dt) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_sysv_ctl) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_posix_open) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_posix_unlink) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_map) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_remap) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_resize) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_proc) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_exec) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_exit) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_module) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_warn) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_place) % 8 == 0, "align");
_Static_assert(sizeof(struct sk_ev_cleanup) % 8 == 0, "align");

#endif
