/* Unit tests of the log writer (core/log.c) and the event records
 * (core/record.c), in-process, read back with core/logread. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/logread.h"
#include "core/record.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/shmk-unit-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	sk_rec_cfg.bt_depth = 8;
	sk_rec_cfg.self_lo = sk_rec_cfg.self_hi = 0;
}

static void teardown(void)
{
	sk_log_forget();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	system(cmd);
}

static int open_log(size_t capacity)
{
	struct sk_log_identity id = { .bt_depth = sk_rec_cfg.bt_depth };
	char *argv[] = { "unit", "arg1", NULL };
	id.argc = 2;
	id.argv = argv;
	return sk_log_open(dir, capacity, &id);
}

/* Reads the log back: counts records by type into counts[]. */
static int read_back(const char *path, unsigned counts[SK_EV_TYPE_MAX], int *problems)
{
	struct sk_reader *r;
	int rc = sk_reader_open(&r, path);
	cr_assert_eq(rc, 0, "reader: %s", r ? sk_reader_diag(r) : strerror(-rc));
	struct sk_event ev;
	int n = 0;
	*problems = 0;
	while ((rc = sk_reader_next(r, &ev)) != SK_RD_END) {
		cr_assert_geq(rc, 0);
		if (rc == SK_RD_EVENT) {
			cr_assert_lt(ev.type, SK_EV_TYPE_MAX);
			counts[ev.type]++;
			n++;
		} else
			(*problems)++;
	}
	sk_reader_close(r);
	return n;
}

TestSuite(core_log, .init = setup, .fini = teardown);

Test(core_log, header_and_records_round_trip)
{
	cr_assert_eq(open_log(1 << 20), 0);
	const char *path = sk_log_path();
	cr_assert(strstr(path, "/shmk-") != NULL);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "log files are 0600");

	sk_ev_sysv_get(0x1234, 7, 4096, 01600, SK_F_CREATED, 0600, 0);
	sk_ev_sysv_at(7, 0, 0x7000, 0, 4096, 0);
	sk_ev_sysv_dt(7, 0x7000, 4096, 0);
	sk_ev_sysv_ctl(7, 0, 0, 0, 0, 0x1234, 4096, 0);
	sk_ev_posix_open("/name", 3, 0102, 1, 2, 0, 0600, 0, SK_F_CREATED);
	sk_ev_posix_unlink("/name", 1, 2);
	sk_log_close(0);

	unsigned counts[SK_EV_TYPE_MAX] = { 0 };
	int problems;
	read_back(path, counts, &problems);
	cr_assert_eq(problems, 0);
	cr_assert_eq(counts[SK_EV_SYSV_GET], 1);
	cr_assert_eq(counts[SK_EV_SYSV_AT], 1);
	cr_assert_eq(counts[SK_EV_SYSV_DT], 1);
	cr_assert_eq(counts[SK_EV_SYSV_CTL], 1);
	cr_assert_eq(counts[SK_EV_POSIX_OPEN], 1);
	cr_assert_eq(counts[SK_EV_POSIX_UNLINK], 1);
	cr_assert_eq(counts[SK_EV_EXIT], 1);
	cr_assert_geq(counts[SK_EV_MODULE], 2, "the executable and libc at least");

	struct sk_reader *r;
	cr_assert_eq(sk_reader_open(&r, path), 0);
	const struct sk_file_header *h = sk_reader_header(r);
	cr_assert_eq(h->pid, (uint32_t)getpid());
	cr_assert_eq(h->version, SK_VERSION);
	cr_assert_eq(h->argc, 2);
	cr_assert_str_eq(sk_args_next(h, NULL), "unit");
	cr_assert_neq(h->start_ticks, 0);
	cr_assert_neq(h->ipc_ns, 0);
	cr_assert(h->flags & SK_HF_CLOSED);
	sk_reader_close(r);
}

Test(core_log, posix_names_and_frames_survive)
{
	cr_assert_eq(open_log(1 << 20), 0);
	char name[255];
	memset(name, 'n', sizeof name - 1);
	name[0] = '/';
	name[sizeof name - 1] = '\0';
	sk_ev_posix_open(name, 5, 0, 9, 10, 4096, 0600, 0, 0);
	struct sk_reader *r;
	cr_assert_eq(sk_reader_open(&r, sk_log_path()), 0);
	struct sk_event ev;
	int found = 0;
	while (sk_reader_next(r, &ev) == SK_RD_EVENT)
		if (ev.type == SK_EV_POSIX_OPEN) {
			found = 1;
			cr_assert_str_eq(ev.name, name);
			cr_assert_gt(ev.nframes, 0, "a backtrace was taken");
			cr_assert_leq(ev.nframes, 8, "depth is honoured");
		}
	cr_assert(found);
	sk_reader_close(r);
}

Test(core_log, backtraces_off_at_depth_zero)
{
	sk_rec_cfg.bt_depth = 0;
	cr_assert_eq(open_log(1 << 20), 0);
	sk_ev_sysv_get(1, 2, 3, 0, 0, 0, 0);
	struct sk_reader *r;
	cr_assert_eq(sk_reader_open(&r, sk_log_path()), 0);
	struct sk_event ev;
	while (sk_reader_next(r, &ev) == SK_RD_EVENT)
		if (ev.type == SK_EV_SYSV_GET)
			cr_assert_eq(ev.nframes, 0);
	sk_reader_close(r);
}

/* Writes 40000 records into a log of capacity bytes that can hold fewer:
 * the first [lo, hi) of them are in it, the rest dropped and counted, and
 * the reader finds no damage (a full log ends where its file does). */
static void fill_past_full(size_t capacity, unsigned lo, unsigned hi)
{
	sk_rec_cfg.bt_depth = 0;
	cr_assert_eq(open_log(capacity), 0);
	const char *path = sk_log_path();
	for (int n = 0; n < 40000; n++)
		sk_ev_sysv_at(n, 0, 0x1000, 0, 4096, 0);
	unsigned counts[SK_EV_TYPE_MAX] = { 0 };
	int problems;
	read_back(path, counts, &problems);
	cr_assert_eq(problems, 0, "a full log reads as ending where the file does");
	cr_assert_geq(counts[SK_EV_SYSV_AT], lo, "the file grew past its first 256 KiB");
	cr_assert_lt(counts[SK_EV_SYSV_AT], hi, "more records than the room for them");
	struct sk_reader *r;
	cr_assert_eq(sk_reader_open(&r, path), 0);
	cr_assert_eq(sk_reader_header(r)->dropped, 40000u - counts[SK_EV_SYSV_AT]);
	cr_assert(sk_reader_header(r)->flags & SK_HF_FULL);
	sk_reader_close(r);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_leq((size_t)st.st_size, capacity);
}

/* The file grows past its first size, chunk by chunk, and every record is
 * there; past the capacity records are dropped and counted, never written
 * outside the file. 1 MiB holds fewer than 40000 records of 56 bytes. */
Test(core_log, grows_then_drops_when_full)
{
	fill_past_full(1 << 20, 10000, 40000);
}

/* The file system fills up (a 512 KiB tmpfs, in a mount namespace of our
 * own): the log stops growing, the records past that are dropped and
 * counted, and no store lands beyond what was written (a SIGBUS). */
Test(core_log, drops_when_the_disk_is_full)
{
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("shmk-full", dir, "tmpfs", 0, "size=512k,mode=0700") != 0)
		cr_skip_test("cannot mount a small tmpfs (%s): needs root", strerror(errno));
	fill_past_full(16 << 20, 5000, 10000);
	sk_log_forget();
	umount2(dir, MNT_DETACH);
}

static void *writer(void *arg)
{
	for (int i = 0; i < 5000; i++)
		sk_ev_sysv_dt((int)(intptr_t)arg, 0x2000, 4096, 0);
	return NULL;
}

/* Threads write at once: no record lost, none torn. */
Test(core_log, concurrent_writers)
{
	sk_rec_cfg.bt_depth = 4;
	cr_assert_eq(open_log(16 << 20), 0);
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	unsigned counts[SK_EV_TYPE_MAX] = { 0 };
	int problems;
	read_back(sk_log_path(), counts, &problems);
	cr_assert_eq(problems, 0);
	cr_assert_eq(counts[SK_EV_SYSV_DT], 40000);
}

/* A record is in the file the moment it is committed: a child SIGKILLed
 * right after writing leaves every record it committed. */
Test(core_log, sigkill_loses_nothing)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		sk_log_forget();
		if (open_log(1 << 20) < 0)
			_exit(1);
		for (int i = 0; i < 1000; i++)
			sk_ev_sysv_get(i, i, 4096, 0, 0, 0, 0);
		char c = 1;
		if (write(p[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char c;
	cr_assert_eq(read(p[0], &c, 1), 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512] = "";
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "shmk-", 5) == 0)
			snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
	closedir(d);
	cr_assert_neq(path[0], 0);
	unsigned counts[SK_EV_TYPE_MAX] = { 0 };
	int problems;
	read_back(path, counts, &problems);
	cr_assert_eq(counts[SK_EV_SYSV_GET], 1000);
	cr_assert_eq(counts[SK_EV_EXIT], 0);
}

/* O_EXCL: a second process image of the same pid gets a file of its own. */
Test(core_log, never_reuses_a_file)
{
	cr_assert_eq(open_log(1 << 20), 0);
	char first[4096];
	strcpy(first, sk_log_path());
	sk_log_forget();
	cr_assert_eq(open_log(1 << 20), 0);
	cr_assert_str_neq(first, sk_log_path());
}

Test(core_log, refuses_a_missing_directory)
{
	strcat(dir, "/missing");
	cr_assert_lt(open_log(1 << 20), 0);
	dir[strlen(dir) - strlen("/missing")] = '\0';
}
