"""linux.resources on the cgroup v2 unified hierarchy, with runc's v1 -> v2 conversions."""
from __future__ import annotations

from ..errors import ConfigError
from . import files
from .files import CgroupError, Program, Write, apply
from .resources import F, pagesize_name, rdma_line, validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .files import Op


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
    apply(plan(mgr, res, update=update))


def plan(mgr, res: dict, *, update: bool, look=files) -> list[Op]:
    """The writes, in order; ``look`` answers what they depend on (see files.py)."""
    validate(res)
    d = mgr.unified
    avail = set(look.read(d, "cgroup.controllers").split())

    def need(ctrl: str, field: str) -> None:
        if ctrl not in avail:
            raise CgroupError(f"{field}: the {ctrl} controller is not enabled for {d}")

    out: list[Op] = []
    net = res.get("network") or {}
    if net.get("classID") is not None or net.get("priorities"):
        raise ConfigError(f"{F}.network: net_cls/net_prio do not exist on cgroup v2")
    cpu = res.get("cpu") or {}
    if cpu.get("realtimeRuntime") is not None or cpu.get("realtimePeriod") is not None:
        raise ConfigError(f"{F}.cpu.realtimeRuntime: realtime cpu limits do not exist on cgroup v2")
    for k in ("cpus", "mems"):
        if cpu.get(k):
            need("cpuset", f"{F}.cpu.{k}")
            out.append(Write(d, f"cpuset.{k}", cpu[k], f"{F}.cpu.{k}"))

    if not mgr.rootless and (not update or res.get("devices") is not None):
        from .devices import effective_rules
        out.append(Program(d, effective_rules(res.get("devices")), f"{F}.devices"))

    mem = res.get("memory") or {}
    if mem:
        out += _memory(d, mem, update, need, look)
    if cpu.get("shares") is not None:
        need("cpu", f"{F}.cpu.shares")
        out.append(Write(d, "cpu.weight", shares_to_weight(cpu["shares"]), f"{F}.cpu.shares"))
    if cpu.get("quota") is not None or cpu.get("period") is not None:
        need("cpu", f"{F}.cpu.quota")
        quota = cpu.get("quota")
        cur_quota, _, cur_period = look.read(d, "cpu.max").partition(" ")
        q = _max(quota) if quota is not None else cur_quota
        out.append(Write(d, "cpu.max", f"{q} {cpu.get('period') or cur_period}",
                         f"{F}.cpu.{'quota' if quota is not None else 'period'}"))
    if cpu.get("burst") is not None:
        need("cpu", f"{F}.cpu.burst")
        out.append(Write(d, "cpu.max.burst", cpu["burst"], f"{F}.cpu.burst"))
    if cpu.get("idle") is not None:
        need("cpu", f"{F}.cpu.idle")
        out.append(Write(d, "cpu.idle", cpu["idle"], f"{F}.cpu.idle"))
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        need("pids", f"{F}.pids.limit")
        out.append(Write(d, "pids.max", _max(pids["limit"]), f"{F}.pids.limit"))
    if res.get("blockIO"):
        need("io", f"{F}.blockIO")
        out += _io(d, res["blockIO"], look)
    for i, h in enumerate(res.get("hugepageLimits") or []):
        field = f"{F}.hugepageLimits[{i}]"
        need("hugetlb", field)
        size = pagesize_name(h["pageSize"])
        out.append(Write(d, f"hugetlb.{size}.max", h["limit"], f"{field}.limit"))
        if look.exists(d, f"hugetlb.{size}.rsvd.max"):
            out.append(Write(d, f"hugetlb.{size}.rsvd.max", h["limit"], f"{field}.limit"))
    for dev, lim in (res.get("rdma") or {}).items():
        field = f"{F}.rdma[{dev!r}]"
        need("rdma", field)
        out.append(Write(d, "rdma.max", rdma_line(dev, lim), field))
    for key, val in (res.get("unified") or {}).items():
        field = f"{F}.unified[{key!r}]"
        ctrl = key.split(".", 1)[0]
        if ctrl != "cgroup":
            need(ctrl, field)
        out.append(Write(d, key, val, field))
    return out


def _memory(d: str, mem: dict, update: bool, need, look) -> list[Write]:
    need("memory", f"{F}.memory")
    limit = mem.get("limit")
    if update and mem.get("checkBeforeUpdate") and limit is not None and limit != -1:
        usage = look.read_int(d, "memory.current")
        if limit < usage:
            raise CgroupError(f"{F}.memory.limit: {limit} is below the current usage {usage}"
                              " (memory.current)")
    swap = mem.get("swap")
    eff_limit = limit
    if swap not in (None, -1, 0) and limit is None:
        eff_limit = look.read_int(d, "memory.max", -1)   # an update of swap alone
    v2swap = swap_to_v2(swap, eff_limit)
    out = []
    if v2swap is not None:
        if not look.exists(d, "memory.swap.max"):
            if v2swap != -1:
                raise CgroupError(f"{F}.memory.swap: swap accounting is disabled in this kernel "
                                  "(no memory.swap.max)")
        else:
            out.append(Write(d, "memory.swap.max", _max(v2swap), f"{F}.memory.swap"))
    if limit is not None:
        out.append(Write(d, "memory.max", _max(limit), f"{F}.memory.limit"))
    if mem.get("reservation") is not None:
        out.append(Write(d, "memory.low", _max(mem["reservation"]), f"{F}.memory.reservation"))
    # kernel, kernelTCP, swappiness, disableOOMKiller, useHierarchy have no v2
    # file; like runc they are accepted and have no effect here.
    return out


def _io(d: str, blk: dict, look) -> list[Write]:
    bfq = look.exists(d, "io.bfq.weight")
    out = []
    if blk.get("weight") is not None:
        w = blk["weight"]
        if bfq:
            out.append(Write(d, "io.bfq.weight", w, f"{F}.blockIO.weight"))
        else:
            out.append(Write(d, "io.weight", f"default {blkio_to_io_weight(w)}", f"{F}.blockIO.weight"))
    for i, e in enumerate(blk.get("weightDevice") or []):
        if e.get("weight") is None:
            continue   # leafWeight has no v2 equivalent
        dev, field = f"{e['major']}:{e['minor']}", f"{F}.blockIO.weightDevice[{i}].weight"
        if bfq:
            out.append(Write(d, "io.bfq.weight", f"{dev} {e['weight']}", field))
        else:
            out.append(Write(d, "io.weight", f"{dev} {blkio_to_io_weight(e['weight'])}", field))
    for key, k in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                   ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for i, e in enumerate(blk.get(key) or []):
            out.append(Write(d, "io.max", f"{e['major']}:{e['minor']} {k}={e['rate']}", f"{F}.blockIO.{key}[{i}]"))
    return out
