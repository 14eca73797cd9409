"""Runtime log: stderr by default, or --log FILE in text or json (one object per line).

With --log-format json a failed command writes exactly one error object:
podman parses the whole file as one object, containerd reads the last line.
Debug lines are written only with --debug: each step of create, start, exec, kill and
delete (crash.STEPS) with its duration. On stderr they are in runc's logfmt.

--log FILE is opened (and created) when the command starts, so a path that cannot be
opened fails it before any work, and the container-side children, which inherit the
descriptor, still reach it after pivot_root. With --debug on stderr, a duplicate of
stderr is kept for the same reason: the init's own stderr becomes the container's (a
terminal, say) before its last steps.

stderr may be unusable: containerd's runc shim gives a pod sandbox's `create` a
/dev/null opened read-only as stdout and stderr (writes fail with EBADF), and a caller
may close it. Losing that copy must not lose the log file's line, which is the one
the engine reads, nor turn the command's exit status into the interpreter's.
"""
from __future__ import annotations

import posix
import time

from pyrunc import jsonio
from pyrunc.errors import PyruncError

_fd: int | None = None  # --log FILE
_stderr_fd = 2
_as_json = False
_debug = False
_mark = 0.0  # when the last step ended (time.monotonic)


def configure(path: str | None, fmt: str, debug: bool) -> None:
    """Open --log FILE now: a path that cannot be opened fails the command before any work."""
    global _fd, _stderr_fd, _as_json, _debug, _mark
    _as_json = fmt == "json"
    if path is not None:
        try:
            _fd = _above_stdio(posix.open(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC,
                                          0o644))
        except OSError as exc:
            raise PyruncError(f"--log {path}: open: {exc.strerror}") from None
    elif debug:
        try:
            _stderr_fd = _above_stdio(posix.dup(2))  # close-on-exec, as every fd Python makes
        except OSError:  # no stderr: lines are lost, as without --debug
            pass
    _debug = debug  # only now: a --log that cannot be opened is a one-line error, no traceback
    if debug:
        _mark = time.monotonic()


def _above_stdio(fd: int) -> int:
    """A caller may start us with stdin, stdout or stderr closed (see above): a log fd must
    not take their number, which the container's stdio and our error line use."""
    if fd > 2:
        return fd
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        posix.close(fd)


def _stamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _write(level: str, msg: str) -> None:
    if _as_json:
        line = jsonio.dumps({"level": level, "msg": msg, "time": _stamp()})
    elif _fd is not None or _debug:  # runc's logfmt
        line = f"time={jsonio.dumps(_stamp())} level={level} msg={jsonio.dumps(msg)}"
    else:
        line = f"{level}: {msg}"
    data = line.encode(errors="replace") + b"\n"
    if _fd is None:
        _stderr(data, _stderr_fd)
        return
    try:
        posix.write(_fd, data)
    except OSError:  # a full disk, say: the command's outcome does not depend on its log
        pass


def _stderr(data: bytes, fd: int = 2) -> None:
    try:
        posix.write(fd, data)
    except OSError:  # closed, or read-only (see above)
        pass


def debugging() -> bool:
    return _debug


def debug(msg: str) -> None:
    if _debug:
        _write("debug", msg)


def step(op: str, name: str, field: str) -> None:
    """A step of OP done (crash.STEPS names them): its name, the config.json field it
    carried out, and how long since the previous step ended (or the command started)."""
    global _mark
    if _debug:
        now = time.monotonic()
        _write("debug", f"{op}:{name}: {field} ({(now - _mark) * 1000:.2f} ms)")
        _mark = now


def warn(msg: str) -> None:
    _write("warning", msg)


def error(msg: str) -> None:
    """Errors always reach stderr as one line, if it takes writes; with --log also the
    log file."""
    _stderr(f"pyrunc: {msg}\n".encode(errors="replace"))
    if _fd is not None:
        _write("error", msg)
