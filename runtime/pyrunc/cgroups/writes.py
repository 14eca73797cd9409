"""linux.resources as an ordered list of cgroup file writes, decided before any is made.

v1.plan and v2.plan decide which file gets which value, in which order and from which
field; what they need to know about the cgroup (does memory.memsw exist, the current
cpu.max ...) they ask ``look``: the files module for create and update, the foreseen view
(cgroups/foresee.py) for `explain`, so both run the same deciding code. apply() carries
a list out.
"""
from __future__ import annotations

import errno

from ..errors import SyscallError, context
from . import files


class Write:
    """``value`` goes into ``dir/name``. ``field`` names the config field in a refusal
    ("" for none); ``path`` is the JSON path the write comes from when that is not
    ``field``. ``pair``: this write and the next depend on each other (period and quota):
    should the kernel refuse them in this order (EINVAL), both are written the other way."""

    __slots__ = ("dir", "name", "value", "field", "path", "pair")

    def __init__(self, d: str, name: str, value: str | int, field: str, *, path: str = "",
                 pair: bool = False) -> None:
        self.dir, self.name, self.value, self.field = d, name, str(value), field
        self.path, self.pair = path or field, pair

    def __repr__(self) -> str:
        return f"Write({self.dir!r}, {self.name!r}, {self.value!r}, {self.path!r})"


class Program:
    """The v2 device allowlist: an eBPF program attached to ``dir`` (no file to write)."""

    __slots__ = ("dir", "rules", "path")

    def __init__(self, d: str, rules: list, path: str) -> None:
        self.dir, self.rules, self.path = d, rules, path


Op = Write | Program


def apply(ops: list[Op]) -> None:
    i = 0
    while i < len(ops):
        op = ops[i]
        i += 1
        if isinstance(op, Program):
            from . import bpf
            with context(op.path):
                bpf.install(op.dir, op.rules)
        elif op.pair:
            _pair(op, ops[i])  # type: ignore[arg-type]
            i += 1
        else:
            files.write(op.dir, op.name, op.value, op.field)


def _pair(first: Write, second: Write) -> None:
    try:
        for w in (first, second):
            files.write(w.dir, w.name, w.value, w.field)
    except SyscallError as exc:
        if exc.errno != errno.EINVAL:
            raise
        for w in (second, first):
            files.write(w.dir, w.name, w.value, w.field)


def pair(d: str, first: tuple[str, object, str], second: tuple[str, object, str]) -> list[Write]:
    """Writes for two interdependent files, each (name, value or None, field)."""
    todo = [Write(d, name, val, field) for name, val, field in (first, second) if val is not None]  # type: ignore[arg-type]
    if len(todo) == 2:
        todo[0].pair = True
    return todo
