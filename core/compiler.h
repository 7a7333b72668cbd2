/* Small compiler helpers shared by core/ and preload/. */
#ifndef SHMK_COMPILER_H
#define SHMK_COMPILER_H

#define sk_likely(x)   __builtin_expect(!!(x), 1)
#define sk_unlikely(x) __builtin_expect(!!(x), 0)
#define SK_HIDDEN      __attribute__((visibility("hidden")))
#define SK_EXPORT      __attribute__((visibility("default")))
#define SK_NOINLINE    __attribute__((noinline))
#define SK_ALWAYS_INLINE inline __attribute__((always_inline))
#define SK_COLD        __attribute__((cold, noinline))
/* The code of the wrapped calls' common paths, packed into one run of
 * pages: on some hosts the TLB is empty after every syscall, and each
 * distinct page touched then costs a page walk (~6-7 ns on one, 0.6-0.9 ns
 * on another of the same kind; DEVELOPERS.md). Spread over .text, one
 * SysV call touched 9-11 code pages of ours (valgrind --tool=lackey
 * --trace-mem, counted between syscalls). The run is ordered by path, so
 * that a program doing SysV calls only, or POSIX calls only, touches the
 * fewest pages: the SysV wrappers and their helpers, what both paths share,
 * the span, the POSIX wrappers and their helpers. The linker sorts
 * .text.sorted.* by name (binutils >= 2.35 and lld; an older linker still
 * keeps each group together). `hot` also tells gcc to optimise them for
 * speed; with a section of our own gcc no longer splits their cold blocks
 * off, which makes the run ~1% longer (38.4 KB against 38.1 with .text.hot)
 * and costs no page a call (see DEVELOPERS.md, "The fast paths"). */
#define SK_HOT_IN(g)   __attribute__((hot, section(".text.sorted.shmkeeper." g)))
#define SK_HOT_SYSV    SK_HOT_IN("1sysv")
#define SK_HOT         SK_HOT_IN("2common")
#define SK_HOT_SPAN    SK_HOT_IN("3span")
#define SK_HOT_POSIX   SK_HOT_IN("4posix")
/* The same for the variables those paths read: in one section of .data,
 * a page or two for the whole library, instead of spread over .bss
 * between the big tables. Big arrays stay out of it. */
#define SK_HOTDATA     __attribute__((section(".data.shmkeeper.hot")))
/* Thread-local state read on every wrapped call: initial-exec avoids a
 * __tls_get_addr call; the few bytes fit glibc's static TLS surplus even when
 * the library is dlopen'ed. */
#define SK_TLS         __thread __attribute__((tls_model("initial-exec")))

#define SK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
