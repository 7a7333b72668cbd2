/* span_full - attaches N SysV segments (more than the span holds: 512
 * placements a table, 256 a process), then runs M shmget+shmat+shmdt+RMID
 * cycles, and removes everything. Prints how many of the cycle's attaches
 * the library placed in the span (SHMKEEPER_SPAN's range, given as
 * argv[3]) and how many it did not, all of them having succeeded.
 *   span_full N M SPAN_ADDR */
#include <err.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/shm.h>

int main(int argc, char **argv)
{
	if (argc < 4)
		errx(2, "usage: span_full N M SPAN_ADDR");
	int n = atoi(argv[1]), m = atoi(argv[2]);
	uintptr_t lo = (uintptr_t)strtoull(argv[3], NULL, 0), hi = lo + (64ull << 30);
	int *ids = calloc((size_t)n, sizeof *ids);
	char **at = calloc((size_t)n, sizeof *at);
	if (!ids || !at)
		err(1, "calloc");
	int rc = 0, placed = 0, elsewhere = 0;
	for (int i = 0; i < n; i++) {
		ids[i] = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (ids[i] < 0 || (at[i] = shmat(ids[i], NULL, 0)) == (void *)-1) {
			warn("segment %d", i);
			n = i + (ids[i] >= 0);
			at[i] = NULL;
			rc = 1;
			break;
		}
	}
	for (int i = 0; i < m && rc == 0; i++) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		char *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
		if (p == (void *)-1) {
			warn("cycle %d", i);
			rc = 1;
		} else {
			p[0] = 1;
			if ((uintptr_t)p >= lo && (uintptr_t)p < hi)
				placed++;
			else
				elsewhere++;
			if (shmdt(p) < 0)
				warn("shmdt"), rc = 1;
		}
		if (id >= 0 && shmctl(id, IPC_RMID, NULL) < 0)
			warn("IPC_RMID"), rc = 1;
	}
	for (int i = 0; i < n; i++) {
		if (at[i])
			shmdt(at[i]);
		shmctl(ids[i], IPC_RMID, NULL);
	}
	printf("placed %d elsewhere %d\n", placed, elsewhere);
	return rc;
}
