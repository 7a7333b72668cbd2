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

SK_EXPORT int shmget(key_t key, size_t size, int shmflg)
{
	int ret = REAL(shmget)(key, size, shmflg);
	if (sk_unlikely(sk_busy) || !sk_on())
		return ret;
	SK_ENTER();
	if (ret < 0) {
		sk_count_failed(SK_FN_SHMGET);
	} else if (sk_log_ready()) {
		unsigned flags = 0;
		uint64_t segsz = size;
		uint32_t mode = (uint32_t)shmflg & 0777, cuid = sk_euid;
		struct sk_sysv known;
		int have = 0;
		if (sk_tab_lock()) {
			have = sk_sysv_get(ret, &known);
			sk_tab_unlock();
		}
		if ((shmflg & IPC_CREAT) && (key == IPC_PRIVATE || (shmflg & IPC_EXCL))) {
			flags |= SK_F_CREATED;
		} else if (have) {
			segsz = known.size;
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
			sk_sysv_note(ret, key, segsz, flags & SK_F_CREATED);
			sk_tab_unlock();
		}
		sk_ev_sysv_get(key, ret, segsz, shmflg, flags, mode, cuid);
	}
	SK_LEAVE();
	return ret;
}

/* The attached length: the segment's size rounded to pages. */
static uint64_t attached_len(int shmid)
{
	struct sk_sysv s;
	int have = 0;
	if (sk_tab_lock()) {
		have = sk_sysv_get(shmid, &s);
		sk_tab_unlock();
	}
	if (have && s.size)
		return sk_page_round(s.size);
	struct shmid_ds ds;
	if (REAL(shmctl)(shmid, IPC_STAT, &ds) < 0)
		return 0;
	if (sk_tab_lock()) {
		sk_sysv_note(shmid, ds.shm_perm.__key, ds.shm_segsz, 0);
		sk_tab_unlock();
	}
	return sk_page_round(ds.shm_segsz);
}

SK_EXPORT void *shmat(int shmid, const void *shmaddr, int shmflg)
{
	void *ret = REAL(shmat)(shmid, shmaddr, shmflg);
	if (sk_unlikely(sk_busy) || !sk_on())
		return ret;
	SK_ENTER();
	if (ret == (void *)-1) {
		sk_count_failed(SK_FN_SHMAT);
	} else if (sk_log_ready()) {
		uint64_t len = attached_len(shmid);
		struct sk_attach gone[MAX_PIECES];
		int ngone = 0;
		struct sk_attach a = { .addr = (uint64_t)ret, .len = len, .shmid = shmid };
		if (sk_tab_lock()) {
			/* SHM_REMAP replaced whatever was mapped there. */
			if ((shmflg & SHM_REMAP) && len)
				ngone = sk_att_cut(a.addr, len, gone, MAX_PIECES);
			sk_att_add(&a);
			sk_tab_unlock();
		}
		record_implicit(gone, ngone);
		sk_ev_sysv_at(shmid, shmflg, a.addr, (uint64_t)shmaddr, len, 0);
	}
	SK_LEAVE();
	return ret;
}

SK_EXPORT int shmdt(const void *shmaddr)
{
	int ret = REAL(shmdt)(shmaddr);
	if (sk_unlikely(sk_busy) || !sk_on())
		return ret;
	SK_ENTER();
	if (ret < 0) {
		sk_count_failed(SK_FN_SHMDT);
	} else if (sk_log_ready()) {
		struct sk_attach a = { .addr = (uint64_t)shmaddr, .shmid = -1 };
		struct sk_attach gone[MAX_PIECES];
		if (sk_tab_lock()) {
			if (sk_att_find(a.addr, &a) && a.len)
				sk_att_cut(a.addr, a.len, gone, MAX_PIECES);
			sk_tab_unlock();
		}
		sk_ev_sysv_dt(a.shmid, a.addr, a.len, 0);
	}
	SK_LEAVE();
	return ret;
}

SK_EXPORT int shmctl(int shmid, int cmd, struct shmid_ds *buf)
{
	int ret = REAL(shmctl)(shmid, cmd, buf);
	if (sk_unlikely(sk_busy) || !sk_on())
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
	} else if (sk_log_ready()) {
		struct sk_sysv s = { .shmid = shmid };
		int have = 0;
		if (sk_tab_lock()) {
			have = sk_sysv_get(shmid, &s);
			if (op == IPC_RMID)
				sk_sysv_forget(shmid);
			sk_tab_unlock();
		}
		uint32_t uid = 0, gid = 0, mode = 0;
		if (op == IPC_SET && buf) {
			uid = buf->shm_perm.uid;
			gid = buf->shm_perm.gid;
			mode = buf->shm_perm.mode & 0777;
		}
		sk_ev_sysv_ctl(shmid, op, uid, gid, mode, have ? s.key : 0,
			       have ? s.size : 0, 0);
	}
	SK_LEAVE();
	return ret;
}
