"""Runtime log: stderr by default, or --log FILE in text or json (one object per line).

With --log-format json a failed command writes exactly one error object:
podman parses the whole file as one object, containerd reads the last line.
Debug lines are written only with --debug.

stderr may be unusable: containerd's runc shim gives a pod sandbox's `create` a
/dev/null opened read-only as stdout and stderr (writes fail with EBADF), and a caller
may close it. Losing that copy must not lose the log file's line, which is the one
the engine reads, nor turn the command's exit status into the interpreter's.
"""
from __future__ import annotations

import posix
import time

from pyrunc import jsonio

_path: str | None = None
_as_json = False
_debug = False


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _path, _as_json, _debug
    _path, _as_json, _debug = path, fmt == "json", debug


def _stamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _write(level: str, msg: str) -> None:
    if _as_json:
        line = jsonio.dumps({"level": level, "msg": msg, "time": _stamp()})
    else:
        line = f"time={jsonio.dumps(_stamp())} level={level} msg={jsonio.dumps(msg)}"
    if _path is None:
        _stderr((line if _as_json else f"{level}: {msg}").encode(errors="replace") + b"\n")
        return
    fd = posix.open(_path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644)
    try:
        posix.write(fd, line.encode(errors="replace") + b"\n")
    finally:
        posix.close(fd)


def _stderr(data: bytes) -> None:
    try:
        posix.write(2, data)
    except OSError:  # closed, or read-only (see above)
        pass


def debugging() -> bool:
    return _debug


def debug(msg: str) -> None:
    if _debug:
        _write("debug", msg)


def warn(msg: str) -> None:
    _write("warning", msg)


def error(msg: str) -> None:
    """Errors always reach stderr as one line, if it takes writes; with --log also the
    log file."""
    _stderr(f"pyrunc: {msg}\n".encode(errors="replace"))
    if _path is not None:
        _write("error", msg)
