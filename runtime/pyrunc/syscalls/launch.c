
/* The container process's last step, in C: pr_launch() (pyrunc/process/launch.py).

   create's init waits here for `start`. A waiting Python process holds ~4 MiB of
   private memory (the heap, obmalloc's arenas, the interpreter's .data) that it never
   uses again, so before it waits it sheds them: every private page but its stack, its
   TLS and the one buffer this code copied what it still needs into is given back
   (MADV_DONTNEED). From then on no Python and no libc run in this process: only the raw
   syscalls below, reading that buffer and the stack, until execve or exit. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>

/* What execve needs, and the steps before it (see pyrunc/process/launch.py). */
struct pr_launch {
    int fifo_fd;                 /* >= 0: wait for `start`'s byte on it, shedding memory first */
    unsigned int close_from;     /* fds from here on are close-on-exec */
    const char *path; char **argv; char **envp;
    const void *bpf; unsigned int bpf_len; unsigned int seccomp_flags;  /* bpf NULL: no filter */
    int set_caps; uint64_t caps[4];  /* the capability sets deferred behind the filter */
    const char *prefix[5];       /* per step, the message when only stderr is left */
    const char **errtext; int nerrtext;  /* by errno: "EACCES (Permission denied)" */
};

#define LAUNCH_WAIT 0
#define LAUNCH_CLOSE 1
#define LAUNCH_SECCOMP 2
#define LAUNCH_CAPS 3
#define LAUNCH_EXEC 4

#if defined(__x86_64__)
#define CAN_SHED 1
static inline long raw6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define CAN_SHED 1
static inline long raw6(long n, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d, x4 __asm__("x4") = e, x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory", "cc");
    return x0;
}
#else  /* elsewhere libc's syscall(2), and the memory is kept */
#define CAN_SHED 0
static inline long raw6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret = syscall(n, a, b, c, d, e, f);
    return ret < 0 ? -errno : ret;
}
#endif
#define raw(n, a, b, c) raw6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* For code that runs once memory is shed: the stack protector's canary may be gone with
   it (a global reached through the GOT on some architectures). */
#define AFTER_SHED __attribute__((no_stack_protector))

/* Steps 3 and 4 of pyrunc/linux/caps.py: KEEPCAPS off, the exact sets, then ambient
   (sets: effective, permitted, inheritable, ambient). Raw syscalls: also run after shedding. */
AFTER_SHED static long caps_apply(const uint64_t sets[4], uint64_t *failed_ambient)
{
    uint32_t hdr[2] = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    uint32_t data[6] = {(uint32_t)sets[0], (uint32_t)sets[1], (uint32_t)sets[2],
                        (uint32_t)(sets[0] >> 32), (uint32_t)(sets[1] >> 32), (uint32_t)(sets[2] >> 32)};
    long r;
    int cap;
    *failed_ambient = 0;
    if ((r = raw6(SYS_prctl, PR_SET_KEEPCAPS, 0, 0, 0, 0, 0)) < 0 || (r = raw(SYS_capset, hdr, data, 0)) < 0
        || (r = raw6(SYS_prctl, 47 /* PR_CAP_AMBIENT */, 4 /* CLEAR_ALL */, 0, 0, 0, 0)) < 0)
        return r;
    for (cap = 0; cap < 64; cap++)
        if (sets[3] >> cap & 1 && raw6(SYS_prctl, 47, 2 /* PR_CAP_AMBIENT_RAISE */, cap, 0, 0, 0) < 0)
            *failed_ambient |= 1ULL << cap;
    return 0;
}

static long pr_caps_apply(const uint64_t sets[4], uint64_t *failed_ambient)
{
    long r = caps_apply(sets, failed_ambient);
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    return 0;
}

/* What the launch needs after shedding, copied out of Python's memory into one mapping. */
struct launch_copy {
    struct pr_launch l;
    char *base;
    size_t size, used;
};

static void *copy_bytes(struct launch_copy *c, const void *src, size_t n)
{
    char *dst = c->base + c->used;
    memcpy(dst, src, n);
    c->used += (n + 15) & ~(size_t)15;
    return dst;
}

static char **copy_strv(struct launch_copy *c, char **v)
{
    size_t n = 0, i;
    char **out;
    while (v[n])
        n++;
    out = copy_bytes(c, v, (n + 1) * sizeof(char *));
    for (i = 0; i < n; i++)
        out[i] = copy_bytes(c, v[i], strlen(v[i]) + 1);
    return out;
}

static size_t strv_size(char **v)
{
    size_t n = 16;
    for (; *v; v++)
        n += sizeof(char *) + strlen(*v) + 1 + 15;
    return n;
}

/* Everything pr_launch reads after shedding: the strings, the BPF, the messages. */
static int copy_launch(const struct pr_launch *l, struct launch_copy *c)
{
    size_t size = sizeof(*l) + strlen(l->path) + 16 + strv_size(l->argv) + strv_size(l->envp) + l->bpf_len + 16;
    int i;
    for (i = 0; i < 5; i++)
        size += strlen(l->prefix[i]) + 16;
    for (i = 0; i < l->nerrtext; i++)
        size += sizeof(char *) + strlen(l->errtext[i]) + 16;
    size = (size + 4095) & ~(size_t)4095;
    c->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->base == MAP_FAILED)
        return -1;
    c->size = size;
    c->used = 0;
    c->l = *l;
    c->l.path = copy_bytes(c, l->path, strlen(l->path) + 1);
    c->l.argv = copy_strv(c, l->argv);
    c->l.envp = copy_strv(c, l->envp);
    if (l->bpf)
        c->l.bpf = copy_bytes(c, l->bpf, l->bpf_len);
    for (i = 0; i < 5; i++)
        c->l.prefix[i] = copy_bytes(c, l->prefix[i], strlen(l->prefix[i]) + 1);
    c->l.errtext = copy_bytes(c, l->errtext, l->nerrtext * sizeof(char *));
    for (i = 0; i < l->nerrtext; i++)
        c->l.errtext[i] = copy_bytes(c, l->errtext[i], strlen(l->errtext[i]) + 1);
    return 0;
}

static int within(uintptr_t p, uintptr_t lo, uintptr_t hi) { return p >= lo && p < hi; }

/* madvise(MADV_DONTNEED) on [lo, hi) but the parts of it in keep (nkeep [lo, hi) pairs):
   a mapping of ours may have been merged with a neighbour's. */
AFTER_SHED static void drop_outside(uintptr_t lo, uintptr_t hi, const uintptr_t *keep, int nkeep)
{
    int i;
    for (i = 0; i < nkeep; i++) {
        if (keep[2 * i] < hi && keep[2 * i + 1] > lo) {
            if (keep[2 * i] > lo)
                drop_outside(lo, keep[2 * i], keep, nkeep);
            if (keep[2 * i + 1] < hi)
                drop_outside(keep[2 * i + 1], hi, keep, nkeep);
            return;
        }
    }
    if (hi > lo)
        raw(SYS_madvise, lo, hi - lo, MADV_DONTNEED);
}

/* Give back every page of this process but the stack's, the thread control block's (the
   kernel writes rseq there; x86's stack protector reads it), this code's own and the
   copy's. The map comes from /proc/self/maps, which must be procfs: a rootfs without a proc
   mount could hold a lookalike file. It is all parsed (with libc) before the first page
   goes; a failure until then keeps the memory, and changes nothing else. */
AFTER_SHED static void shed(const struct launch_copy *c)
{
    const size_t cap = 1 << 20;
    char *buf, *p, *end, *q;
    uintptr_t *ranges, sp = (uintptr_t)&buf, tls = (uintptr_t)__builtin_thread_pointer(), code = (uintptr_t)&shed;
    uintptr_t keep[4];
    size_t len = 0, nranges = 0, room, i;
    struct statfs sfs;
    long n = 0;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return;
    buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED || fstatfs(fd, &sfs) < 0 || sfs.f_type != 0x9fa0 /* PROC_SUPER_MAGIC */) {
        close(fd);
        if (buf != MAP_FAILED)
            munmap(buf, cap);
        return;
    }
    while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
        len += (size_t)n;
    close(fd);
    ranges = (uintptr_t *)(buf + ((len + 15) & ~(size_t)15));
    room = (size_t)(buf + cap - (char *)ranges) / (2 * sizeof(uintptr_t));
    /* Each line: "lo-hi perms offset dev inode [name]" */
    for (p = buf, end = buf + len; n >= 0 && p < end;) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        uintptr_t lo, hi;
        if (!eol || nranges == room) {
            n = -1;
            break;
        }
        lo = strtoul(p, &q, 16);
        hi = (*q == '-') ? strtoul(q + 1, &q, 16) : 0;
        if (hi > lo && !within(sp, lo, hi) && !within(tls, lo, hi) && !within(code, lo, hi)
            && !memmem(q, (size_t)(eol - q), "[v", 2) /* [vdso], [vvar], [vsyscall] */) {
            ranges[2 * nranges] = lo;
            ranges[2 * nranges++ + 1] = hi;
        }
        p = eol + 1;
    }
    if (n < 0) {
        munmap(buf, cap);
        return;
    }
    keep[0] = (uintptr_t)c->base;
    keep[1] = keep[0] + c->size;
    keep[2] = (uintptr_t)buf;
    keep[3] = keep[2] + cap;
    for (i = 0; i < nranges; i++)  /* from here on: raw syscalls only */
        drop_outside(ranges[2 * i], ranges[2 * i + 1], keep, 2);
    raw(SYS_munmap, buf, cap, 0);
}

/* Reports a failure: to the caller when it can still be told (-1, *step, errno), else,
   once shed, on stderr as "pyrunc: <prefix><errtext>", then exits. */
AFTER_SHED static long fail(const struct pr_launch *l, int shed_done, int step, long r, int *out_step)
{
    const char *text;
    int err = (int)-r;
    size_t n;
    if (!shed_done) {
        *out_step = step;
        errno = err;
        return -1;
    }
    text = (err > 0 && err < l->nerrtext && l->errtext[err]) ? l->errtext[err] : "unknown error";
    raw(SYS_write, 2, "pyrunc: ", 8);
    for (n = 0; l->prefix[step][n]; n++) {}
    raw(SYS_write, 2, l->prefix[step], n);
    for (n = 0; text[n]; n++) {}
    raw(SYS_write, 2, text, n);
    raw(SYS_write, 2, "\n", 1);
    for (;;)
        raw(SYS_exit_group, 1, 0, 0);
}

AFTER_SHED static long pr_launch(const struct pr_launch *in, int *step)
{
    struct launch_copy c;
    const struct pr_launch *l = in;
    struct { unsigned short len; const void *filter; } prog;
    struct pollfd pfd;
    uint64_t failed;
    int shed_done = 0;
    char byte;
    long r;

    /* Python ignores SIGPIPE and SIGXFSZ, which execve would pass on (subprocess resets
       them too); a handler of ours must not run once the interpreter's memory is gone. */
    for (r = 1; r < NSIG; r++) {
        struct sigaction sa;
        if (r == SIGPIPE || r == SIGXFSZ
            || (sigaction((int)r, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN))
            signal((int)r, SIG_DFL);
    }
    if (CAN_SHED && l->fifo_fd >= 0 && copy_launch(in, &c) == 0) {
        l = &c.l;
        shed(&c);
        shed_done = 1;
    }
    if (l->fifo_fd >= 0) {
        /* The fifo is O_RDWR|O_NONBLOCK (see process/init.py): wake on a byte, retry without one. */
        pfd.fd = l->fifo_fd;
        pfd.events = POLLIN;
        for (;;) {
            r = raw(SYS_ppoll, &pfd, 1, 0);
            if (r < 0 && r != -EINTR)
                return fail(l, shed_done, LAUNCH_WAIT, r, step);
            r = raw(SYS_read, l->fifo_fd, &byte, 1);
            if (r == 1)
                break;
            if (r < 0 && r != -EAGAIN && r != -EINTR)
                return fail(l, shed_done, LAUNCH_WAIT, r, step);
        }
    }
    r = raw(436 /* SYS_close_range */, l->close_from, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
    if (r < 0)
        return fail(l, shed_done, LAUNCH_CLOSE, r, step);
    if (l->bpf) {
        prog.len = (unsigned short)(l->bpf_len / 8);
        prog.filter = l->bpf;
        while ((r = raw(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, l->seccomp_flags, &prog)) == -EINTR) {}
        if (r < 0)
            return fail(l, shed_done, LAUNCH_SECCOMP, r, step);
    }
    if (l->set_caps && (r = caps_apply(l->caps, &failed)) < 0)
        return fail(l, shed_done, LAUNCH_CAPS, r, step);
    r = raw(SYS_execve, l->path, l->argv, l->envp);
    return fail(l, shed_done, LAUNCH_EXEC, r, step);
}
