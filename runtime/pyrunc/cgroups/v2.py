"""linux.resources on the cgroup v2 unified hierarchy, with runc's v1 -> v2 conversions."""
from __future__ import annotations

from ..errors import ConfigError, context
from . import files
from .files import CgroupError
from .resources import F, pagesize_name, rdma_line, validate


def shares_to_weight(shares: int) -> int:
    """cpu.shares 2..262144 -> cpu.weight 1..10000 (runc's linear map)."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight 10..1000 -> io.weight 1..10000."""
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int | None, limit: int | None) -> int | None:
    """The spec's swap is memory+swap (v1's memsw); v2's memory.swap.max is swap alone.
    None = leave as is, -1 = max."""
    if limit == -1 and not swap:
        return -1
    if swap is None or swap in (-1, 0):
        return swap if swap != 0 else None
    if limit is None or limit == -1:
        raise ConfigError(f"{F}.memory.swap: cannot limit swap without a memory limit")
    if swap < limit:
        raise ConfigError(f"{F}.memory.swap: {swap} is below memory.limit {limit}"
                          " (swap is memory+swap)")
    return swap - limit


def _max(v: int) -> str:
    return "max" if v == -1 else str(v)


def set_resources(mgr, res: dict, *, update: bool) -> None:
    validate(res)
    d = mgr.unified
    avail = set(files.read(d, "cgroup.controllers").split())

    def need(ctrl: str, field: str) -> None:
        if ctrl not in avail:
            raise CgroupError(f"{field}: the {ctrl} controller is not enabled for {d}")

    net = res.get("network") or {}
    if net.get("classID") is not None or net.get("priorities"):
        raise ConfigError(f"{F}.network: net_cls/net_prio do not exist on cgroup v2")
    cpu = res.get("cpu") or {}
    if cpu.get("realtimeRuntime") is not None or cpu.get("realtimePeriod") is not None:
        raise ConfigError(f"{F}.cpu.realtimeRuntime: realtime cpu limits do not exist on cgroup v2")
    for k in ("cpus", "mems"):
        if cpu.get(k):
            need("cpuset", f"{F}.cpu.{k}")
            files.write(d, f"cpuset.{k}", cpu[k], f"{F}.cpu.{k}")

    if not mgr.rootless and (not update or res.get("devices") is not None):
        from . import bpf
        from .devices import effective_rules
        with context(f"{F}.devices"):
            bpf.install(d, effective_rules(res.get("devices")))

    mem = res.get("memory") or {}
    if mem:
        _memory(d, mem, update, need)
    if cpu.get("shares") is not None:
        need("cpu", f"{F}.cpu.shares")
        files.write(d, "cpu.weight", shares_to_weight(cpu["shares"]), f"{F}.cpu.shares")
    if cpu.get("quota") is not None or cpu.get("period") is not None:
        need("cpu", f"{F}.cpu.quota")
        quota = cpu.get("quota")
        cur_quota, _, cur_period = files.read(d, "cpu.max").partition(" ")
        q = _max(quota) if quota is not None else cur_quota
        files.write(d, "cpu.max", f"{q} {cpu.get('period') or cur_period}",
                    f"{F}.cpu.{'quota' if quota is not None else 'period'}")
    if cpu.get("burst") is not None:
        need("cpu", f"{F}.cpu.burst")
        files.write(d, "cpu.max.burst", cpu["burst"], f"{F}.cpu.burst")
    if cpu.get("idle") is not None:
        need("cpu", f"{F}.cpu.idle")
        files.write(d, "cpu.idle", cpu["idle"], f"{F}.cpu.idle")
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        need("pids", f"{F}.pids.limit")
        files.write(d, "pids.max", _max(pids["limit"]), f"{F}.pids.limit")
    if res.get("blockIO"):
        need("io", f"{F}.blockIO")
        _io(d, res["blockIO"])
    for i, h in enumerate(res.get("hugepageLimits") or []):
        field = f"{F}.hugepageLimits[{i}]"
        need("hugetlb", field)
        size = pagesize_name(h["pageSize"])
        files.write(d, f"hugetlb.{size}.max", h["limit"], f"{field}.limit")
        if files.exists(d, f"hugetlb.{size}.rsvd.max"):
            files.write(d, f"hugetlb.{size}.rsvd.max", h["limit"], f"{field}.limit")
    for dev, lim in (res.get("rdma") or {}).items():
        field = f"{F}.rdma[{dev!r}]"
        need("rdma", field)
        files.write(d, "rdma.max", rdma_line(dev, lim), field)
    for key, val in (res.get("unified") or {}).items():
        field = f"{F}.unified[{key!r}]"
        ctrl = key.split(".", 1)[0]
        if ctrl != "cgroup":
            need(ctrl, field)
        files.write(d, key, val, field)


def _memory(d: str, mem: dict, update: bool, need) -> None:
    need("memory", f"{F}.memory")
    limit = mem.get("limit")
    if update and mem.get("checkBeforeUpdate") and limit is not None and limit != -1:
        usage = files.read_int(d, "memory.current")
        if limit < usage:
            raise CgroupError(f"{F}.memory.limit: {limit} is below the current usage {usage}"
                              " (memory.current)")
    swap = mem.get("swap")
    eff_limit = limit
    if swap not in (None, -1, 0) and limit is None:
        eff_limit = files.read_int(d, "memory.max", -1)   # an update of swap alone
    v2swap = swap_to_v2(swap, eff_limit)
    if v2swap is not None:
        if not files.exists(d, "memory.swap.max"):
            if v2swap != -1:
                raise CgroupError(f"{F}.memory.swap: swap accounting is disabled in this kernel "
                                  "(no memory.swap.max)")
        else:
            files.write(d, "memory.swap.max", _max(v2swap), f"{F}.memory.swap")
    if limit is not None:
        files.write(d, "memory.max", _max(limit), f"{F}.memory.limit")
    if mem.get("reservation") is not None:
        files.write(d, "memory.low", _max(mem["reservation"]), f"{F}.memory.reservation")
    # kernel, kernelTCP, swappiness, disableOOMKiller, useHierarchy have no v2
    # file; like runc they are accepted and have no effect here.


def _io(d: str, blk: dict) -> None:
    bfq = files.exists(d, "io.bfq.weight")
    if blk.get("weight") is not None:
        w = blk["weight"]
        if bfq:
            files.write(d, "io.bfq.weight", w, f"{F}.blockIO.weight")
        else:
            files.write(d, "io.weight", f"default {blkio_to_io_weight(w)}", f"{F}.blockIO.weight")
    for i, e in enumerate(blk.get("weightDevice") or []):
        if e.get("weight") is None:
            continue   # leafWeight has no v2 equivalent
        dev, field = f"{e['major']}:{e['minor']}", f"{F}.blockIO.weightDevice[{i}].weight"
        if bfq:
            files.write(d, "io.bfq.weight", f"{dev} {e['weight']}", field)
        else:
            files.write(d, "io.weight", f"{dev} {blkio_to_io_weight(e['weight'])}", field)
    for key, k in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                   ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for i, e in enumerate(blk.get(key) or []):
            files.write(d, "io.max", f"{e['major']}:{e['minor']} {k}={e['rate']}",
                        f"{F}.blockIO.{key}[{i}]")
