"""The device allowlist: the spec's ordered rules plus runc's default devices.

Semantics (v1 and the v2 eBPF program alike): start from "deny everything",
then the rules in order, the last rule that matches a device wins.
"""
from __future__ import annotations

from ..errors import ConfigError

WILDCARD = -1


class Rule(tuple):
    """(allow, type "a"/"c"/"b", major or WILDCARD, minor or WILDCARD, access subset of "rwm").

    A plain tuple subclass: typing.NamedTuple would cost ~3 ms of import on create."""

    __slots__ = ()

    def __new__(cls, allow: bool, type: str, major: int, minor: int, access: str) -> "Rule":
        return super().__new__(cls, (allow, type, major, minor, access))

    allow = property(lambda self: self[0])
    type = property(lambda self: self[1])
    major = property(lambda self: self[2])
    minor = property(lambda self: self[3])
    access = property(lambda self: self[4])

    def v1_line(self) -> str:
        if self.type == "a":
            return "a"
        maj = "*" if self.major == WILDCARD else str(self.major)
        mnr = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {maj}:{mnr} {self.access}"


# What runc lets every container use whatever its config says: mknod of any
# node, the standard character devices, ptys and the tun/tap clone device.
DEFAULT_RULES = (
    Rule(True, "c", WILDCARD, WILDCARD, "m"),
    Rule(True, "b", WILDCARD, WILDCARD, "m"),
    Rule(True, "c", 1, 3, "rwm"),     # /dev/null
    Rule(True, "c", 1, 8, "rwm"),     # /dev/random
    Rule(True, "c", 1, 7, "rwm"),     # /dev/full
    Rule(True, "c", 5, 0, "rwm"),     # /dev/tty
    Rule(True, "c", 1, 5, "rwm"),     # /dev/zero
    Rule(True, "c", 1, 9, "rwm"),     # /dev/urandom
    Rule(True, "c", 136, WILDCARD, "rwm"),  # /dev/pts/*
    Rule(True, "c", 5, 2, "rwm"),     # /dev/ptmx
    Rule(True, "c", 10, 200, "rwm"),  # /dev/net/tun
)


def parse_rules(spec_rules: list, *, warn: bool = False) -> list[Rule]:
    """linux.resources.devices -> Rules; a bad entry is a ConfigError naming it. Access letters
    other than r, w and m are dropped, as runc drops them (``warn``: say so, once, at create);
    an entry left with none does nothing and is left out."""
    out = []
    if not isinstance(spec_rules, list):
        raise ConfigError("linux.resources.devices: expected an array")
    for i, d in enumerate(spec_rules):
        p = f"linux.resources.devices[{i}]"
        if not isinstance(d, dict) or not isinstance(d.get("allow"), bool):
            raise ConfigError(f"{p}.allow: expected a boolean")
        typ = d.get("type") or "a"
        if typ not in ("a", "c", "b"):
            raise ConfigError(f"{p}.type: unknown device type {typ!r} (expected a, c or b)")
        nums = []
        for k in ("major", "minor"):
            v = d.get(k)
            if v is None:
                nums.append(WILDCARD)
            elif isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << 32):
                raise ConfigError(f"{p}.{k}: {v!r} is not a device number")
            else:
                nums.append(v)
        access = d.get("access") or "rwm"
        if not isinstance(access, str):
            raise ConfigError(f"{p}.access: expected a string of r, w and m")
        kept = "".join(c for c in "rwm" if c in access)
        if warn and len(kept) < len(set(access)):
            from .. import log
            unknown = "".join(sorted(set(access) - set("rwm")))
            log.warn(f"{p}.access: {access!r}: ignoring {unknown!r} (only r, w and m mean anything)"
                     + ("" if kept else "; the entry does nothing"))
        if kept:
            out.append(Rule(d["allow"], typ, nums[0], nums[1], kept))
    return out


def effective_rules(spec_rules: list | None) -> list[Rule]:
    return parse_rules(spec_rules or []) + list(DEFAULT_RULES)
