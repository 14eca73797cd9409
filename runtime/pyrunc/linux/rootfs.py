"""Switch into the rootfs and apply the path policies that act on the final tree.

After pivot_root every path is still resolved with openat2(RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS) from an fd of the new root, so a symlink into
/proc/<pid>/root or a leaked fd cannot redirect a mask to the host.
"""
from __future__ import annotations

import errno
import posix
import stat

from pyrunc.errors import PyruncError, context
from pyrunc.linux import paths
from pyrunc.linux.mounts import mount_flags
from pyrunc.spec.mountopts import PROPAGATION
from pyrunc.syscalls import calls as sc

_MASK_FLAGS = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
_NULL = posix.makedev(1, 3)


def pivot(rootfs: str, no_pivot: bool, propagation: str | None = None) -> None:
    """Make ``rootfs`` the root; then give it linux.rootfsPropagation when the config sets one."""
    posix.chdir(rootfs)
    if no_pivot:
        # MS_MOVE + chroot for hosts whose root is not a mount (initramfs); weaker, hence opt-in.
        with context("--no-pivot"):
            _detach_host_proc_sys(rootfs)
            sc.mount(rootfs, "/", None, sc.MS_MOVE)
            posix.chroot(".")
    else:
        # pivot_root(".", ".") stacks the old root on top of the new one; make it
        # slave so the detach below does not propagate back to the host, then drop it.
        # "." must be the old root itself (entered through its fd): from the new
        # root's directory the MS_REC would also reach the container's own mounts
        # and undo their "shared" propagation.
        with context("pivot_root"):
            old = posix.open("/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
            try:
                sc.pivot_root(".", ".")
                posix.fchdir(old)
            finally:
                posix.close(old)
            sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
            sc.umount2(".", sc.MNT_DETACH)
    posix.chdir("/")
    if propagation:
        # The rootfs mount itself: its submounts keep what their own options (or the
        # recursive change of the host tree before the mounts) gave them.
        with context(f"linux.rootfsPropagation {propagation}"):
            sc.mount(None, "/", None, PROPAGATION[propagation] & ~sc.MS_REC)


def _detach_host_proc_sys(rootfs: str) -> None:
    """Without pivot_root the host's mounts stay in the container's mount namespace, under
    the new root. A fully visible procfs or sysfs among them lets a user namespace nested in
    the container mount a fresh, unmasked one (the kernel's mount_too_revealing): detach
    them, or cover them with an empty read-only tmpfs where they cannot go (locked)."""
    from pyrunc import fs

    with open("/proc/self/mountinfo") as f:
        entries = [line.split() for line in f]
    points = [fs.unescape_mountinfo(e[4]) for e in entries if e[e.index("-") + 1] in ("proc", "sysfs")]
    inside = rootfs.rstrip("/") + "/"
    gone: list[str] = []
    for point in sorted(p for p in points if not (p + "/").startswith(inside)):
        if any((point + "/").startswith(g.rstrip("/") + "/") for g in gone):
            continue  # went with a parent detached before
        try:
            sc.umount2(point, sc.MNT_DETACH)
            gone.append(point)
        except OSError:
            sc.mount("tmpfs", point, "tmpfs", _MASK_FLAGS, "size=0,mode=0555")


def chroot(rootfs: str) -> None:
    """No mount namespace of the container's own: pivot_root (or --no-pivot's MS_MOVE) would
    swap the root of every process in the runtime's namespace. chroot changes only ours."""
    with context(f"chroot {rootfs}"):
        posix.chdir(rootfs)
        posix.chroot(".")
        posix.chdir("/")


def make_cwd(rootfs: str, cwd: str) -> None:
    """A missing process.cwd is made inside the rootfs (0755, as runc), through symlinks kept
    inside it, before anything is read-only; a magic link there is refused (ELOOP)."""
    with context(f"process.cwd {cwd}"):
        rootfd = posix.open(rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            posix.close(paths.mkdir_all(rootfd, cwd))
        finally:
            posix.close(rootfd)


def _open_existing(rootfd: int, path: str) -> int | None:
    """An O_PATH fd for ``path`` in the root, or None when it does not exist (nothing to protect)."""
    try:
        return paths.open_in_root(rootfd, path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


class _Masker:
    """Files go behind the container's /dev/null; directories behind one empty read-only tmpfs."""

    def __init__(self, rootfd: int) -> None:
        self.rootfd = rootfd
        self.null: int | None = None
        self.tmpfs: int | None = None  # root of the first masking tmpfs, bound over later directories

    def mask(self, fd: int, path: str) -> None:
        target = paths.fd_path(fd)
        if not stat.S_ISDIR(posix.fstat(fd).st_mode):
            sc.mount(paths.fd_path(self._null()), target, None, sc.MS_BIND, label=path)
        elif self.tmpfs is None:
            # tmpfs's own mode (1777, as runc's): root without CAP_DAC_OVERRIDE can list it
            sc.mount("tmpfs", target, "tmpfs", _MASK_FLAGS, None, label=path)
            self.tmpfs = paths.open_in_root(self.rootfd, path)
        else:
            sc.mount(paths.fd_path(self.tmpfs), target, None, sc.MS_BIND, label=path)
            new = paths.open_in_root(self.rootfd, path)
            try:
                sc.mount(None, paths.fd_path(new), None, sc.MS_BIND | sc.MS_REMOUNT | _MASK_FLAGS, label=path)
            finally:
                posix.close(new)

    def _null(self) -> int:
        if self.null is None:
            fd = paths.open_in_root(self.rootfd, "/dev/null")
            st = posix.fstat(fd)
            if not stat.S_ISCHR(st.st_mode) or st.st_rdev != _NULL:
                posix.close(fd)
                raise PyruncError("/dev/null in the container is not the null device (1:3): refusing to mask with it")
            self.null = fd
        return self.null

    def close(self) -> None:
        for fd in (self.null, self.tmpfs):
            if fd is not None:
                posix.close(fd)


def mask_paths(masked: list[str]) -> None:
    if not masked:
        return
    rootfd = posix.open("/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    masker = _Masker(rootfd)
    try:
        for i, path in enumerate(masked):
            with context(f"linux.maskedPaths[{i}] {path}"):
                fd = _open_existing(rootfd, path)
                if fd is not None:
                    try:
                        masker.mask(fd, path)
                    finally:
                        posix.close(fd)
    finally:
        masker.close()
        posix.close(rootfd)


def readonly_paths(ro_paths: list[str]) -> None:
    """Bind each path on itself (with submounts), then make the whole subtree read-only."""
    if not ro_paths:
        return
    rootfd = posix.open("/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        for i, path in enumerate(ro_paths):
            with context(f"linux.readonlyPaths[{i}] {path}"):
                fd = _open_existing(rootfd, path)
                if fd is None:
                    continue
                try:
                    sc.mount(paths.fd_path(fd), paths.fd_path(fd), None, sc.MS_BIND | sc.MS_REC, label=path)
                finally:
                    posix.close(fd)
                fd = paths.open_in_root(rootfd, path)
                try:
                    sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, sc.MOUNT_ATTR_RDONLY)
                finally:
                    posix.close(fd)
    finally:
        posix.close(rootfd)


def readonly_root() -> None:
    with context("root.readonly"):
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | mount_flags("/"))
