"""Reading and writing cgroup control files, with errors naming the spec field."""
from __future__ import annotations

import posix

from .. import fs
from ..errors import PyruncError, SyscallError


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
