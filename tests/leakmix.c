/* leakmix - leaks shared memory from distinct functions, as told by its
 * arguments, for the suppression, --diff, HTML and ls tests:
 *
 *   a   a SysV IPC_PRIVATE segment of 4096 bytes, from leak_a()
 *   b   a SysV IPC_PRIVATE segment of 8192 bytes, from leak_b()
 *   k   a SysV segment with key 0x5348XXXX (XXXX: pid), from leak_key()
 *   p   a POSIX object /shmk-leakmix-PID, 65536 bytes, from leak_posix()
 *   x   a POSIX object whose name is markup: /shmk-leakmix-PID<!--<script>&
 *   m   a POSIX object /shmk-leakmix-move-PID mapped at 4096 bytes, grown to
 *       65536 and moved by mremap(MREMAP_MAYMOVE|MREMAP_FIXED), then
 *       unmapped; prints "moved OLD NEW" too, from leak_moved()
 *   r   a SysV segment created and removed (no leak), from tidy()
 *
 * Each leak is printed as "sysv SHMID" or "posix NAME" so that the test can
 * remove it afterwards. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* mremap */
#endif
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static NOINLINE int sysv(key_t key, size_t size)
{
	int id = shmget(key, size, IPC_CREAT | IPC_EXCL | 0600);
	void *p;

	if (id < 0)
		err(1, "shmget");
	p = shmat(id, NULL, 0);
	if (p == (void *)-1)
		err(1, "shmat");
	memset(p, 1, 64);
	shmdt(p);
	return id;
}

static NOINLINE void leak_a(void) { printf("sysv %d\n", sysv(IPC_PRIVATE, 4096)); }
static NOINLINE void leak_b(void) { printf("sysv %d\n", sysv(IPC_PRIVATE, 8192)); }
static NOINLINE void leak_key(void)
{
	printf("sysv %d\n", sysv((key_t)(0x53480000u | (getpid() & 0xffff)), 4096));
}

static NOINLINE void posix(const char *name)
{
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	void *p;

	if (fd < 0)
		err(1, "shm_open %s", name);
	if (ftruncate(fd, 65536) < 0)
		err(1, "ftruncate");
	p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		err(1, "mmap");
	close(fd);
	munmap(p, 65536);
	printf("posix %s\n", name);
}

static NOINLINE void leak_posix(void)
{
	char name[64];

	snprintf(name, sizeof(name), "/shmk-leakmix-%d", (int)getpid());
	posix(name);
}

static NOINLINE void leak_markup(void)
{
	char name[64];

	snprintf(name, sizeof(name), "/shmk-leakmix-%d<!--<script>&", (int)getpid());
	posix(name);
}

static NOINLINE void leak_moved(void)
{
	char name[64];
	int fd;
	char *p, *to, *q;

	snprintf(name, sizeof(name), "/shmk-leakmix-move-%d", (int)getpid());
	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0 || ftruncate(fd, 4096) < 0)
		err(1, "shm_open/ftruncate %s", name);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	/* somewhere the mapping cannot grow in place: it has to move */
	to = mmap(NULL, 65536, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || to == MAP_FAILED || ftruncate(fd, 65536) < 0)
		err(1, "mmap/ftruncate");
	q = mremap(p, 4096, 65536, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (q == MAP_FAILED)
		err(1, "mremap");
	memset(q, 1, 65536);
	close(fd);
	munmap(q, 65536);
	printf("moved %p %p\n", (void *)p, (void *)q);
	printf("posix %s\n", name);
}

static NOINLINE void tidy(void)
{
	int id = sysv(IPC_PRIVATE, 4096);

	shmctl(id, IPC_RMID, NULL);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		for (const char *c = argv[i]; *c; c++)
			switch (*c) {
			case 'a': leak_a(); break;
			case 'b': leak_b(); break;
			case 'k': leak_key(); break;
			case 'p': leak_posix(); break;
			case 'x': leak_markup(); break;
			case 'm': leak_moved(); break;
			case 'r': tidy(); break;
			default: errx(2, "unknown letter '%c'", *c);
			}
	fflush(stdout);
	return 0;
}
