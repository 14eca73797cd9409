/* pyrunc-launch: the container process's last steps, as a program of its own.

   The init and every exec'd process enter this program (from a sealed memfd: see
   pyrunc/process/launch.py) before their final execve, so that at that execve the
   calling process's executable is this sealed copy and never the host's Python:
   the kernel resolves a `#!/proc/self/exe` interpreter, or a /proc/self/exe program,
   against the caller (CVE-2019-5736). A waiting init is this program too, a few
   pages instead of an interpreter.

   Static, without libc: raw system calls only. Everything it needs comes in one blob
   (fd in argv[1], format below, written by launch.py):
     exec labels -> the capability sets -> [create's "created"/"detached" exchange] ->
     [wait for `start`'s byte on the fifo] -> the seccomp filter -> execve.
   launch.py has marked our other fds close-on-exec; those we were given (blob, fifo,
   labels, the detach channel) we close, the report channel closes at execve.
   A failure goes to the runtime as the channel's "error" message while one is open
   (report_fd: exec; detach_fd until detached: create), else to stderr as
   "pyrunc: <message>"; then exit 1. */
#include <stddef.h>
#include <stdint.h>
#include <asm/unistd.h>
#include "rawsys.h"

#define LAUNCH_MAGIC 0x314c5250u /* "PRL1" */
#define NPREFIX 6
enum { STEP_BLOB, STEP_WAIT, STEP_LABEL, STEP_SECCOMP, STEP_CAPS, STEP_EXEC };

struct head {
    uint32_t magic;
    int32_t fifo_fd;      /* >= 0: wait for a byte on it first */
    int32_t report_fd;    /* >= 0: failures go there as a JSON "error" message */
    int32_t detach_fd;    /* >= 0: create's channel, "created" awaited on it (see detach()) */
    int32_t label_fd[2];  /* >= 0: the exec attribute to write label[i] to, opened by launch.py */
    uint32_t seccomp_flags;
    uint32_t bpf_len;     /* bytes of BPF after the head; 0: no filter (or one in place already) */
    uint32_t nargv, nenv, nerr;
    uint32_t pad;         /* 0: the caps start 8-aligned, with no padding of the compiler's */
    uint64_t caps[4];     /* effective, permitted, inheritable, ambient */
};
_Static_assert(sizeof(struct head) == 80, "launch.py packs the head as 80 bytes, without padding");
/* After the BPF, NUL-terminated: path, argv[nargv], envp[nenv], prefix[NPREFIX] (what
   each step's failure message starts with), label[2], errtext[nerr] (by errno). */

struct launch {
    const struct head *h;
    const char *path, *prefix[NPREFIX], *label[2];
    char **argv, **envp;
    const char **errtext;
};

static char msg[65536]; /* .bss: no page is touched unless a message is written */
static int channel = -1; /* where a failure goes as JSON: report_fd, or detach_fd until detached */

/* The compiler may call these for copies and zeroing; there is no libc to provide them. */
void *memcpy(void *d, const void *s, size_t n)
{
    char *o = d;
    const char *i = s;
    while (n--)
        *o++ = *i++;
    return d;
}

void *memset(void *d, int c, size_t n)
{
    char *o = d;
    while (n--)
        *o++ = (char)c;
    return d;
}

static size_t slen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static size_t put(size_t at, const char *s, int json)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s && at < sizeof msg - 8; s++) {
        unsigned char c = (unsigned char)*s;
        if (json && (c == '"' || c == '\\')) {
            msg[at++] = '\\';
            msg[at++] = (char)c;
        } else if (json && c < 0x20) {
            memcpy(msg + at, "\\u00", 4);
            msg[at + 4] = hex[c >> 4];
            msg[at + 5] = hex[c & 15];
            at += 6;
        } else {
            msg[at++] = (char)c;
        }
    }
    return at;
}

static void __attribute__((noreturn)) die(void)
{
    for (;;)
        raw(__NR_exit_group, 1, 0, 0);
}

static void __attribute__((noreturn)) fail(const struct launch *l, int step, long r)
{
    int err = (int)-r, json = channel >= 0;
    const char *text = "unknown error";
    size_t n = 0;
    if (l->errtext && err > 0 && (uint32_t)err < l->h->nerr && l->errtext[err][0])
        text = l->errtext[err];
    else if (!l->errtext)  /* the blob was not read: we were not started by launch.py */
        text = "this is pyrunc's sealed launcher (/proc/self/exe of a container's caller), not a program to run";
    if (json)
        n = put(n, "{\"type\": \"error\", \"msg\": \"", 0);
    else
        n = put(n, "pyrunc: ", 0);
    n = put(n, l->prefix[step] ? l->prefix[step] : "pyrunc-launch: ", json);
    n = put(n, text, json);
    n = put(n, json ? "\"}" : "\n", 0);
    raw(__NR_write, json ? channel : 2, msg, n);
    die();
}

/* The blob, read into memory of our own and split into strings; its fd is closed. */
static void load(struct launch *l, int fd)
{
    struct head h;
    long size = raw(__NR_lseek, fd, 0, 2 /* SEEK_END */), r;
    uint32_t i, nstr;
    size_t at = 0, ptrs;
    char *base, *p, *end, **v;
    const char **errtext;
    if (size < (long)sizeof h || raw6(__NR_pread64, fd, (long)&h, sizeof h, 0, 0, 0) != (long)sizeof h
        || h.magic != LAUNCH_MAGIC || h.nargv == 0 || h.nargv > (1u << 20) || h.nenv > (1u << 20)
        || h.nerr > 4096 || h.bpf_len > (uint64_t)size - sizeof h)
        fail(l, STEP_BLOB, -22 /* EINVAL */);
    ptrs = ((size_t)h.nargv + h.nenv + 2 + h.nerr) * sizeof(char *);
    base = (char *)raw6(__NR_mmap, 0, (long)(size + ptrs), 3 /* PROT_READ|PROT_WRITE */,
                        0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
    if ((unsigned long)base > -4096UL)
        fail(l, STEP_BLOB, (long)base);
    for (; at < (size_t)size; at += (size_t)r)
        if ((r = raw6(__NR_pread64, fd, (long)(base + at), (long)((size_t)size - at), (long)at, 0, 0)) <= 0)
            fail(l, STEP_BLOB, r < 0 ? r : -5 /* EIO */);
    raw(__NR_close, fd, 0, 0);
    l->h = (const struct head *)base;
    v = (char **)(base + size);
    l->argv = v;
    l->envp = v + h.nargv + 1;
    errtext = (const char **)(v + h.nargv + h.nenv + 2);  /* l->errtext once all are read */
    /* the strings in their order; each must end inside the blob */
    p = base + sizeof h + h.bpf_len;
    end = base + size;
    nstr = 1 + h.nargv + h.nenv + NPREFIX + 2 + h.nerr;
    for (i = 0; i < nstr; i++) {
        char *s = p;
        while (p < end && *p)
            p++;
        if (p == end)
            fail(l, STEP_BLOB, -22);
        p++;
        if (i == 0)
            l->path = s;
        else if (i <= h.nargv)
            l->argv[i - 1] = s;
        else if (i <= h.nargv + h.nenv)
            l->envp[i - 1 - h.nargv] = s;
        else if (i <= h.nargv + h.nenv + NPREFIX)
            l->prefix[i - 1 - h.nargv - h.nenv] = s;
        else if (i <= h.nargv + h.nenv + NPREFIX + 2)
            l->label[i - 1 - h.nargv - h.nenv - NPREFIX] = s;
        else
            errtext[i - 1 - h.nargv - h.nenv - NPREFIX - 2] = s;
    }
    l->errtext = errtext;
    l->argv[h.nargv] = 0;
    l->envp[h.nenv] = 0;
}

/* create's last exchange, in process/protocol.py's words: the init (we, since its execve)
   dies with the runtime until "created" arrives, then says "detached". Our execve may have
   cleared PR_SET_PDEATHSIG (a credential change does), so it is set again first; a runtime
   that died before that closed its end, and the read sees EOF. */
static void detach(const struct launch *l)
{
    static const char created[] = "{\"type\":\"created\"}", detached[] = "{\"type\":\"detached\"}";
    char buf[sizeof created];
    long r, i;
    raw6(__NR_prctl, 1 /* PR_SET_PDEATHSIG */, 9 /* SIGKILL */, 0, 0, 0, 0);
    while ((r = raw(__NR_read, l->h->detach_fd, buf, sizeof buf)) == -4 /* EINTR */) {}
    if (r != (long)sizeof created - 1)
        die();  /* EOF: the runtime gave up on us, and reports why itself */
    for (i = 0; i < r; i++)
        if (buf[i] != created[i])
            die();
    raw6(__NR_prctl, 1, 0, 0, 0, 0, 0);
    if (raw(__NR_write, l->h->detach_fd, detached, sizeof detached - 1) != (long)sizeof detached - 1)
        die();
    raw(__NR_close, l->h->detach_fd, 0, 0);
    channel = -1;  /* the runtime is gone from now on: failures go to stderr */
}

/* The fifo is O_RDWR|O_NONBLOCK (see process/init.py): wake on a byte, wait again without one. */
static void wait_for_start(const struct launch *l)
{
    struct { int fd; short events, revents; } pfd = {l->h->fifo_fd, 1 /* POLLIN */, 0};
    char byte;
    long r;
    for (;;) {
        r = raw6(__NR_ppoll, (long)&pfd, 1, 0, 0, 8, 0);
        if (r < 0 && r != -4 /* EINTR */)
            fail(l, STEP_WAIT, r);
        r = raw(__NR_read, l->h->fifo_fd, &byte, 1);
        if (r == 1)
            break;
        if (r < 0 && r != -11 /* EAGAIN */ && r != -4)
            fail(l, STEP_WAIT, r);
    }
}

__attribute__((used, noreturn)) void launcher_main(long *sp)
{
    struct launch l = {0};
    const struct head *h;
    struct { unsigned short len; const void *filter; } prog;
    uint64_t refused;
    long r;
    int i;
    char **argv = (char **)(sp + 1);

    /* First of all: nothing in the container may open our /proc files or ptrace us. */
    raw6(__NR_prctl, 4 /* PR_SET_DUMPABLE */, 0, 0, 0, 0, 0);
    raw6(__NR_prctl, 15 /* PR_SET_NAME */, (long)"pyrunc-launch", 0, 0, 0, 0);
    if (sp[0] != 2 || !argv[1][0])  /* not run by launch.py (a #!/proc/self/exe script, say) */
        fail(&l, STEP_BLOB, -22);
    for (r = 0; *argv[1]; argv[1]++) {
        if (*argv[1] < '0' || *argv[1] > '9' || r > 1 << 20)
            fail(&l, STEP_BLOB, -22);
        r = r * 10 + (*argv[1] - '0');
    }
    load(&l, (int)r);
    h = l.h;
    channel = h->report_fd >= 0 ? h->report_fd : h->detach_fd;
    /* What we were given goes at execve, if we do not close it first: the channels (exec's
       caller reads EOF when our execve succeeds), the fifo while we wait, the labels. */
    for (i = 0; i < 5; i++) {
        int fd = i == 0 ? h->report_fd : i == 1 ? h->fifo_fd : i == 2 ? h->detach_fd : h->label_fd[i - 3];
        if (fd >= 0)
            raw(__NR_fcntl, fd, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
    }
    for (i = 0; i < 2; i++) {  /* they apply at the next execve: the program's */
        if (h->label_fd[i] < 0)
            continue;
        r = raw(__NR_write, h->label_fd[i], l.label[i], slen(l.label[i]));
        if (r < 0)
            fail(&l, STEP_LABEL, r);
        raw(__NR_close, h->label_fd[i], 0, 0);
    }
    /* The exact sets again (our execve changed them), before the wait as runc's init has them. */
    r = caps_apply(h->caps, &refused);
    if (r < 0)
        fail(&l, STEP_CAPS, r);
    if (h->detach_fd >= 0)
        detach(&l);
    if (h->fifo_fd >= 0) {
        wait_for_start(&l);
        raw(__NR_close, h->fifo_fd, 0, 0);
    }
    if (h->bpf_len) {  /* as late as possible: the profile need not allow our steps */
        prog.len = (unsigned short)(h->bpf_len / 8);
        prog.filter = (const char *)h + sizeof *h;
        while ((r = raw(__NR_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, h->seccomp_flags, &prog)) == -4) {}
        if (r < 0)
            fail(&l, STEP_SECCOMP, r);
    }
    r = raw(__NR_execve, l.path, l.argv, l.envp);
    fail(&l, STEP_EXEC, r);
}

/* The kernel's entry: the stack holds argc, argv[], NULL, envp[]. */
#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n"
        "\tand $-16, %rsp\n\tcall launcher_main\n\thlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n\tmov x29, #0\n\tmov x30, #0\n\tmov x0, sp\n"
        "\tand x1, x0, #-16\n\tmov sp, x1\n\tbl launcher_main\n\tbrk #0\n");
#endif
