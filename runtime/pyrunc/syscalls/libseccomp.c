/* pyrunc.syscalls._seccomp: libseccomp (compiles a profile to BPF, in the parent) and
   seccomp(2), as a plain CPython extension (stable ABI); see seccomp_calls.py.

   libseccomp only translates a profile into a BPF program. The container side installs
   that program with seccomp(2) itself, so every SECCOMP_FILTER_FLAG_* the kernel knows is
   usable (libseccomp 2.5 cannot set WAIT_KILLABLE_RECV) and the container side needs no
   libseccomp call at all. A filter context travels to Python as its address (an int).
   Failures come back as libseccomp's negative errno values, seccomp(2)'s as -errno. */
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

static scmp_filter_ctx ctx_arg(PyObject *o)
{
    return PyLong_AsVoidPtr(o);
}

/* init(default_action) -> the context's address, 0 on failure */
static PyObject *s_init(PyObject *self, PyObject *action)
{
    unsigned long a = PyLong_AsUnsignedLong(action);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromVoidPtr(seccomp_init((uint32_t)a));
}

static PyObject *s_release(PyObject *self, PyObject *ctx)
{
    scmp_filter_ctx c = ctx_arg(ctx);
    if (PyErr_Occurred())
        return NULL;
    seccomp_release(c);
    Py_RETURN_NONE;
}

static PyObject *s_arch_resolve_name(PyObject *self, PyObject *name)
{
    const char *s = PyUnicode_AsUTF8AndSize(name, NULL);
    if (s == NULL)
        return NULL;
    return PyLong_FromUnsignedLong(seccomp_arch_resolve_name(s));
}

static PyObject *s_arch_native(PyObject *self, PyObject *unused)
{
    return PyLong_FromUnsignedLong(seccomp_arch_native());
}

static PyObject *s_syscall_resolve_name(PyObject *self, PyObject *name)
{
    const char *s = PyUnicode_AsUTF8AndSize(name, NULL);
    if (s == NULL)
        return NULL;
    return PyLong_FromLong(seccomp_syscall_resolve_name(s));
}

/* arch_add(ctx, token) */
static PyObject *s_arch_add(PyObject *self, PyObject *args)
{
    PyObject *ctx;
    unsigned long token;
    if (!PyArg_ParseTuple(args, "Ok", &ctx, &token))
        return NULL;
    scmp_filter_ctx c = ctx_arg(ctx);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(seccomp_arch_add(c, (uint32_t)token));
}

/* rule_add(ctx, action, syscall, conds): conds a sequence of (arg, op, datum_a, datum_b) */
static PyObject *s_rule_add(PyObject *self, PyObject *args)
{
    PyObject *ctx, *conds, *seq;
    unsigned long action;
    int nr, r;
    Py_ssize_t n, i;
    struct scmp_arg_cmp cmp[6];
    if (!PyArg_ParseTuple(args, "OkiO", &ctx, &action, &nr, &conds))
        return NULL;
    scmp_filter_ctx c = ctx_arg(ctx);
    if (PyErr_Occurred())
        return NULL;
    seq = PySequence_Tuple(conds);
    if (seq == NULL)
        return NULL;
    n = PyTuple_Size(seq);
    if (n > 6) {
        Py_DECREF(seq);
        return PyLong_FromLong(-EINVAL);  /* a syscall has six arguments */
    }
    for (i = 0; i < n; i++) {
        unsigned int arg;
        int op;
        unsigned long long a, b;
        if (!PyArg_ParseTuple(PyTuple_GetItem(seq, i), "IiKK", &arg, &op, &a, &b)) {
            Py_DECREF(seq);
            return NULL;
        }
        cmp[i].arg = arg;
        cmp[i].op = op;
        cmp[i].datum_a = a;
        cmp[i].datum_b = b;
    }
    Py_DECREF(seq);
    r = seccomp_rule_add_array(c, (uint32_t)action, nr, (unsigned int)n, n ? cmp : NULL);
    return PyLong_FromLong(r);
}

/* export_bpf(ctx, fd): the compiled program written to fd */
static PyObject *s_export_bpf(PyObject *self, PyObject *args)
{
    PyObject *ctx;
    int fd;
    if (!PyArg_ParseTuple(args, "Oi", &ctx, &fd))
        return NULL;
    scmp_filter_ctx c = ctx_arg(ctx);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(seccomp_export_bpf(c, fd));
}

static PyObject *s_version(PyObject *self, PyObject *unused)
{
    const struct scmp_version *v = seccomp_version();
    return Py_BuildValue("(III)", v->major, v->minor, v->micro);
}

/* filter(flags, program bytes or None): seccomp(SECCOMP_SET_MODE_FILTER) on this thread;
   the listener fd with FLAG_NEW_LISTENER, else 0; -errno on failure */
static PyObject *s_filter(PyObject *self, PyObject *args)
{
    unsigned int flags;
    PyObject *prog_obj;
    Py_buffer view;
    struct sock_fprog prog;
    long r;
    if (!PyArg_ParseTuple(args, "IO", &flags, &prog_obj))
        return NULL;
    if (prog_obj == Py_None) {
        r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL);
        return PyLong_FromLong(r < 0 ? -errno : r);
    }
    if (PyObject_GetBuffer(prog_obj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    prog.len = (unsigned short)(view.len / 8);
    prog.filter = (struct sock_filter *)view.buf;
    r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (r < 0)
        r = -errno;
    PyBuffer_Release(&view);
    return PyLong_FromLong(r);
}

static PyMethodDef methods[] = {
    {"init", s_init, METH_O, NULL},
    {"release", s_release, METH_O, NULL},
    {"arch_resolve_name", s_arch_resolve_name, METH_O, NULL},
    {"arch_native", s_arch_native, METH_NOARGS, NULL},
    {"arch_add", s_arch_add, METH_VARARGS, NULL},
    {"syscall_resolve_name", s_syscall_resolve_name, METH_O, NULL},
    {"rule_add", s_rule_add, METH_VARARGS, NULL},
    {"export_bpf", s_export_bpf, METH_VARARGS, NULL},
    {"version", s_version, METH_NOARGS, NULL},
    {"filter", s_filter, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pyrunc.syscalls._seccomp", NULL, 0, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__seccomp(void)
{
    return PyModule_Create(&module);
}
