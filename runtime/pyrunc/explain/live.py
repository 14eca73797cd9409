"""`pyrunc explain ID`: the plan of an existing container, each step checked against what the
kernel shows of it from the host: /proc/<pid>/ns, cgroup, mountinfo, status, limits, cwd,
exe, cmdline, environ, and the cgroup files. Only reads.

The plan is made from the config the container was created from (saved in its state
directory; -b names another bundle to compare with) and the cgroup directories its create
recorded. Each step gets ``live``: same, differs (with what the kernel shows instead) or
unverified (with why: nothing to see from outside, or the step has not happened yet).
"""
from __future__ import annotations

import posix

from pyrunc import fs
from pyrunc.explain import DIFFERS, SAME, UNVERIFIED, Report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.explain import Entry

_STARTED = ("start", "startContainer", "execve", "env", "poststart")  # ops of `start` and after
_NOT_SEEN = {"hooks": "a hook leaves nothing the kernel shows", "bpf": "an eBPF program is not a file to read",
             "keyctl": "keyrings are not visible from outside", "system": "seen only from inside its namespaces"}


def explain_container(g, cid: str, opts: dict) -> tuple[Report, str]:
    from pyrunc import lifecycle
    from pyrunc import state as st
    from pyrunc.cgroups.foresee import Foreseen
    from pyrunc.explain import build
    from pyrunc.spec.load import check_schema, load_config, read_json

    c = st.load(g.root, cid, shared=True)
    try:
        status = c.status()
        data, pid = c.data, c.pid if status in ("created", "running", "paused") else 0
        saved = fs.join(c.dir, "config.json")  # what create was given (lifecycle.save_config)
        if opts.get("bundle") or not fs.exists(saved):
            config, bundle = load_config(opts.get("bundle") or data["bundle"])
        else:
            config, bundle = read_json(saved, "config"), data["bundle"]
            check_schema("config", config, "config.json")
    finally:
        c.close()
    plan, _rootless = lifecycle.prepare(config, bundle, cid, g.rootless, no_pivot=opts["no_pivot"],  # type: ignore[arg-type]
                                        no_new_keyring=opts["no_new_keyring"])
    cg = c.cgroup()
    report = build(plan, cg, rootless=cg.rootless, look=Foreseen(cg.mode, cg.mounts, absent=cg.created))
    if not pid:  # nothing to check: the plan alone, with the status saying why
        return report, status
    Check(report, pid, status, restored=bool(data.get("restored"))).run()
    return report, status


def read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def status_fields(pid: int | str) -> dict[str, str]:
    out = {}
    for line in (read(f"/proc/{pid}/status") or "").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


class Check:
    def __init__(self, report: Report, pid: int, status: str, restored: bool = False) -> None:
        self.r, self.pid, self.status = report, pid, status
        self.restored = restored  # by criu (pyrunc restore), not made by create
        self.proc = f"/proc/{pid}"
        self.fields = status_fields(pid)
        self.root = link(f"{self.proc}/root") or ""

    def run(self) -> None:
        from pyrunc.explain import live_cgroup, live_mounts

        live_mounts.check(self.r, self.proc)
        cg = live_cgroup.Cgroup(self.r.cg, self.pid)
        cg.note_devices(self.r)
        started = False
        for e in self.r.entries:
            started = started or e.op == "start"
            if e.live is not None:
                continue
            if self.status == "created" and (started or e.who == "delete"):
                e.live = (UNVERIFIED, "not yet: the container has not been started")
            elif e.who == "delete":
                e.live = (UNVERIFIED, "not yet: done by delete")
            elif e.section == "cgroup":
                e.live = cg.check(e)
            elif e.section == "namespaces":
                e.live = self.namespace(e)
            elif e.section == "process":
                e.live = self.process(e, started)
            elif e.section == "devices":
                e.live = self.device(e)
            else:
                e.live = (UNVERIFIED, _NOT_SEEN.get(e.op, _NOT_SEEN.get(e.section, "")))

    # -- namespaces ---------------------------------------------------------------------------
    def namespace(self, e: Entry) -> tuple[str, str]:
        kind = e.detail.get("type")
        if kind is not None and e.op != "setresuid":
            return self._ns_of(e, kind)
        if e.path in ("linux.uidMappings", "linux.gidMappings") and e.op == "write":
            name = "uid_map" if e.path == "linux.uidMappings" else "gid_map"
            now = "; ".join(" ".join(line.split()) for line in (read(f"{self.proc}/{name}") or "").splitlines())
            want = e.text.rpartition(": ")[2]
            return (SAME, "") if now == want else (DIFFERS, now)
        if e.path == "linux.timeOffsets":
            return UNVERIFIED, "the offsets are read from inside the time namespace"
        if e.op in ("fork", "clone3", "none") and self.r.plan.has_ns("pid"):
            nspid = self.fields.get("NSpid", "").split()
            return (SAME, "") if nspid and nspid[-1] == "1" else (DIFFERS, f"NSpid {' '.join(nspid)}: not pid 1")
        return UNVERIFIED, ""

    def _ns_of(self, e: Entry, kind: str) -> tuple[str, str]:
        name = {"network": "net", "mount": "mnt"}.get(kind, kind)
        theirs, ours = inode(f"{self.proc}/ns/{name}"), inode(f"/proc/self/ns/{name}")
        now = link(f"{self.proc}/ns/{name}")
        if theirs is None:
            return UNVERIFIED, f"{self.proc}/ns/{name} cannot be read"
        if e.op == "setns":
            return (SAME, "") if inode(e.detail["nsPath"]) == theirs else (DIFFERS, f"in {now}, not {e.detail['nsPath']}")
        if e.op == "inherit":
            if kind == "time" and self.restored and theirs != ours:
                return UNVERIFIED, f"in {now}: criu restores into a time namespace of its own (clocks go on)"
            return (SAME, "") if theirs == ours else (DIFFERS, f"in {now}, not the runtime's")
        return (SAME, "") if theirs != ours else (DIFFERS, f"still in the runtime's {kind} namespace ({now})")

    # -- process ------------------------------------------------------------------------------
    def process(self, e: Entry, started: bool) -> tuple[str, str]:
        from pyrunc.explain import live_process

        return live_process.check(self, e, started)

    # -- devices ------------------------------------------------------------------------------
    def device(self, e: Entry) -> tuple[str, str]:
        import stat

        from pyrunc.linux.devices import SYMLINKS

        if e.op == "symlink":
            wrong = [f"/dev/{n} -> {link(self.inside(f'/dev/{n}'))}" for n, t in SYMLINKS
                     if link(self.inside(f"/dev/{n}")) != t]
            return (SAME, "") if not wrong else (DIFFERS, ", ".join(wrong))
        if e.op == "mknod":
            try:
                st = posix.stat(self.inside(e.detail["target"]), follow_symlinks=False)
            except OSError as exc:
                return DIFFERS, f"{e.detail['target']}: {exc.strerror}"
            kind = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p"}.get(stat.S_IFMT(st.st_mode), "?")
            now = f"{kind} {posix.major(st.st_rdev)}:{posix.minor(st.st_rdev)}"
            return (SAME, "") if now == e.detail["device"] else (DIFFERS, now)
        return UNVERIFIED, ""

    def inside(self, path: str) -> str:
        """A path of the container, reached from the host through /proc/<pid>/root."""
        return f"{self.proc}/root/{path.lstrip('/')}"


def link(path: str) -> str | None:
    try:
        return posix.readlink(path)
    except OSError:
        return None


def inode(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino): what a namespace file or a directory is, whatever its name."""
    try:
        st = posix.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
