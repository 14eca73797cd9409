"""`events --stats` data in runc's JSON shape (types.Stats), v1 and v2."""
from __future__ import annotations

import posix

from . import files

_U64_MAX = (1 << 64) - 1
_TICK_NS = 1_000_000_000 // posix.sysconf("SC_CLK_TCK")


def _entry(limit: int, usage: int, mx: int, failcnt: int) -> dict:
    """runc's MemoryEntry: limit and failcnt always, usage/max omitted when 0."""
    e = {"limit": limit}
    if usage:
        e["usage"] = usage
    if mx:
        e["max"] = mx
    e["failcnt"] = failcnt
    return e


def _nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


def _cpulist(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.strip().split(",")):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def collect(mgr) -> dict:
    return _v2(mgr.unified) if mgr.mode == "v2" else _v1(mgr)


def _v1(mgr) -> dict:
    data: dict = {}
    d = mgr.dir_of("cpuacct")
    cpu: dict = {"usage": {}, "throttling": {}}
    if d:
        st = files.read_keyed(d, "cpuacct.stat")
        usage = {"kernel": st.get("system", 0) * _TICK_NS, "user": st.get("user", 0) * _TICK_NS,
                 "total": files.read_int(d, "cpuacct.usage")}
        try:
            usage["percpu"] = [int(x) for x in files.read(d, "cpuacct.usage_percpu").split()]
            rows = files.read(d, "cpuacct.usage_all").splitlines()[1:]
            usage["percpu_kernel"] = [int(r.split()[2]) for r in rows]
            usage["percpu_user"] = [int(r.split()[1]) for r in rows]
        except OSError:
            pass
        cpu["usage"] = {k: v for k, v in usage.items() if v or k in ("kernel", "user")}
    d = mgr.dir_of("cpu")
    if d:
        st = files.read_keyed(d, "cpu.stat")
        cpu["throttling"] = _nonzero({"periods": st.get("nr_periods", 0),
                                      "throttled_periods": st.get("nr_throttled", 0),
                                      "throttled_time": st.get("throttled_time", 0)})
    data["cpu"] = cpu
    d = mgr.dir_of("cpuset")
    if d:
        data["cpuset"] = _nonzero({"cpus": _cpulist(files.read(d, "cpuset.cpus")),
                                   "mems": _cpulist(files.read(d, "cpuset.mems"))})
    d = mgr.dir_of("memory")
    if d:
        raw = files.read_keyed(d, "memory.stat")

        def ent(prefix: str) -> dict:
            return _entry(files.read_int(d, prefix + "limit_in_bytes"),
                          files.read_int(d, prefix + "usage_in_bytes"),
                          files.read_int(d, prefix + "max_usage_in_bytes"),
                          files.read_int(d, prefix + "failcnt"))
        mem = {"usage": ent("memory."), "swap": ent("memory.memsw."),
               "kernel": ent("memory.kmem."), "kernelTCP": ent("memory.kmem.tcp."), "raw": raw}
        if raw.get("cache"):
            mem = {"cache": raw["cache"], **mem}
        data["memory"] = mem
    d = mgr.dir_of("pids")
    if d:
        data["pids"] = _nonzero({"current": files.read_int(d, "pids.current"),
                                 "limit": files.read_int(d, "pids.max")})
    d = mgr.dir_of("blkio")
    if d:
        data["blkio"] = _nonzero({
            "ioServiceBytesRecursive": _blkio_v1(d, "io_service_bytes_recursive"),
            "ioServicedRecursive": _blkio_v1(d, "io_serviced_recursive")})
    d = mgr.dir_of("hugetlb")
    if d:
        data["hugetlb"] = {
            size: {**_nonzero({"usage": files.read_int(d, f"hugetlb.{size}.usage_in_bytes"),
                               "max": files.read_int(d, f"hugetlb.{size}.max_usage_in_bytes")}),
                   "failcnt": files.read_int(d, f"hugetlb.{size}.failcnt")}
            for size in _hugepage_sizes(d, ".limit_in_bytes")}
    return data


def _blkio_v1(d: str, name: str) -> list[dict]:
    # CFQ's blkio.<name> is gone from current kernels; the throttle files remain
    for f in (f"blkio.{name}", f"blkio.throttle.{name}"):
        try:
            text = files.read(d, f)
        except OSError:
            continue
        out = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3:
                maj, _, mnr = parts[0].partition(":")
                out.append(_nonzero({"major": int(maj), "minor": int(mnr), "op": parts[1],
                                     "value": int(parts[2])}))
        return out
    return []


def _hugepage_sizes(d: str, suffix: str) -> list[str]:
    return sorted({n[len("hugetlb."):-len(suffix)] for n in posix.listdir(d)
                   if n.startswith("hugetlb.") and n.endswith(suffix) and ".rsvd." not in n})


def _v2(d: str) -> dict:
    st = files.read_keyed(d, "cpu.stat")
    cpu = {"usage": {"total": st.get("usage_usec", 0) * 1000,
                     "kernel": st.get("system_usec", 0) * 1000,
                     "user": st.get("user_usec", 0) * 1000},
           "throttling": _nonzero({"periods": st.get("nr_periods", 0),
                                   "throttled_periods": st.get("nr_throttled", 0),
                                   "throttled_time": st.get("throttled_usec", 0) * 1000})}
    data: dict = {"cpu": cpu}
    if files.exists(d, "cpuset.cpus.effective"):
        data["cpuset"] = _nonzero({"cpus": _cpulist(files.read(d, "cpuset.cpus.effective")),
                                   "mems": _cpulist(files.read(d, "cpuset.mems.effective"))})
    if files.exists(d, "memory.current"):
        raw = files.read_keyed(d, "memory.stat")
        ev = files.read_keyed(d, "memory.events")
        cur = files.read_int(d, "memory.current")
        lim = files.read_int(d, "memory.max", _U64_MAX)
        swap_cur = files.read_int(d, "memory.swap.current")
        swap_lim = files.read_int(d, "memory.swap.max", _U64_MAX)
        mem = {"usage": _entry(lim, cur, files.read_int(d, "memory.peak"), ev.get("max", 0)),
               # v1 semantics: swap usage/limit count memory plus swap
               "swap": _entry(_U64_MAX if _U64_MAX in (lim, swap_lim) else lim + swap_lim,
                              cur + swap_cur, 0, 0),
               "kernel": _entry(0, 0, 0, 0), "kernelTCP": _entry(0, 0, 0, 0), "raw": raw}
        if raw.get("file"):
            mem = {"cache": raw["file"], **mem}
        data["memory"] = mem
    if files.exists(d, "pids.current"):
        data["pids"] = _nonzero({"current": files.read_int(d, "pids.current"),
                                 "limit": files.read_int(d, "pids.max")})
    if files.exists(d, "io.stat"):
        served: list[dict] = []
        nbytes: list[dict] = []
        for line in files.read(d, "io.stat").splitlines():
            dev, *kvs = line.split()
            maj, _, mnr = dev.partition(":")
            kv = dict(x.split("=", 1) for x in kvs)
            for key, op, out in (("rbytes", "Read", nbytes), ("wbytes", "Write", nbytes),
                                 ("rios", "Read", served), ("wios", "Write", served)):
                out.append(_nonzero({"major": int(maj), "minor": int(mnr), "op": op,
                                     "value": int(kv.get(key, 0))}))
        data["blkio"] = _nonzero({"ioServiceBytesRecursive": nbytes,
                                  "ioServicedRecursive": served})
    sizes = _hugepage_sizes(d, ".max")
    if sizes:
        data["hugetlb"] = {
            s: {**_nonzero({"usage": files.read_int(d, f"hugetlb.{s}.current")}),
                "failcnt": files.read_keyed(d, f"hugetlb.{s}.events").get("max", 0)}
            for s in sizes}
    return data
