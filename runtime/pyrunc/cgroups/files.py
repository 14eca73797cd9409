"""Reading and writing cgroup control files, with errors naming the spec field.

linux.resources become an ordered list of writes before any is made (v1.plan, v2.plan):
which file gets which value, in which order, from which field. What the deciding code
needs to know about the cgroup (does memory.memsw exist, the current cpu.max ...) it asks
a ``look``: this module for create and update, the foreseen view (cgroups/foresee.py) for
`explain`, so both decide with the same code. apply() carries a list out.
"""
from __future__ import annotations

import errno
import posix

from .. import fs
from ..errors import PyruncError, SyscallError, context


class CgroupError(PyruncError):
    """A cgroup operation failed or a resource value was refused."""


def write(d: str, name: str, value: str | int, field: str) -> None:
    """Write one value to ``d/name``; a refusal names ``field`` and the file."""
    data = str(value).encode()
    try:
        fd = posix.open(fs.join(d, name), posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError as exc:
        raise _err(field, "open", name, exc) from None
    try:
        posix.write(fd, data)
    except OSError as exc:
        raise _err(field, "write", name, exc) from None
    finally:
        posix.close(fd)


def _err(field: str, op: str, name: str, exc: OSError) -> SyscallError:
    err = SyscallError(op, exc.errno or 0, name)
    if field:
        err.prefix(field)
    return err


def read(d: str, name: str) -> str:
    with open(fs.join(d, name)) as f:
        return f.read().strip()


def read_int(d: str, name: str, default: int = 0) -> int:
    """An integer file; "max" and a missing file read as ``default``."""
    try:
        v = read(d, name)
    except OSError:
        return default
    return default if v == "max" else int(v)


def read_keyed(d: str, name: str) -> dict[str, int]:
    """A flat-keyed file ("key value" per line), e.g. memory.stat, cpu.stat."""
    out: dict[str, int] = {}
    try:
        text = read(d, name)
    except OSError:
        return out
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def exists(d: str, name: str) -> bool:
    return fs.exists(fs.join(d, name))


def isdir(d: str) -> bool:
    return fs.isdir(d)


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
            write(op.dir, op.name, op.value, op.field)


def _pair(first: Write, second: Write) -> None:
    try:
        for w in (first, second):
            write(w.dir, w.name, w.value, w.field)
    except SyscallError as exc:
        if exc.errno != errno.EINVAL:
            raise
        for w in (second, first):
            write(w.dir, w.name, w.value, w.field)


def pair(d: str, first: tuple[str, object, str], second: tuple[str, object, str]) -> list[Write]:
    """Writes for two interdependent files, each (name, value or None, field)."""
    todo = [Write(d, name, val, field) for name, val, field in (first, second) if val is not None]  # type: ignore[arg-type]
    if len(todo) == 2:
        todo[0].pair = True
    return todo
