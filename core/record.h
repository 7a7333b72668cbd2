/* Events: one function per event kind, each capturing the caller's stack and
 * writing one record. Called by the wrappers after a call succeeded. All
 * async-signal-safe (libunwind's local unwinding is). */
#ifndef SHMK_RECORD_H
#define SHMK_RECORD_H

#include <stdint.h>

#include "core/compiler.h"
#include "core/logfmt.h"
#include "core/segtab.h"

struct sk_rec_cfg {
	unsigned bt_depth;        /* frames kept, 0 for none */
	uint64_t self_lo, self_hi; /* leading frames in here are the library's own */
};
extern struct sk_rec_cfg sk_rec_cfg;

/* Once per image, before the first event (sk_log_open calls it): the
 * unwinder's first use, while sk_rec_in_unwind is set. */
void sk_rec_init(void);
/* The module records at the log's opening, as a stack walk (see record.c). */
void sk_rec_modules(void);
/* Set while this thread is inside libunwind: a pipe it makes then is the
 * unwinder's, moved out of the program's way by the pipe2 wrapper, which
 * notes its fds here ({lo, hi}; INT_MAX until then). */
extern SK_TLS int sk_rec_in_unwind;
extern int sk_unw_fd[2];
/* A library was unloaded (the dlclose wrapper): the next event looks at
 * the module list again. AS-safe (one atomic add). */
void sk_rec_modules_changed(void);
/* fork: no thread may be inside dl_iterate_phdr (see record.c). */
void sk_rec_atfork_prepare(void);
void sk_rec_atfork_parent(void);
void sk_rec_atfork_child(void);

void sk_ev_sysv_get(int32_t key, int32_t shmid, uint64_t size, int32_t shmflg,
		    unsigned flags, uint32_t mode, uint32_t cuid);
void sk_ev_sysv_at(int32_t shmid, int32_t shmflg, uint64_t addr, uint64_t req,
		   uint64_t size, unsigned flags);
void sk_ev_sysv_dt(int32_t shmid, uint64_t addr, uint64_t size, unsigned flags);
void sk_ev_sysv_ctl(int32_t shmid, int32_t cmd, uint32_t uid, uint32_t gid,
		    uint32_t mode, int32_t key, uint64_t size, unsigned flags);
void sk_ev_posix_open(const char *name, int32_t fd, int32_t oflag, uint64_t dev,
		      uint64_t ino, uint64_t size, uint32_t mode, uint32_t uid,
		      unsigned flags);
void sk_ev_posix_unlink(const char *name, uint64_t dev, uint64_t ino);
/* type: SK_EV_POSIX_MAP or SK_EV_UNMAP */
void sk_ev_map(unsigned type, const struct sk_attach *a, int32_t prot, int32_t mflags);
void sk_ev_remap(const struct sk_attach *old, uint64_t new_addr, uint64_t new_len,
		 int32_t mflags);
void sk_ev_resize(uint64_t dev, uint64_t ino, int32_t fd, uint64_t size, int32_t how);
void sk_ev_proc(unsigned type, uint32_t child_pid, uint32_t how);
void sk_ev_exec(unsigned type, const char *path, int32_t err);
void sk_ev_warn(uint32_t code, int64_t arg1, int64_t arg2, const char *text);
void sk_ev_place(uint64_t dev, uint64_t ino, int32_t shmid, uint64_t addr,
		 uint64_t len, unsigned flags);
void sk_ev_cleanup(const char *name, uint64_t dev, uint64_t ino, int32_t shmid,
		   int32_t err, int32_t signo);

#endif
