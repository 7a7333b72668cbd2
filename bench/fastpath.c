/* The calls that are not shared memory but go through the wrappers: mmap and
 * munmap of anonymous memory, and dup + close of an ordinary fd. Prints ns
 * per pair. Run raw and preloaded by bench/fastpath.sh. */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			err(1, "mmap");
		munmap(p, 4096);
	}
	double t1 = now();
	for (long i = 0; i < n; i++) {
		int fd = dup(1);
		if (fd < 0)
			err(1, "dup");
		close(fd);
	}
	double t2 = now();
	printf("%.1f %.1f\n", (t1 - t0) / n, (t2 - t1) / n);
	return 0;
}
