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
from pyrunc.spec.mountopts import Step
from pyrunc.spec.plan import MountOp
from pyrunc.syscalls import calls as sc

_KEEP = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RELATIME | sc.MS_NOATIME


def steps(op: MountOp, cgroup_dirs: dict[str, str], cgroup_mounts: dict[str, str],
          new_cgroupns: bool) -> list[Step]:
    """The mounts a "cgroup" entry takes, in order (targets are paths in the container). A
    "bind" here is recursive, then remounted with its flags."""
    flags = op.opts.flags & _KEEP
    # Without its own cgroup namespace the container sees host cgroup directories: never writable.
    ro = op.opts.flags & sc.MS_RDONLY if new_cgroupns else sc.MS_RDONLY
    dest = op.destination
    if set(cgroup_dirs) == {""}:
        if new_cgroupns:
            return [Step("mount", "cgroup2", "cgroup2", flags | ro, target=dest)]
        return [Step("bind", cgroup_dirs[""], flags=flags | ro, target=dest)]
    out = [Step("mount", "tmpfs", "tmpfs", flags, data="mode=755", target=dest)]
    for key, host_dir in sorted(cgroup_dirs.items()):
        name = fs.basename(cgroup_mounts[key].rstrip("/"))
        out.append(Step("bind", host_dir, flags=flags | ro, target=f"{dest.rstrip('/')}/{name}"))
    if ro:
        out.append(Step("remount", flags=sc.MS_REMOUNT | sc.MS_RDONLY | flags, data="mode=755", target=dest))
    return out


def mount(rootfd: int, op: MountOp, cgroup_dirs: dict[str, str], cgroup_mounts: dict[str, str],
          new_cgroupns: bool) -> None:
    for step in steps(op, cgroup_dirs, cgroup_mounts, new_cgroupns):
        if step.kind == "bind":
            _bind(rootfd, step.source, step.target, step.flags)  # type: ignore[arg-type]
            continue
        fd = (paths.mkdir_all if step.kind == "mount" else paths.open_in_root)(rootfd, step.target)
        try:
            sc.mount(step.source, paths.fd_path(fd), step.fstype, step.flags, step.data, label=step.target)
        finally:
            posix.close(fd)


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
