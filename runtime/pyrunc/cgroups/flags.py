"""runc `update` command-line flags -> a LinuxResources dict (pure)."""
from __future__ import annotations

import re

from ..errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.I)

# flag -> (section, field, parser); "size" accepts 96m / 1g / -1
_FLAGS: dict[str, tuple[str, str, str]] = {
    "memory": ("memory", "limit", "size"),
    "memory-reservation": ("memory", "reservation", "size"),
    "memory-swap": ("memory", "swap", "size"),
    "kernel-memory": ("memory", "kernel", "size"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "size"),
    "cpu-share": ("cpu", "shares", "uint"),
    "cpu-quota": ("cpu", "quota", "int"),
    "cpu-period": ("cpu", "period", "uint"),
    "cpu-burst": ("cpu", "burst", "uint"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "uint"),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "cpu-idle": ("cpu", "idle", "int"),
    "cpuset-cpus": ("cpu", "cpus", "str"),
    "cpuset-mems": ("cpu", "mems", "str"),
    "pids-limit": ("pids", "limit", "int"),
    "blkio-weight": ("blockIO", "weight", "uint"),
}


def parse_size(value: str) -> int:
    """Bytes from "96m", "1.5g", "1024", with -1 meaning unlimited (like runc)."""
    v = value.strip()
    if v == "-1":
        return -1
    m = _SIZE.match(v)
    if not m:
        raise ValueError(f"invalid size {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def resources_from_update_flags(flags: dict[str, str]) -> dict:
    res: dict = {}
    for name, raw in flags.items():
        key = name.lstrip("-")
        if key not in _FLAGS:
            raise UsageError(f"unknown flag --{key}")
        section, field, kind = _FLAGS[key]
        try:
            if kind == "size":
                val: int | str = parse_size(raw)
            elif kind == "str":
                val = raw
            else:
                val = int(raw, 10)
                if kind == "uint" and val < 0:
                    raise ValueError("must not be negative")
        except ValueError as exc:
            raise UsageError(f"--{key} {raw!r}: {exc}") from None
        res.setdefault(section, {})[field] = val
    return res
