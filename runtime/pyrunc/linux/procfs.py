"""Writes through /proc that cannot be redirected.

CVE-2019-16884 / CVE-2019-19921 (runc): an image mounted a fake filesystem
over /proc, and the AppArmor label runc wrote to /proc/self/attr/exec went to
a decoy; the container ran unconfined. CVE-2025-52881 showed that checking
"the file is on a procfs" is not enough: racing containers with shared mounts
can point the path at another, real procfs file (even /proc/sysrq-trigger).

So writes go through a procfs instance of our own, made with fsopen/fsmount
and never attached anywhere: nothing in the container can mount over or
swap anything inside it. Where that is not allowed (no new mount API, or not
privileged for it) the procfs mounted at /proc is used, and must prove it is
one: the root of a real procfs (statfs magic, inode 1), the file opened
beneath it without crossing a mount or following a magic link, and on procfs.
"""
from __future__ import annotations

import errno
import posix

from pyrunc.errors import PyruncError
from pyrunc.syscalls import consts as k

PROC_ROOT_INO = 1
_FALLBACK_ERRNOS = (errno.ENOSYS, errno.EPERM, errno.EACCES)


class ProcfsError(PyruncError):
    pass


def _check_proc(fd: int, what: str) -> None:
    from pyrunc.syscalls import calls as sc

    if sc.fstatfs_type(fd, what) != k.PROC_SUPER_MAGIC:
        raise ProcfsError(f"{what}: not on a procfs, refusing to use it")


def _private_root() -> int | None:
    """A detached procfs mount (O_CLOEXEC fd); None if this process may not make one."""
    from pyrunc.syscalls import calls as sc

    try:
        ctx = sc.fsopen("proc")
    except OSError as exc:
        if exc.errno in _FALLBACK_ERRNOS:
            return None
        raise
    try:
        sc.fsconfig(ctx, k.FSCONFIG_CMD_CREATE)
        return sc.fsmount(ctx, k.FSMOUNT_CLOEXEC, k.MOUNT_ATTR_NOSUID | k.MOUNT_ATTR_NODEV | k.MOUNT_ATTR_NOEXEC)
    except OSError as exc:
        if exc.errno in _FALLBACK_ERRNOS:
            return None
        raise
    finally:
        posix.close(ctx)


def _mounted_root(proc: str) -> int:
    root = posix.open(proc, posix.O_PATH | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    try:
        _check_proc(root, proc)
        if posix.fstat(root).st_ino != PROC_ROOT_INO:
            raise ProcfsError(f"{proc}: not the root of a procfs, refusing to use it")
    except BaseException:
        posix.close(root)
        raise
    return root


def open_proc(rel: str, flags: int, proc: str | None = None) -> int:
    """Open ``rel`` (e.g. "self/attr/exec") on a procfs; returns an O_CLOEXEC fd.

    ``proc=None``: our private procfs if we may make one, else the verified /proc;
    a path: only the verified procfs mounted there.
    """
    from pyrunc.syscalls import calls as sc

    root = _private_root() if proc is None else None
    label = "procfs" if root is not None else (proc or "/proc")
    if root is None:
        root = _mounted_root(proc or "/proc")
    try:
        fd = sc.openat2(root, rel, flags | posix.O_NOFOLLOW,
                        k.RESOLVE_BENEATH | k.RESOLVE_NO_XDEV | k.RESOLVE_NO_MAGICLINKS)
    finally:
        posix.close(root)
    try:
        _check_proc(fd, f"{label}/{rel}")
    except BaseException:
        posix.close(fd)
        raise
    return fd


def write(rel: str, data: bytes, proc: str | None = None) -> None:
    fd = open_proc(rel, posix.O_WRONLY, proc)
    try:
        posix.write(fd, data)
    finally:
        posix.close(fd)
