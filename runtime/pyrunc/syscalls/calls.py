"""The syscall boundary: typed wrappers over the C shims in ``_native`` (native.c).

Nothing else in pyrunc imports ``_native`` or ctypes. The shims return the call's
result, or -errno; every wrapper retries EINTR (as PEP 475 does for the stdlib) and
raises SyscallError naming the call, its path and the errno.
"""
from __future__ import annotations

import posix

from pyrunc.errors import SyscallError
from pyrunc.syscalls import _native as lib
from pyrunc.syscalls.consts import *  # noqa: F403  (re-exported for callers)

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable


def _call(name: str, fn: Callable[[], int], path: str | None = None) -> int:
    while True:
        ret = fn()
        if ret >= 0:
            return ret
        if ret != -4:  # EINTR
            raise SyscallError(name, -ret, path)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None,
          label: str | None = None) -> None:
    """``label`` names the target in errors when ``target`` is a /proc/self/fd path."""
    _call("mount", lambda: lib.mount(source, target, fstype, flags, data), label or target)


def umount2(target: str, flags: int = 0) -> None:
    _call("umount2", lambda: lib.umount2(target, flags), target)


def pivot_root(new_root: str, put_old: str) -> None:
    _call("pivot_root", lambda: lib.pivot_root(new_root, put_old), new_root)


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    _call("setns", lambda: lib.setns(fd, nstype), path)


def unshare(flags: int) -> None:
    _call("unshare", lambda: lib.unshare(flags))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _call("setdomainname", lambda: lib.setdomainname(raw, len(raw)))


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _call("prctl", lambda: lib.prctl(option, a2, a3, a4, a5))


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    return _call("openat2", lambda: lib.openat2(dirfd, path, flags | posix.O_CLOEXEC, mode, resolve), path)


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    _call("mount_setattr", lambda: lib.mount_setattr(dirfd, path, flags, attr_set, attr_clr, propagation, userns_fd),
          path or None)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return _call("open_tree", lambda: lib.open_tree(dirfd, path, flags), path or None)


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
    _call("move_mount", lambda: lib.move_mount(from_dirfd, from_path, to_dirfd, to_path, flags),
          to_path or None)


def fsopen(fsname: str, flags: int = FSOPEN_CLOEXEC) -> int:  # noqa: F405
    return _call("fsopen", lambda: lib.fsopen(fsname, flags), fsname)


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0) -> None:
    _call("fsconfig", lambda: lib.fsconfig(fd, cmd, key, value, aux), key)


def fsmount(fd: int, flags: int = FSMOUNT_CLOEXEC, attr_flags: int = 0) -> int:  # noqa: F405
    return _call("fsmount", lambda: lib.fsmount(fd, flags, attr_flags))


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _call("close_range", lambda: lib.close_range(first, last, flags))


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return the (effective, permitted, inheritable) 64-bit masks of ``pid``."""
    sets = lib.capget(pid)
    if type(sets) is int:  # -errno
        raise SyscallError("capget", -sets)
    return sets


def capset(effective: int, permitted: int, inheritable: int) -> None:
    _call("capset", lambda: lib.capset(effective, permitted, inheritable))


def set_capabilities(effective: int, permitted: int, inheritable: int, ambient: int) -> int:
    """KEEPCAPS off, capset, then ambient cleared and raised; returns the ambient
    capabilities the kernel would not raise (a mask)."""
    return _call("capset", lambda: lib.caps_apply(effective, permitted, inheritable, ambient))


def personality(persona: int) -> None:
    _call("personality", lambda: lib.personality(persona))


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _call("ioprio_set", lambda: lib.ioprio_set(which, who, ioprio))


def sched_setattr(pid: int, attr: bytes, flags: int = 0) -> None:
    _call("sched_setattr", lambda: lib.sched_setattr(pid, attr, flags))


def keyctl_join_session_keyring(name: str | None) -> None:
    _call("keyctl", lambda: lib.keyctl_join(name))


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    maxnode = (max(nodes) + 2) if nodes else 0
    words = [0] * ((maxnode + 63) // 64 or 1)
    for n in nodes:
        words[n // 64] |= 1 << (n % 64)
    mask = b"".join(w.to_bytes(8, "little") for w in words) if nodes else None  # unsigned long[]
    _call("set_mempolicy", lambda: lib.set_mempolicy(mode, mask, maxnode))


def clone3(cgroup_fd: int = -1, ns_flags: int = 0) -> int:
    """posix.fork(), with the child born in the cgroup2 directory ``cgroup_fd`` (CLONE_INTO_CGROUP:
    no cgroup.procs write, so no wait for an RCU grace period) and in new namespaces ``ns_flags``
    (which may also hold CLONE_PARENT: the child is then our parent's child)."""
    return _call("clone3", lambda: lib.clone3(cgroup_fd, ns_flags))


def clone3_available() -> bool:
    """Whether the kernel has clone3 (5.3+), asked without making a process."""
    return lib.clone3_probe() != -38  # ENOSYS


def bpf(cmd: int, attr: bytearray) -> int:
    return _call("bpf", lambda: lib.bpf(cmd, attr, len(attr)))


def buffer_address(buf: bytearray) -> int:
    """The address of ``buf``'s bytes, for syscall structs that hold pointers (bpf's
    attr). Valid while ``buf`` is alive and not resized."""
    return lib.buffer_address(buf)


def fstatfs_type(fd: int, path: str | None = None) -> int:
    """The filesystem magic (statfs f_type) of the file ``fd`` refers to."""
    return _call("fstatfs", lambda: lib.fstatfs_type(fd), path)


def socket(domain: int, kind: int) -> int:
    """A close-on-exec socket's fd."""
    return _call("socket", lambda: lib.socket(domain, kind))


def socketpair(domain: int, kind: int) -> tuple[int, int]:
    """Two connected close-on-exec sockets' fds (a C call: `_socket` costs ~0.2 ms to import)."""
    pair = lib.socketpair(domain, kind)
    if type(pair) is int:  # -errno
        raise SyscallError("socketpair", -pair)
    return pair


def send_fds(fd: int, data: bytes, fds: list[int]) -> int:
    """One sendmsg of ``data`` with ``fds`` as SCM_RIGHTS (MSG_NOSIGNAL); the bytes sent."""
    return _call("sendmsg", lambda: lib.send_fds(fd, data, fds))


def recv_fds(fd: int, bufsize: int, maxfds: int, flags: int = 0) -> tuple[bytes, list[int], int]:
    """One recvmsg: (data, the fds received, msg_flags). ECONNRESET and the like raise
    SyscallError, whose errno tells them."""
    while True:
        got = lib.recv_fds(fd, bufsize, maxfds, flags)
        if type(got) is not int:
            return got
        if got != -4:  # EINTR
            raise SyscallError("recvmsg", -got)


def sethostname(name: str) -> None:
    raw = name.encode()
    _call("sethostname", lambda: lib.sethostname(raw, len(raw)))
