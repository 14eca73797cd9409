"""Idmapped bind mounts: a detached copy of the source with MOUNT_ATTR_IDMAP, moved into place.

The copies are made by the container's first child while it is still root in
the host's namespaces (marking a host filesystem idmapped needs CAP_SYS_ADMIN
over it), before it enters a user namespace; mounts.py moves each one onto its
destination later, from inside the container's mount namespace.
"""
from __future__ import annotations

import posix

from pyrunc.errors import context
from pyrunc.linux import userns
from pyrunc.spec.plan import MountOp, Plan
from pyrunc.spec.userns import IDMAP_OPTIONS
from pyrunc.syscalls import calls as sc

_AT_FDCWD = -100
_prepared: dict[int, int] = {}  # mounts[] index -> fd of its detached idmapped tree


def wanted(op: MountOp, entry: dict) -> bool:
    return bool(entry.get("uidMappings") or op.opts.extra & set(IDMAP_OPTIONS))


def any_wanted(plan: Plan) -> bool:
    entries = plan.config.get("mounts", [])
    return any(wanted(op, entries[op.index]) for op in plan.mounts)


def prepare(plan: Plan) -> None:
    entries = plan.config.get("mounts", [])
    linux = plan.config.get("linux", {})
    nsfds: dict[str, int] = {}  # one user namespace per distinct mapping
    try:
        for op in plan.mounts:
            entry = entries[op.index]
            if not wanted(op, entry):
                continue
            uids = entry.get("uidMappings") or linux["uidMappings"]
            gids = entry.get("gidMappings") or linux["gidMappings"]
            with context(f"{op.label()}: idmap"):
                key = userns.map_text(uids) + "/" + userns.map_text(gids)
                if key not in nsfds:
                    nsfds[key] = userns.mapped_userns_fd(uids, gids)
                _prepared[op.index] = _idmapped_tree(op, nsfds[key])
    finally:
        for fd in nsfds.values():
            posix.close(fd)


def _idmapped_tree(op: MountOp, nsfd: int) -> int:
    tree = sc.AT_RECURSIVE if op.opts.flags & sc.MS_REC else 0
    fd = sc.open_tree(_AT_FDCWD, op.source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | tree)
    try:
        recursive = sc.AT_RECURSIVE if "ridmap" in op.opts.extra else 0
        sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | recursive, sc.MOUNT_ATTR_IDMAP, userns_fd=nsfd)
    except BaseException:
        posix.close(fd)
        raise
    return fd


def attach(op: MountOp, target: str) -> bool:
    """Move the prepared tree of ``op`` onto ``target``; False when ``op`` is not idmapped."""
    fd = _prepared.pop(op.index, None)
    if fd is None:
        return False
    try:
        # target is a /proc/self/fd magic link: follow it
        sc.move_mount(fd, "", _AT_FDCWD, target, sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_SYMLINKS)
    finally:
        posix.close(fd)
    return True
