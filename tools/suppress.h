/* suppress.h - leak suppressions (--suppressions, --gen-suppressions) and
 * the creating-stack helpers shared by the diff, the HTML page and `ls`.
 *
 * The file format is doc/suppressions.md: valgrind's blocks,
 *
 *	{
 *	   cache-is-kept-on-purpose        name, reported when used
 *	   shmkeeper:Leak                  the only kind so far
 *	   kind:sysv                       sysv, posix or *          (optional)
 *	   key:0x1234                      SysV key: number, IPC_PRIVATE or a glob
 *	   name:/myapp-*                   POSIX name, a glob         (optional)
 *	   exe:GLOB                        creator's executable (e.g. star-slash-myapp)
 *	   fun:create_cache                the creating stack, innermost first:
 *	   ...                             fun:GLOB, obj:GLOB, ... (any frames)
 *	   fun:main
 *	}
 *
 * A block matches a leak when every line given matches; the frame lines
 * match a prefix of the stack (the stack may go on after the last line).
 */
#ifndef SHMK_SUPPRESS_H
#define SHMK_SUPPRESS_H

#include <stdio.h>

#include "tools/tool.h"

struct supp_set;

/* supp_load - parse a suppression file and add its blocks to *set (created
 * on first use). Errors are fatal: errx(EXIT_USAGE, "FILE:LINE: ...") so that
 * `run` refuses before it starts the program. */
void supp_load(struct supp_set **set, const char *path);

/* supp_apply - mark every leak of m that a block of set matches: sets
 * s->suppressed to the block's name, moves its count and bytes from
 * n_leaked/n_leak_unknown/leaked_bytes to n_suppressed/suppressed_bytes.
 * set may be NULL (nothing happens). Call after model_analyse(). */
void supp_apply(struct supp_set *set, struct model *m, struct symbolizer *s);

/* supp_print_used - "   N  NAME  (FILE:LINE)" for each block that matched,
 * after a title; nothing when none did. */
void supp_print_used(FILE *f, const struct supp_set *set);

/* supp_gen - print one ready-to-paste block for each leak of m that is not
 * suppressed, preceded by a comment naming the segment. */
void supp_gen(FILE *f, struct model *m, struct symbolizer *s);

void supp_free(struct supp_set *set);

/* stack_frames - the creating stack of ev, one entry per function (inlined
 * calls expanded), innermost first, at most max entries.
 * Returns: the number stored. */
size_t stack_frames(struct symbolizer *s, const struct tev *ev, struct sym_frame *out, size_t max);

/* stack_summary - "f1 < f2 < f3" for the first n functions of the creating
 * stack of ev (module+offset for unknown ones) into buf. */
void stack_summary(struct symbolizer *s, const struct tev *ev, unsigned n, char *buf, size_t len);

#endif
