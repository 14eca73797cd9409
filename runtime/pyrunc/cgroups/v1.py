"""linux.resources on cgroup v1 (and the v1 side of a hybrid host)."""
from __future__ import annotations

from ..errors import ConfigError
from . import files
from .files import CgroupError, Write, apply, pair
from .resources import F, pagesize_name, rdma_line, validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .files import Op


def set_resources(mgr, res: dict, *, update: bool) -> None:
    apply(plan(mgr, res, update=update))


def plan(mgr, res: dict, *, update: bool, look=files) -> list[Op]:
    """The writes, in order; ``look`` answers what they depend on (see files.py)."""
    validate(res)
    if res.get("unified"):
        raise ConfigError(f"{F}.unified: cgroup v2 keys cannot be applied on a cgroup v1 host")

    def need(ctrl: str, field: str) -> str:
        d = mgr.dir_of(ctrl)
        if d is None:
            raise CgroupError(f"{field}: the {ctrl} cgroup controller is not mounted on this host")
        return d

    out: list[Op] = []
    cpu = res.get("cpu") or {}
    for k, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        if cpu.get(k):
            out.append(Write(need("cpuset", f"{F}.cpu.{k}"), name, cpu[k], f"{F}.cpu.{k}"))

    if not mgr.rootless and (not update or res.get("devices") is not None):
        out += _device_writes(need("devices", f"{F}.devices"), res.get("devices"))

    if res.get("memory"):
        out += _memory(need("memory", f"{F}.memory"), res["memory"], update, look)
    if any(cpu.get(k) is not None for k in
           ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod", "idle")):
        out += _cpu(need("cpu", f"{F}.cpu"), cpu)
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        lim = pids["limit"]
        out.append(Write(need("pids", f"{F}.pids"), "pids.max", "max" if lim == -1 else lim, f"{F}.pids.limit"))
    if res.get("blockIO"):
        out += _blkio(need("blkio", f"{F}.blockIO"), res["blockIO"], look)
    for i, h in enumerate(res.get("hugepageLimits") or []):
        field = f"{F}.hugepageLimits[{i}]"
        d, size = need("hugetlb", field), pagesize_name(h["pageSize"])
        out.append(Write(d, f"hugetlb.{size}.limit_in_bytes", h["limit"], f"{field}.limit"))
        if look.exists(d, f"hugetlb.{size}.rsvd.limit_in_bytes"):
            out.append(Write(d, f"hugetlb.{size}.rsvd.limit_in_bytes", h["limit"], f"{field}.limit"))
    net = res.get("network") or {}
    if net.get("classID") is not None:
        out.append(Write(need("net_cls", f"{F}.network.classID"), "net_cls.classid", net["classID"],
                         f"{F}.network.classID"))
    for i, p in enumerate(net.get("priorities") or []):
        field = f"{F}.network.priorities[{i}]"
        out.append(Write(need("net_prio", field), "net_prio.ifpriomap", f"{p['name']} {p['priority']}", field))
    for dev, lim in (res.get("rdma") or {}).items():
        field = f"{F}.rdma[{dev!r}]"
        out.append(Write(need("rdma", field), "rdma.max", rdma_line(dev, lim), field))
    return out


def _device_writes(d: str, spec_rules: list | None) -> list[Op]:
    """The writes to a v1 devices cgroup: deny-all, then the spec's rules, then the defaults."""
    from .devices import DEFAULT_RULES, parse_rules

    rules = parse_rules(spec_rules or [])
    out: list[Op] = [Write(d, "devices.deny", "a", "linux.resources.devices")]
    for i, r in enumerate(rules + list(DEFAULT_RULES)):
        field = f"linux.resources.devices[{i}]" if i < len(rules) else f"default device {r.v1_line()}"
        out.append(Write(d, "devices.allow" if r.allow else "devices.deny", r.v1_line(), field,
                         path=field if i < len(rules) else "linux.resources.devices"))
    return out


def _memory(d: str, mem: dict, update: bool, look) -> list[Write]:
    limit, swap = mem.get("limit"), mem.get("swap")
    if update and mem.get("checkBeforeUpdate") and limit is not None and limit != -1:
        usage = look.read_int(d, "memory.usage_in_bytes")
        if limit < usage:
            raise CgroupError(f"{F}.memory.limit: {limit} is below the current usage {usage}"
                              " (memory.usage_in_bytes)")
    has_memsw = look.exists(d, "memory.memsw.limit_in_bytes")
    if limit == -1 and swap is None and has_memsw:
        swap = -1          # "unlimited memory" means unlimited swap too
    if swap is not None and not has_memsw:
        raise CgroupError(f"{F}.memory.swap: swap accounting is disabled in this kernel "
                          "(no memory.memsw.limit_in_bytes)")
    writes = []
    if limit is not None:
        writes.append(Write(d, "memory.limit_in_bytes", limit, f"{F}.memory.limit"))
    if swap is not None:
        writes.append(Write(d, "memory.memsw.limit_in_bytes", swap, f"{F}.memory.swap"))
    # memsw must stay >= limit after every single write: order them accordingly
    cur = look.read_int(d, "memory.limit_in_bytes")
    if limit is not None and swap is not None and (swap == -1 or cur < swap):
        writes.reverse()
    for key, name in (("reservation", "memory.soft_limit_in_bytes"),
                      ("kernel", "memory.kmem.limit_in_bytes"),
                      ("kernelTCP", "memory.kmem.tcp.limit_in_bytes"),
                      ("swappiness", "memory.swappiness")):
        if mem.get(key) is not None:
            writes.append(Write(d, name, mem[key], f"{F}.memory.{key}"))
    if mem.get("disableOOMKiller") is not None:
        writes.append(Write(d, "memory.oom_control", int(mem["disableOOMKiller"]), f"{F}.memory.disableOOMKiller"))
    if mem.get("useHierarchy") is not None:
        writes.append(Write(d, "memory.use_hierarchy", int(mem["useHierarchy"]), f"{F}.memory.useHierarchy"))
    return writes


def _cpu(d: str, cpu: dict) -> list[Write]:
    out = []
    if cpu.get("shares") is not None:
        out.append(Write(d, "cpu.shares", cpu["shares"], f"{F}.cpu.shares"))
    out += pair(d, ("cpu.cfs_period_us", cpu.get("period"), f"{F}.cpu.period"),
                ("cpu.cfs_quota_us", cpu.get("quota"), f"{F}.cpu.quota"))
    if cpu.get("burst") is not None:
        out.append(Write(d, "cpu.cfs_burst_us", cpu["burst"], f"{F}.cpu.burst"))
    out += pair(d, ("cpu.rt_period_us", cpu.get("realtimePeriod"), f"{F}.cpu.realtimePeriod"),
                ("cpu.rt_runtime_us", cpu.get("realtimeRuntime"), f"{F}.cpu.realtimeRuntime"))
    if cpu.get("idle") is not None:
        out.append(Write(d, "cpu.idle", cpu["idle"], f"{F}.cpu.idle"))
    return out


def _blkio(d: str, blk: dict, look) -> list[Write]:
    # CFQ's blkio.weight is gone from current kernels; BFQ offers blkio.bfq.weight
    bfq = not look.exists(d, "blkio.weight") and look.exists(d, "blkio.bfq.weight")
    prefix = "blkio.bfq." if bfq else "blkio."
    out = []
    if blk.get("weight") is not None:
        out.append(Write(d, prefix + "weight", blk["weight"], f"{F}.blockIO.weight"))
    if blk.get("leafWeight") is not None:
        out.append(Write(d, "blkio.leaf_weight", blk["leafWeight"], f"{F}.blockIO.leafWeight"))
    for i, e in enumerate(blk.get("weightDevice") or []):
        dev, field = f"{e['major']}:{e['minor']}", f"{F}.blockIO.weightDevice[{i}]"
        if e.get("weight") is not None:
            out.append(Write(d, prefix + "weight_device", f"{dev} {e['weight']}", f"{field}.weight"))
        if e.get("leafWeight") is not None:
            out.append(Write(d, "blkio.leaf_weight_device", f"{dev} {e['leafWeight']}", f"{field}.leafWeight"))
    for key, name in (("throttleReadBpsDevice", "read_bps_device"),
                      ("throttleWriteBpsDevice", "write_bps_device"),
                      ("throttleReadIOPSDevice", "read_iops_device"),
                      ("throttleWriteIOPSDevice", "write_iops_device")):
        for i, e in enumerate(blk.get(key) or []):
            out.append(Write(d, "blkio.throttle." + name, f"{e['major']}:{e['minor']} {e['rate']}",
                             f"{F}.blockIO.{key}[{i}]"))
    return out
