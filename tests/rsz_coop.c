/* rszshm's example: fork N processes that grow one resizable segment while
 * filling it cooperatively, one byte each per turn; then check that every
 * byte was written exactly once. Exit 0 on success. */
#include <err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmkeeper.h"

int main(int argc, char *argv[])
{
	int pidcnt = argc > 1 ? atoi(argv[1]) : 8;
	int stopval = argc > 2 ? atoi(argv[2]) : 1024 * 1024 - 64;
	struct shmk_rsz *r;
	int n, i;

	if (pidcnt <= 0 || stopval <= 0)
		errx(2, "usage: rsz_coop [PROCESSES [BYTES]]");
	if (!shmk_rsz_mkm(r, 4096, NULL))
		err(1, "shmk_rsz_mkm");

	for (n = 0; n < pidcnt - 1; n++) {
		pid_t pid = fork();
		if (pid < 0)
			err(1, "fork");
		if (pid == 0)
			break;
	}
	char *m = (char *)r->dat + sizeof(int);
#define next() (__atomic_fetch_add((int *)r->dat, 1, __ATOMIC_SEQ_CST))
	for (i = next(); i < stopval; i = next()) {
		while ((size_t)i >= r->cap - sizeof(int))
			if (shmk_rsz_grow(r) < 0)
				err(1, "shmk_rsz_grow");
		if (m[i] != '\0')
			errx(1, "byte %d written twice", i);
		m[i] = (char)('A' + n);
		if ((i & 255) == 0)
			kill(0, 0); /* busy work, as in rszshm's example */
	}
	if (n < pidcnt - 1) {
		/* A child: detach only; the parent checks and removes. */
		if (shmk_rsz_dt(r) != 0)
			err(1, "shmk_rsz_dt");
		free(r);
		return 0;
	}
	int bad = 0, st;
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad = 1;
	if (shmk_rsz_up(r) < 0)
		err(1, "shmk_rsz_up");
	long counts[26] = { 0 };
	for (i = 0; i < stopval; i++) {
		if (m[i] < 'A' || m[i] >= 'A' + pidcnt)
			errx(1, "byte %d not written (%#x)", i, m[i]);
		counts[m[i] - 'A']++;
	}
	for (i = 0; i < pidcnt; i++)
		printf("%c %ld\t", 'A' + i, counts[i]);
	printf("\ncap %zu, %s\n", r->cap, r->fname);
	if (shmk_rsz_free(r) != 0)
		err(1, "shmk_rsz_free");
	return bad;
}
