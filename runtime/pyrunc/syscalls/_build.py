"""cffi builder for pyrunc.syscalls._native: compiled once at install time.

Only calls that Python 3.11's stdlib lacks live here; each is a tiny shim over
syscall(2) so we do not depend on the glibc version having a wrapper.
"""
from cffi import FFI

ffi = FFI()
ffi.cdef(
    """
    struct pr_open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
    struct pr_mount_attr { uint64_t attr_set; uint64_t attr_clr; uint64_t propagation; uint64_t userns_fd; };
    int pr_mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data);
    int pr_umount2(const char *target, int flags);
    int pr_pivot_root(const char *new_root, const char *put_old);
    int pr_setns(int fd, int nstype);
    int pr_unshare(int flags);
    int pr_setdomainname(const char *name, size_t len);
    int pr_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
    int pr_openat2(int dirfd, const char *path, struct pr_open_how *how);
    int pr_mount_setattr(int dirfd, const char *path, unsigned int flags, struct pr_mount_attr *attr);
    int pr_open_tree(int dirfd, const char *path, unsigned int flags);
    int pr_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags);
    int pr_fsopen(const char *fsname, unsigned int flags);
    int pr_fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux);
    int pr_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
    int pr_close_range(unsigned int first, unsigned int last, unsigned int flags);
    int pr_capget(uint32_t version, int pid, uint32_t data[6]);
    int pr_capset(uint32_t version, int pid, const uint32_t data[6]);
    int pr_personality(unsigned long persona);
    int pr_ioprio_set(int which, int who, int ioprio);
    int pr_sched_setattr(int pid, const void *attr, unsigned int flags);
    long pr_keyctl_join(const char *name);
    long pr_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
    int pr_bpf(int cmd, void *attr, unsigned int size);
    long pr_clone3(int cgroup_fd, uint64_t ns_flags);
    long pr_fstatfs_type(int fd);
    long pr_clone3_probe(void);
    long pr_caps_apply(const uint64_t sets[4], uint64_t *failed_ambient);
    """
)
ffi.set_source(
    "pyrunc.syscalls._native",
    r"""
    #define _GNU_SOURCE
    #include <stdint.h>
    #include <unistd.h>
    #include <sys/syscall.h>
    #include <sys/mount.h>
    #include <sys/prctl.h>
    #include <sys/personality.h>
    #include <sys/vfs.h>
    #include <errno.h>

    #ifndef SYS_openat2
    #define SYS_openat2 437
    #endif
    #ifndef SYS_mount_setattr
    #define SYS_mount_setattr 442
    #endif
    #ifndef SYS_open_tree
    #define SYS_open_tree 428
    #endif
    #ifndef SYS_move_mount
    #define SYS_move_mount 429
    #endif
    #ifndef SYS_fsopen
    #define SYS_fsopen 430
    #endif
    #ifndef SYS_fsconfig
    #define SYS_fsconfig 431
    #endif
    #ifndef SYS_fsmount
    #define SYS_fsmount 432
    #endif
    #ifndef SYS_close_range
    #define SYS_close_range 436
    #endif
    #define KEYCTL_JOIN_SESSION_KEYRING 1

    struct pr_open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
    struct pr_mount_attr { uint64_t attr_set; uint64_t attr_clr; uint64_t propagation; uint64_t userns_fd; };

    static int pr_mount(const char *s, const char *t, const char *f, unsigned long fl, const char *d)
    { return mount(s, t, f, fl, d); }
    static int pr_umount2(const char *t, int fl) { return umount2(t, fl); }
    static int pr_pivot_root(const char *n, const char *o) { return syscall(SYS_pivot_root, n, o); }
    static int pr_setns(int fd, int t) { return syscall(SYS_setns, fd, t); }
    static int pr_unshare(int fl) { return syscall(SYS_unshare, fl); }
    static int pr_setdomainname(const char *n, size_t l) { return syscall(SYS_setdomainname, n, l); }
    static int pr_prctl(int o, unsigned long a, unsigned long b, unsigned long c, unsigned long d)
    { return prctl(o, a, b, c, d); }
    static int pr_openat2(int d, const char *p, struct pr_open_how *h)
    { return syscall(SYS_openat2, d, p, h, sizeof(*h)); }
    static int pr_mount_setattr(int d, const char *p, unsigned int fl, struct pr_mount_attr *a)
    { return syscall(SYS_mount_setattr, d, p, fl, a, sizeof(*a)); }
    static int pr_open_tree(int d, const char *p, unsigned int fl) { return syscall(SYS_open_tree, d, p, fl); }
    static int pr_move_mount(int fd, const char *fp, int td, const char *tp, unsigned int fl)
    { return syscall(SYS_move_mount, fd, fp, td, tp, fl); }
    static int pr_fsopen(const char *n, unsigned int fl) { return syscall(SYS_fsopen, n, fl); }
    static int pr_fsconfig(int fd, unsigned int c, const char *k, const void *v, int aux)
    { return syscall(SYS_fsconfig, fd, c, k, v, aux); }
    static int pr_fsmount(int fd, unsigned int fl, unsigned int af) { return syscall(SYS_fsmount, fd, fl, af); }
    static int pr_close_range(unsigned int a, unsigned int b, unsigned int fl)
    { return syscall(SYS_close_range, a, b, fl); }
    /* capget/capset with _LINUX_CAPABILITY_VERSION_3: header {version, pid}, data[2] x {eff, perm, inh}. */
    static int pr_capget(uint32_t v, int pid, uint32_t data[6])
    { uint32_t hdr[2] = {v, (uint32_t)pid}; return syscall(SYS_capget, hdr, data); }
    static int pr_capset(uint32_t v, int pid, const uint32_t data[6])
    { uint32_t hdr[2] = {v, (uint32_t)pid}; return syscall(SYS_capset, hdr, data); }
    static int pr_personality(unsigned long p) { return personality(p); }
    static int pr_ioprio_set(int w, int who, int prio) { return syscall(SYS_ioprio_set, w, who, prio); }
    static int pr_sched_setattr(int pid, const void *a, unsigned int fl)
    { return syscall(SYS_sched_setattr, pid, a, fl); }
    static long pr_keyctl_join(const char *name)
    { return syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name, 0, 0, 0); }
    static long pr_set_mempolicy(int mode, const unsigned long *mask, unsigned long maxnode)
    { return syscall(SYS_set_mempolicy, mode, mask, maxnode); }
    static int pr_bpf(int cmd, void *attr, unsigned int size) { return syscall(SYS_bpf, cmd, attr, size); }
    /* os.fork(), but born in the cgroup2 directory cgroup_fd when it is >= 0 (clone3
       CLONE_INTO_CGROUP: no cgroup.procs write, whose global lock waits for an RCU grace
       period) and in the new namespaces ns_flags (CLONE_NEW*; or CLONE_PARENT: the child is
       our parent's). CPython's own fork hooks run around it, with the GIL (cffi released it for the call). */
    /* Stable ABI since 3.7, but the limited-API headers cffi uses only declare them for a versioned Py_LIMITED_API. */
    void PyOS_BeforeFork(void);
    void PyOS_AfterFork_Parent(void);
    void PyOS_AfterFork_Child(void);
    struct pr_clone_args { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack,
                           stack_size, tls, set_tid, set_tid_size, cgroup; };
    static long pr_clone3(int cgroup_fd, uint64_t ns_flags)
    {
        struct pr_clone_args a = {0};
        long pid;
        int err;
        PyGILState_STATE g = PyGILState_Ensure();
        a.flags = ns_flags;
        if (cgroup_fd >= 0) {
            a.flags |= 0x200000000ULL; /* CLONE_INTO_CGROUP */
            a.cgroup = (uint64_t)cgroup_fd;
        }
        /* SIGCHLD; with CLONE_PARENT the kernel takes our own exit signal and wants 0 here */
        a.exit_signal = (ns_flags & 0x8000ULL) ? 0 : 17;
        PyOS_BeforeFork();
        pid = syscall(435 /* SYS_clone3 */, &a, sizeof a);
        err = errno;
        if (pid == 0)
            PyOS_AfterFork_Child();
        else
            PyOS_AfterFork_Parent();
        PyGILState_Release(g);
        errno = err;
        return pid;
    }
    /* clone3(NULL, 0) makes no process: EINVAL where the call exists, ENOSYS where it does not */
    static long pr_clone3_probe(void) { return syscall(435 /* SYS_clone3 */, NULL, 0); }
    /* statfs f_type of an open fd: tells a real procfs from a lookalike */
    static long pr_fstatfs_type(int fd) { struct statfs s; return fstatfs(fd, &s) < 0 ? -1 : (long)s.f_type; }
    #include "rawsys.h"
    static long pr_caps_apply(const uint64_t sets[4], uint64_t *failed_ambient)
    {
        long r = caps_apply(sets, failed_ambient);
        if (r < 0) {
            errno = (int)-r;
            return -1;
        }
        return 0;
    }
    """,
    include_dirs=[__file__.rsplit("/", 1)[0]],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
