"""Switch into the rootfs and apply the path policies that act on the final tree."""
from __future__ import annotations

import errno
import os

from pyrunc.errors import context
from pyrunc.syscalls import calls as sc


def pivot(rootfs: str, no_pivot: bool) -> None:
    os.chdir(rootfs)
    if no_pivot:
        # MS_MOVE + chroot for hosts whose root is not a mount (initramfs); weaker, hence opt-in.
        with context("--no-pivot"):
            sc.mount(rootfs, "/", None, sc.MS_MOVE)
            os.chroot(".")
    else:
        # pivot_root(".", ".") stacks the old root on top of the new one; make it
        # slave so the detach below does not propagate back to the host, then drop it.
        with context("pivot_root"):
            sc.pivot_root(".", ".")
            sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
            sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def mask_paths(masked: list[str]) -> None:
    """Hide files behind /dev/null and directories behind an empty read-only tmpfs."""
    for i, path in enumerate(masked):
        with context(f"linux.maskedPaths[{i}] {path}"):
            try:
                sc.mount("/dev/null", path, None, sc.MS_BIND)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR:
                    sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, "size=0k,mode=000")
                elif exc.errno != errno.ENOENT:
                    raise


def readonly_paths(paths: list[str]) -> None:
    for i, path in enumerate(paths):
        with context(f"linux.readonlyPaths[{i}] {path}"):
            try:
                sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                raise
            flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC
            sc.mount(None, path, None, flags | _locked_flags(path))


def readonly_root() -> None:
    with context("root.readonly"):
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _locked_flags("/"))


def _locked_flags(path: str) -> int:
    """Flags a remount must keep (the kernel refuses to clear them inside a user namespace)."""
    st = os.statvfs(path)
    table = ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV), (os.ST_NOEXEC, sc.MS_NOEXEC),
             (os.ST_NOATIME, sc.MS_NOATIME), (os.ST_NODIRATIME, sc.MS_NODIRATIME),
             (os.ST_RELATIME, sc.MS_RELATIME))
    return sum(ms for st_flag, ms in table if st.f_flag & st_flag)
