"""The init's mounts, in create's order: the rootfs, each config mount, /dev, pivot_root, then
the masked and read-only paths. The calls come from the code create runs them from
(spec.mountopts.steps, linux/cgroupfs.steps, linux/devices.planned_nodes, linux/mounts);
what they land on is resolved inside the rootfs as create resolves it (explain/tree.py).
"""
from __future__ import annotations

import posix
import stat

from pyrunc import fs
from pyrunc.explain.tree import Mount, Tree
from pyrunc.spec.mountopts import FLAGS, PER_MOUNT, PROPAGATION
from pyrunc.syscalls import consts as k

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.explain import Report

# MS_* bit -> the option that sets it (the first one listed in mountopts wins)
_BIT_NAMES = {k.MS_REC: "rec", **{bit: name for name, bit in reversed(PROPAGATION.items()) if not bit & k.MS_REC},
              **{s: name for name, (s, _c) in reversed(FLAGS.items()) if s and not s & (s - 1)}}
_CHECKED = k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC  # what mountinfo shows of a mount's own flags
_MASK_FLAGS = k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC  # linux/rootfs.py's masks


def flag_names(flags: int) -> list[str]:
    return [name for bit, name in sorted(_BIT_NAMES.items()) if flags & bit]


_PROPAGATION_NAMES = {bit: name for name, bit in PROPAGATION.items()}


def _names(flags: int | None) -> str:
    if flags is None:
        return "flags as the source's mount has them"
    if flags in _PROPAGATION_NAMES:
        return _PROPAGATION_NAMES[flags]
    return ",".join(flag_names(flags)) or "no flags"


def _host_flags(path: str | None) -> int | None:
    """The per-mount flags of the host mount holding ``path``, as mount_flags reads them."""
    from pyrunc.linux.mounts import mount_flags

    try:
        return mount_flags(path) & _CHECKED if path else None
    except OSError:
        return None


def _mount(r: Report, tree: Tree, path: str, target: str, fstype: str | None, source: str | None,
           flags: int | None, text: str, *, op: str, recursive: bool = False, lookup: str | None = None,
           section: str = "mounts", **detail) -> Mount:
    """A report line that makes a mount, and the mount in the tree. ``lookup`` is the host
    path a bind shows (default: ``source``; None when that is not a host path)."""
    host = fs.join(tree.rootfs, target.lstrip("/")) if target != "/" else tree.rootfs
    e = r.add("init", section, op, path, text, source=source, target=target, hostTarget=host, type=fstype,
              flags=flag_names(flags) if flags is not None else None, **detail)
    return tree.add(Mount(target, fstype, source if lookup is None else lookup, flags, recursive, e))


def rootfs_and_mounts(r: Report) -> Tree:
    from pyrunc.linux import mounts

    p = r.plan
    tree = Tree(p.rootfs)
    r.add("init", "process", "oom_score_adj", "process.oomScoreAdj",
          f"writes /proc/self/oom_score_adj: {p.attrs.oom_score_adj}" if p.attrs.oom_score_adj is not None
          else "oom_score_adj: not set, inherited from the runtime")
    if not p.has_ns("mount"):
        r.add("init", "mounts", "none", "linux.namespaces",
              "no mount namespace of its own (none in linux.namespaces): no mount is made, the rootfs is entered by chroot")
        tree.add(Mount("/", None, tree.rootfs, None, False, None))
        return tree
    prop = mounts.root_propagation(p)
    asked = p.config.get("linux", {}).get("rootfsPropagation")
    why = f"{asked}" if asked else "not set: rslave, so nothing done inside reaches the host"
    if asked and prop != p.rootfs_propagation:
        why += ": rslave for now (the rootfs bind refuses unbindable), unbindable after pivot_root"
    r.add("init", "mounts", "propagation", "linux.rootfsPropagation",
          f"makes every mount of its new mount namespace {_names(prop)} ({why})", flags=flag_names(prop), target="/")
    shared = mounts.shared_parent(p.rootfs)
    if shared is not None:
        r.add("init", "mounts", "propagation", "root.path",
              f"makes {shared} private: pivot_root refuses a new root under a shared mount", target=shared)
    _mount(r, tree, "root.path", "/", None, p.rootfs, _host_flags(p.rootfs),
           f"binds the rootfs {p.rootfs} onto itself (recursive): the future /", op="bind", recursive=True)
    new_cgroupns = bool(p.new_ns & k.CLONE_NEWCGROUP)
    for op in p.mounts:
        _config_mount(r, tree, op, new_cgroupns)
    _devices(r, tree)
    return tree


def _config_mount(r: Report, tree: Tree, op, new_cgroupns: bool) -> None:
    from pyrunc.linux import cgroupfs, idmap, mounts
    from pyrunc.spec.mountopts import steps

    path = f"mounts[{op.index}]"
    entry = r.plan.config["mounts"][op.index]
    target = tree.resolve(op.destination)
    moved = f" (resolved inside the rootfs from {op.destination})" if target != op.destination else ""
    if op.fstype == "cgroup":
        todo = cgroupfs.steps(op, r.cg.dirs, r.cg.mounts, new_cgroupns)
    else:
        todo = steps(op)
    last = tree.covering(target) if todo and todo[0].kind not in ("mount", "bind") else None
    for step in todo:
        where = step.target or target
        if step.target is not None and step.kind not in ("mount", "bind"):
            last = tree.covering(where)  # a cgroup mount's last step changes its first mount
        if step.kind == "mount":
            extra = f"; data {step.data}" if step.data else ""
            if mounts.keeps_covered_mode(op):  # not read from the rootfs: create may make the directory
                extra += "; mode that of the directory it covers, if the image has one"
            copy = " and copies what it covers into it (tmpcopyup)" if "tmpcopyup" in op.opts.extra else ""
            later = "; read-write until just before pivot_root" if mounts.read_only_later(op, step) else ""
            last = _mount(r, tree, path, where, step.fstype, step.source, step.flags & PER_MOUNT,
                          f"mounts {step.fstype} ({step.source}) on {where}{moved}: {_names(step.flags)}{extra}{copy}"
                          f"{later}", op="mount", data=step.data)
        elif step.kind == "bind":
            how = ("an idmapped copy of " if idmap.wanted(op, entry) else "") + (step.source or "")
            rec = step.flags & k.MS_REC or op.fstype == "cgroup"
            flags = step.flags & PER_MOUNT if op.fstype == "cgroup" else _host_flags(step.source)
            last = _mount(r, tree, path, where, None, step.source, flags,
                          f"binds {how} on {where}{moved}{' (recursive)' if rec else ''}", op="bind",
                          recursive=bool(rec))
            moved = ""
        elif step.kind == "remount-bind":
            if last is not None and last.flags is not None:
                last.flags = (last.flags & ~step.clear) | (step.flags & _CHECKED)
            changes = [f"{_names(step.flags)} set"] if step.flags else []
            changes += [f"{_names(step.clear & PER_MOUNT)} cleared"] if step.clear & PER_MOUNT else []
            r.add("init", "mounts", "remount", path,
                  f"remounts the bind on {where}: {', '.join(changes) or 'no change'} (the rest as its source has them)",
                  target=where, flags=flag_names(last.flags) if last is not None and last.flags is not None else None)
        elif step.kind == "remount":
            if last is not None and last.flags is not None:
                last.flags = step.flags & _CHECKED
            r.add("init", "mounts", "remount", path, f"remounts {where}: {_names(step.flags)}", target=where,
                  flags=flag_names(step.flags & PER_MOUNT), data=step.data)
        elif step.kind == "propagation":
            r.add("init", "mounts", "propagation", path, f"makes {where} {_names(step.flags)}", target=where,
                  propagation=flag_names(step.flags))
        else:  # setattr
            if last is not None and last.flags is not None:
                last.flags = (last.flags & ~step.clear) | (step.flags & _CHECKED)
            r.add("init", "mounts", "setattr", path,
                  f"mount_setattr(AT_RECURSIVE) on {where}: sets {_names(step.flags)}, clears {_names(step.clear)}",
                  target=where)


def _devices(r: Report, tree: Tree) -> None:
    from pyrunc.linux import devices

    p = r.plan
    given = p.config.get("linux", {}).get("devices") or []
    defaults = not devices.dev_is_bind(p.mounts)
    if defaults:
        r.add("init", "devices", "symlink", "linux.devices",
              "symlinks " + ", ".join(f"/dev/{n} -> {t}" for n, t in devices.SYMLINKS) + ", /dev/ptmx -> pts/ptmx")
    else:
        r.add("init", "devices", "none", "mounts",
              "/dev is a bind mount: no default devices, symlinks or ptmx are made")
    bound = p.has_ns("user")  # mknod is refused in a user namespace: the host's node is bound instead
    for node in devices.planned_nodes(given, defaults=defaults):
        path = node.label.split(" ")[0] if node.label.startswith("linux.devices[") else "linux.devices"
        kind = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p"}.get(stat.S_IFMT(node.mode), "?")
        dev = f"{kind} {posix.major(node.rdev)}:{posix.minor(node.rdev)}"
        default = "" if path != "linux.devices" else " (a runtime-spec default device)"
        if bound:
            _mount(r, tree, path, node.path, None, node.path, _host_flags(node.path),
                   f"binds the host's {node.path} ({dev}){default}: mknod is refused in a user namespace",
                   op="bind", section="devices")
        else:
            r.add("init", "devices", "mknod", path,
                  f"mknod {node.path} {dev} mode {stat.S_IMODE(node.mode):04o} owner {node.uid}:{node.gid}{default}",
                  target=node.path, device=dev)
    if (p.process or {}).get("terminal"):
        _mount(r, tree, "process.terminal", "/dev/console", None, "/dev/pts/N", tree.flags_at("/dev/pts/ptmx"),
               "opens a pty on the container's /dev/pts/ptmx, binds its slave on /dev/console and sends the "
               "master to --console-socket", op="bind", section="devices", lookup="")


def pivot(r: Report) -> None:
    from pyrunc.linux import mounts
    from pyrunc.spec.mountopts import steps

    p = r.plan
    for op in p.mounts if p.has_ns("mount") else ():
        first = steps(op)[:1]
        if op.fstype != "cgroup" and first and mounts.read_only_later(op, first[0]):
            r.add("init", "mounts", "remount", f"mounts[{op.index}]",
                  f"remounts {op.destination} read-only, its nodes and mount points made", target=op.destination)
    if not p.has_ns("mount"):
        r.add("init", "mounts", "chroot", "root.path", f"chroot {p.rootfs} (the runtime's mount namespace is never pivoted)")
        return
    if p.no_pivot:
        r.add("init", "mounts", "move", "root.path", f"moves {p.rootfs} onto / and chroots into it (--no-pivot)")
    else:
        r.add("init", "mounts", "pivot_root", "root.path",
              f"pivot_root: {p.rootfs} becomes /; the old root is made rslave and detached")
    asked = p.config.get("linux", {}).get("rootfsPropagation")
    if asked:
        prop = PROPAGATION[asked] & ~k.MS_REC
        r.add("init", "mounts", "propagation", "linux.rootfsPropagation", f"makes / {_names(prop)}", target="/",
              propagation=flag_names(prop))


def masks_and_readonly(r: Report, tree: Tree) -> None:
    p = r.plan
    if not p.has_ns("mount"):
        return
    first_tmpfs: Mount | None = None
    for i, path in enumerate(p.masked_paths):
        host = tree.host(path)
        mode = _mode(host)
        label = f"linux.maskedPaths[{i}]"
        if mode is None:
            r.add("init", "mounts", "skip", label, f"{path}: not there, nothing to mask", target=path)
        elif not stat.S_ISDIR(mode):
            _mount(r, tree, label, path, None, "/dev/null", tree.flags_at("/dev/null"),
                   f"binds the container's /dev/null over {path}", op="mask", lookup="")
        elif first_tmpfs is None:
            first_tmpfs = _mount(r, tree, label, path, "tmpfs", "tmpfs", _MASK_FLAGS,
                                 f"mounts an empty tmpfs over {path}: ro,nosuid,nodev,noexec (mode 1777: anyone "
                                 "may list it)", op="mask")
        else:
            _mount(r, tree, label, path, None, first_tmpfs.target, _MASK_FLAGS,
                   f"binds the empty tmpfs of {first_tmpfs.target} over {path}, remounted ro,nosuid,nodev,noexec",
                   op="mask", lookup="")
    for i, path in enumerate(p.readonly_paths):
        label = f"linux.readonlyPaths[{i}]"
        if _mode(tree.host(path)) is None:
            r.add("init", "mounts", "skip", label, f"{path}: not there, nothing to make read-only", target=path)
            continue
        flags = tree.flags_at(path)
        _mount(r, tree, label, path, None, path, None if flags is None else flags | k.MS_RDONLY,
               f"binds {path} on itself (recursive), then makes it and all below it read-only (mount_setattr)",
               op="readonly", recursive=True, lookup=tree.host(path) or "")
    if p.readonly_root:
        root = tree.covering("/")
        if root is not None and root.flags is not None:
            root.flags |= k.MS_RDONLY
        r.add("init", "mounts", "remount", "root.readonly", "remounts / read-only", target="/", flags=["ro"])


def _mode(host: str | None) -> int | None:
    if host is None:
        return None
    try:
        return posix.stat(host).st_mode
    except OSError:
        return None


def finish(tree: Tree) -> None:
    """Each mount's line gets the flags the mount ends with, once every remount is planned
    (those mountinfo shows of a mount's own: ro, nosuid, nodev, noexec)."""
    for m in tree.mounts:
        if m.entry is not None and m.flags is not None:
            m.entry.detail["flags"] = flag_names(m.flags & _CHECKED)
