/* Raw system calls and the capability step, shared by the syscall shims (native.c) and the
   sealed launcher (launcher.c), which runs without libc. */
#include <stdint.h>

#if defined(__x86_64__)
static inline long raw6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
static inline long raw6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d, x4 __asm__("x4") = e, x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory", "cc");
    return x0;
}
#else
#error "pyrunc's raw system calls are written for x86_64 and aarch64"
#endif
#define raw(n, a, b, c) raw6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* Steps 3 and 4 of pyrunc/linux/caps.py: KEEPCAPS off, the exact sets, then ambient
   (sets: effective, permitted, inheritable, ambient). Returns 0 or -errno; the ambient
   capabilities the kernel refused are left in *failed_ambient. */
static long caps_apply(const uint64_t sets[4], uint64_t *failed_ambient)
{
    uint32_t hdr[2] = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    uint32_t data[6] = {(uint32_t)sets[0], (uint32_t)sets[1], (uint32_t)sets[2],
                        (uint32_t)(sets[0] >> 32), (uint32_t)(sets[1] >> 32), (uint32_t)(sets[2] >> 32)};
    long r;
    int cap;
    *failed_ambient = 0;
    if ((r = raw6(__NR_prctl, 8 /* PR_SET_KEEPCAPS */, 0, 0, 0, 0, 0)) < 0 || (r = raw(__NR_capset, hdr, data, 0)) < 0
        || (r = raw6(__NR_prctl, 47 /* PR_CAP_AMBIENT */, 4 /* CLEAR_ALL */, 0, 0, 0, 0)) < 0)
        return r;
    for (cap = 0; cap < 64; cap++)
        if (sets[3] >> cap & 1 && raw6(__NR_prctl, 47, 2 /* PR_CAP_AMBIENT_RAISE */, cap, 0, 0, 0) < 0)
            *failed_ambient |= 1ULL << cap;
    return 0;
}
