"""Errors: every failure reaches the CLI as one PyruncError and is printed once.

Context is added by prefixing (``with context("mounts[2] /proc"):``), so the
final line reads from the outermost operation down to the syscall and errno.
"""
from __future__ import annotations

import errno as _errno
import posix


class PyruncError(Exception):
    """A failure the CLI reports as one line and a non-zero exit."""

    exit_code = 1

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg

    def prefix(self, ctx: str) -> None:
        self.msg = f"{ctx}: {self.msg}"
        self.args = (self.msg,)

    def __str__(self) -> str:
        return self.msg


class ConfigError(PyruncError):
    """The bundle's config.json is malformed, violates the schema or a rule."""


class BundleError(PyruncError):
    """The bundle, its config or its rootfs is missing or unreadable."""


class ContainerNotFound(PyruncError):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container {cid!r} does not exist")


class ContainerExists(PyruncError):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container {cid!r} already exists")


class InvalidStatus(PyruncError):
    def __init__(self, cid: str, op: str, status: str) -> None:
        super().__init__(f"cannot {op} container {cid!r}: it is {status}")


class UsageError(PyruncError):
    """Bad command-line arguments."""


class SyscallError(PyruncError, OSError):
    """A syscall the kernel refused. An OSError too, so callers can branch on errno."""

    def __init__(self, syscall: str, err: int, path: str | None = None) -> None:
        """``syscall`` may be "" when the failing call is not known (an OSError from the stdlib)."""
        OSError.__init__(self, err, posix.strerror(err), path)
        self.syscall = syscall
        where = " ".join(part for part in (syscall, path) if part)
        name = _errno.errorcode.get(err, str(err))
        self.msg = f"{where + ': ' if where else ''}{name} ({posix.strerror(err)})"

    def __str__(self) -> str:
        return self.msg


class context:
    """``with context("mounts[2] /proc"):`` prefixes any PyruncError (or OSError)
    raised inside with the text. A class rather than @contextmanager: contextlib
    costs ~3 ms of start-up on every command."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: str) -> None:
        self.ctx = ctx

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: object, exc: BaseException | None, _tb: object) -> bool:
        if isinstance(exc, PyruncError):
            exc.prefix(self.ctx)
        elif isinstance(exc, OSError):
            # The stdlib's OSError does not say which call failed: name the path, not a guess.
            err = SyscallError("", exc.errno or 0, exc.filename)
            err.prefix(self.ctx)
            raise err from exc
        return False

