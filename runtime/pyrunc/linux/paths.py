"""Paths inside the rootfs, resolved by the kernel as if the rootfs were /.

openat2(RESOLVE_IN_ROOT) keeps every lookup (symlinks and '..' included)
inside the rootfs, so a hostile rootfs cannot point a mount or a device node
at the host. Mounts then target the resolved O_PATH fd via /proc/self/fd.
"""
from __future__ import annotations

import errno
import os

from pyrunc.syscalls import calls as sc

_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS


def open_in_root(rootfd: int, path: str, flags: int = os.O_PATH) -> int:
    return sc.openat2(rootfd, path.lstrip("/") or ".", flags, _RESOLVE)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def mkdir_all(rootfd: int, path: str, mode: int = 0o755) -> int:
    """Create every missing directory of ``path`` inside the root; return an O_PATH fd to it."""
    done = ""
    for comp in [c for c in path.split("/") if c]:
        parent = done or "/"
        done = f"{done}/{comp}"
        try:
            os.close(open_in_root(rootfd, done, os.O_PATH | os.O_DIRECTORY))
            continue
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        pfd = open_in_root(rootfd, parent, os.O_PATH | os.O_DIRECTORY)
        try:
            os.mkdir(comp, mode, dir_fd=pfd)
        except FileExistsError:
            pass  # created meanwhile, or a dangling symlink: the re-open below decides
        finally:
            os.close(pfd)
    return open_in_root(rootfd, path, os.O_PATH | os.O_DIRECTORY)


def make_file(rootfd: int, path: str, mode: int = 0o644) -> int:
    """Create an empty file at ``path`` inside the root if absent; return an O_PATH fd to it."""
    parent, _, base = path.rstrip("/").rpartition("/")
    pfd = mkdir_all(rootfd, parent or "/")
    try:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=pfd)
        os.close(fd)
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.ELOOP, errno.ENXIO, errno.EACCES, errno.ETXTBSY):
            raise
    finally:
        os.close(pfd)
    return open_in_root(rootfd, path)


def make_mountpoint(rootfd: int, path: str, is_dir: bool) -> int:
    return mkdir_all(rootfd, path) if is_dir else make_file(rootfd, path)
