/* pyrunc.syscalls._native: the system calls Python 3.11's stdlib lacks, as a plain
   CPython extension (stable ABI). Each is a thin shim over syscall(2), so we do not
   depend on the glibc version having a wrapper, and returns the call's result, or
   -errno on failure: calls.py turns that into SyscallError. A cffi module did this
   before; loading cffi's backend cost every command ~0.6 ms of start-up.
   Arguments are ints, str/bytes paths (None for NULL) and buffers. Every call but
   clone3 runs with the GIL released, as a blocking mount must not stall the
   terminal relay's threads. */
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "rawsys.h"

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
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define CAP_VERSION_3 0x20080522
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define CLONE_INTO_CGROUP_ 0x200000000ULL
#define CLONE_PARENT_ 0x8000ULL

/* A path argument: str (encoded as os.fsencode does) or bytes; None is NULL.
   Holds a reference in *keep, released by the caller. */
static int path_arg(PyObject *o, PyObject **keep, const char **out)
{
    *keep = NULL;
    *out = NULL;
    if (o == Py_None)
        return 0;
    if (PyUnicode_Check(o))
        *keep = PyUnicode_EncodeFSDefault(o);
    else if (PyBytes_Check(o)) {
        Py_INCREF(o);
        *keep = o;
    } else {
        PyErr_SetString(PyExc_TypeError, "path must be str, bytes or None");
        return -1;
    }
    if (*keep == NULL)
        return -1;
    *out = PyBytes_AsString(*keep);
    if (*out == NULL || (Py_ssize_t)strlen(*out) != PyBytes_Size(*keep)) {
        if (*out != NULL)
            PyErr_SetString(PyExc_ValueError, "embedded null byte");
        Py_CLEAR(*keep);
        return -1;
    }
    return 0;
}

/* An int argument as 64 bits: a negative one as C would convert it, one above LLONG_MAX
   (a full 64-bit mask) as it is. */
static int int_arg(PyObject *o, uint64_t *out)
{
    long long v;
    if (!PyLong_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "an integer is required");
        return -1;
    }
    v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        *out = PyLong_AsUnsignedLongLong(o);
        return PyErr_Occurred() ? -1 : 0;
    }
    *out = (uint64_t)v;
    return 0;
}

/* Of ``want`` arguments, the ints args[which[0]], args[which[1]], ... (which ends with -1)
   into out[0], out[1], ... */
static int int_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const int *which, uint64_t *out)
{
    Py_ssize_t i;
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", want, nargs);
        return -1;
    }
    for (i = 0; which[i] >= 0; i++)
        if (int_arg(args[which[i]], &out[i]) < 0)
            return -1;
    return 0;
}

/* syscall(...) with the GIL released; r gets its result or -errno */
#define SYSCALL_NOGIL(r, ...)     \
    do {                          \
        Py_BEGIN_ALLOW_THREADS    \
        r = syscall(__VA_ARGS__); \
        if (r < 0)                \
            r = -errno;           \
        Py_END_ALLOW_THREADS      \
    } while (0)

/* syscall(nr, ...) with n integer arguments, the GIL released. */
#define INT_CALL(name, nr, n, ...)                                                     \
    static PyObject *name(PyObject *self, PyObject *const *args, Py_ssize_t nargs)     \
    {                                                                                 \
        static const int which[] = {__VA_ARGS__, -1};                                 \
        uint64_t a[6] = {0};                                                          \
        long r;                                                                       \
        if (int_args(args, nargs, n, which, a) < 0)                                   \
            return NULL;                                                              \
        SYSCALL_NOGIL(r, nr, a[0], a[1], a[2], a[3], a[4], a[5]);                     \
        return PyLong_FromLong(r);                                                    \
    }

INT_CALL(n_setns, SYS_setns, 2, 0, 1)
INT_CALL(n_unshare, SYS_unshare, 1, 0)
INT_CALL(n_prctl, SYS_prctl, 5, 0, 1, 2, 3, 4)
INT_CALL(n_fsmount, SYS_fsmount, 3, 0, 1, 2)
INT_CALL(n_close_range, SYS_close_range, 3, 0, 1, 2)
INT_CALL(n_personality, SYS_personality, 1, 0)
INT_CALL(n_ioprio_set, SYS_ioprio_set, 3, 0, 1, 2)

/* syscall(nr, ...) whose arguments are integers and paths: kinds[i] is 'i' or 'p'. */
static PyObject *mixed_call(long nr, const char *kinds, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n = (Py_ssize_t)strlen(kinds), i;
    long a[6] = {0}, r;
    PyObject *keep[6] = {0};
    PyObject *ret = NULL;
    if (nargs != n) {
        PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", n, nargs);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (kinds[i] == 'p') {
            const char *s;
            if (path_arg(args[i], &keep[i], &s) < 0)
                goto out;
            a[i] = (long)s;
        } else {
            uint64_t v;
            if (int_arg(args[i], &v) < 0)
                goto out;
            a[i] = (long)v;
        }
    }
    SYSCALL_NOGIL(r, nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    ret = PyLong_FromLong(r);
out:
    for (i = 0; i < 6; i++)
        Py_XDECREF(keep[i]);
    return ret;
}

#define MIXED_CALL(name, nr, kinds)                                                \
    static PyObject *name(PyObject *self, PyObject *const *args, Py_ssize_t nargs) \
    {                                                                             \
        return mixed_call(nr, kinds, args, nargs);                                \
    }

MIXED_CALL(n_mount, SYS_mount, "pppip")
MIXED_CALL(n_umount2, SYS_umount2, "pi")
MIXED_CALL(n_pivot_root, SYS_pivot_root, "pp")
MIXED_CALL(n_open_tree, SYS_open_tree, "ipi")
MIXED_CALL(n_move_mount, SYS_move_mount, "ipipi")
MIXED_CALL(n_fsopen, SYS_fsopen, "pi")
MIXED_CALL(n_fsconfig, SYS_fsconfig, "iippi")
MIXED_CALL(n_setdomainname, SYS_setdomainname, "pi")
MIXED_CALL(n_sethostname, SYS_sethostname, "pi")

/* keyctl(KEYCTL_JOIN_SESSION_KEYRING, name) */
static PyObject *n_keyctl_join(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *keep;
    const char *name;
    long r;
    if (nargs != 1 || path_arg(args[0], &keep, &name) < 0) {
        if (nargs != 1)
            PyErr_SetString(PyExc_TypeError, "expected 1 argument");
        return NULL;
    }
    SYSCALL_NOGIL(r, SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name, 0, 0, 0);
    Py_XDECREF(keep);
    return PyLong_FromLong(r);
}

/* syscall(nr, dirfd, path, [plain ints...,] &struct, sizeof struct) for calls that take their
   options as a struct of u64 fields: args are dirfd, path, the `plain` ints, then the fields */
static PyObject *path_struct_call(long nr, PyObject *const *args, Py_ssize_t nargs, int plain, int fields)
{
    int which[8], i, n = 2 + plain + fields;
    uint64_t a[7];
    PyObject *keep;
    const char *path;
    long r;
    which[0] = 0;
    for (i = 2; i < n; i++)
        which[i - 1] = i;
    which[n - 1] = -1;
    if (int_args(args, nargs, n, which, a) < 0 || path_arg(args[1], &keep, &path) < 0)
        return NULL;
    /* a[0]: dirfd; a[1 .. plain]: the plain ints; the fields follow, laid out as the struct */
    if (plain)
        SYSCALL_NOGIL(r, nr, (int)a[0], path, (unsigned)a[1], &a[1 + plain], fields * sizeof(uint64_t));
    else
        SYSCALL_NOGIL(r, nr, (int)a[0], path, &a[1], fields * sizeof(uint64_t));
    Py_XDECREF(keep);
    return PyLong_FromLong(r);
}

/* openat2(dirfd, path, flags, mode, resolve): struct open_how {flags, mode, resolve} */
static PyObject *n_openat2(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return path_struct_call(SYS_openat2, args, nargs, 0, 3);
}

/* mount_setattr(dirfd, path, flags, attr_set, attr_clr, propagation, userns_fd):
   struct mount_attr {attr_set, attr_clr, propagation, userns_fd} */
static PyObject *n_mount_setattr(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return path_struct_call(SYS_mount_setattr, args, nargs, 1, 4);
}

/* capget(pid) -> (effective, permitted, inheritable), or -errno */
static PyObject *n_capget(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, -1};
    uint64_t a[1];
    uint32_t hdr[2] = {CAP_VERSION_3, 0}, d[6] = {0};
    if (int_args(args, nargs, 1, which, a) < 0)
        return NULL;
    hdr[1] = (uint32_t)a[0];
    if (syscall(SYS_capget, hdr, d) < 0)
        return PyLong_FromLong(-errno);
    return Py_BuildValue("(KKK)", (unsigned long long)d[0] | (unsigned long long)d[3] << 32,
                         (unsigned long long)d[1] | (unsigned long long)d[4] << 32,
                         (unsigned long long)d[2] | (unsigned long long)d[5] << 32);
}

/* capset(effective, permitted, inheritable) for this thread */
static PyObject *n_capset(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, 1, 2, -1};
    uint64_t a[3];
    uint32_t hdr[2] = {CAP_VERSION_3, 0}, d[6];
    if (int_args(args, nargs, 3, which, a) < 0)
        return NULL;
    d[0] = (uint32_t)a[0], d[1] = (uint32_t)a[1], d[2] = (uint32_t)a[2];
    d[3] = (uint32_t)(a[0] >> 32), d[4] = (uint32_t)(a[1] >> 32), d[5] = (uint32_t)(a[2] >> 32);
    return PyLong_FromLong(syscall(SYS_capset, hdr, d) < 0 ? -errno : 0);
}

/* caps_apply(effective, permitted, inheritable, ambient) -> the ambient capabilities the
   kernel refused (a mask), or -errno (rawsys.h's caps_apply, which the launcher shares) */
static PyObject *n_caps_apply(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, 1, 2, 3, -1};
    uint64_t sets[4], failed;
    long r;
    if (int_args(args, nargs, 4, which, sets) < 0)
        return NULL;
    r = caps_apply(sets, &failed);
    if (r < 0)
        return PyLong_FromLong(r);
    return PyLong_FromUnsignedLongLong(failed);
}

/* A call whose one pointer argument is a buffer (args[bufarg]); writable: the kernel writes it. */
static PyObject *buffer_call(long nr, PyObject *const *args, Py_ssize_t nargs, int writable)
{
    static const int which[] = {0, 2, -1};
    uint64_t a[2];
    Py_buffer view;
    long r;
    if (int_args(args, nargs, 3, which, a) < 0)
        return NULL;
    if (args[1] == Py_None)
        view.buf = NULL, view.len = 0, view.obj = NULL;
    else if (PyObject_GetBuffer(args[1], &view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return NULL;
    SYSCALL_NOGIL(r, nr, (long)a[0], view.buf, (long)a[1]);
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    return PyLong_FromLong(r);
}

/* sched_setattr(pid, attr bytes, flags) */
static PyObject *n_sched_setattr(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return buffer_call(SYS_sched_setattr, args, nargs, 0);
}

/* set_mempolicy(mode, nodemask bytes or None, maxnode) */
static PyObject *n_set_mempolicy(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return buffer_call(SYS_set_mempolicy, args, nargs, 0);
}

/* bpf(cmd, attr bytearray, size): the kernel writes results back into attr */
static PyObject *n_bpf(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return buffer_call(SYS_bpf, args, nargs, 1);
}

/* The address of a buffer's bytes, for syscall structs that hold pointers. */
static PyObject *n_buffer_address(PyObject *self, PyObject *buf)
{
    Py_buffer view;
    void *p;
    if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    p = view.buf;
    PyBuffer_Release(&view);
    return PyLong_FromVoidPtr(p);
}

/* os.fork(), but born in the cgroup2 directory cgroup_fd when it is >= 0 (clone3
   CLONE_INTO_CGROUP: no cgroup.procs write, whose global lock waits for an RCU grace
   period) and in the new namespaces ns_flags (CLONE_NEW*; or CLONE_PARENT: the child is
   our parent's). CPython's fork hooks run around it, with the GIL held. */
static PyObject *n_clone3(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, 1, -1};
    struct { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
             set_tid_size, cgroup; } c = {0};
    uint64_t a[2];
    long pid;
    int err;
    if (int_args(args, nargs, 2, which, a) < 0)
        return NULL;
    c.flags = a[1];
    if ((int64_t)a[0] >= 0) {
        c.flags |= CLONE_INTO_CGROUP_;
        c.cgroup = a[0];
    }
    /* SIGCHLD; with CLONE_PARENT the kernel takes our own exit signal and wants 0 here */
    c.exit_signal = (a[1] & CLONE_PARENT_) ? 0 : 17;
    PyOS_BeforeFork();
    pid = syscall(SYS_clone3, &c, sizeof c);
    err = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    return PyLong_FromLong(pid < 0 ? -err : pid);
}

/* clone3(NULL, 0) makes no process: -EINVAL where the call exists, -ENOSYS where it does not */
static PyObject *n_clone3_probe(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(syscall(SYS_clone3, NULL, 0) < 0 ? -errno : 0);
}

/* statfs f_type of an open fd: tells a real procfs from a lookalike */
static PyObject *n_fstatfs_type(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, -1};
    uint64_t a[1];
    struct statfs s;
    int r;
    if (int_args(args, nargs, 1, which, a) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS r = fstatfs((int)a[0], &s);
    if (r < 0)
        r = -errno;
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(r < 0 ? r : (long)s.f_type);
}

/* socket(domain, type | SOCK_CLOEXEC) -> fd */
static PyObject *n_socket(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, 1, -1};
    uint64_t a[2];
    int r;
    if (int_args(args, nargs, 2, which, a) < 0)
        return NULL;
    r = socket((int)a[0], (int)a[1] | SOCK_CLOEXEC, 0);
    return PyLong_FromLong(r < 0 ? -errno : r);
}

/* socketpair(domain, type | SOCK_CLOEXEC) -> (fd, fd) */
static PyObject *n_socketpair(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, 1, -1};
    uint64_t a[2];
    int sv[2];
    if (int_args(args, nargs, 2, which, a) < 0)
        return NULL;
    if (socketpair((int)a[0], (int)a[1] | SOCK_CLOEXEC, 0, sv) < 0)
        return PyLong_FromLong(-errno);
    return Py_BuildValue("(ii)", sv[0], sv[1]);
}

#define MAX_FDS 16

/* send_fds(fd, data, fds): one sendmsg, the fds as SCM_RIGHTS -> bytes sent */
static PyObject *n_send_fds(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, -1};
    uint64_t a[1];
    Py_buffer data;
    PyObject *seq;
    Py_ssize_t n, i;
    union { char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; struct cmsghdr align; } ctl;
    struct iovec iov;
    struct msghdr msg = {0};
    struct cmsghdr *cm;
    long r;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "expected 3 arguments");
        return NULL;
    }
    if (int_args(args, 1, 1, which, a) < 0)
        return NULL;
    seq = PySequence_Tuple(args[2]);
    if (seq == NULL)
        return NULL;
    n = PyTuple_Size(seq);
    if (n < 1 || n > MAX_FDS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "1 to 16 fds");
        return NULL;
    }
    memset(&ctl, 0, sizeof ctl);
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    for (i = 0; i < n; i++) {
        int fd = (int)PyLong_AsLong(PyTuple_GetItem(seq, i));
        if (fd == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        memcpy(CMSG_DATA(cm) + i * sizeof(int), &fd, sizeof fd);
    }
    Py_DECREF(seq);
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    iov.iov_base = data.buf;
    iov.iov_len = (size_t)data.len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    Py_BEGIN_ALLOW_THREADS
    r = sendmsg((int)a[0], &msg, MSG_NOSIGNAL);
    if (r < 0)
        r = -errno;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return PyLong_FromLong(r);
}

/* recv_fds(fd, bufsize, maxfds, flags) -> (data, [fds], msg_flags); a message whose data or
   fds did not fit has MSG_TRUNC or MSG_CTRUNC in msg_flags (the fds that came are returned) */
static PyObject *n_recv_fds(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int which[] = {0, 1, 2, 3, -1};
    uint64_t a[4];
    union { char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; struct cmsghdr align; } ctl;
    struct iovec iov;
    struct msghdr msg = {0};
    struct cmsghdr *cm;
    PyObject *data, *fds, *out;
    long r;
    if (int_args(args, nargs, 4, which, a) < 0)
        return NULL;
    if (a[2] > MAX_FDS || a[1] > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "too many fds or too large a buffer");
        return NULL;
    }
    data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)a[1]);
    if (data == NULL)
        return NULL;
    iov.iov_base = PyBytes_AsString(data);
    iov.iov_len = (size_t)a[1];
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = a[2] ? ctl.buf : NULL;
    msg.msg_controllen = a[2] ? CMSG_SPACE(sizeof(int) * a[2]) : 0;
    Py_BEGIN_ALLOW_THREADS
    r = recvmsg((int)a[0], &msg, (int)a[3]);
    if (r < 0)
        r = -errno;
    Py_END_ALLOW_THREADS
    if (r < 0) {
        Py_DECREF(data);
        return PyLong_FromLong(r);
    }
    fds = PyList_New(0);
    if (fds == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    for (cm = a[2] ? CMSG_FIRSTHDR(&msg) : NULL; cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        size_t i, count;
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (i = 0; i < count; i++) {
            int fd;
            PyObject *o;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            o = PyLong_FromLong(fd);
            if (o == NULL || PyList_Append(fds, o) < 0) {
                Py_XDECREF(o);
                Py_DECREF(fds);
                Py_DECREF(data);
                return NULL;
            }
            Py_DECREF(o);
        }
    }
    out = PyBytes_FromStringAndSize(PyBytes_AsString(data), r);  /* the part received */
    Py_DECREF(data);
    if (out == NULL) {
        Py_DECREF(fds);
        return NULL;
    }
    return Py_BuildValue("(NNi)", out, fds, msg.msg_flags);
}

#define FAST(name) {#name, (PyCFunction)(void (*)(void))n_##name, METH_FASTCALL, NULL}
static PyMethodDef methods[] = {
    FAST(mount), FAST(umount2), FAST(pivot_root), FAST(setns), FAST(unshare), FAST(setdomainname),
    FAST(prctl), FAST(openat2), FAST(mount_setattr), FAST(open_tree), FAST(move_mount), FAST(fsopen),
    FAST(fsconfig), FAST(fsmount), FAST(close_range), FAST(capget), FAST(capset), FAST(caps_apply),
    FAST(personality), FAST(ioprio_set), FAST(sched_setattr), FAST(keyctl_join), FAST(set_mempolicy),
    FAST(bpf), FAST(clone3), FAST(fstatfs_type), FAST(socket), FAST(socketpair), FAST(send_fds),
    FAST(recv_fds), FAST(sethostname),
    {"buffer_address", n_buffer_address, METH_O, NULL},
    {"clone3_probe", n_clone3_probe, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pyrunc.syscalls._native", NULL, 0, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&module);
}
