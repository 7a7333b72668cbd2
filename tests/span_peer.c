/* One of two unrelated processes (started apart by tests/span_peers.sh)
 * that place the same SysV segment and the same POSIX object through the
 * span, the way the preload wrappers do (core/span.h), and share a linked
 * list of raw pointers in each.
 *   span_peer make DIR NAME   create both, build the lists, wait for the
 *                             other, check its nodes, remove everything
 *   span_peer join DIR NAME   attach both, check the addresses and lists,
 *                             append a node to each
 * Exit 0 on success, 1 on a failed check, 77 when the span is taken. */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/span.h"

#define SEG 65536

struct node { struct node *next; char text[24]; };
struct head { void *self; struct node *first; char *bump; };

static void *place_sysv(int id)
{
	struct sk_span_key k = { .kind = SK_SPAN_SYSV, .shmid = id };
	struct sk_span_ticket t;
	void *a;
	int r = sk_span_place(&k, 0, 0, &t, &a);
	if (r < 0)
		errx(1, "sk_span_place(shmid %d): %s", id, strerror(-r));
	void *p = shmat(id, a, SHM_REMAP);
	sk_span_commit(&t, p != (void *)-1);
	if (p == (void *)-1)
		err(1, "shmat");
	return p;
}

static void *place_posix(const char *name, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		err(1, "fstat");
	struct sk_span_key k = { .kind = SK_SPAN_POSIX, .name = name, .dev = st.st_dev,
				 .ino = st.st_ino, .size = (uint64_t)st.st_size };
	struct sk_span_ticket t;
	void *a;
	int r = sk_span_place(&k, SEG, 0, &t, &a);
	if (r < 0)
		errx(1, "sk_span_place(%s): %s", name, strerror(-r));
	void *p = mmap(a, SEG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	sk_span_commit(&t, p != MAP_FAILED);
	if (p == MAP_FAILED)
		err(1, "mmap");
	return p;
}

static void push(struct head *h, const char *text)
{
	struct node *n = (struct node *)h->bump;
	h->bump += sizeof *n;
	snprintf(n->text, sizeof n->text, "%s", text);
	n->next = h->first;
	h->first = n;
}

static int walk(struct head *h, char *out, size_t len)
{
	int count = 0;
	out[0] = '\0';
	for (struct node *n = h->first; n; n = n->next, count++) {
		/* Every pointer must land inside the segment. */
		if ((char *)n < (char *)h || (char *)n >= (char *)h + SEG)
			errx(1, "pointer %p outside the segment at %p", (void *)n, (void *)h);
		strncat(out, n->text, len - strlen(out) - 1);
	}
	return count;
}

static void unmap(void *p, int how)
{
	int id;
	if (sk_span_unmap(p, how == SK_SPAN_MUNMAP ? SEG : 0, how, &id) != 1)
		errx(1, "sk_span_unmap %p", p);
}

int main(int argc, char **argv)
{
	if (argc != 4)
		errx(2, "usage: span_peer make|join DIR NAME");
	const char *dir = argv[2], *name = argv[3];
	char path[512], text[256];
	struct sk_span_cfg cfg;
	if (sk_span_config_env(&cfg) < 0)
		errx(2, "bad SHMKEEPER_SPAN");
	if (sk_span_init(&cfg) == -EEXIST) {
		fprintf(stderr, "span_peer: span taken\n");
		return 77;
	}
	bool make = strcmp(argv[1], "make") == 0;
	snprintf(path, sizeof path, "%s/shmid", dir);
	int id, fd;
	if (make) {
		if ((id = shmget(IPC_PRIVATE, SEG, IPC_CREAT | 0600)) < 0)
			err(1, "shmget");
		if ((fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600)) < 0 || ftruncate(fd, SEG) < 0)
			err(1, "shm_open %s", name);
	} else {
		FILE *f = fopen(path, "r");
		if (!f || fscanf(f, "%d", &id) != 1)
			errx(1, "no shmid in %s", path);
		fclose(f);
		if ((fd = shm_open(name, O_RDWR, 0)) < 0)
			err(1, "shm_open %s", name);
	}
	struct head *hs = place_sysv(id), *hp = place_posix(name, fd);
	if (make) {
		for (struct head *h = hs; h; h = h == hs ? hp : NULL) {
			h->self = h;
			h->bump = (char *)(h + 1);
			push(h, "one,");
			push(h, "two,");
		}
		FILE *f = fopen(path, "w");
		if (!f || fprintf(f, "%d\n", id) < 0 || fclose(f) != 0)
			err(1, "%s", path);
		/* Wait (10 s at most) for the other process. */
		snprintf(path, sizeof path, "%s/done", dir);
		for (int i = 0; i < 1000 && access(path, F_OK) != 0; i++) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		for (struct head *h = hs; h; h = h == hs ? hp : NULL)
			if (walk(h, text, sizeof text) != 3 || strcmp(text, "three,two,one,") != 0)
				errx(1, "list at %p reads '%s'", (void *)h, text);
		printf("sysv %p posix %p: %s\n", (void *)hs, (void *)hp, text);
		unmap(hs, SK_SPAN_SHMDT);
		unmap(hp, SK_SPAN_MUNMAP);
		struct sk_span_key ks = { .kind = SK_SPAN_SYSV, .shmid = id };
		shmctl(id, IPC_RMID, NULL);
		sk_span_removed(&ks);
		shm_unlink(name);
		sk_span_fini();
		return 0;
	}
	/* The maker wrote its own addresses into the segments. */
	if (hs->self != hs || hp->self != hp)
		errx(1, "placed at %p/%p, the maker at %p/%p", (void *)hs, (void *)hp, hs->self, hp->self);
	for (struct head *h = hs; h; h = h == hs ? hp : NULL) {
		if (walk(h, text, sizeof text) != 2 || strcmp(text, "two,one,") != 0)
			errx(1, "list at %p reads '%s'", (void *)h, text);
		push(h, "three,");
	}
	printf("sysv %p posix %p: same addresses\n", (void *)hs, (void *)hp);
	unmap(hs, SK_SPAN_SHMDT);
	unmap(hp, SK_SPAN_MUNMAP);
	close(fd);
	sk_span_fini();
	snprintf(path, sizeof path, "%s/done", dir);
	int d = open(path, O_CREAT | O_WRONLY, 0600);
	return d < 0;
}
