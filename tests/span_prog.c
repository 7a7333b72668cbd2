/* A plain program for tests/span_preload.sh: it knows nothing of
 * shmkeeper and uses only shmget/shmat/shmdt/shmctl and shm_open/mmap/
 * munmap/shm_unlink; the span is the preloaded library's doing.
 *   span_prog make KEY NAME DIR  create a SysV segment (key KEY) and a POSIX
 *       object NAME, 64 KiB each, attached without an address; build a list
 *       of raw pointers in each; write "ADDR_SYSV ADDR_POSIX" to DIR/make;
 *       wait for DIR/joined; walk both lists (the joiner's node included);
 *       detach and remove both.
 *   span_prog join KEY NAME DIR  open and attach both without an address;
 *       write the addresses to DIR/join; check that each segment's header
 *       names its own address (same address as the maker's), walk the lists,
 *       append a node to each, touch DIR/joined.
 *   span_prog one SIZE NAME      one private SysV segment and one POSIX
 *       object NAME of SIZE bytes, attached without an address; prints
 *       "sysv ADDR" or "sysv error ERRNO" and the same for posix; removes
 *       both. Exit 0 if both attached, 3 if not.
 *   span_prog fixed ADDR         a private SysV segment attached at ADDR
 *       (shmat with that address), then a second one without an address;
 *       prints "fixed ADDR|error ERRNO" and "other ADDR"; checks that both
 *       hold their own data; removes both. Exit 0, 3 if the fixed attach
 *       failed, 1 on a failed check.
 *   span_prog cycle N NAME       N times: a private 4 KiB SysV segment and
 *       a 4 KiB POSIX object NAME, each created, attached without an
 *       address, touched, detached and removed; prints "sysv ADDR K" and
 *       "posix ADDR K": the first address and how many distinct ones.
 *   span_prog quit self|child    see quit() below: ends with _exit.
 * Exit 1 on a failed check. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEG 65536

struct node { struct node *next; char text[24]; };
struct head { void *self; struct node *first; char *bump; };

static int fail(const char *what)
{
	fprintf(stderr, "span_prog: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void put(const char *dir, const char *file, const char *text)
{
	char path[512], tmp[520];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		fail(path);
}

static void list_init(struct head *h)
{
	h->self = h;
	h->first = NULL;
	h->bump = (char *)(h + 1);
}

static void list_add(struct head *h, const char *text)
{
	struct node *n = (struct node *)h->bump;
	h->bump += sizeof *n;
	snprintf(n->text, sizeof n->text, "%s", text);
	n->next = h->first;
	h->first = n;    /* a raw pointer: valid only at the same address */
}

/* Walks the list through its raw pointers; "a,b,c," into out. */
static int list_walk(struct head *h, char *out, size_t len)
{
	out[0] = '\0';
	int n = 0;
	for (struct node *p = h->first; p; p = p->next) {
		if ((char *)p < (char *)(h + 1) || (char *)p >= (char *)h + SEG || ++n > 100)
			return -1;
		strncat(out, p->text, len - strlen(out) - 2);
		strcat(out, ",");
	}
	return n;
}

static void *attach_posix(const char *name, int flags, int *fdp)
{
	int fd = shm_open(name, flags, 0600);
	if (fd < 0)
		fail("shm_open");
	if ((flags & O_CREAT) && ftruncate(fd, SEG) < 0)
		fail("ftruncate");
	void *p = mmap(NULL, SEG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		fail("mmap");
	*fdp = fd;
	return p;
}

static int make(key_t key, const char *name, const char *dir)
{
	int id = shmget(key, SEG, IPC_CREAT | IPC_EXCL | 0600), fd;
	if (id < 0)
		fail("shmget");
	struct head *s = shmat(id, NULL, 0);
	if (s == (void *)-1)
		fail("shmat");
	struct head *p = attach_posix(name, O_CREAT | O_EXCL | O_RDWR, &fd);
	list_init(s);
	list_init(p);
	list_add(s, "one");
	list_add(s, "two");
	list_add(p, "uno");
	list_add(p, "dos");
	char text[64], path[512];
	snprintf(text, sizeof text, "%p %p\n", (void *)s, (void *)p);
	put(dir, "make", text);
	snprintf(path, sizeof path, "%s/joined", dir);
	for (int i = 0; access(path, F_OK) != 0; i++) {
		if (i > 1000) {
			fprintf(stderr, "span_prog: nobody joined\n");
			break;
		}
		usleep(10000);
	}
	char ls[256], lp[256];
	int ns = list_walk(s, ls, sizeof ls), np = list_walk(p, lp, sizeof lp);
	printf("make: sysv %p [%s] posix %p [%s]\n", (void *)s, ls, (void *)p, lp);
	int ok = ns == 3 && strcmp(ls, "three,two,one,") == 0 &&
		 np == 3 && strcmp(lp, "tres,dos,uno,") == 0;
	shmdt(s);
	shmctl(id, IPC_RMID, NULL);
	munmap(p, SEG);
	close(fd);
	shm_unlink(name);
	return ok ? 0 : 1;
}

static int join(key_t key, const char *name, const char *dir)
{
	int id = shmget(key, 0, 0), fd;
	if (id < 0)
		fail("shmget");
	struct head *s = shmat(id, NULL, 0);
	if (s == (void *)-1)
		fail("shmat");
	struct head *p = attach_posix(name, O_RDWR, &fd);
	char text[64], ls[256], lp[256];
	snprintf(text, sizeof text, "%p %p\n", (void *)s, (void *)p);
	put(dir, "join", text);
	int ok = 1;
	if (s->self != s || p->self != p) {
		printf("join: not at the maker's addresses: sysv %p (maker %p) posix %p (maker %p)\n",
		       (void *)s, s->self, (void *)p, p->self);
		ok = 0;
	} else {
		int ns = list_walk(s, ls, sizeof ls), np = list_walk(p, lp, sizeof lp);
		printf("join: sysv %p [%s] posix %p [%s]\n", (void *)s, ls, (void *)p, lp);
		ok = ns == 2 && strcmp(ls, "two,one,") == 0 && np == 2 && strcmp(lp, "dos,uno,") == 0;
		list_add(s, "three");
		list_add(p, "tres");
	}
	put(dir, "joined", "");
	shmdt(s);
	munmap(p, SEG);
	close(fd);
	return ok ? 0 : 1;
}

static int one(size_t size, const char *name)
{
	int bad = 0, fd;
	int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
	if (id < 0)
		fail("shmget");
	void *s = shmat(id, NULL, 0);
	if (s == (void *)-1) {
		printf("sysv error %d\n", errno);
		bad = 1;
	} else {
		printf("sysv %p\n", s);
		memset(s, 1, size);
		shmdt(s);
	}
	shmctl(id, IPC_RMID, NULL);
	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0)
		fail("shm_open");
	if (ftruncate(fd, (off_t)size) < 0)
		fail("ftruncate");
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		printf("posix error %d\n", errno);
		bad = 1;
	} else {
		printf("posix %p\n", p);
		memset(p, 2, size);
		munmap(p, size);
	}
	close(fd);
	shm_unlink(name);
	return bad ? 3 : 0;
}

static int fixed(void *addr)
{
	int a = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	int b = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (a < 0 || b < 0)
		fail("shmget");
	int ret = 0;
	char *p = shmat(a, addr, 0);
	if (p == (void *)-1) {
		printf("fixed error %d\n", errno);
		ret = 3;
	} else {
		printf("fixed %p\n", (void *)p);
		if (p != addr)
			ret = 1;
		strcpy(p, "fixed");
	}
	char *q = shmat(b, NULL, 0);
	if (q == (void *)-1)
		fail("shmat");
	printf("other %p\n", (void *)q);
	strcpy(q, "other");
	if (ret == 0 && (strcmp(p, "fixed") != 0 || q == p))
		ret = 1;
	if (p != (void *)-1)
		shmdt(p);
	shmdt(q);
	shmctl(a, IPC_RMID, NULL);
	shmctl(b, IPC_RMID, NULL);
	return ret;
}

static int cycle(int n, const char *name)
{
	void *first[2] = { NULL, NULL };
	int distinct[2] = { 0, 0 };
	void *seen[2][64];
	for (int i = 0; i < n; i++) {
		void *a[2];
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		if (id < 0)
			fail("shmget");
		if ((a[0] = shmat(id, NULL, 0)) == (void *)-1)
			fail("shmat");
		*(volatile char *)a[0] = 1;
		if (shmdt(a[0]) < 0 || shmctl(id, IPC_RMID, NULL) < 0)
			fail("shmdt/IPC_RMID");
		int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
		if (fd < 0 || ftruncate(fd, 4096) < 0)
			fail("shm_open/ftruncate");
		a[1] = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (a[1] == MAP_FAILED)
			fail("mmap");
		*(volatile char *)a[1] = 1;
		if (munmap(a[1], 4096) < 0 || close(fd) < 0 || shm_unlink(name) < 0)
			fail("munmap/close/shm_unlink");
		for (int k = 0; k < 2; k++) {
			int j = 0;
			while (j < distinct[k] && j < 64 && seen[k][j] != a[k])
				j++;
			if (j == distinct[k]) {
				if (j < 64)
					seen[k][j] = a[k];
				distinct[k]++;
			}
			if (!first[k])
				first[k] = a[k];
		}
	}
	printf("sysv %p %d\nposix %p %d\n", first[0], distinct[0], first[1], distinct[1]);
	return 0;
}

/* quit self|child: a private SysV segment attached without an address,
 * detached and removed, by this process or by a fork child; whichever did
 * it ends with _exit, which runs no destructor. Prints "quit ADDR". */
static int quit(const char *who)
{
	pid_t pid = strcmp(who, "child") == 0 ? fork() : 0;
	if (pid < 0)
		return 1;
	if (pid > 0) {
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
			return 1;
		return WEXITSTATUS(st);
	}
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	void *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
	if (p == (void *)-1)
		_exit(1);
	printf("quit %p\n", p);
	shmdt(p);
	shmctl(id, IPC_RMID, NULL);
	_exit(0);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "make") == 0)
		return make((key_t)strtol(argv[2], NULL, 0), argv[3], argv[4]);
	if (argc == 5 && strcmp(argv[1], "join") == 0)
		return join((key_t)strtol(argv[2], NULL, 0), argv[3], argv[4]);
	if (argc == 4 && strcmp(argv[1], "one") == 0)
		return one(strtoul(argv[2], NULL, 0), argv[3]);
	if (argc == 3 && strcmp(argv[1], "fixed") == 0)
		return fixed((void *)(uintptr_t)strtoull(argv[2], NULL, 0));
	if (argc == 4 && strcmp(argv[1], "cycle") == 0)
		return cycle(atoi(argv[2]), argv[3]);
	if (argc == 3 && strcmp(argv[1], "quit") == 0)
		return quit(argv[2]);
	fprintf(stderr, "usage: span_prog make|join KEY NAME DIR | one SIZE NAME | fixed ADDR | cycle N NAME | quit self|child\n");
	return 2;
}
