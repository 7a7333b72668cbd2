/* Threads against core/ in-process, without Criterion (whose fork-based
 * runner does not start under ThreadSanitizer): the TSan build runs this
 * (.ci/run-sanitizers tsan), the plain build too. 8 threads write records
 * into one log while 4 threads update the segment table; every record must
 * come back, none torn. Exit 0 or 1 with a message. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/logread.h"
#include "core/record.h"
#include "core/segtab.h"

#define WRITERS 8
#define RECORDS 5000
#define TABLERS 4
#define ROUNDS  20000

static void *writer(void *arg)
{
	for (int i = 0; i < RECORDS; i++)
		sk_ev_sysv_dt((int)(intptr_t)arg, 0x1000u * (unsigned)i, 4096, 0);
	return NULL;
}

static void *tabler(void *arg)
{
	uint64_t base = 0x100000000ull * (1 + (uint64_t)(intptr_t)arg);
	for (int i = 0; i < ROUNDS; i++) {
		struct sk_attach a = { .addr = base, .len = 8192, .shmid = i }, out[4];
		if (sk_tab_lock()) {
			sk_att_add(&a);
			sk_sysv_note(i, 0, 4096, 1);
			sk_tab_unlock();
		}
		(void)sk_att_maybe(base, 4096);
		if (sk_tab_lock()) {
			sk_att_cut(base, 8192, out, 4);
			sk_sysv_forget(i);
			sk_tab_unlock();
		}
	}
	return NULL;
}

int main(void)
{
	char dir[] = "/tmp/shmk-threads-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	/* libunwind's per-thread cache destructor runs after TSan has torn
	 * the exiting thread down and crashes it: under TSan the records go
	 * without stacks (the stack walk is libunwind's, not ours to check). */
#if defined(__SANITIZE_THREAD__)
	unsigned depth = 0;
#else
	unsigned depth = 4;
#endif
	sk_rec_cfg.bt_depth = depth;
	struct sk_log_identity id = { .bt_depth = depth };
	if (sk_log_open(dir, 16u << 20, &id) < 0) {
		fprintf(stderr, "core_threads: cannot open a log in %s\n", dir);
		return 1;
	}
	pthread_t w[WRITERS], t[TABLERS];
	for (int i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < TABLERS; i++)
		pthread_create(&t[i], NULL, tabler, (void *)(intptr_t)i);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	for (int i = 0; i < TABLERS; i++)
		pthread_join(t[i], NULL);

	struct sk_reader *r;
	if (sk_reader_open(&r, sk_log_path()) < 0) {
		fprintf(stderr, "core_threads: the log does not open\n");
		return 1;
	}
	struct sk_event ev;
	int rc, got = 0, bad = 0;
	while ((rc = sk_reader_next(r, &ev)) != SK_RD_END) {
		if (rc == SK_RD_EVENT && ev.type == SK_EV_SYSV_DT)
			got++;
		else if (rc != SK_RD_EVENT)
			bad++;
	}
	sk_reader_close(r);
	char cmd[64];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "core_threads: could not remove %s\n", dir);
	if (got != WRITERS * RECORDS || bad) {
		fprintf(stderr, "core_threads: %d records of %d, %d damaged\n", got,
			WRITERS * RECORDS, bad);
		return 1;
	}
	if (sk_att_maybe(0x100000000ull, 1 << 20)) {
		fprintf(stderr, "core_threads: the attachment envelope did not empty\n");
		return 1;
	}
	printf("core_threads: %d records from %d threads, table updated by %d threads\n",
	       got, WRITERS, TABLERS);
	return 0;
}
