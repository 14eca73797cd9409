"""`pyrunc explain`: everything create does for a bundle on this host, in the order it does it,
each step with the config.json field it comes from; nothing on the host is changed.

The report is made from what create itself decides with: the Plan (spec/plan.py), the
CgroupManager and its planned writes (cgroups/), the mount steps (spec/mountopts.py,
linux/cgroupfs.py), the device nodes (linux/devices.py), the capability masks and the
compiled seccomp program (linux/confine.py). Host facts are only read. For a live
container, explain/live.py sets each step's ``live`` from the kernel's view of it.

Only `pyrunc explain` imports this package.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.spec.plan import Plan

WHO = {"parent": "pyrunc create", "child": "create's first child", "init": "the container's init",
       "start": "pyrunc start", "delete": "pyrunc delete",
       "criu": "pyrunc checkpoint and restore: what criu is told"}
SAME, DIFFERS, UNVERIFIED = "same", "differs", "unverified"


class Entry:
    """One step: who does it, its section (namespaces, cgroup, mounts, devices, system,
    process, hooks), a verb, the JSON path it comes from, a sentence, and details."""

    __slots__ = ("who", "section", "op", "path", "text", "detail", "live")

    def __init__(self, who: str, section: str, op: str, path: str, text: str, detail: dict) -> None:
        self.who, self.section, self.op, self.path, self.text, self.detail = who, section, op, path, text, detail
        self.live: tuple[str, str] | None = None  # (SAME | DIFFERS | UNVERIFIED, what the kernel shows)

    def to_json(self) -> dict:
        out = {"who": self.who, "section": self.section, "op": self.op, "jsonPath": self.path, "text": self.text}
        if self.detail:
            out["detail"] = self.detail
        if self.live is not None:
            out["live"] = {"status": self.live[0], "actual": self.live[1]}
        return out


class Report:
    def __init__(self, plan: Plan, cg) -> None:
        self.plan, self.cg = plan, cg
        self.entries: list[Entry] = []
        self.child_is_init = True
        self.tree = None  # explain.tree.Tree once built: the planned mounts

    def add(self, who: str, section: str, op: str, path: str, text: str, **detail) -> Entry:
        e = Entry(who, section, op, path, text, {k: v for k, v in detail.items() if v is not None})
        self.entries.append(e)
        return e

    def to_json(self, mode: str, status: str | None) -> dict:
        from pyrunc.explain.cgroup import driver

        p = self.plan
        out = {"explainVersion": 1, "mode": mode, "id": p.id, "bundle": p.bundle, "rootfs": p.rootfs,
               "cgroup": {"driver": driver(self.cg), "hierarchy": self.cg.mode, "dirs": dict(self.cg.dirs)},
               "steps": [e.to_json() for e in self.entries]}
        if mode == "live":
            out["status"] = status or ""
            out["differences"] = sum(e.live is not None and e.live[0] == DIFFERS for e in self.entries)
        return out


def build(plan: Plan, cg, *, rootless: bool, look=None) -> Report:
    """The steps of create, start and delete for ``plan``, in order. ``cg`` is the
    container's CgroupManager; ``look`` how its files are read (default: as create will
    find them, cgroups/foresee.py)."""
    from pyrunc.cgroups.foresee import Foreseen
    from pyrunc.explain import cgroup, mounts, namespaces, process

    look = look or Foreseen(cg.mode, cg.mounts)
    r = Report(plan, cg)
    # parent, then its first child
    cgroup.setup(r, look)
    namespaces.fork_child(r)
    cgroup.join_v1(r)
    namespaces.enter(r)
    cgroup.resources(r, look, rootless)  # once the init exists: pids.limit 0 would stop its fork
    # the init (the parent's hooks and net devices wait for its mounts)
    tree = mounts.rootfs_and_mounts(r)
    process.names(r)
    process.runtime_hooks(r)
    process.container_hooks(r)
    mounts.pivot(r)
    process.net_devices(r)
    process.sysctl(r)
    mounts.masks_and_readonly(r, tree)
    mounts.finish(tree)
    process.keyring(r)
    exe, env = process.become(r, tree)
    # start, then delete
    process.start_and_delete(r, exe, env)
    _criu(r)
    r.tree = tree
    return r


def _criu(r: Report) -> None:
    from pyrunc.criu.options import described

    for path, text in described(r.plan, r.cg):
        r.add("criu", "checkpoint", "criu", path, text)


def explain_bundle(g, bundle: str, cid: str, opts: dict) -> Report:
    """The plan for a bundle, made as create makes it (``g``: the CLI's global flags)."""
    from pyrunc import lifecycle
    from pyrunc.cli.create import listen_fds
    from pyrunc.spec.load import load_config

    config, bundle_dir = load_config(bundle)
    plan, rootless = lifecycle.prepare(config, bundle_dir, cid, g.rootless, no_pivot=opts["no_pivot"],
                                       no_new_keyring=opts["no_new_keyring"], preserve_fds=listen_fds(config))
    cg = lifecycle.cgroup_for(plan, systemd_cgroup=g.systemd_cgroup, rootless=rootless)
    return build(plan, cg, rootless=rootless)
