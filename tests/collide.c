/* A program that defines functions with the names of the library's internal
 * helpers (sk_*) runs its own, preloaded or not: the library exports only the
 * wrapped calls and the shmk_ API (preload/libshmkeeper.map). */
#include <stdio.h>
#include <sys/shm.h>

int sk_log_open(void);
int sk_tab_lock(void);
int sk_say(void);
int sk_on_slow(void);
int sk_span_place(void);

int sk_log_open(void) { return 11; }
int sk_tab_lock(void) { return 22; }
int sk_say(void) { return 33; }
int sk_on_slow(void) { return 44; }
int sk_span_place(void) { return 55; }

int main(void)
{
	/* A recorded call, so that the library's own helpers run too. */
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (id >= 0)
		shmctl(id, IPC_RMID, NULL);
	int sum = sk_log_open() + sk_tab_lock() + sk_say() + sk_on_slow() + sk_span_place();
	printf("%d\n", sum);
	return sum == 165 && id >= 0 ? 0 : 1;
}
