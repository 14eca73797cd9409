"""Paths inside the rootfs, resolved by the kernel as if the rootfs were /.

openat2(RESOLVE_IN_ROOT) keeps every lookup (symlinks and '..' included)
inside the rootfs, so a hostile rootfs cannot point a mount or a device node
at the host. Mounts then target the resolved O_PATH fd via /proc/self/fd,
after checking that /proc is really a procfs (a rootfs could put a directory
of symlinks there).
"""
from __future__ import annotations

import errno
import posix

from pyrunc.errors import PyruncError, SyscallError
from pyrunc.linux import procfs
from pyrunc.syscalls import calls as sc

_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
_checked_root: tuple[int, int] | None = None  # (st_dev, st_ino) of the / whose /proc was verified


def open_in_root(rootfd: int, path: str, flags: int = posix.O_PATH) -> int:
    try:
        return sc.openat2(rootfd, path.lstrip("/") or ".", flags, _RESOLVE)
    except SyscallError as exc:  # name the path as the container sees it
        raise SyscallError("openat2", exc.errno or 0, path) from None


def fd_path(fd: int) -> str:
    """A path naming exactly what ``fd`` refers to, for syscalls that take only paths (mount)."""
    _check_procfs()
    return f"/proc/self/fd/{fd}"


def _check_procfs() -> None:
    """/proc of the current root must be a real procfs (checked again after pivot_root)."""
    global _checked_root
    root = posix.stat("/")
    if _checked_root != (root.st_dev, root.st_ino):
        posix.close(procfs.open_proc("self/fd", posix.O_PATH | posix.O_DIRECTORY, proc="/proc"))
        _checked_root = (root.st_dev, root.st_ino)


def mkdir_all(rootfd: int, path: str, mode: int = 0o755) -> int:
    """Create every missing directory of ``path`` inside the root; return an O_PATH fd to it."""
    try:
        return open_in_root(rootfd, path, posix.O_PATH | posix.O_DIRECTORY)  # there already: most are
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    done = ""
    for comp in [c for c in path.split("/") if c]:
        parent = done or "/"
        done = f"{done}/{comp}"
        try:
            posix.close(open_in_root(rootfd, done, posix.O_PATH | posix.O_DIRECTORY))
            continue
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        pfd = open_in_root(rootfd, parent, posix.O_PATH | posix.O_DIRECTORY)
        try:
            posix.mkdir(comp, mode, dir_fd=pfd)
        except FileExistsError:
            pass  # created meanwhile, or a dangling symlink: the re-open below decides
        finally:
            posix.close(pfd)
    return open_in_root(rootfd, path, posix.O_PATH | posix.O_DIRECTORY)


def split(path: str) -> tuple[str, str]:
    """("/a/b", "c") for "/a/b/c"; the last component must be a plain name."""
    parent, _, base = path.rstrip("/").rpartition("/")
    if base in ("", ".", ".."):
        raise PyruncError(f"{path}: not a path to a file")
    return parent or "/", base


def make_file(rootfd: int, path: str, mode: int = 0o644) -> int:
    """Create an empty file at ``path`` inside the root if absent; return an O_PATH fd to it."""
    parent, base = split(path)
    pfd = mkdir_all(rootfd, parent)
    try:
        fd = posix.open(base, posix.O_WRONLY | posix.O_CREAT | posix.O_NOFOLLOW | posix.O_CLOEXEC, mode, dir_fd=pfd)
        posix.close(fd)
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.ELOOP, errno.ENXIO, errno.EACCES, errno.ETXTBSY):
            raise
    finally:
        posix.close(pfd)
    return open_in_root(rootfd, path)


def make_mountpoint(rootfd: int, path: str, is_dir: bool) -> int:
    return mkdir_all(rootfd, path) if is_dir else make_file(rootfd, path)


def replace_with_file(rootfd: int, path: str, mode: int = 0o600) -> int:
    """Put a fresh empty regular file at ``path`` (a symlink or file there is removed); O_PATH fd."""
    parent, base = split(path)
    pfd = mkdir_all(rootfd, parent)
    try:
        unlink_nondir(pfd, base, path)
        new_file = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
        posix.close(posix.open(base, new_file, mode, dir_fd=pfd))
        return posix.open(base, posix.O_PATH | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=pfd)
    finally:
        posix.close(pfd)


def unlink_nondir(dirfd: int, name: str, path: str) -> None:
    """Remove ``name`` unless absent; a directory in the way is an error, not something to delete."""
    try:
        posix.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise PyruncError(f"{path}: a directory is in the way") from None
    except OSError as exc:
        if exc.errno == errno.EBUSY:  # a mount point (e.g. /dev/console bound by an earlier step)
            raise PyruncError(f"{path}: busy (a mount point)") from None
        raise


def resolve_in_root(rootfd: int, path: str) -> str:
    """Where ``path`` leads inside the root, as open_in_root resolves it (symlinks stay
    inside); the part that does not exist yet is kept as written. Only reads (`explain`)."""
    from pyrunc import fs

    parts = [c for c in path.split("/") if c]
    root = posix.readlink(f"/proc/self/fd/{rootfd}")
    for n in range(len(parts), -1, -1):
        try:
            fd = open_in_root(rootfd, "/".join(parts[:n]))
        except OSError:
            continue
        try:
            real = posix.readlink(f"/proc/self/fd/{fd}")
        finally:
            posix.close(fd)
        inside = "/" + fs.relpath(real, root) if real != root else "/"
        return fs.normpath(fs.join(inside, *parts[n:])) if parts[n:] else inside
    return "/" + "/".join(parts)
