"""Bind mounts prepared on the host side: detached copies of their sources, moved into place.

The copies are made by the container's first child while it is still root in
the host's namespaces, before it enters a user namespace; mounts.py moves each
one onto its destination later, from inside the container's mount namespace.
Idmapped mounts need it (marking a host filesystem idmapped needs CAP_SYS_ADMIN
over it). So does every bind of a container with a user namespace: its mapped
root may not reach a source (a 0700 directory above it, a symlink through one),
which host root opens here as runc does, before the user namespace is entered.
"""
from __future__ import annotations

import posix
import stat

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
    _prepare_idmapped(plan)
    _open_on_host(plan)


def opens_sources(plan: Plan) -> bool:
    """Whether every bind source is opened here, as host root, not by path from inside
    the container's user namespace (rootless: we are not host root, and it is our id)."""
    return plan.has_ns("user") and posix.geteuid() == 0


def _open_on_host(plan: Plan) -> None:
    if not opens_sources(plan):
        return
    for op in plan.mounts:
        if op.is_bind and op.source and op.index not in _prepared:
            with context(op.label()):
                _prepared[op.index] = _clone(op, plan)


def _prepare_idmapped(plan: Plan) -> None:
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
                fd = _prepared[op.index] = _clone(op, plan)
                recursive = sc.AT_RECURSIVE if "ridmap" in op.opts.extra else 0
                sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | recursive, sc.MOUNT_ATTR_IDMAP, userns_fd=nsfds[key])
    finally:
        for fd in nsfds.values():
            posix.close(fd)


def _clone(op: MountOp, plan: Plan) -> int:
    """A detached copy of ``op``'s source (with the mounts below it for rbind). A copy of
    a shared host mount would be the host's peer: mounts made on it in the container
    would show on the host. It is made a slave, as a bind made inside from the
    container's own copy of the host's mounts is (private, with rootfsPropagation so)."""
    tree = sc.AT_RECURSIVE if op.opts.flags & sc.MS_REC else 0
    fd = sc.open_tree(_AT_FDCWD, op.source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | tree)
    try:
        sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, propagation=copy_propagation(plan))
    except BaseException:
        posix.close(fd)
        raise
    return fd


def copy_propagation(plan: Plan) -> int:
    return sc.MS_PRIVATE if plan.rootfs_propagation & sc.MS_PRIVATE else sc.MS_SLAVE


def source_is_dir(op: MountOp) -> bool | None:
    """Whether the prepared copy of ``op``'s source is a directory; None: none prepared."""
    fd = _prepared.get(op.index)
    return None if fd is None else stat.S_ISDIR(posix.fstat(fd).st_mode)


def attach(op: MountOp, target: str) -> bool:
    """Move the prepared tree of ``op`` onto ``target``; False when none was prepared."""
    fd = _prepared.pop(op.index, None)
    if fd is None:
        return False
    try:
        # target is a /proc/self/fd magic link: follow it
        sc.move_mount(fd, "", _AT_FDCWD, target, sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_SYMLINKS)
    finally:
        posix.close(fd)
    return True
