"""Carry out config mounts inside the rootfs (before pivot_root).

Destinations are resolved inside the rootfs (paths.open_in_root); bind
sources are host paths, as config.md defines them. Options come parsed from
spec/mountopts.py: mount(2) flags, propagation changes, recursive attributes
(mount_setattr with AT_RECURSIVE), fs data, and tmpcopyup.
"""
from __future__ import annotations

import posix
import stat

from pyrunc import fs
from pyrunc.errors import context
from pyrunc.linux import cgroupfs, idmap, paths
from pyrunc.spec.plan import MountOp, Plan
from pyrunc.syscalls import calls as sc

# per-mount flags: the only ones a remount of a bind mount changes
_PER_MOUNT = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME
              | sc.MS_NODIRATIME | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_NOSYMFOLLOW)
_ATIME_MODES = sc.MS_NOATIME | sc.MS_RELATIME | sc.MS_STRICTATIME
_ST_NOSYMFOLLOW = 0x2000  # statvfs f_flag bit (os lacks the constant)
_STATVFS_FLAGS = ((posix.ST_RDONLY, sc.MS_RDONLY), (posix.ST_NOSUID, sc.MS_NOSUID), (posix.ST_NODEV, sc.MS_NODEV),
                  (posix.ST_NOEXEC, sc.MS_NOEXEC), (posix.ST_NOATIME, sc.MS_NOATIME),
                  (posix.ST_NODIRATIME, sc.MS_NODIRATIME), (posix.ST_RELATIME, sc.MS_RELATIME),
                  (_ST_NOSYMFOLLOW, sc.MS_NOSYMFOLLOW))


def setup_root(plan: Plan) -> int:
    """Make the rootfs a mount point of its own in a private-enough tree; return an O_PATH fd to it."""
    prop = plan.rootfs_propagation
    if prop & sc.MS_UNBINDABLE:  # the rootfs's self-bind below would be EINVAL; pivot() sets it after
        prop = sc.MS_SLAVE | sc.MS_REC
    with context("linux.rootfsPropagation"):
        sc.mount(None, "/", None, prop)
    with context(f"root.path {plan.rootfs}"):
        _parent_mount_private(plan.rootfs)
        sc.mount(plan.rootfs, plan.rootfs, None, sc.MS_BIND | sc.MS_REC)
        return posix.open(plan.rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)


def _parent_mount_private(rootfs: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared (rootfsPropagation "shared")."""
    real = fs.realpath(rootfs)
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fs.unescape_mountinfo(fields[4])
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, shared = point, any(o.startswith("shared:") for o in fields[6:fields.index("-")])
    if shared:
        sc.mount(None, best, None, sc.MS_PRIVATE)


def apply_all(plan: Plan, rootfd: int, cgroup) -> None:
    """``cgroup`` is the container's CgroupManager: "cgroup" mounts show its directories."""
    for op in plan.mounts:
        with context(op.label()):
            if op.fstype == "cgroup":
                cgroupfs.mount(rootfd, op, cgroup.dirs, cgroup.mounts, bool(plan.new_ns & sc.CLONE_NEWCGROUP))
            else:
                apply(rootfd, op)


def mount_flags(path: str) -> int:
    """The per-mount flags ``path``'s mount has now, as MS_* bits (strictatime made explicit)."""
    st = posix.statvfs(path)
    flags = sum(ms for st_flag, ms in _STATVFS_FLAGS if st.f_flag & st_flag)
    return flags if flags & _ATIME_MODES else flags | sc.MS_STRICTATIME


def _source_is_dir(op: MountOp) -> bool:
    if not op.is_bind:
        return True
    try:
        return stat.S_ISDIR(posix.stat(op.source).st_mode)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise FileNotFoundError(2, "bind source does not exist", op.source) from None


def apply(rootfd: int, op: MountOp) -> None:
    o = op.opts
    if o.flags & sc.MS_REMOUNT:
        fd = paths.open_in_root(rootfd, op.destination)
    else:
        fd = _mount_new(rootfd, op)
    try:
        target = paths.fd_path(fd)
        if op.is_bind and (o.flags & sc.MS_REMOUNT or o.flags & _PER_MOUNT or o.clear & _PER_MOUNT):
            # A bind keeps the source mount's flags; options change them, "rw" & co. clear them.
            flags = (mount_flags(target) & ~o.clear) | (o.flags & _PER_MOUNT)
            if not flags & _ATIME_MODES:
                flags |= sc.MS_RELATIME  # a remount without any mode keeps the old one: "atime" must win
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | flags, label=op.destination)
        elif o.flags & sc.MS_REMOUNT:
            sc.mount(None, target, None, o.flags, ",".join(o.data) or None, label=op.destination)
        for prop in o.propagation:
            sc.mount(None, target, None, prop, label=op.destination)
        if o.rec_set or o.rec_clr:
            sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, o.rec_set, o.rec_clr)
    finally:
        posix.close(fd)


def _mount_new(rootfd: int, op: MountOp) -> int:
    """Mount at the destination; return an O_PATH fd to the new mount's root."""
    o = op.opts
    fd = paths.make_mountpoint(rootfd, op.destination, _source_is_dir(op))
    covered = None
    try:
        target = paths.fd_path(fd)
        if op.is_bind:
            if not idmap.attach(op, target):
                sc.mount(op.source, target, None, o.flags & (sc.MS_BIND | sc.MS_REC), label=op.destination)
        else:
            if "tmpcopyup" in o.extra and op.fstype == "tmpfs":
                covered = posix.open(target, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
            sc.mount(op.source or op.fstype or "none", target, op.fstype, o.flags,
                     ",".join(o.data) or None, label=op.destination)
    finally:
        posix.close(fd)
    # Re-resolve: the fd above names the covered directory, not the new mount.
    fd = paths.open_in_root(rootfd, op.destination)
    if covered is not None:
        with context("tmpcopyup"):
            try:
                new = posix.open(paths.fd_path(fd), posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
                try:
                    copy_tree(covered, new)
                finally:
                    posix.close(new)
            finally:
                posix.close(covered)
    return fd


def copy_tree(src: int, dst: int) -> None:
    """Copy the directory ``src`` into ``dst`` (both fds) without following any symlink."""
    for entry in posix.scandir(src):
        name = entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            posix.mkdir(name, 0o700, dir_fd=dst)
            s = posix.open(name, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=src)
            d = posix.open(name, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=dst)
            try:
                copy_tree(s, d)
            finally:
                posix.close(s)
                posix.close(d)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src, dst, name)
        elif stat.S_ISLNK(st.st_mode):
            posix.symlink(posix.readlink(name, dir_fd=src), name, dir_fd=dst)
        else:  # fifo, socket, device node
            posix.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        posix.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            posix.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst)
        posix.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


def _copy_file(src: int, dst: int, name: str) -> None:
    s = posix.open(name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=src)
    try:
        new_file = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
        d = posix.open(name, new_file, 0o600, dir_fd=dst)
        try:
            while posix.sendfile(d, s, None, 1 << 20):
                pass
        finally:
            posix.close(d)
    finally:
        posix.close(s)
