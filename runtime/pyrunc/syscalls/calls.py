"""The syscall boundary: typed wrappers over the cffi shims in ``_native``.

Nothing else in pyrunc imports ``_native``, cffi or ctypes. Every wrapper
retries EINTR (as PEP 475 does for the stdlib) and raises SyscallError naming
the call, its path and the errno.
"""
from __future__ import annotations

import posix

from pyrunc import fs
from pyrunc.errors import SyscallError
from pyrunc.syscalls._native import ffi, lib
from pyrunc.syscalls.consts import *  # noqa: F403  (re-exported for callers)

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

_CAP_VERSION_3 = 0x20080522


def _call(name: str, fn: Callable[[], int], path: str | None = None) -> int:
    while True:
        ret = fn()
        if ret >= 0:
            return ret
        err = ffi.errno
        if err != 4:  # EINTR
            raise SyscallError(name, err, path)


def _b(s: str | None) -> bytes | object:
    return ffi.NULL if s is None else fs.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None,
          label: str | None = None) -> None:
    """``label`` names the target in errors when ``target`` is a /proc/self/fd path."""
    _call("mount", lambda: lib.pr_mount(_b(source), _b(target), _b(fstype), flags, _b(data)), label or target)


def umount2(target: str, flags: int = 0) -> None:
    _call("umount2", lambda: lib.pr_umount2(_b(target), flags), target)


def pivot_root(new_root: str, put_old: str) -> None:
    _call("pivot_root", lambda: lib.pr_pivot_root(_b(new_root), _b(put_old)), new_root)


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    _call("setns", lambda: lib.pr_setns(fd, nstype), path)


def unshare(flags: int) -> None:
    _call("unshare", lambda: lib.pr_unshare(flags))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _call("setdomainname", lambda: lib.pr_setdomainname(raw, len(raw)))


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _call("prctl", lambda: lib.pr_prctl(option, a2, a3, a4, a5))


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = ffi.new("struct pr_open_how *", {"flags": flags | posix.O_CLOEXEC, "mode": mode, "resolve": resolve})
    return _call("openat2", lambda: lib.pr_openat2(dirfd, _b(path), how), path)


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    attr = ffi.new("struct pr_mount_attr *", {"attr_set": attr_set, "attr_clr": attr_clr,
                                               "propagation": propagation, "userns_fd": userns_fd})
    _call("mount_setattr", lambda: lib.pr_mount_setattr(dirfd, _b(path), flags, attr), path or None)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return _call("open_tree", lambda: lib.pr_open_tree(dirfd, _b(path), flags), path or None)


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
    _call("move_mount", lambda: lib.pr_move_mount(from_dirfd, _b(from_path), to_dirfd, _b(to_path), flags),
          to_path or None)


def fsopen(fsname: str, flags: int = FSOPEN_CLOEXEC) -> int:  # noqa: F405
    return _call("fsopen", lambda: lib.pr_fsopen(_b(fsname), flags), fsname)


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0) -> None:
    _call("fsconfig", lambda: lib.pr_fsconfig(fd, cmd, _b(key), _b(value), aux), key)


def fsmount(fd: int, flags: int = FSMOUNT_CLOEXEC, attr_flags: int = 0) -> int:  # noqa: F405
    return _call("fsmount", lambda: lib.pr_fsmount(fd, flags, attr_flags))


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _call("close_range", lambda: lib.pr_close_range(first, last, flags))


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return the (effective, permitted, inheritable) 64-bit masks of ``pid``."""
    data = ffi.new("uint32_t[6]")
    _call("capget", lambda: lib.pr_capget(_CAP_VERSION_3, pid, data))
    return (data[0] | data[3] << 32, data[1] | data[4] << 32, data[2] | data[5] << 32)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    m = 0xFFFFFFFF
    data = ffi.new("uint32_t[6]", [effective & m, permitted & m, inheritable & m,
                                    effective >> 32, permitted >> 32, inheritable >> 32])
    _call("capset", lambda: lib.pr_capset(_CAP_VERSION_3, 0, data))


def set_capabilities(effective: int, permitted: int, inheritable: int, ambient: int) -> int:
    """KEEPCAPS off, capset, then ambient cleared and raised; returns the ambient
    capabilities the kernel would not raise (a mask)."""
    failed = ffi.new("uint64_t *")
    sets = ffi.new("uint64_t[4]", [effective, permitted, inheritable, ambient])
    _call("capset", lambda: lib.pr_caps_apply(sets, failed))
    return int(failed[0])


def personality(persona: int) -> None:
    _call("personality", lambda: lib.pr_personality(persona))


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _call("ioprio_set", lambda: lib.pr_ioprio_set(which, who, ioprio))


def sched_setattr(pid: int, attr: bytes, flags: int = 0) -> None:
    buf = ffi.from_buffer(attr)
    _call("sched_setattr", lambda: lib.pr_sched_setattr(pid, buf, flags))


def keyctl_join_session_keyring(name: str | None) -> None:
    _call("keyctl", lambda: lib.pr_keyctl_join(_b(name)))


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    maxnode = (max(nodes) + 2) if nodes else 0
    words = [0] * ((maxnode + 63) // 64 or 1)
    for n in nodes:
        words[n // 64] |= 1 << (n % 64)
    mask = ffi.new("unsigned long[]", words)
    _call("set_mempolicy", lambda: lib.pr_set_mempolicy(mode, mask if nodes else ffi.NULL, maxnode))


def clone3(cgroup_fd: int = -1, ns_flags: int = 0) -> int:
    """posix.fork(), with the child born in the cgroup2 directory ``cgroup_fd`` (CLONE_INTO_CGROUP:
    no cgroup.procs write, so no wait for an RCU grace period) and in new namespaces ``ns_flags``
    (which may also hold CLONE_PARENT: the child is then our parent's child)."""
    return _call("clone3", lambda: lib.pr_clone3(cgroup_fd, ns_flags))


def clone3_available() -> bool:
    """Whether the kernel has clone3 (5.3+), asked without making a process."""
    return lib.pr_clone3_probe() == 0 or ffi.errno != 38  # ENOSYS


def bpf(cmd: int, attr: bytearray) -> int:
    buf = ffi.from_buffer(attr)
    return _call("bpf", lambda: lib.pr_bpf(cmd, buf, len(attr)))


def buffer_address(buf: bytearray) -> int:
    """The address of ``buf``'s bytes, for syscall structs that hold pointers (bpf's
    attr). Valid while ``buf`` is alive and not resized."""
    return int(ffi.cast("uintptr_t", ffi.from_buffer(buf)))


def fstatfs_type(fd: int, path: str | None = None) -> int:
    """The filesystem magic (statfs f_type) of the file ``fd`` refers to."""
    return _call("fstatfs", lambda: lib.pr_fstatfs_type(fd), path)
