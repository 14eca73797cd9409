"""The cgroup steps of a live container checked against the kernel: the directories, where
/proc/<pid>/cgroup puts the init, and each file as it reads back after its write."""
from __future__ import annotations

import posix

from pyrunc import fs
from pyrunc.explain import DIFFERS, SAME, UNVERIFIED
from pyrunc.explain.live import read

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.explain import Entry, Report

_PAGE = posix.sysconf("SC_PAGE_SIZE")
# byte limits the kernel keeps in pages: a value reads back rounded down, -1 as the largest
_BYTES = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes",
          "memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes", "memory.max", "memory.swap.max",
          "memory.low", "memory.high", "memory.min")


class Cgroup:
    def __init__(self, cg, pid: int) -> None:
        from pyrunc.cgroups import layout

        self.cg, self.pid = cg, pid
        lay = layout.detect()
        self.where: dict[str, str] = {}  # hierarchy key -> the init's directory now
        for key, cgpath in layout.own_cgroups(f"/proc/{pid}/cgroup").items():
            mount = lay.unified if key == "" else lay.v1.get(key)
            if mount is not None:
                self.where[key] = layout.in_mount(mount, cgpath)
        self.devices: dict[str, list[tuple[str, str]]] = {}  # dir -> its device writes, in order
        self.last: dict[tuple[str, str], Entry] = {}  # (dir, file) -> the step that writes it last

    def note_devices(self, r: Report) -> None:
        """Collect what one write cannot be checked on its own: the device rules of each
        directory, and which write of a file is its last."""
        for e in r.entries:
            if e.detail.get("file") in ("devices.allow", "devices.deny"):
                self.devices.setdefault(e.detail["dir"], []).append((e.detail["file"], e.detail["value"]))
            if e.op == "write" and e.section == "cgroup" and not _adds_a_line(e.detail["file"]):
                self.last[(e.detail["dir"], e.detail["file"])] = e

    def check(self, e: Entry) -> tuple[str, str]:
        d = e.detail
        if e.op == "layout":
            wrong = [f"{key or 'cgroup2'} in {self.where.get(key)}" for key, want in self.cg.dirs.items()
                     if self.where.get(key) != want]
            return (SAME, "") if not wrong else (DIFFERS, "; ".join(wrong))
        if e.op in ("mkdir", "dir"):
            return (SAME, "") if fs.isdir(d["dir"]) else (DIFFERS, f"{d['dir']} does not exist")
        if e.op == "join":
            now = self.where.get(d["hierarchy"])
            return (SAME, "") if now == d["dir"] else (DIFFERS, f"in {now}")
        if e.op == "write" and d.get("file") in ("devices.allow", "devices.deny"):
            return self._devices(d["dir"])
        if e.op == "write" and self.last.get((d["dir"], d["file"]), e) is not e:
            return UNVERIFIED, f"{d['file']} is written again by a later step"
        if e.op == "write":
            try:
                now = read_file(d["dir"], d["file"])
            except OSError as exc:
                return DIFFERS, f"{d['file']}: {exc.strerror}"
            return (SAME, "") if matches(d["file"], d["value"], now) else (DIFFERS, f"{d['file']} reads {now!r}")
        if e.op == "chown":
            st = posix.stat(d["dir"])
            return UNVERIFIED, f"owned by {st.st_uid}:{st.st_gid}"
        return UNVERIFIED, "an eBPF program is not a file to read" if e.op == "bpf" else ""

    def _devices(self, d: str) -> tuple[str, str]:
        try:
            now = set(read_file(d, "devices.list").splitlines())
        except OSError as exc:
            return DIFFERS, f"devices.list: {exc.strerror}"
        want = device_list(self.devices.get(d, []))
        return (SAME, "") if now == want else (DIFFERS, f"devices.list: {', '.join(sorted(now))}")


def _adds_a_line(name: str) -> bool:
    """Files where each write sets one line of many (a device's limit, an interface's priority)."""
    return name.endswith(("_device", "io.max", "io.weight", "io.bfq.weight", "ifpriomap", "rdma.max")) or \
        name.startswith("devices.") or name == "cgroup.subtree_control"


def read_file(d: str, name: str) -> str:
    with open(fs.join(d, name)) as f:
        return f.read().strip()


def device_list(writes: list[tuple[str, str]]) -> set[str]:
    """What devices.list shows after these writes, by the v1 devices controller's rules: "a"
    resets to all allowed or all denied; otherwise an allow adds its access to the exception
    of that exact device (type, major:minor), a deny takes its access away."""
    allow_all, exceptions = True, {}
    for file, line in writes:
        if line == "a":
            allow_all, exceptions = file == "devices.allow", {}
            continue
        kind, dev, access = line.split()
        have = exceptions.get((kind, dev), set())
        if (file == "devices.allow") != allow_all:
            exceptions[(kind, dev)] = have | set(access)
        else:
            left = have - set(access)
            exceptions.pop((kind, dev), None)
            if left:
                exceptions[(kind, dev)] = left
    if allow_all and not exceptions:
        return {"a *:* rwm"}
    return {f"{kind} {dev} {''.join(c for c in 'rwm' if c in acc)}" for (kind, dev), acc in exceptions.items()}


def matches(name: str, want: str, now: str) -> bool:
    """Whether ``now`` is what writing ``want`` to the file ``name`` leaves there."""
    from pyrunc.spec.procattrs import parse_list

    if name.endswith((".cpus", ".mems")):
        return (parse_list(want) if want else []) == (parse_list(now) if now else [])
    if name == "memory.oom_control":
        return f"oom_kill_disable {want}" in now.splitlines()
    if name == "cgroup.subtree_control":
        return want.lstrip("+") in now.split()
    if name in _BYTES and want not in ("max",) and now != "max":
        w, n = int(want), int(now)
        return n >= 1 << 62 if w == -1 else n == w // _PAGE * _PAGE
    lines = [" ".join(line.split()) for line in now.splitlines()]
    if name == "io.max":
        dev, _, limits = want.partition(" ")
        return any(line.startswith(dev + " ") and limits in line.split() for line in lines)
    if len(lines) > 1 or (name.endswith("weight") and " " not in want):
        return any(line == want or line.split()[-1:] == [want] and line.startswith("default") for line in lines)
    return now == want
