/* Allocation for the tool: out of memory is a one-line message and the
 * "no report" exit status, never a crash later on. */
#include <err.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		err(EXIT_NOREPORT, "out of memory");
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		err(EXIT_NOREPORT, "out of memory");
	return p;
}

char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");
	if (!d)
		err(EXIT_NOREPORT, "out of memory");
	return d;
}
