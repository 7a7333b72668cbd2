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
 * pages (the linker puts .text.hot.* together): on this VM the TLB is
 * empty after every syscall, and each distinct page touched then costs a
 * page walk, ~10-30 ns. Spread over .text, one SysV call touched 9-11 code
 * pages of ours (valgrind --tool=lackey --trace-mem, counted between
 * syscalls). gcc's `hot` puts them in .text.hot and splits their cold
 * blocks off; clang gets the section by name. */
#if defined(__clang__)
#define SK_HOT         __attribute__((section(".text.hot.shmkeeper")))
#else
#define SK_HOT         __attribute__((hot))   /* .text.hot, cold blocks split off */
#endif
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
