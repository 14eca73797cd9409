"""Process attributes of config.json (rlimits, scheduler, ioPriority, CPU affinity,
oomScoreAdj, personality, memoryPolicy) checked and turned into kernel values.

Pure: the checks yield (json_path, message) for spec/rules.py, and ``build``
returns a ProcAttrs holding only numbers, so the container side converts nothing.
"""
from __future__ import annotations

import resource
import struct

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator

Issue = tuple[str, str]

# getrlimit(2)'s resources; Python's resource module lacks RLIMIT_LOCKS (10 on every Linux arch).
RLIMITS: dict[str, int] = {"RLIMIT_LOCKS": 10, **{n: getattr(resource, n) for n in dir(resource)
                                                 if n.startswith("RLIMIT_") and n != "RLIMIT_OFILE"}}
RLIM_INFINITY = 2**64 - 1

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
               "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
_REALTIME = ("SCHED_FIFO", "SCHED_RR")
# struct sched_attr, SCHED_ATTR_SIZE_VER1 (with the util clamps): size, policy,
# flags, nice, priority, runtime, deadline, period, util_min, util_max.
_SCHED_ATTR = struct.Struct("=IIQiIQQQII")

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}

MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}
_MPOL_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_MPOL_NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")


_MAX_ID = 8192  # CONFIG_NR_CPUS can be at most 8192, MAX_NUMNODES at most 1024


def parse_list(text: str) -> list[int]:
    """"0-3,7" -> [0, 1, 2, 3, 7]; raises ValueError naming the bad part."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"{part!r} is not a number or a range like 0-3")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"range {part!r} is reversed")
        if last >= _MAX_ID:
            raise ValueError(f"{last} is above the kernel's limit of {_MAX_ID} CPUs or nodes")
        out.update(range(first, last + 1))
    return sorted(out)


def _list_issue(path: str, text: str) -> Iterator[Issue]:
    try:
        parse_list(text)
    except ValueError as exc:
        yield path, f"{text!r}: {exc}"


def rlimits(config: dict) -> Iterator[Issue]:
    seen: set[str] = set()
    for i, rl in enumerate((config.get("process") or {}).get("rlimits") or []):
        t = rl.get("type")
        if t not in RLIMITS:
            yield f"process.rlimits[{i}].type", f"unknown rlimit {t!r} (see getrlimit(2))"
        elif t in seen:
            yield f"process.rlimits[{i}].type", f"{t} given more than once"
        elif rl.get("soft", 0) > rl.get("hard", 0):
            yield f"process.rlimits[{i}]", f"{t}: soft limit {rl['soft']} is above the hard limit {rl['hard']}"
        seen.add(t)


def scheduler(config: dict) -> Iterator[Issue]:
    s = (config.get("process") or {}).get("scheduler")
    if s is None:
        return
    policy = s.get("policy")
    if policy not in SCHED_POLICIES:
        yield "process.scheduler.policy", f"unknown policy {policy!r}"
        return
    for flag in s.get("flags") or []:
        if flag not in SCHED_FLAGS:
            yield "process.scheduler.flags", f"unknown flag {flag!r}"
    nice, prio = s.get("nice", 0), s.get("priority", 0)
    if not -20 <= nice <= 19:
        yield "process.scheduler.nice", f"{nice} is outside -20..19"
    if policy in _REALTIME and not 1 <= prio <= 99:
        yield "process.scheduler.priority", f"{policy} needs a priority in 1..99, not {prio}"
    elif policy not in _REALTIME and prio != 0:
        yield "process.scheduler.priority", f"only SCHED_FIFO and SCHED_RR take a priority, not {policy}"
    dl = [s.get(f, 0) for f in ("runtime", "deadline", "period")]
    if policy != "SCHED_DEADLINE" and any(dl):
        yield "process.scheduler", f"runtime, deadline and period apply to SCHED_DEADLINE only, not {policy}"
    elif policy == "SCHED_DEADLINE" and not (0 < dl[0] <= dl[1] <= (dl[2] or dl[1])):
        yield "process.scheduler", "SCHED_DEADLINE needs 0 < runtime <= deadline <= period"


def io_priority(config: dict) -> Iterator[Issue]:
    io = (config.get("process") or {}).get("ioPriority")
    if io is None:
        return
    if io.get("class") not in IOPRIO_CLASSES:
        yield "process.ioPriority.class", f"unknown class {io.get('class')!r}"
    if not 0 <= io.get("priority", -1) <= 7:
        yield "process.ioPriority.priority", f"{io.get('priority')} is outside 0..7"


def cpu_affinity(config: dict) -> Iterator[Issue]:
    aff = (config.get("process") or {}).get("execCPUAffinity") or {}
    for key in ("initial", "final"):
        if aff.get(key):
            yield from _list_issue(f"process.execCPUAffinity.{key}", aff[key])


def personality(config: dict) -> Iterator[Issue]:
    p = config.get("linux", {}).get("personality")
    if p is None:
        return
    if p.get("domain") not in PERSONALITY_DOMAINS:
        yield "linux.personality.domain", f"unknown domain {p.get('domain')!r} (LINUX or LINUX32)"
    if p.get("flags"):
        yield "linux.personality.flags", "no personality flags are supported (runtime-spec 1.3)"


def memory_policy(config: dict) -> Iterator[Issue]:
    mp = config.get("linux", {}).get("memoryPolicy")
    if mp is None:
        return
    mode = mp.get("mode")
    if mode not in MPOL_MODES:
        yield "linux.memoryPolicy.mode", f"unknown mode {mode!r}"
    for flag in mp.get("flags") or []:
        if flag not in MPOL_FLAGS:
            yield "linux.memoryPolicy.flags", f"unknown flag {flag!r}"
    nodes = mp.get("nodes") or ""
    if nodes:
        yield from _list_issue("linux.memoryPolicy.nodes", nodes)
    if mode in _MPOL_NO_NODES and nodes:
        yield "linux.memoryPolicy.nodes", f"{mode} takes no nodes"
    elif mode in _MPOL_NEED_NODES and not nodes:
        yield "linux.memoryPolicy.nodes", f"{mode} needs at least one node"


CHECKS = [rlimits, scheduler, io_priority, cpu_affinity, personality, memory_policy]


def features() -> dict:
    """The linux features of issue 3 items 5-7 (features-linux.md); intelRdt is refused (spec/unsupported.py)."""
    return {"memoryPolicy": {"modes": sorted(MPOL_MODES), "flags": sorted(MPOL_FLAGS)},
            "netDevices": {"enabled": True}, "intelRdt": {"enabled": False}}


class ProcAttrs:
    """Kernel-ready values; None (or empty) means: leave the inherited value alone."""

    __slots__ = ("rlimits", "oom_score_adj", "sched_attr", "ioprio", "cpus_initial", "cpus_final",
                 "personality", "mempolicy")


def build(config: dict) -> ProcAttrs:
    """Call after the checks passed."""
    proc, linux = config.get("process") or {}, config.get("linux", {})
    a = ProcAttrs()
    a.rlimits = [(f"process.rlimits[{i}] {rl['type']}", RLIMITS[rl["type"]], _rlim(rl["soft"]), _rlim(rl["hard"]))
                 for i, rl in enumerate(proc.get("rlimits") or [])]
    a.oom_score_adj = proc.get("oomScoreAdj")
    a.sched_attr = _sched_attr(proc["scheduler"]) if proc.get("scheduler") else None
    io = proc.get("ioPriority")
    a.ioprio = IOPRIO_CLASSES[io["class"]] << IOPRIO_CLASS_SHIFT | io["priority"] if io else None
    aff = proc.get("execCPUAffinity") or {}
    a.cpus_initial = parse_list(aff["initial"]) if aff.get("initial") else None
    a.cpus_final = parse_list(aff["final"]) if aff.get("final") else None
    p = linux.get("personality")
    a.personality = PERSONALITY_DOMAINS[p["domain"]] if p else None
    mp = linux.get("memoryPolicy")
    a.mempolicy = None
    if mp:
        a.mempolicy = (MPOL_MODES[mp["mode"]] | _bits(MPOL_FLAGS, mp.get("flags")), parse_list(mp["nodes"]) if mp.get("nodes") else [])
    return a


def _bits(table: dict[str, int], names: list[str] | None) -> int:
    """OR of the named flags (a name given twice counts once)."""
    out = 0
    for name in names or []:
        out |= table[name]
    return out


def _rlim(v: int) -> int:
    """Python's resource module spells RLIM_INFINITY as -1."""
    return resource.RLIM_INFINITY if v >= RLIM_INFINITY else v


def _sched_attr(s: dict) -> bytes:
    flags = _bits(SCHED_FLAGS, s.get("flags"))
    return _SCHED_ATTR.pack(_SCHED_ATTR.size, SCHED_POLICIES[s["policy"]], flags, s.get("nice", 0),
                            s.get("priority", 0), s.get("runtime", 0), s.get("deadline", 0), s.get("period", 0),
                            0, 1024)  # util clamp: the whole range, so the CLAMP flags alone do not throttle
