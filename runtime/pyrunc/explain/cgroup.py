"""The container's cgroup: where it goes on each hierarchy, what create makes there, who joins
it, and every file write with its value, from the CgroupManager create uses (cgroups/)."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.explain import Report


def setup(r: Report, look) -> None:
    from pyrunc.cgroups.delegate import owner
    from pyrunc.explain.namespaces import ns_path

    cg, p = r.cg, r.plan
    asked = p.config.get("linux", {}).get("cgroupsPath")
    kinds = {"v1": "cgroup v1", "v2": "cgroup v2 (unified)", "hybrid": "hybrid: v1 controllers and a cgroup2 tree"}
    systemd = driver(cg) == "systemd"
    where = (f"the transient scope {cg.unit} in {cg.slice} ({asked or 'not set: the default'}), which systemd "  # type: ignore[attr-defined]
             "makes over D-Bus with the first process in it (StartTransientUnit, Delegate=yes) and removes"
             if systemd else
             f"{asked!r}" if asked else f"not set: the relative path {p.id!r}, below pyrunc's own cgroup")
    r.add("parent", "cgroup", "layout", "linux.cgroupsPath",
          f"driver {driver(cg)}; this host is {kinds[cg.mode]}; cgroupsPath " + where
          + (" (rootless: only directories delegated to this user are used)" if cg.rootless else ""),
          driver=driver(cg), hierarchy=cg.mode)
    for key, d in list(cg.dirs.items()):
        name = key or "cgroup2"
        if systemd and not cg.makes_dir(key):  # type: ignore[attr-defined]
            r.add("parent", "cgroup", "dir", "linux.cgroupsPath", f"{d} ({name}): systemd's, made with the scope",
                  hierarchy=name, dir=d)
            continue
        made = False
        for kind, arg in cg.creation_steps(key, d, look):
            look.note(kind, arg)
            if kind == "mkdir":
                made = made or arg == d
                r.add("parent", "cgroup", "mkdir", "linux.cgroupsPath",
                      f"mkdir {arg} ({name})" if arg == d else f"mkdir {arg} ({name}: a parent, removed by delete)",
                      hierarchy=name, dir=arg)
            elif kind == "enable":
                r.add("parent", "cgroup", "write", arg.path,  # type: ignore[attr-defined]
                      f"{arg.name} <- {arg.value} in {arg.dir}: the {arg.value[1:]} controller for its children"  # type: ignore[attr-defined]
                      " (a refusal is not an error)", dir=arg.dir, file=arg.name, value=arg.value)  # type: ignore[attr-defined]
            else:
                r.add("parent", "cgroup", "write", arg.path,  # type: ignore[attr-defined]
                      f"{arg.name} <- {arg.value} in {arg.dir}: copied from its parent, a new cpuset is empty",  # type: ignore[attr-defined]
                      dir=arg.dir, file=arg.name, value=arg.value)  # type: ignore[attr-defined]
        if not made:
            r.add("parent", "cgroup", "dir", "linux.cgroupsPath", f"{d} ({name}): there already, used as it is",
                  hierarchy=name, dir=d)
    to = owner(p.config, cg.mode)
    if to is not None and cg.unified:
        r.add("parent", "cgroup", "chown", ns_path(p, "cgroup"),
              f"delegates {cg.unified} to host uid {to[0]} gid {to[1]}: a cgroup namespace and a writable "
              "/sys/fs/cgroup mount were asked for", dir=cg.unified)


def driver(cg) -> str:
    return "systemd" if cg.to_state().get("driver") == "systemd" else "cgroupfs"


def join_v1(r: Report) -> None:
    from pyrunc.cgroups.manager import UNIFIED

    for key, d in r.cg.dirs.items():
        if key != UNIFIED:
            r.add("child", "cgroup", "join", "linux.cgroupsPath",
                  f"0 <- {d}/tasks: joins its {key} cgroup (the whole process: it has no threads)", hierarchy=key,
                  dir=d, file="tasks", value="0")


def resources(r: Report, look, rootless: bool) -> None:
    from pyrunc.cgroups.files import Program

    res = r.plan.config.get("linux", {}).get("resources") or {}
    ops = r.cg.resource_writes(res, look=look)
    if not ops:
        r.add("parent", "cgroup", "none", "linux.resources", "no cgroup file to write")
    pair_next = False
    for op in ops:
        if isinstance(op, Program):
            r.add("parent", "cgroup", "bpf", op.path,
                  f"attaches an eBPF device program to {op.dir}: {len(op.rules)} rules, deny by default, "
                  "the last matching rule wins (runc's default devices included)", dir=op.dir)
            continue
        note = " (if the kernel refuses this pair in this order, both are written the other way)" \
            if op.pair or pair_next else ""
        r.add("parent", "cgroup", "write", op.path, f"{op.name} <- {op.value} in {op.dir}{note}",
              dir=op.dir, file=op.name, value=op.value)
        look.note("write", op)
        pair_next = op.pair
    if rootless:
        r.add("parent", "cgroup", "note", "linux.resources",
              "rootless: device rules are not written; a directory that is not delegated is left out")
