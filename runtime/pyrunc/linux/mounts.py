"""Carry out config mounts inside the rootfs (before pivot_root)."""
from __future__ import annotations

import os
import stat

from pyrunc.errors import context
from pyrunc.linux import cgroupfs, paths
from pyrunc.spec.plan import MountOp, Plan
from pyrunc.syscalls import calls as sc

# flags that only make sense on a remount of a bind mount
_BIND_REMOUNT_MASK = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME
                      | sc.MS_NODIRATIME | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_NOSYMFOLLOW)


def setup_root(plan: Plan) -> int:
    """Make the rootfs a mount point of its own in a private-enough tree; return an O_PATH fd to it."""
    with context("linux.rootfsPropagation"):
        sc.mount(None, "/", None, plan.rootfs_propagation)
    with context(f"root.path {plan.rootfs}"):
        sc.mount(plan.rootfs, plan.rootfs, None, sc.MS_BIND | sc.MS_REC)
        return os.open(plan.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def apply_all(plan: Plan, rootfd: int, cgroup) -> None:
    """``cgroup`` is the container's CgroupManager: "cgroup" mounts show its directories."""
    for op in plan.mounts:
        with context(op.label()):
            if op.fstype == "cgroup":
                cgroupfs.mount(rootfd, op, cgroup.dirs, cgroup.mounts, bool(plan.new_ns & sc.CLONE_NEWCGROUP))
            else:
                apply(rootfd, op)


def _source_is_dir(op: MountOp) -> bool:
    if not op.is_bind:
        return True
    try:
        return stat.S_ISDIR(os.stat(op.source).st_mode)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise FileNotFoundError(2, "bind source does not exist", op.source) from None


def apply(rootfd: int, op: MountOp) -> None:
    o = op.opts
    fd = paths.make_mountpoint(rootfd, op.destination, _source_is_dir(op))
    try:
        target = paths.fd_path(fd)
        if op.is_bind:
            sc.mount(op.source, target, None, o.flags & (sc.MS_BIND | sc.MS_REC), label=op.destination)
        else:
            source = op.source or op.fstype or "none"
            sc.mount(source, target, op.fstype, o.flags & ~sc.MS_REMOUNT, ",".join(o.data) or None,
                     label=op.destination)
    finally:
        os.close(fd)
    # Re-resolve: the fd above names the covered directory, not the new mount.
    fd = paths.open_in_root(rootfd, op.destination)
    try:
        target = paths.fd_path(fd)
        if op.is_bind and o.flags & _BIND_REMOUNT_MASK:
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | (o.flags & _BIND_REMOUNT_MASK),
                     label=op.destination)
        for prop in o.propagation:
            sc.mount(None, target, None, prop, label=op.destination)
        if o.rec_set or o.rec_clr:
            sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, o.rec_set, o.rec_clr)
    finally:
        os.close(fd)
