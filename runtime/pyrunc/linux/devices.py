"""/dev inside the container: runtime-linux.md's default devices, linux.devices, and the symlinks."""
from __future__ import annotations

import errno
import os
import stat

from pyrunc.errors import context
from pyrunc.linux import paths

# runtime-linux.md "Default Devices": (name, major, minor)
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
SYMLINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore"))
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def dev_is_bind(mounts: list) -> bool:
    return any(op.destination.rstrip("/") == "/dev" and op.is_bind for op in mounts)


def setup(rootfd: int, devices: list[dict], *, defaults: bool) -> None:
    """Create the default devices (unless /dev is a bind mount) and every linux.devices entry."""
    devfd = paths.mkdir_all(rootfd, "/dev")
    try:
        if defaults:
            for name, major, minor in DEFAULT_DEVICES:
                with context(f"/dev/{name}"):
                    _node(rootfd, f"/dev/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor), 0, 0)
            for name, target in SYMLINKS:
                _symlink(devfd, name, target)
            _symlink(devfd, "ptmx", "pts/ptmx")
    finally:
        os.close(devfd)
    for i, dev in enumerate(devices):
        with context(f"linux.devices[{i}] {dev['path']}"):
            mode = _TYPES[dev["type"]] | (dev.get("fileMode", 0o666) & 0o7777)
            rdev = os.makedev(dev.get("major", 0), dev.get("minor", 0))
            _node(rootfd, dev["path"], mode, rdev, dev.get("uid", 0), dev.get("gid", 0))


def _symlink(dirfd: int, name: str, target: str) -> None:
    try:
        os.symlink(target, name, dir_fd=dirfd)
    except FileExistsError:
        pass


def _node(rootfd: int, path: str, mode: int, rdev: int, uid: int, gid: int) -> None:
    parent, _, base = path.rpartition("/")
    pfd = paths.mkdir_all(rootfd, parent or "/")
    try:
        try:
            os.unlink(base, dir_fd=pfd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.EISDIR:
                raise
            raise IsADirectoryError(exc.errno, "a directory is in the way", path) from None
        os.mknod(base, mode, rdev, dir_fd=pfd)
        # mknod honours the umask; the spec's fileMode is exact.
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            os.chmod(paths.fd_path(fd), mode & 0o7777)
            os.chown(paths.fd_path(fd), uid, gid)
        finally:
            os.close(fd)
    finally:
        os.close(pfd)
