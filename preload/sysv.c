/* System V shared memory: shmget, shmat, shmdt, shmctl.
 *
 * Failure contract (the same for every wrapper here): the real call's return
 * value and errno reach the caller unchanged; a failed call is counted in the
 * log header, never recorded as an event. */
#include <errno.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <time.h>

#include "core/record.h"
#include "core/span.h"
#include "core/segtab.h"
#include "preload/real.h"
#include "preload/state.h"

#ifndef IPC_64
#define IPC_64 0x0100   /* the kernel's; glibc adds it itself */
#endif

#define MAX_PIECES 16

static void record_implicit(const struct sk_attach *p, int n)
{
	for (int i = 0; i < n; i++) {
		struct sk_attach a = p[i];
		a.flags |= SK_F_IMPLICIT;
		if (a.shmid >= 0)
			sk_ev_sysv_dt(a.shmid, a.addr, a.len, a.flags);
		else
			sk_ev_map(SK_EV_UNMAP, &a, 0, 0);
	}
}

/* The segment as this process last saw it, if it did. */
SK_HOT_SYSV static int known_segment(int shmid, struct sk_sysv *out)
{
	int have = 0;
	if (sk_tab_lock()) {
		have = sk_sysv_get(shmid, out);
		sk_tab_unlock();
	}
	return have;
}

SK_HOT_SYSV SK_EXPORT int shmget(key_t key, size_t size, int shmflg)
{
	int ret = REAL(shmget)(key, size, shmflg);
	if (!sk_on())
		return ret;
	SK_ENTER();
	if (ret < 0) {
		sk_count_failed(SK_FN_SHMGET);
	} else {
		/* The table (sizes for placement) is kept without a log too. */
		int logging = sk_log_ready();
		unsigned flags = 0;
		uint64_t segsz = size;
		uint32_t mode = (uint32_t)shmflg & 0777, cuid = sk_euid;
		struct sk_sysv known;
		/* IPC_PRIVATE always makes a new segment, IPC_CREAT or not
		 * (shmget(2); Perl's IPC::SharedMem passes no IPC_CREAT). */
		bool certain = key == IPC_PRIVATE ||
			       (shmflg & (IPC_CREAT | IPC_EXCL)) == (IPC_CREAT | IPC_EXCL);
		if (certain) {
			flags |= SK_F_CREATED;   /* the common case: no table lookup */
		} else if (known_segment(ret, &known)) {
			segsz = known.size;
		} else if (!logging) {
			segsz = 0;               /* unknown: shmat asks the kernel */
		} else {
			/* Opened or created? Only the kernel knows: created by
			 * this pid within the last seconds, with no attach. */
			struct shmid_ds ds;
			if (REAL(shmctl)(ret, IPC_STAT, &ds) == 0) {
				segsz = ds.shm_segsz;
				mode = ds.shm_perm.mode & 0777;
				cuid = ds.shm_perm.cuid;
				if ((shmflg & IPC_CREAT) && ds.shm_cpid == sk_pid() &&
				    ds.shm_nattch == 0 && ds.shm_ctime >= time(NULL) - 2)
					flags |= SK_F_CREATED;
			} else if (shmflg & IPC_CREAT) {
				flags |= SK_F_CREATE_UNSURE;
			}
		}
		if (sk_tab_lock()) {
			/* Two threads racing shmget(key, IPC_CREAT) both pass the
			 * test above: the first to note it is the creator
			 * (LTP's mtest07 shm_test counted both). */
			if (sk_sysv_note(ret, key, segsz, flags & SK_F_CREATED) && !certain)
				flags &= ~(unsigned)SK_F_CREATED;
			sk_tab_unlock();
		}
		if (logging)
			sk_ev_sysv_get(key, ret, segsz, shmflg, flags, mode, cuid);
	}
	SK_LEAVE();
	return ret;
}

/* The segment's size, from this process's table, else IPC_STAT (once). */
SK_HOT_SYSV static uint64_t segment_size(int shmid)
{
	struct sk_sysv s;
	if (known_segment(shmid, &s) && s.size)
		return s.size;
	struct shmid_ds ds;
	if (REAL(shmctl)(shmid, IPC_STAT, &ds) < 0)
		return 0;
	if (sk_tab_lock()) {
		sk_sysv_note(shmid, ds.shm_perm.__key, ds.shm_segsz, 0);
		sk_tab_unlock();
	}
	return ds.shm_segsz;
}

/* shmat through the span (core/span.h): an attach without an address is
 * placed at the segment's address in the span, the same in every process;
 * one with an address inside the span is checked against the policy.
 * *why gets the warning code to record (0 for none) and *r the span's answer. */
SK_HOT_SYSV static void *shmat_span(int shmid, const void *shmaddr, int shmflg, uint64_t size,
			unsigned *flags, unsigned *why, int *r)
{
	struct sk_span_key k = { .kind = SK_SPAN_SYSV, .shmid = shmid, .size = size };
	struct sk_span_ticket t;
	int saved = SK_ERRNO;
	void *ret;
	*why = 0;
	/* SHM_REMAP without an address is the kernel's EINVAL: not ours to
	 * turn into a placement. */
	if (!shmaddr && (shmflg & SHM_REMAP)) {
		*r = 0;
		return REAL(shmat)(shmid, shmaddr, shmflg);
	}
	if (!shmaddr) {
		void *a;
		*r = sk_span_place(&k, 0, 0, &t, &a);
		if (*r == 0) {
			SK_ERRNO = saved;
			/* Over the reservation, or into a hole of ours
			 * without replacing anything (core/span.c). */
			ret = REAL(shmat)(shmid, a, shmflg | (t.hole ? 0 : SHM_REMAP));
			sk_span_commit(&t, ret != (void *)-1);
			if (ret != (void *)-1) {
				*flags |= SK_F_PLACED;
				return ret;
			}
			/* The kernel refused the address, not necessarily the
			 * segment (a SHM_HUGETLB one wants huge-page alignment;
			 * a hole of ours that something else took: EINVAL or
			 * EEXIST): under warn, its own choice is the answer the
			 * program would have had. */
			if (SK_ERRNO == EEXIST && t.hole)
				SK_ERRNO = EINVAL;   /* shmat(2) has no EEXIST */
			if (SK_ERRNO != EINVAL || sk_span_policy() == SK_SPAN_STRICT)
				return ret;
			SK_ERRNO = saved;
			ret = REAL(shmat)(shmid, NULL, shmflg);
			if (ret != (void *)-1)
				*why = SK_W_SPAN_FULL;
			return ret;
		}
		/* Span off, re-entered, or the segment's own error: the
		 * kernel decides as it would have. */
		if (*r == -ENODEV || *r == -EDEADLK || *r == -EINVAL || *r == -EIDRM ||
		    *r == -EACCES) {
			SK_ERRNO = saved;
			return REAL(shmat)(shmid, NULL, shmflg);
		}
		if (sk_span_policy() == SK_SPAN_STRICT) {
			*why = SK_W_PLACE_REFUSED;
			SK_ERRNO = sk_span_strict_errno(SK_SPAN_SYSV, 0);
			return (void *)-1;
		}
		*why = SK_W_SPAN_FULL;
		SK_ERRNO = saved;
		return REAL(shmat)(shmid, NULL, shmflg);
	}
	uint64_t len = size ? sk_page_round(size) : 1;
	if (!sk_span_overlaps(shmaddr, len)) {
		*r = 0;
		SK_ERRNO = saved;
		return REAL(shmat)(shmid, shmaddr, shmflg);
	}
	int extra = 0;
	*r = sk_span_explicit(&k, shmaddr, len, (shmflg & SHM_REMAP) != 0, &t, &extra);
	if (*r == -EPERM) {
		*why = SK_W_PLACE_REFUSED;
		SK_ERRNO = sk_span_strict_errno(SK_SPAN_SYSV, 0);
		return (void *)-1;
	}
	SK_ERRNO = saved;
	if (*r < 0)
		return REAL(shmat)(shmid, shmaddr, shmflg);
	ret = REAL(shmat)(shmid, shmaddr, shmflg | extra);
	sk_span_commit(&t, ret != (void *)-1);
	if (*r == SK_SPAN_FOREIGN)
		*why = SK_W_ADDR_IN_SPAN;
	else if (ret != (void *)-1)
		*flags |= SK_F_PLACED;
	return ret;
}

SK_HOT_SYSV SK_EXPORT void *shmat(int shmid, const void *shmaddr, int shmflg)
{
	if (!sk_on())
		return REAL(shmat)(shmid, shmaddr, shmflg);
	uint64_t size = segment_size(shmid);
	unsigned flags = 0, why;
	int r;
	void *ret = shmat_span(shmid, shmaddr, shmflg, size, &flags, &why, &r);
	int sk_errno_ = SK_ERRNO;
	/* The kernel's own address in the span: one of our holes. */
	if (ret != (void *)-1 && !shmaddr && !(flags & SK_F_PLACED) &&
	    sk_span_overlaps(ret, size ? size : 1))
		sk_span_taken(ret, size ? size : 1);
	if (ret == (void *)-1) {
		sk_count_failed(SK_FN_SHMAT);
	} else if (sk_log_ready()) {
		uint64_t len = sk_page_round(size);
		struct sk_attach gone[MAX_PIECES];
		int ngone = 0;
		struct sk_attach a = { .addr = (uint64_t)ret, .len = len, .shmid = shmid,
				       .flags = (uint16_t)flags };
		if (sk_tab_lock()) {
			/* SHM_REMAP (the caller's or placement's) replaced
			 * whatever was mapped there. */
			if (len && ((shmflg & SHM_REMAP) || (flags & SK_F_PLACED)))
				ngone = sk_att_cut(a.addr, len, gone, MAX_PIECES);
			sk_att_add(&a);
			sk_tab_unlock();
		}
		record_implicit(gone, ngone);
		/* SK_F_PLACED marks a placement: no separate PLACE record. */
		sk_ev_sysv_at(shmid, shmflg, a.addr, (uint64_t)shmaddr, len, flags);
	}
	if (why && sk_log_ready())
		sk_ev_warn(why, why == SK_W_ADDR_IN_SPAN ? (int64_t)(uintptr_t)shmaddr : -r,
			   shmid, why == SK_W_ADDR_IN_SPAN ?
			   "shmat at an explicit address inside the span" :
			   why == SK_W_PLACE_REFUSED ? "shmat refused by the strict span policy" :
			   "shmat not placed in the span: kernel's address used");
	SK_LEAVE();
	return ret;
}

SK_HOT_SYSV SK_EXPORT int shmdt(const void *shmaddr)
{
	if (!sk_on())
		return REAL(shmdt)(shmaddr);
	int saved = SK_ERRNO, ret, shmid = -1;
	/* Inside the span, span code detaches (and keeps the range as a hole
	 * for the next placement there: core/span.c). */
	int r = sk_span_overlaps(shmaddr, 1) ? sk_span_unmap(shmaddr, 0, SK_SPAN_SHMDT, &shmid) : 0;
	if (r == 1) {
		ret = 0;
		SK_ERRNO = saved;
	} else {
		SK_ERRNO = saved;
		ret = REAL(shmdt)(shmaddr);
	}
	int sk_errno_ = SK_ERRNO;
	if (ret < 0) {
		sk_count_failed(SK_FN_SHMDT);
	} else if (sk_log_ready()) {
		struct sk_attach a = { .addr = (uint64_t)shmaddr, .shmid = -1 };
		if (sk_tab_lock()) {
			sk_att_take(a.addr, &a);
			sk_tab_unlock();
		}
		if (r < 0 && a.len)
			sk_span_rereserve(shmaddr, a.len);
		sk_ev_sysv_dt(a.shmid, a.addr, a.len, a.flags);
	}
	SK_LEAVE();
	return ret;
}

SK_HOT_SYSV SK_EXPORT int shmctl(int shmid, int cmd, struct shmid_ds *buf)
{
	int ret = REAL(shmctl)(shmid, cmd, buf);
	if (!sk_on())
		return ret;
	int op = cmd & ~IPC_64;
	if (op != IPC_RMID && op != IPC_SET && op != SHM_LOCK && op != SHM_UNLOCK) {
		/* Queries (IPC_STAT, IPC_INFO, SHM_INFO, SHM_STAT, SHM_STAT_ANY)
		 * change nothing: not lifetime events. */
		if (ret < 0) {
			SK_ENTER();
			sk_count_failed(SK_FN_SHMCTL);
			SK_LEAVE();
		}
		return ret;
	}
	SK_ENTER();
	if (ret < 0) {
		sk_count_failed(SK_FN_SHMCTL);
	} else {
		struct sk_sysv s = { .shmid = shmid };
		int have = 0;
		if (sk_tab_lock()) {
			have = op == IPC_RMID ? sk_sysv_take(shmid, &s) : sk_sysv_get(shmid, &s);
			sk_tab_unlock();
		}
		/* The span's entry goes with or without a log: placement
		 * goes on when recording cannot. */
		if (op == IPC_RMID) {
			struct sk_span_key k = { .kind = SK_SPAN_SYSV, .shmid = shmid };
			sk_span_removed(&k);
		}
		if (!sk_log_ready())
			goto out;
		uint32_t uid = 0, gid = 0, mode = 0;
		if (op == IPC_SET && buf) {
			uid = buf->shm_perm.uid;
			gid = buf->shm_perm.gid;
			mode = buf->shm_perm.mode & 0777;
		}
		sk_ev_sysv_ctl(shmid, op, uid, gid, mode, have ? s.key : 0,
			       have ? s.size : 0, 0);
	}
out:
	SK_LEAVE();
	return ret;
}
