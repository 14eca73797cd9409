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
from pyrunc.errors import PyruncError, context
from pyrunc.linux import cgroupfs, idmap, paths
from pyrunc.spec.mountopts import Step, steps
from pyrunc.spec.plan import MountOp, Plan
from pyrunc.syscalls import calls as sc

_ATIME_MODES = sc.MS_NOATIME | sc.MS_RELATIME | sc.MS_STRICTATIME
_ST_NOSYMFOLLOW = 0x2000  # statvfs f_flag bit (os lacks the constant)
_STATVFS_FLAGS = ((posix.ST_RDONLY, sc.MS_RDONLY), (posix.ST_NOSUID, sc.MS_NOSUID), (posix.ST_NODEV, sc.MS_NODEV),
                  (posix.ST_NOEXEC, sc.MS_NOEXEC), (posix.ST_NOATIME, sc.MS_NOATIME),
                  (posix.ST_NODIRATIME, sc.MS_NODIRATIME), (posix.ST_RELATIME, sc.MS_RELATIME),
                  (_ST_NOSYMFOLLOW, sc.MS_NOSYMFOLLOW))


def root_propagation(plan: Plan) -> int:
    """What the whole tree is made before the rootfs is bound: linux.rootfsPropagation."""
    prop = plan.rootfs_propagation
    if prop & sc.MS_UNBINDABLE:  # the rootfs's self-bind below would be EINVAL; pivot() sets it after
        prop = sc.MS_SLAVE | sc.MS_REC
    return prop


def setup_root(plan: Plan) -> int:
    """Make the rootfs a mount point of its own in a private-enough tree; return an O_PATH fd to it."""
    with context("linux.rootfsPropagation"):
        sc.mount(None, "/", None, root_propagation(plan))
    with context(f"root.path {plan.rootfs}"):
        shared = shared_parent(plan.rootfs)
        if shared is not None:
            sc.mount(None, shared, None, sc.MS_PRIVATE)
        sc.mount(plan.rootfs, plan.rootfs, None, sc.MS_BIND | sc.MS_REC)
        return posix.open(plan.rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)


def shared_parent(rootfs: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The mount holding ``rootfs`` when it is shared: pivot_root refuses a new root whose
    parent mount is shared (rootfsPropagation "shared"), so setup_root makes it private."""
    real = fs.realpath(rootfs)
    best, shared = "", False
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            point = fs.unescape_mountinfo(fields[4])
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, shared = point, any(o.startswith("shared:") for o in fields[6:fields.index("-")])
    return best if shared else None


def apply_all(plan: Plan, rootfd: int, cgroup) -> list[tuple[int, int, str]]:
    """``cgroup`` is the container's CgroupManager: "cgroup" mounts show its directories.
    Returns the read-only mounts made writable for now, for remount_readonly."""
    later: list[tuple[int, int, str]] = []
    for op in plan.mounts:
        with context(op.label()):
            if op.fstype == "cgroup":
                cgroupfs.mount(rootfd, op, cgroup.dirs, cgroup.mounts, bool(plan.new_ns & sc.CLONE_NEWCGROUP))
            else:
                apply(rootfd, op, later)
    return later


def remount_readonly(later: list[tuple[int, int, str]]) -> None:
    """The last step on the tree before pivot_root: what apply_all left writable becomes read-only
    (the superblock too, as the config asked), once /dev's nodes and submounts are in."""
    for fd, flags, label in later:
        with context(label):
            try:
                sc.mount(None, paths.fd_path(fd), None, sc.MS_REMOUNT | flags, label=label)
            finally:
                posix.close(fd)


def mount_flags(path: str) -> int:
    """The per-mount flags ``path``'s mount has now, as MS_* bits (strictatime made explicit)."""
    st = posix.statvfs(path)
    flags = sum(ms for st_flag, ms in _STATVFS_FLAGS if st.f_flag & st_flag)
    return flags if flags & _ATIME_MODES else flags | sc.MS_STRICTATIME


def _source_is_dir(op: MountOp) -> bool:
    if not op.is_bind:
        return True
    prepared = idmap.source_is_dir(op)  # opened on the host: maybe out of our reach by path
    if prepared is not None:
        return prepared
    try:
        return stat.S_ISDIR(posix.stat(op.source).st_mode)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise FileNotFoundError(2, "bind source does not exist", op.source) from None


def read_only_later(op: MountOp, step: Step) -> bool:
    """A read-only tmpfs or /dev that may still get nodes or mount points made in it:
    mounted read-write, made read-only by remount_readonly."""
    return step.kind == "mount" and bool(step.flags & sc.MS_RDONLY) and \
        (op.fstype == "tmpfs" or op.destination.rstrip("/") == "/dev")


def keeps_covered_mode(op: MountOp) -> bool:
    """A tmpfs over a directory of the image takes its mode, not tmpfs's 1777, unless given one."""
    return op.fstype == "tmpfs" and not any(d.startswith("mode=") for d in op.opts.data)


def apply(rootfd: int, op: MountOp, later: list[tuple[int, int, str]]) -> None:
    """``later`` gets (fd, flags, label) of a mount made writable for now (remount_readonly)."""
    todo = steps(op)
    if todo and todo[0].kind in ("mount", "bind"):
        first = todo.pop(0)
        ro_later = read_only_later(op, first)
        if ro_later:
            first = Step(first.kind, first.source, first.fstype, first.flags & ~sc.MS_RDONLY, data=first.data)
        fd = _mount_new(rootfd, op, first)
        if ro_later:
            later.append((posix.dup(fd), first.flags | sc.MS_RDONLY, op.label()))  # dup: close-on-exec
    else:  # "remount": the mount is there already
        fd = paths.open_in_root(rootfd, op.destination)
    try:
        target = paths.fd_path(fd)
        for step in todo:
            if step.kind == "remount-bind":
                flags = (mount_flags(target) & ~step.clear) | step.flags
                if not flags & _ATIME_MODES:
                    flags |= sc.MS_RELATIME  # a remount without any mode keeps the old one: "atime" must win
                sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | flags, label=op.destination)
            elif step.kind in ("remount", "propagation"):
                sc.mount(None, target, None, step.flags, step.data, label=op.destination)
            else:  # "setattr"
                sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, step.flags, step.clear)
    finally:
        posix.close(fd)


def _check_ordinary_dir(rootfd: int, op: MountOp) -> None:
    """As runc: proc and sysfs go only on a directory (or where nothing is yet), never through
    a symlink the image put there, which would land them elsewhere in the rootfs."""
    parent, name = paths.split(op.destination)
    try:
        pfd = paths.open_in_root(rootfd, parent)
    except OSError as exc:
        if exc.errno == 2:  # ENOENT: made as a directory below
            return
        raise
    try:
        mode = posix.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    finally:
        posix.close(pfd)
    if not stat.S_ISDIR(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "not a directory"
        raise PyruncError(f"filesystem {op.fstype!r} must be mounted on ordinary directory: "
                          f"{op.destination} is {kind} in the rootfs")


def _mount_new(rootfd: int, op: MountOp, step: Step) -> int:
    """Mount at the destination; return an O_PATH fd to the new mount's root."""
    if not op.is_bind and op.fstype in ("proc", "sysfs"):
        _check_ordinary_dir(rootfd, op)
    fd, made = paths.make_path(rootfd, op.destination, _source_is_dir(op))
    covered = None
    try:
        target = paths.fd_path(fd)
        if step.kind == "bind":
            if not idmap.attach(op, target):
                sc.mount(step.source, target, None, step.flags, label=op.destination)
        else:
            data = step.data
            if op.fstype == "tmpfs":
                if "tmpcopyup" in op.opts.extra:
                    covered = posix.open(target, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
                if not made and keeps_covered_mode(op):
                    mode = f"mode={stat.S_IMODE(posix.fstat(fd).st_mode):o}"
                    data = f"{data},{mode}" if data else mode
            sc.mount(step.source, target, step.fstype, step.flags, data, label=op.destination)
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
