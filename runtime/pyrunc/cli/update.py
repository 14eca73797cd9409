"""update [-r FILE|-] [--memory 96m --cpu-share 512 ...] ID: change a container's limits.

As runc does, only what the request names is written; the rest stays as the cgroup
has it. Of a pair of interdependent values the one left out is the cgroup's current
one (v1: its own file; v2: read back from cpu.max, or memory.max for a swap given
alone), memory -1 without a swap means both unlimited, and a memory or cpu value
of 0 is one not given. Device rules are rewritten only when the request carries some.
"""
from __future__ import annotations

import json
import sys

from pyrunc import fs, lifecycle
from pyrunc import state as st
from pyrunc.cli.args import STR, Flag, one_id, parse
from pyrunc.errors import UsageError, context

# runc's resource flags, spelled as runc spells them (--cpu-shares is pyrunc's older
# spelling); values are converted by cgroups.resources_from_update_flags
_RESOURCE_FLAGS = ("memory", "memory-reservation", "memory-swap", "kernel-memory", "kernel-memory-tcp",
                   "cpu-share", "cpu-quota", "cpu-period", "cpu-burst", "cpu-rt-period", "cpu-rt-runtime",
                   "cpu-idle", "cpuset-cpus", "cpuset-mems", "pids-limit", "blkio-weight")
_ALIASES = {"cpu-share": ",--cpu-shares"}
# runc's Intel RDT flags: pyrunc makes no resctrl group (linux.intelRdt is refused at create)
_RDT_FLAGS = ("l3-cache-schema", "mem-bw-schema")


def main(cmd: str, g, argv: list[str]) -> int:
    flags = ([Flag("--resources,-r", STR)] + [Flag(f"--{n}{_ALIASES.get(n, '')}", STR) for n in _RESOURCE_FLAGS]
             + [Flag(f"--{n}", STR) for n in _RDT_FLAGS])
    opts, pos = parse(flags, argv)
    cid = one_id(pos, cmd)
    with context(f"{cmd} {cid}"):
        for n in _RDT_FLAGS:
            if opts[n.replace("-", "_")] is not None:
                raise UsageError(f"--{n}: {_no_rdt()}")
        changes = _read_resources(opts["resources"]) if opts["resources"] else {}
        values = {n: opts[n.replace("-", "_")] for n in _RESOURCE_FLAGS}
        given = {n: v for n, v in values.items() if v is not None}
        if given:
            from pyrunc.cgroups import resources_from_update_flags
            changes = merge(changes, resources_from_update_flags(given))
        changes = _without_runc_zeros(changes)
        with st.load(g.root, cid) as c:
            lifecycle.require(c, "update")
            c.cgroup().set_resources(changes, update=True)
    return 0


def _no_rdt() -> str:
    if not fs.isdir("/sys/fs/resctrl/info"):
        return "Intel RDT is not available: no resctrl filesystem is mounted at /sys/fs/resctrl"
    return "Intel RDT is not supported by pyrunc (its containers have no linux.intelRdt)"


def _read_resources(path: str) -> dict:
    where = "stdin" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path) as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"--resources {where}: {exc.strerror}") from None
    try:
        res = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--resources {where}: invalid JSON: {exc}") from None
    if not isinstance(res, dict):
        raise UsageError(f"--resources {where}: expected a LinuxResources JSON object")
    return res


# runc's update reads 0 in these as "not given" (its cgroup code skips a zero)
_ZERO_IS_UNSET = {"memory": ("limit", "swap", "reservation", "kernel", "kernelTCP"),
                  "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod")}


def _without_runc_zeros(res: dict) -> dict:
    out = dict(res)
    for section, keys in _ZERO_IS_UNSET.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if not (k in keys and v == 0)}
    return out


def merge(base: dict, changes: dict) -> dict:
    """``changes`` on top of ``base``: objects merge key by key, anything else
    (numbers, strings, device lists) replaces; a null changes nothing."""
    out = dict(base)
    for k, v in changes.items():
        if v is None:
            continue
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
