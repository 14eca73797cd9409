"""cffi builder for pyrunc.syscalls._seccomp: libseccomp (compiles profiles to BPF) and seccomp(2).

libseccomp only translates a profile into a BPF program, in the parent. The
container side installs that program with seccomp(2) itself, so every
SECCOMP_FILTER_FLAG_* the kernel knows is usable (libseccomp 2.5 cannot set
WAIT_KILLABLE_RECV) and the container side needs no libseccomp call at all.
"""
from cffi import FFI

ffi = FFI()
ffi.cdef(
    """
    typedef void *scmp_filter_ctx;
    struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
    struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
    scmp_filter_ctx seccomp_init(uint32_t def_action);
    void seccomp_release(scmp_filter_ctx ctx);
    uint32_t seccomp_arch_resolve_name(const char *arch_name);
    uint32_t seccomp_arch_native(void);
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_syscall_resolve_name(const char *name);
    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                               unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
    const struct scmp_version *seccomp_version(void);
    int pr_seccomp_filter(unsigned int flags, const void *insns, unsigned short count);
    """
)
ffi.set_source(
    "pyrunc.syscalls._seccomp",
    r"""
    #include <stdint.h>
    #include <unistd.h>
    #include <sys/syscall.h>
    #include <linux/filter.h>
    #include <linux/seccomp.h>
    #include <seccomp.h>

    /* seccomp(SECCOMP_SET_MODE_FILTER): returns the listener fd with FLAG_NEW_LISTENER, else 0. */
    static int pr_seccomp_filter(unsigned int flags, const void *insns, unsigned short count)
    {
        struct sock_fprog prog = { .len = count, .filter = (struct sock_filter *)insns };
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, insns ? &prog : NULL);
    }
    """,
    libraries=["seccomp"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
