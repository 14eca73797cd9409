"""Cgroup v2 delegation (config-linux.md "Cgroup ownership").

The container's cgroup is handed to the host uid/gid that the container's user
maps to, so its processes can manage their own sub-tree, only when it is safe
and asked for: cgroup v2 alone (delegation is not secure on v1), a new cgroup
namespace, and /sys/fs/cgroup mounted read-write. Only the directory and the
files the kernel lists as delegatable change owner.
"""
from __future__ import annotations

import errno
import posix

from .. import fs
from ..errors import SyscallError

DELEGATE_LIST = "/sys/kernel/cgroup/delegate"
FALLBACK = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


def owner(config: dict, mode: str) -> tuple[int, int] | None:
    """The host (uid, gid) to hand the cgroup to, or None when the spec says not to."""
    linux = config.get("linux") or {}
    if mode != "v2":
        return None
    if not any(ns.get("type") == "cgroup" and not ns.get("path") for ns in linux.get("namespaces") or []):
        return None
    if not any(m.get("source") == "cgroup" and m.get("destination") == "/sys/fs/cgroup"
               and "ro" not in (m.get("options") or []) for m in config.get("mounts") or []):
        return None
    user = (config.get("process") or {}).get("user") or {}
    return (to_host(user.get("uid", 0), linux.get("uidMappings")),
            to_host(user.get("gid", 0), linux.get("gidMappings")))


def to_host(cid: int, mappings: list[dict] | None) -> int:
    """The host id of container id ``cid`` (itself without a user namespace's mappings)."""
    if not mappings:
        return cid
    for m in mappings:
        if m["containerID"] <= cid < m["containerID"] + m["size"]:
            return m["hostID"] + cid - m["containerID"]
    return 65534  # unmapped: the overflow id, as the kernel shows it


def delegate(directory: str, uid: int, gid: int) -> None:
    try:
        with open(DELEGATE_LIST) as f:
            names = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        names = list(FALLBACK)
    for name in [".", *names]:
        path = fs.join(directory, name)
        try:
            posix.chown(path, uid, gid)
        except FileNotFoundError:
            continue  # not every listed file exists in every cgroup (the spec says: not an error)
        except OSError as exc:
            raise SyscallError("chown", exc.errno or errno.EIO, path) from None
