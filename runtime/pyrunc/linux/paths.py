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
import stat

from pyrunc.errors import PyruncError, SyscallError
from pyrunc.linux import procfs
from pyrunc.syscalls import calls as sc

_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
_MAX_LINKS = 40  # the kernel's limit on symlinks in one lookup
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


def mkdir_all(rootfd: int, path: str) -> int:
    """Create every missing directory of ``path`` inside the root (0755); return an O_PATH fd to it."""
    return make_path(rootfd, path, True)[0]


def make_path(rootfd: int, path: str, is_dir: bool) -> tuple[int, bool]:
    """An O_PATH fd to ``path`` inside the root and whether its last component was made now:
    a directory (``is_dir``, 0755) or an empty file (0644). Missing parents are made as
    directories, and a symlink leading nowhere is followed inside the root and its target
    made, as images' links (/var/run -> /run, /etc/resolv.conf -> ../run/...) need. Nothing
    existing is opened for reading or writing, so no FIFO or device at ``path`` can block."""
    flags = posix.O_PATH | (posix.O_DIRECTORY if is_dir else 0)
    try:
        return open_in_root(rootfd, path, flags), False  # there already: most are
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    where, made = _walk(rootfd, path, is_dir)
    return open_in_root(rootfd, where, flags), made


def _walk(rootfd: int, path: str, last_is_dir: bool = True, create: bool = True) -> tuple[str, bool]:
    """Resolve ``path`` component by component as RESOLVE_IN_ROOT does (an absolute symlink
    or a '..' never leaves the root); with ``create``, make what is missing (the last
    component a file unless ``last_is_dir``). Returns the resolved path (no symlink left
    in it; a missing part as written when not creating) and whether the last was made."""
    todo = [c for c in path.split("/") if c][::-1]  # a stack: the next component last
    done: list[str] = []
    links, made = 0, False
    while todo:
        comp = todo.pop()
        if comp in (".", ".."):
            if comp == ".." and done:
                done.pop()
            continue
        pfd = open_in_root(rootfd, "/".join(done), posix.O_PATH | posix.O_DIRECTORY)
        try:
            try:
                st = posix.stat(comp, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    return "/" + "/".join(done + [comp] + todo[::-1]), False
                made = _make(pfd, comp, bool(todo) or last_is_dir)
                if not made:
                    todo.append(comp)  # appeared meanwhile: look again
                    continue
            else:
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > _MAX_LINKS:
                        raise SyscallError("openat2", errno.ELOOP, path)
                    target = posix.readlink(comp, dir_fd=pfd)
                    if target.startswith("/"):
                        done = []
                    todo += [c for c in target.split("/") if c][::-1]
                    continue
                made = False
        finally:
            posix.close(pfd)
        done.append(comp)
    return "/" + "/".join(done), made


def _make(dirfd: int, name: str, is_dir: bool) -> bool:
    """mkdir, or an empty file by O_CREAT|O_EXCL; False if ``name`` exists."""
    try:
        if is_dir:
            posix.mkdir(name, 0o755, dir_fd=dirfd)
        else:
            new_file = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
            posix.close(posix.open(name, new_file, 0o644, dir_fd=dirfd))
    except FileExistsError:
        return False
    return True


def split(path: str) -> tuple[str, str]:
    """("/a/b", "c") for "/a/b/c"; the last component must be a plain name."""
    parent, _, base = path.rstrip("/").rpartition("/")
    if base in ("", ".", ".."):
        raise PyruncError(f"{path}: not a path to a file")
    return parent or "/", base


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
    """Where ``path`` leads inside the root, as make_path resolves it (symlinks stay inside);
    the part that does not exist yet is kept as written. Only reads (`explain`)."""
    try:
        return _walk(rootfd, path, create=False)[0]
    except OSError:
        return "/" + "/".join(c for c in path.split("/") if c)
