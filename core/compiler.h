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
/* Thread-local state read on every wrapped call: initial-exec avoids a
 * __tls_get_addr call; the few bytes fit glibc's static TLS surplus even when
 * the library is dlopen'ed. */
#define SK_TLS         __thread __attribute__((tls_model("initial-exec")))

#define SK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
