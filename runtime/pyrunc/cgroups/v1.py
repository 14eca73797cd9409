"""linux.resources on cgroup v1 (and the v1 side of a hybrid host)."""
from __future__ import annotations

import errno

from ..errors import ConfigError, SyscallError
from . import files
from .files import CgroupError
from .resources import F, pagesize_name, rdma_line, validate


def set_resources(mgr, res: dict, *, update: bool) -> None:
    validate(res)
    if res.get("unified"):
        raise ConfigError(f"{F}.unified: cgroup v2 keys cannot be applied on a cgroup v1 host")

    def need(ctrl: str, field: str) -> str:
        d = mgr.dir_of(ctrl)
        if d is None:
            raise CgroupError(f"{field}: the {ctrl} cgroup controller is not mounted on this host")
        return d

    cpu = res.get("cpu") or {}
    for k, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        if cpu.get(k):
            files.write(need("cpuset", f"{F}.cpu.{k}"), name, cpu[k], f"{F}.cpu.{k}")

    if not mgr.rootless and (not update or res.get("devices") is not None):
        from .devices import apply_v1
        apply_v1(need("devices", f"{F}.devices"), res.get("devices"))

    if res.get("memory"):
        _memory(need("memory", f"{F}.memory"), res["memory"], update)
    if any(cpu.get(k) is not None for k in
           ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod", "idle")):
        _cpu(need("cpu", f"{F}.cpu"), cpu)
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        lim = pids["limit"]
        files.write(need("pids", f"{F}.pids"), "pids.max", "max" if lim == -1 else lim,
                    f"{F}.pids.limit")
    if res.get("blockIO"):
        _blkio(need("blkio", f"{F}.blockIO"), res["blockIO"])
    for i, h in enumerate(res.get("hugepageLimits") or []):
        field = f"{F}.hugepageLimits[{i}]"
        d, size = need("hugetlb", field), pagesize_name(h["pageSize"])
        files.write(d, f"hugetlb.{size}.limit_in_bytes", h["limit"], f"{field}.limit")
        if files.exists(d, f"hugetlb.{size}.rsvd.limit_in_bytes"):
            files.write(d, f"hugetlb.{size}.rsvd.limit_in_bytes", h["limit"], f"{field}.limit")
    net = res.get("network") or {}
    if net.get("classID") is not None:
        files.write(need("net_cls", f"{F}.network.classID"), "net_cls.classid", net["classID"],
                    f"{F}.network.classID")
    for i, p in enumerate(net.get("priorities") or []):
        field = f"{F}.network.priorities[{i}]"
        files.write(need("net_prio", field), "net_prio.ifpriomap",
                    f"{p['name']} {p['priority']}", field)
    for dev, lim in (res.get("rdma") or {}).items():
        field = f"{F}.rdma[{dev!r}]"
        files.write(need("rdma", field), "rdma.max", rdma_line(dev, lim), field)


def _memory(d: str, mem: dict, update: bool) -> None:
    limit, swap = mem.get("limit"), mem.get("swap")
    if update and mem.get("checkBeforeUpdate") and limit is not None and limit != -1:
        usage = files.read_int(d, "memory.usage_in_bytes")
        if limit < usage:
            raise CgroupError(f"{F}.memory.limit: {limit} is below the current usage {usage}"
                              " (memory.usage_in_bytes)")
    has_memsw = files.exists(d, "memory.memsw.limit_in_bytes")
    if limit == -1 and swap is None and has_memsw:
        swap = -1          # "unlimited memory" means unlimited swap too
    if swap is not None and not has_memsw:
        raise CgroupError(f"{F}.memory.swap: swap accounting is disabled in this kernel "
                          "(no memory.memsw.limit_in_bytes)")

    def set_limit() -> None:
        if limit is not None:
            files.write(d, "memory.limit_in_bytes", limit, f"{F}.memory.limit")

    def set_swap() -> None:
        if swap is not None:
            files.write(d, "memory.memsw.limit_in_bytes", swap, f"{F}.memory.swap")

    # memsw must stay >= limit after every single write: order them accordingly
    cur = files.read_int(d, "memory.limit_in_bytes")
    if limit is not None and swap is not None and (swap == -1 or cur < swap):
        set_swap(); set_limit()
    else:
        set_limit(); set_swap()
    for key, name in (("reservation", "memory.soft_limit_in_bytes"),
                      ("kernel", "memory.kmem.limit_in_bytes"),
                      ("kernelTCP", "memory.kmem.tcp.limit_in_bytes"),
                      ("swappiness", "memory.swappiness")):
        if mem.get(key) is not None:
            files.write(d, name, mem[key], f"{F}.memory.{key}")
    if mem.get("disableOOMKiller") is not None:
        files.write(d, "memory.oom_control", int(mem["disableOOMKiller"]),
                    f"{F}.memory.disableOOMKiller")
    if mem.get("useHierarchy") is not None:
        files.write(d, "memory.use_hierarchy", int(mem["useHierarchy"]), f"{F}.memory.useHierarchy")


def _pair(d: str, first: tuple[str, object, str], second: tuple[str, object, str]) -> None:
    """Write two interdependent files (period/quota); if the first is refused
    with EINVAL, the other order may be the valid one."""
    todo = [x for x in (first, second) if x[1] is not None]
    try:
        for name, val, field in todo:
            files.write(d, name, val, field)
    except SyscallError as exc:
        if exc.errno != errno.EINVAL or len(todo) < 2:
            raise
        for name, val, field in reversed(todo):
            files.write(d, name, val, field)


def _cpu(d: str, cpu: dict) -> None:
    if cpu.get("shares") is not None:
        files.write(d, "cpu.shares", cpu["shares"], f"{F}.cpu.shares")
    _pair(d, ("cpu.cfs_period_us", cpu.get("period"), f"{F}.cpu.period"),
          ("cpu.cfs_quota_us", cpu.get("quota"), f"{F}.cpu.quota"))
    if cpu.get("burst") is not None:
        files.write(d, "cpu.cfs_burst_us", cpu["burst"], f"{F}.cpu.burst")
    _pair(d, ("cpu.rt_period_us", cpu.get("realtimePeriod"), f"{F}.cpu.realtimePeriod"),
          ("cpu.rt_runtime_us", cpu.get("realtimeRuntime"), f"{F}.cpu.realtimeRuntime"))
    if cpu.get("idle") is not None:
        files.write(d, "cpu.idle", cpu["idle"], f"{F}.cpu.idle")


def _blkio(d: str, blk: dict) -> None:
    # CFQ's blkio.weight is gone from current kernels; BFQ offers blkio.bfq.weight
    bfq = not files.exists(d, "blkio.weight") and files.exists(d, "blkio.bfq.weight")
    prefix = "blkio.bfq." if bfq else "blkio."
    if blk.get("weight") is not None:
        files.write(d, prefix + "weight", blk["weight"], f"{F}.blockIO.weight")
    if blk.get("leafWeight") is not None:
        files.write(d, "blkio.leaf_weight", blk["leafWeight"], f"{F}.blockIO.leafWeight")
    for i, e in enumerate(blk.get("weightDevice") or []):
        dev, field = f"{e['major']}:{e['minor']}", f"{F}.blockIO.weightDevice[{i}]"
        if e.get("weight") is not None:
            files.write(d, prefix + "weight_device", f"{dev} {e['weight']}", f"{field}.weight")
        if e.get("leafWeight") is not None:
            files.write(d, "blkio.leaf_weight_device", f"{dev} {e['leafWeight']}",
                        f"{field}.leafWeight")
    for key, name in (("throttleReadBpsDevice", "read_bps_device"),
                      ("throttleWriteBpsDevice", "write_bps_device"),
                      ("throttleReadIOPSDevice", "read_iops_device"),
                      ("throttleWriteIOPSDevice", "write_iops_device")):
        for i, e in enumerate(blk.get(key) or []):
            files.write(d, "blkio.throttle." + name, f"{e['major']}:{e['minor']} {e['rate']}",
                        f"{F}.blockIO.{key}[{i}]")
