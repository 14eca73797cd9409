"""Which process makes or joins which namespace, and why, from the Plan and the functions create
decides it with (linux/namespaces.py: born_in, needs_fork; linux/idmap.py; JOIN_ORDER)."""
from __future__ import annotations

from pyrunc.syscalls.consts import JOIN_ORDER, NAMESPACE_FLAGS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.explain import Report

_APPLIES_TO_CHILDREN = ("pid", "time")


def ns_path(plan, kind: str) -> str:
    """The JSON path of the namespace of this kind in linux.namespaces."""
    for i, ns in enumerate(plan.config.get("linux", {}).get("namespaces") or []):
        if ns["type"] == kind:
            return f"linux.namespaces[{i}]"
    return "linux.namespaces"


def _born(plan) -> int:
    """The namespaces the first child is born in: create's clone3, where this kernel has it."""
    from pyrunc.linux import namespaces
    from pyrunc.syscalls import calls as sc

    return namespaces.born_in(plan) if sc.clone3_available() else 0


def fork_child(r: Report) -> None:
    from pyrunc.linux import namespaces
    from pyrunc.syscalls import calls as sc

    p, cg = r.plan, r.cg
    born = _born(p)
    r.child_is_init = not namespaces.needs_fork(p, born)
    where = f" in its cgroup2 directory {cg.unified}" if cg.unified else ""
    if sc.clone3_available():
        how = f"clone3: the first child is born{where}"
    else:
        how = "fork: the first child (no clone3 here); then its pid goes into the cgroup2 directory's cgroup.procs"
    if born:
        how += " and in the new pid namespace, as its pid 1: it is the container's init"
    r.add("parent", "namespaces", "clone3" if sc.clone3_available() else "fork",
          ns_path(p, "pid") if born else "linux.namespaces", how, born=_names(born))


def _names(flags: int) -> list[str]:
    return [t for t in JOIN_ORDER if flags & NAMESPACE_FLAGS[t]]


def enter(r: Report) -> None:
    """The child's steps, in bootstrap's order: idmapped copies, joins, the user namespace,
    the other new ones, time offsets, then the init's fork if a namespace needs it."""
    from pyrunc.linux import idmap, namespaces
    from pyrunc.syscalls import calls as sc

    p = r.plan
    entries = p.config.get("mounts") or []
    linux = p.config.get("linux", {})
    prop = "private" if idmap.copy_propagation(p) == sc.MS_PRIVATE else "a slave of the source"
    for op in p.mounts:
        if idmap.wanted(op, entries[op.index]):
            r.add("child", "namespaces", "idmap", f"mounts[{op.index}]",
                  f"while still root on the host: a detached copy of {op.source} ({prop}) idmapped through a user "
                  f"namespace of its mappings, moved onto {op.destination} later")
        elif op.is_bind and op.source and idmap.opens_sources(p):
            r.add("child", "namespaces", "open_tree", f"mounts[{op.index}]",
                  f"while still root on the host: a detached copy of {op.source} ({prop}), moved onto "
                  f"{op.destination} later: the container's root need not reach it")
    for kind, path in p.join_ns:
        later = " (it applies to children only: the init is forked after)" if kind in _APPLIES_TO_CHILDREN else ""
        r.add("child", "namespaces", "setns", ns_path(p, kind), f"joins the {kind} namespace {path}{later}", type=kind,
              nsPath=path)
    if p.new_ns & sc.CLONE_NEWUSER:
        r.add("child", "namespaces", "unshare", ns_path(p, "user"),
              "unshares a new user namespace, alone and first: every namespace made after it is owned by it",
              type="user")
        for field, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
            maps = "; ".join(f"{m['containerID']} {m['hostID']} {m['size']}" for m in linux.get(field) or [])
            r.add("parent", "namespaces", "write", f"linux.{field}", f"writes the child's /proc/<pid>/{name}: {maps}")
        r.add("child", "namespaces", "setresuid", "linux.uidMappings", "becomes uid 0 and gid 0 of its user namespace")
    elif p.has_ns("user"):
        r.add("child", "namespaces", "setresuid", ns_path(p, "user"), "becomes uid 0 and gid 0 of the joined user namespace")
    born = _born(p)
    for kind in JOIN_ORDER:
        flag = NAMESPACE_FLAGS[kind]
        if kind == "user" or not p.new_ns & flag:
            continue
        later = " (it applies to children only: the init is forked after)" \
            if kind in _APPLIES_TO_CHILDREN and not born & flag else ""
        if born & flag:
            r.add("child", "namespaces", "clone3", ns_path(p, kind), f"new {kind} namespace: born in it", type=kind)
        else:
            r.add("child", "namespaces", "unshare", ns_path(p, kind), f"unshares a new {kind} namespace{later}", type=kind)
    offsets = linux.get("timeOffsets")
    if offsets:
        text = ", ".join(f"{c} {o.get('secs', 0)}s {o.get('nanosecs', 0)}ns" for c, o in offsets.items())
        r.add("child", "namespaces", "write", "linux.timeOffsets", f"writes /proc/self/timens_offsets: {text}")
    for kind in NAMESPACE_FLAGS:
        if not p.has_ns(kind):
            r.add("child", "namespaces", "inherit", "linux.namespaces",
                  f"{kind}: not in linux.namespaces, the runtime's own is kept", type=kind)
    if namespaces.needs_fork(p, born):
        why = [k for k in _APPLIES_TO_CHILDREN if p.has_ns(k) and not born & NAMESPACE_FLAGS[k]]
        r.add("child", "namespaces", "fork", ns_path(p, why[0]),
              f"forks the init (CLONE_PARENT: create's own child), which is the first process in its new "
              f"{' and '.join(why)} namespace{'s' if len(why) > 1 else ''}")
    else:
        r.add("child", "namespaces", "none", "linux.namespaces", "no fork: this child is the container's init")
