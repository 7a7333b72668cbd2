/* tests/dlframes.sh: dlopen plugin A, call it, dlclose it, dlopen plugin B
 * (usually at A's address), call it; prints both shmids. Each plugin leaks
 * one SysV segment from a frame of its own. */
#include <dlfcn.h>
#include <stdio.h>

static int call(const char *path, const char *fn)
{
	void *h = dlopen(path, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "dlhost: %s\n", dlerror());
		return -1;
	}
	int (*f)(void) = (int (*)(void))dlsym(h, fn);
	int id = f ? f() : -1;
	printf("%s %d %p\n", fn, id, (void *)f);
	dlclose(h);
	return id;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: dlhost PLUGIN_ONE PLUGIN_TWO\n");
		return 2;
	}
	/* One call site for both: every return address of the two stacks is
	 * the same when B lands where A was, so only the dlclose tells the
	 * recorder to look at the module list again. */
	static const char *const fn[2] = { "plug_one", "plug_two" };
	for (int i = 0; i < 2; i++)
		if (call(argv[1 + i], fn[i]) < 0)
			return 1;
	return 0;
}
