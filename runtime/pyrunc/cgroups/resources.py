"""Checks on linux.resources made before any file is written, so a bad value
changes nothing; plus the small conversions v1 and v2 share."""
from __future__ import annotations

from ..errors import ConfigError

INT64 = (-(1 << 63), (1 << 63) - 1)
UINT64 = (0, (1 << 64) - 1)
F = "linux.resources"
_CPU_LIST_CHARS = frozenset("0123456789,- \t\n\r\x0b\x0c")
# linux.resources key -> the controller whose directory applies it ("" = the cgroup2 directory)
_CONTROLLER = {"memory": "memory", "pids": "pids", "blockIO": "blkio", "hugepageLimits": "hugetlb",
               "network": "net_cls", "rdma": "rdma", "unified": ""}


def controllers_asked(resources: dict) -> list[tuple[str, str]]:
    """(field, controller) for each limit the config sets, devices rules aside (they take the
    devices controller on v1, a BPF program on v2, and are not applied rootless)."""
    out = []
    for key, val in resources.items():
        if not val or key == "devices":
            continue
        if key == "cpu":
            if val.get("cpus") or val.get("mems"):
                out.append(("cpu", "cpuset"))
            if set(val) - {"cpus", "mems"}:
                out.append(("cpu", "cpu"))
        else:
            out.append((key, _CONTROLLER.get(key, key)))
    return out


def _page_size(v: str) -> tuple[int, str] | None:
    """"2MB" -> (2, "M"), "4096B" -> (4096, ""); None if it is not that shape.
    Plain string tests: `re` would cost create ~3 ms of start-up."""
    if not v.endswith("B"):
        return None
    digits, unit = (v[:-2], v[-2]) if v[-2:-1] in ("K", "M", "G", "T") else (v[:-1], "")
    return (int(digits), unit) if digits.isascii() and digits.isdigit() else None


def _int(v: object, path: str, lo: int, hi: int, what: str = "") -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{path}: expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise ConfigError(f"{path}: {v} is out of range{' (' + what + ')' if what else ''}")
    return v


def _limit(v: object, path: str) -> None:
    """A byte limit: a non-negative int64 or -1 for unlimited."""
    if _int(v, path, *INT64) < -1:
        raise ConfigError(f"{path}: {v} is negative (use -1 for unlimited)")


def validate(res: dict, *, warn: bool = False) -> None:
    """``warn``: say what is ignored (create's first check does; the writers check again)."""
    if not isinstance(res, dict):
        raise ConfigError(f"{F}: expected an object")
    mem = res.get("memory") or {}
    for k in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
        if mem.get(k) is not None:
            _limit(mem[k], f"{F}.memory.{k}")
    if mem.get("swappiness") is not None:
        _int(mem["swappiness"], f"{F}.memory.swappiness", 0, 100, "0-100")
    cpu = res.get("cpu") or {}
    if cpu.get("shares") is not None:
        _int(cpu["shares"], f"{F}.cpu.shares", 2, 262144, "2-262144")
    if cpu.get("quota") is not None and _int(cpu["quota"], f"{F}.cpu.quota", *INT64) < -1:
        raise ConfigError(f"{F}.cpu.quota: {cpu['quota']} is negative (use -1 for no quota)")
    if cpu.get("period") is not None:
        _int(cpu["period"], f"{F}.cpu.period", 1000, 1000000, "1000-1000000 us")
    if cpu.get("burst") is not None:
        _int(cpu["burst"], f"{F}.cpu.burst", *UINT64)
        q = cpu.get("quota")
        if q is not None and q > 0 and cpu["burst"] > q:
            raise ConfigError(f"{F}.cpu.burst: {cpu['burst']} is larger than cpu.quota {q}")
    if cpu.get("realtimeRuntime") is not None:
        _int(cpu["realtimeRuntime"], f"{F}.cpu.realtimeRuntime", -1, INT64[1])
    if cpu.get("realtimePeriod") is not None:
        _int(cpu["realtimePeriod"], f"{F}.cpu.realtimePeriod", *UINT64)
    if cpu.get("idle") is not None:
        _int(cpu["idle"], f"{F}.cpu.idle", 0, 1, "0 or 1")
    for k in ("cpus", "mems"):
        v = cpu.get(k)
        if v is not None and (not isinstance(v, str) or not _CPU_LIST_CHARS.issuperset(v)):
            raise ConfigError(f"{F}.cpu.{k}: {v!r} is not a list like \"0-3,7\"")
    pids = res.get("pids") or {}
    if pids.get("limit") is not None and _int(pids["limit"], f"{F}.pids.limit", *INT64) < -1:
        raise ConfigError(f"{F}.pids.limit: {pids['limit']} is negative (use -1 for no limit)")
    blk = res.get("blockIO") or {}
    for k in ("weight", "leafWeight"):
        if blk.get(k) is not None:
            _int(blk[k], f"{F}.blockIO.{k}", 10, 1000, "10-1000")
    for list_key in ("weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                     "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        for i, e in enumerate(blk.get(list_key) or []):
            p = f"{F}.blockIO.{list_key}[{i}]"
            _int(e.get("major"), f"{p}.major", 0, (1 << 32) - 1)
            _int(e.get("minor"), f"{p}.minor", 0, (1 << 32) - 1)
            if list_key == "weightDevice":
                if e.get("weight") is None and e.get("leafWeight") is None:
                    raise ConfigError(f"{p}: needs weight or leafWeight")
                for k in ("weight", "leafWeight"):
                    if e.get(k) is not None:
                        _int(e[k], f"{p}.{k}", 10, 1000, "10-1000")
            else:
                _int(e.get("rate"), f"{p}.rate", *UINT64)
    for i, h in enumerate(res.get("hugepageLimits") or []):
        p = f"{F}.hugepageLimits[{i}]"
        if not isinstance(h.get("pageSize"), str) or _page_size(h["pageSize"]) is None:
            raise ConfigError(f"{p}.pageSize: {h.get('pageSize')!r} is not like \"2MB\"")
        _int(h.get("limit"), f"{p}.limit", *UINT64)
    net = res.get("network") or {}
    if net.get("classID") is not None:
        _int(net["classID"], f"{F}.network.classID", 0, (1 << 32) - 1)
    for i, pr in enumerate(net.get("priorities") or []):
        if not isinstance(pr.get("name"), str) or not pr["name"] or "\n" in pr["name"]:
            raise ConfigError(f"{F}.network.priorities[{i}].name: expected an interface name")
        _int(pr.get("priority"), f"{F}.network.priorities[{i}].priority", 0, (1 << 32) - 1)
    for dev, lim in (res.get("rdma") or {}).items():
        if not lim or (lim.get("hcaHandles") is None and lim.get("hcaObjects") is None):
            raise ConfigError(f"{F}.rdma[{dev!r}]: needs hcaHandles or hcaObjects")
        for k in ("hcaHandles", "hcaObjects"):
            if lim.get(k) is not None:
                _int(lim[k], f"{F}.rdma[{dev!r}].{k}", 0, (1 << 32) - 1)
    for key, val in (res.get("unified") or {}).items():
        if not isinstance(val, str):
            raise ConfigError(f"{F}.unified[{key!r}]: expected a string value")
        if "/" in key or key.startswith(".") or "." not in key:
            raise ConfigError(f"{F}.unified[{key!r}]: not a cgroup file name")
    if res.get("devices") is not None:
        from .devices import parse_rules
        parse_rules(res["devices"], warn=warn)


def pagesize_name(spec_size: str) -> str:
    """Spec "2MB" -> the kernel's file infix "2MB" (1024-based, shortest unit)."""
    count, unit = _page_size(spec_size)  # validated before
    n = count << (10 * " KMGT".index(unit)) if unit else count
    for unit in ("GB", "MB", "KB"):
        div = 1 << (10 * (" KMGT".index(unit[0])))
        if n % div == 0:
            return f"{n // div}{unit}"
    return f"{n}B"


def rdma_line(dev: str, lim: dict) -> str:
    parts = [dev]
    if lim.get("hcaHandles") is not None:
        parts.append(f"hca_handle={lim['hcaHandles']}")
    if lim.get("hcaObjects") is not None:
        parts.append(f"hca_object={lim['hcaObjects']}")
    return " ".join(parts)
