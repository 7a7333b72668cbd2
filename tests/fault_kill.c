/* fault_kill - SIGKILL at random points (issue 8; issue 3's "killed right
 * after a call"). Run under the library by tests/fault_kill.sh.
 *
 * Usage: fault_kill LOGDIR ROUNDS SEED
 * Each round forks a child that makes random SysV and POSIX calls and tells
 * the parent, through a pipe, each one that returned; the parent SIGKILLs it
 * at a random moment, then reads the child's log (core/logread.h) and checks
 * that every call the child reported is in it. Exit 0, or 1 naming the round
 * (replay with the same SEED). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/logread.h"

struct done { int32_t type; int32_t id; uint64_t ino; };  /* one completed call */

static uint64_t rng;
static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void child(int wfd, uint64_t seed, const char *pfx, unsigned self_kill)
{
	rng = seed;
	int ids[64], nids = 0;
	for (unsigned i = 0;; i++) {
		struct done d = { 0, -1, 0 };
		unsigned r = (unsigned)(rnd() % 4);
		/* At most 64 live: a long-lived child's random walk went past
		 * that, and a ring of ids then handed out one removed already
		 * (IPC_RMID: EINVAL, seed 1795456391 round 79). */
		if (nids == 0 || (r == 0 && nids < 64)) {
			int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
			if (id < 0)
				_exit(3);
			ids[nids++] = id;
			d = (struct done){ SK_EV_SYSV_GET, id, 0 };
		} else if (r <= 1) {
			int id = ids[--nids];
			if (shmctl(id, IPC_RMID, NULL) < 0)
				_exit(4);
			d = (struct done){ SK_EV_SYSV_CTL, id, 0 };
		} else if (r == 2) {
			char name[64];
			snprintf(name, sizeof name, "/%s-%u", pfx, i % 8);
			int fd = shm_open(name, O_RDWR | O_CREAT, 0600);
			if (fd < 0)
				_exit(5);
			struct stat st;
			fstat(fd, &st);
			close(fd);
			d = (struct done){ SK_EV_POSIX_OPEN, (int32_t)(i % 8), (uint64_t)st.st_ino };
		} else {
			char name[64];
			snprintf(name, sizeof name, "/%s-%u", pfx, (unsigned)(rnd() % 8));
			if (shm_unlink(name) < 0)
				continue;      /* ENOENT: not an event */
			d = (struct done){ SK_EV_POSIX_UNLINK, 0, 0 };
		}
		/* The call returned: say so. The parent may kill us right now. */
		if (write(wfd, &d, sizeof d) != sizeof d)
			_exit(6);
		/* Some rounds: killed right after a call returned (issue 3). */
		if (self_kill && i + 1 >= self_kill)
			raise(SIGKILL);
	}
}

static int find_log(const char *dir, pid_t pid, char *path, size_t n)
{
	snprintf(path, n, "%s/shmk-%d-0.shmk", dir, (int)pid);
	return access(path, R_OK);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: fault_kill LOGDIR ROUNDS SEED\n");
		return 2;
	}
	const char *dir = argv[1];
	int rounds = atoi(argv[2]);
	uint64_t seed = strtoull(argv[3], NULL, 0);
	char pfx[32];
	snprintf(pfx, sizeof pfx, "shmkk%d", (int)getpid());
	rng = seed;
	unsigned long total = 0;
	int bad = 0;
	for (int round = 0; round < rounds && !bad; round++) {
		int p[2];
		if (pipe(p) < 0)
			return 99;
		uint64_t cseed = rnd();
		unsigned self_kill = round % 10 == 0 ? 1 + (unsigned)(rnd() % 50) : 0;
		pid_t c = fork();
		if (c == 0) {
			close(p[0]);
			child(p[1], cseed, pfx, self_kill);
		}
		close(p[1]);
		/* Kill at a random moment: 0 to 20 ms in, on a busy child. */
		struct timespec ts = { 0, (long)(rnd() % 20000000) };
		nanosleep(&ts, NULL);
		kill(c, SIGKILL);
		int st;
		waitpid(c, &st, 0);
		if (!WIFSIGNALED(st)) {
			fprintf(stderr, "round %d: the child exited with %#x before the kill\n", round, st);
			bad = 1;
		}
		struct done d, *ds = NULL;
		size_t nd = 0, cap = 0;
		while (read(p[0], &d, sizeof d) == sizeof d) {
			if (nd == cap)
				ds = realloc(ds, (cap = cap ? 2 * cap : 256) * sizeof *ds);
			ds[nd++] = d;
		}
		close(p[0]);
		char path[4096];
		if (nd && find_log(dir, c, path, sizeof path) < 0) {
			fprintf(stderr, "round %d: no log for child %d\n", round, (int)c);
			bad = 1;
		}
		struct sk_reader *r = NULL;
		size_t k = 0;
		if (nd && !bad && sk_reader_open(&r, path) == 0) {
			struct sk_event ev;
			int rc;
			/* In order: the child's calls were made one after another. */
			while (k < nd && (rc = sk_reader_next(r, &ev)) != SK_RD_END) {
				if (rc == SK_RD_BAD) {
					fprintf(stderr, "round %d: damaged record: %s\n", round, sk_reader_diag(r));
					bad = 1;
				}
				if (rc != SK_RD_EVENT || ev.type != (unsigned)ds[k].type)
					continue;
				if (ev.type == SK_EV_SYSV_GET &&
				    ((const struct sk_ev_sysv_get *)(const void *)ev.rec)->shmid != ds[k].id)
					continue;
				if (ev.type == SK_EV_SYSV_CTL &&
				    ((const struct sk_ev_sysv_ctl *)(const void *)ev.rec)->shmid != ds[k].id)
					continue;
				if (ev.type == SK_EV_POSIX_OPEN &&
				    ((const struct sk_ev_posix_open *)(const void *)ev.rec)->ino != ds[k].ino)
					continue;
				k++;
			}
			sk_reader_close(r);
		} else if (nd && !bad) {
			fprintf(stderr, "round %d: cannot read %s\n", round, path);
			bad = 1;
		}
		if (!bad && k != nd) {
			fprintf(stderr, "round %d (seed %" PRIu64 "): %zu of %zu completed calls in the log; "
				"first missing: type %d id %d\n", round, seed, k, nd, ds[k].type, ds[k].id);
			bad = 1;
		}
		total += nd;
		free(ds);
		/* What the killed child left: its segments and names. */
		FILE *f = fopen("/proc/sysvipc/shm", "r");
		char line[512];
		while (f && fgets(line, sizeof line, f)) {
			long long key;
			int id, cpid;
			unsigned perms;
			unsigned long long size;
			if (sscanf(line, "%lld %d %o %llu %d", &key, &id, &perms, &size, &cpid) == 5 &&
			    cpid == c)
				shmctl(id, IPC_RMID, NULL);
		}
		if (f)
			fclose(f);
		if (round % 20 != 19 && !bad)
			unlink(path);        /* keep a few for the report */
	}
	for (int i = 0; i < 8; i++) {
		char name[64];
		snprintf(name, sizeof name, "/%s-%d", pfx, i);
		shm_unlink(name);
	}
	printf("%d rounds, %lu completed calls, all in the logs: %s\n", rounds, total,
	       bad ? "NO" : "yes");
	return bad;
}
