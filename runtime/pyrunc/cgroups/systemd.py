"""The systemd cgroup driver (--systemd-cgroup): the container's cgroup is a transient
scope that systemd makes, owns and removes; pyrunc asks for it over D-Bus (sdbus.py).

linux.cgroupsPath is "slice:prefix:name": the scope "<prefix>-<name>.scope" in the slice
(systemd.slice(5): "a-b-c.slice" lives in a.slice/a-b.slice/). The scope is started once
the container's first process exists (PIDs= moves it in), with Delegate=yes so that the
container may manage what is below. Limits go on as unit properties and, for what systemd
has no property for (and to be exact), in the cgroup files, as with cgroupfs. On v1 and
hybrid hosts systemd manages only some hierarchies; the others (cpuset, freezer, ...) get
a directory of the same path, made and removed by pyrunc as the cgroupfs driver does.
"""
from __future__ import annotations

from .. import fs
from ..errors import ConfigError
from . import files
from .manager import UNIFIED, CgroupManager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .sdbus import Systemd

WHERE = "linux.cgroupsPath"
# v1 hierarchies systemd realises a unit's cgroup in (with Delegate=yes); not cpuset,
# freezer, net_cls, net_prio, perf_event, hugetlb, rdma, misc.
SYSTEMD_V1 = {"cpu", "cpuacct", "blkio", "memory", "devices", "pids", "name=systemd"}
UINT64_MAX = 2**64 - 1  # "infinity" for systemd's limits


def parse_path(cgroups_path: str | None, cid: str, rootless: bool = False) -> tuple[str, str]:
    """linux.cgroupsPath -> (slice, unit). Empty: pyrunc's scope for the id in system.slice
    (user.slice rootless), as runc does with its own prefix."""
    default_slice = "user.slice" if rootless else "system.slice"
    if not cgroups_path:
        return default_slice, f"pyrunc-{cid}.scope"
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise ConfigError(f'{WHERE}: {cgroups_path!r} is not "slice:prefix:name", the form the systemd cgroup '
                          "driver expects")
    slice_, prefix, name = parts
    slice_ = slice_ or default_slice
    expand_slice(slice_)  # checks it
    if not name or "/" in name or "/" in prefix:
        raise ConfigError(f"{WHERE}: {cgroups_path!r}: the name must be non-empty, and neither part may hold '/'")
    if name.endswith(".slice"):  # the container is itself a slice (runc allows it)
        expand_slice(name)
        return slice_, name
    return slice_, f"{prefix}-{name}.scope" if prefix else f"{name}.scope"


def expand_slice(name: str) -> str:
    """"a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" (the root) -> "/"."""
    if not name.endswith(".slice") or "/" in name:
        raise ConfigError(f"{WHERE}: {name!r} is not a systemd slice name (*.slice)")
    if name == "-.slice":
        return "/"
    stem = name[: -len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise ConfigError(f"{WHERE}: {name!r} is not a valid slice name (see systemd.slice(5))")
    path, prefix = "", ""
    for part in stem.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        path += f"/{prefix}.slice"
    return path


def cgroup_path(slice_: str, unit: str) -> str:
    """The unit's cgroup, from the hierarchy's root."""
    if unit.endswith(".slice"):
        return expand_slice(unit)
    return expand_slice(slice_).rstrip("/") + "/" + unit


def properties(resources: dict, mode: str) -> list[tuple[str, tuple[str, object]]]:
    """linux.resources -> the unit properties systemd has for them ((name, (D-Bus type,
    value)), jeepney's form of a(sv)). The same values also go into the files."""
    from .v2 import shares_to_weight

    out: list[tuple[str, tuple[str, object]]] = []
    mem, cpu, pids = resources.get("memory") or {}, resources.get("cpu") or {}, resources.get("pids") or {}
    limit = mem.get("limit")
    if limit is not None:
        out.append(("MemoryMax" if mode == "v2" else "MemoryLimit", ("t", UINT64_MAX if limit < 0 else limit)))
    if mode == "v2" and mem.get("reservation") is not None and mem["reservation"] >= 0:
        out.append(("MemoryLow", ("t", mem["reservation"])))
    shares = cpu.get("shares")
    if shares:
        out.append(("CPUWeight", ("t", shares_to_weight(shares))) if mode == "v2" else ("CPUShares", ("t", shares)))
    quota, period = cpu.get("quota"), cpu.get("period")
    if period:
        out.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota is not None:
        per_sec = UINT64_MAX if quota <= 0 else quota * 1_000_000 // (period or 100_000)
        out.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    if pids.get("limit") is not None:
        out.append(("TasksMax", ("t", UINT64_MAX if pids["limit"] <= 0 else pids["limit"])))
    if mode == "v2":  # systemd has no cpuset on v1
        for key, prop in (("cpus", "AllowedCPUs"), ("mems", "AllowedMemoryNodes")):
            if cpu.get(key):
                out.append((prop, ("ay", cpuset_mask(cpu[key], f"linux.resources.cpu.{key}"))))
    return out


def cpuset_mask(spec: str, where: str) -> bytes:
    """"0-2,7" -> the little-endian bitmask systemd's AllowedCPUs takes."""
    bits = 0
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(f"{where}: {spec!r} is not a cpu list") from None
        for n in range(first, last + 1):
            bits |= 1 << n
    return bits.to_bytes((bits.bit_length() + 7) // 8 or 1, "little")


class SystemdCgroupManager(CgroupManager):
    """A CgroupManager whose directories on systemd's hierarchies belong to a unit."""

    def __init__(self, mode: str, dirs: dict[str, str], mounts: dict[str, str], unit: str, slice_: str,
                 description: str, created: list[str] | None = None, rootless: bool = False,
                 owned: bool | None = None) -> None:
        """``description`` names the container: a unit with another one is not ours. ``owned``:
        whether this manager started the unit (False until it has, for a new container;
        None, loaded from a state: systemd is asked, by the description)."""
        super().__init__(mode, dirs, mounts, created, rootless)
        self.unit, self.slice, self.description, self.owned = unit, slice_, description, owned
        self._bus: Systemd | None = None

    def to_state(self) -> dict:
        return {**super().to_state(), "driver": "systemd", "unit": self.unit, "slice": self.slice,
                "description": self.description}

    def makes_dir(self, key: str) -> bool:
        """Whether pyrunc, not systemd, makes this hierarchy's directory."""
        return key != UNIFIED and self.mode != "v2" and not set(key.split(",")) <= SYSTEMD_V1

    def bus(self) -> Systemd:
        if self._bus is None:
            from .sdbus import Systemd
            self._bus = Systemd(user=self.rootless)  # rootless: the user's manager
        return self._bus

    # -- lifecycle: systemd's directories come with the unit ------------------
    def plan(self) -> None:
        for key, d in self.dirs.items():
            if self.makes_dir(key):
                for cur in self._chain(key, d):
                    if cur not in self.created and not fs.isdir(cur):
                        self.created.append(cur)

    def create(self) -> None:
        for key, d in self.dirs.items():
            if self.makes_dir(key):
                self._mkdirs(key, d)

    def check_joinable(self) -> None:
        """Creating, the scope is ours to start: processes in a scope of that name (another
        container's) are not a warning of ours, systemd refuses the unit (UnitExists)."""
        if self.owned is False:
            self.found = frozenset()
            return
        super().check_joinable()

    def fork_into(self, ns_flags: int = 0) -> tuple[int, bool, int]:
        """Creating, the scope does not exist before its first process: a plain fork, then
        join(). Later (exec), the scope's cgroup2 directory is there to be born in."""
        if self.owned is not False:
            return super().fork_into(ns_flags)
        from pyrunc.syscalls import calls as sc

        return sc.clone3(-1, ns_flags), False, ns_flags

    def join(self, *, v1: bool, pid: int = 0) -> None:
        """Creating: the child joins pyrunc's own v1 hierarchies (and systemd's, should the
        scope already exist), and join(v1=False, pid) starts the scope with ``pid`` in it,
        on all of systemd's hierarchies at once. Later (exec), as cgroupfs."""
        if self.owned is not False:
            super().join(v1=v1, pid=pid)
        elif v1:
            there = {k: d for k, d in self.dirs.items() if self.makes_dir(k) or fs.isdir(d)}
            CgroupManager(self.mode, there, self.mounts, rootless=self.rootless).join(v1=True, pid=pid)
        else:
            self._start(pid)

    def _start(self, pid: int) -> None:
        props = [("Description", ("s", self.description)),
                 ("PIDs", ("au", [pid])), ("Delegate", ("b", True)), ("DefaultDependencies", ("b", False))]
        if not self.unit.endswith(".slice"):
            props.append(("Slice", ("s", self.slice)))
        self.bus().start_unit(self.unit, props)  # UnitExists: another's, never to be touched
        self.owned = True

    def set_resources(self, resources: dict, *, update: bool = False) -> None:
        cpu = (resources or {}).get("cpu") or {}
        if update and cpu.get("quota") is not None and not cpu.get("period"):
            # systemd takes quota per second: a quota alone is relative to the current period
            resources = {**resources, "cpu": {**cpu, "period": self._cpu_period()}}
        props = properties(resources or {}, self.mode)
        if props:
            self.bus().set_properties(self.unit, props)
        super().set_resources(resources, update=update)

    def _cpu_period(self) -> int | None:
        d = self.dir_of("cpu")
        if d is None:
            return None
        if self.mode == "v2":
            return int(files.read(d, "cpu.max").split()[1])
        return files.read_int(d, "cpu.cfs_period_us") or None

    def discard(self) -> None:
        """A failed create: the scope is new (else UnitExists), destroy() tells if it is ours."""
        self.destroy()

    def destroy(self) -> None:
        """Kill what is left, stop the unit (systemd removes its directories), then ours.
        A unit of that name that is not this container's (create failed with UnitExists, or
        died before it could start its own) keeps its processes and its directories."""
        if self.owned is None:
            self.owned = self.bus().description(self.unit) == self.description
        if self.owned:
            self._kill_remaining()
            self.bus().stop_unit(self.unit)
        self._remove_dirs(only_ours=not self.owned)
