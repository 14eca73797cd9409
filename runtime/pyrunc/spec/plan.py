"""config.json -> Plan: everything the container side needs, resolved in the parent.

The child receives a finished Plan (through fork's copy of memory): it parses
no JSON and validates nothing, it only carries the plan out.
"""
from __future__ import annotations

from pyrunc import fs
from pyrunc.errors import ConfigError
from pyrunc.spec import mountopts, procattrs, userns
from pyrunc.syscalls import consts as k
from pyrunc.syscalls.consts import JOIN_ORDER, NAMESPACE_FLAGS


class MountOp:
    """One entry of config mounts, with options parsed and the source resolved."""

    __slots__ = ("index", "source", "destination", "fstype", "opts", "is_bind")

    def __init__(self, index: int, source: str | None, destination: str, fstype: str | None,
                 opts: mountopts.MountOptions) -> None:
        self.index, self.source, self.destination, self.fstype, self.opts = index, source, destination, fstype, opts
        self.is_bind = bool(opts.flags & k.MS_BIND)

    def label(self) -> str:
        return f"mounts[{self.index}] {self.destination}"


class Plan:
    __slots__ = ("id", "bundle", "rootfs", "config", "new_ns", "join_ns", "ns_types", "mounts",
                 "rootfs_propagation", "readonly_root", "hostname", "domainname", "process",
                 "masked_paths", "readonly_paths", "no_pivot", "no_new_keyring", "preserve_fds",
                 "console_fd", "attrs", "confine")

    def __init__(self) -> None:
        self.new_ns = 0                               # CLONE_NEW* flags to unshare
        self.join_ns: list[tuple[str, str]] = []      # (type, path) to setns, in JOIN_ORDER
        self.ns_types: set[str] = set()
        self.mounts: list[MountOp] = []
        self.console_fd: int | None = None            # where the init sends its pty master

    def has_ns(self, ns: str) -> bool:
        return ns in self.ns_types


def build(config: dict, bundle: str, cid: str, *, no_pivot: bool = False, no_new_keyring: bool = False,
          preserve_fds: int = 0) -> Plan:
    from pyrunc.spec.rules import check

    check(config)
    p = Plan()
    p.id, p.bundle, p.config = cid, bundle, config
    root = config["root"]["path"]
    p.rootfs = root if root.startswith("/") else fs.join(bundle, root)
    p.readonly_root = bool(config["root"].get("readonly"))
    linux = config.get("linux", {})
    joins = {}
    for ns in linux.get("namespaces", []):
        p.ns_types.add(ns["type"])
        if ns.get("path"):
            joins[ns["type"]] = ns["path"]
        else:
            p.new_ns |= NAMESPACE_FLAGS[ns["type"]]
    p.join_ns = [(t, joins[t]) for t in JOIN_ORDER if t in joins]
    prop = linux.get("rootfsPropagation")
    p.rootfs_propagation = mountopts.PROPAGATION[prop] if prop else k.MS_SLAVE | k.MS_REC
    p.mounts = [_mount_op(i, userns.mount_entry(config, m), bundle) for i, m in enumerate(config.get("mounts", []))]
    p.hostname = config.get("hostname")
    p.domainname = config.get("domainname")
    p.process = config.get("process")
    p.masked_paths = linux.get("maskedPaths", [])
    p.readonly_paths = linux.get("readonlyPaths", [])
    p.no_pivot, p.no_new_keyring, p.preserve_fds = no_pivot, no_new_keyring, preserve_fds
    p.attrs = procattrs.build(config)
    from pyrunc.linux import confine, lsm  # libseccomp is loaded only when this runs
    p.confine = confine.prepare(p.process, linux)
    lsm.label_mounts(p.mounts, linux.get("mountLabel"))
    return p


def _mount_op(i: int, m: dict, bundle: str) -> MountOp:
    opts = mountopts.parse(m.get("options", []))
    src = m.get("source")
    fstype = m.get("type")
    if fstype == "bind":
        opts.flags |= k.MS_BIND
    if opts.flags & k.MS_BIND:
        if not src:
            raise ConfigError(f"mounts[{i}].source: a bind mount needs a source")
        src = src if src.startswith("/") else fs.join(bundle, src)
        fstype = None
    dst = m["destination"]
    if not dst.startswith("/"):
        # config.md: a relative destination is deprecated and MUST be taken relative to "/".
        from pyrunc import log
        log.warn(f"mounts[{i}].destination {dst!r} is relative (deprecated): mounting at /{dst}")
        dst = "/" + dst
    return MountOp(i, src, dst, fstype, opts)
