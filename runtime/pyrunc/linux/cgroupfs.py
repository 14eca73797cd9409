"""A config mount of type "cgroup": the container's own cgroups at the destination.

On v1 and hybrid hosts a tmpfs holds one bind mount per hierarchy, each of the
container's directory (so the container sees its cgroup as the root, with or
without a cgroup namespace). On a pure v2 host with a cgroup namespace a fresh
cgroup2 mount shows the namespace root; without one, the directory is bound.
"""
from __future__ import annotations

import posix

from pyrunc import fs
from pyrunc.linux import paths
from pyrunc.spec.plan import MountOp
from pyrunc.syscalls import calls as sc

_KEEP = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RELATIME | sc.MS_NOATIME


def mount(rootfd: int, op: MountOp, cgroup_dirs: dict[str, str], cgroup_mounts: dict[str, str],
          new_cgroupns: bool) -> None:
    flags = op.opts.flags & _KEEP
    # Without its own cgroup namespace the container sees host cgroup directories: never writable.
    ro = op.opts.flags & sc.MS_RDONLY if new_cgroupns else sc.MS_RDONLY
    fd = paths.mkdir_all(rootfd, op.destination)
    try:
        target = paths.fd_path(fd)
        if set(cgroup_dirs) == {""} and new_cgroupns:
            sc.mount("cgroup2", target, "cgroup2", flags | ro, label=op.destination)
            return
        if set(cgroup_dirs) != {""}:
            sc.mount("tmpfs", target, "tmpfs", flags, "mode=755", label=op.destination)
    finally:
        posix.close(fd)
    if set(cgroup_dirs) == {""}:
        _bind(rootfd, cgroup_dirs[""], op.destination, flags | ro)
        return
    for key, host_dir in sorted(cgroup_dirs.items()):
        name = fs.basename(cgroup_mounts[key].rstrip("/"))
        _bind(rootfd, host_dir, f"{op.destination.rstrip('/')}/{name}", flags | ro)
    if ro:
        top = paths.open_in_root(rootfd, op.destination)
        try:
            sc.mount(None, paths.fd_path(top), None, sc.MS_REMOUNT | sc.MS_RDONLY | flags, "mode=755",
                     label=op.destination)
        finally:
            posix.close(top)


def _bind(rootfd: int, src: str, dst: str, flags: int) -> None:
    fd = paths.mkdir_all(rootfd, dst)
    try:
        sc.mount(src, paths.fd_path(fd), None, sc.MS_BIND | sc.MS_REC, label=dst)
    finally:
        posix.close(fd)
    fd = paths.open_in_root(rootfd, dst)  # the new mount, not the directory it covers
    try:
        sc.mount(None, paths.fd_path(fd), None, sc.MS_BIND | sc.MS_REMOUNT | flags, label=dst)
    finally:
        posix.close(fd)
