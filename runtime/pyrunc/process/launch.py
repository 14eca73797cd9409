"""The container process's last step, shared by create's init and exec: [wait for
`start`,] mark our fds close-on-exec, install the seccomp filter, set the capabilities
deferred behind it, execve.

It runs in C (syscalls/launch.c) because create's init waits there: before it blocks on
exec.fifo it gives back the interpreter's memory (heap, arenas, .data), which it will never
use again, so a created container costs a few pages instead of a Python process. A
failure then can no longer raise; it is reported on stderr, as report_and_exit does once
the parent is gone, in the same words.
"""
from __future__ import annotations

import errno
import posix

from pyrunc.errors import PyruncError
from pyrunc.linux import confine, execute
from pyrunc.syscalls import calls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def launch(path: str, args: list[str], env: list[str], c: confine.Confinement, close_from: int,
           fifo_fd: int = -1) -> NoReturn:
    """execve ``path``; with ``fifo_fd``, only once `start` has written a byte to it."""
    bpf, flags, caps = confine.final_steps(c)
    prefixes = ("exec.fifo: read: ", "close_range: ", "linux.seccomp: seccomp: ",
                "process.capabilities: capset: ", f'exec: "{args[0]}": execve {path}: ')
    envp = [f"{name}={value}" for name, value in execute.env_dict(env).items()]
    texts = [_errtext(e) for e in range(134)] if fifo_fd >= 0 else None  # 133: EHWPOISON
    try:
        step, err = sc.launch(path, args, envp, close_from=close_from, fifo_fd=fifo_fd, bpf=bpf,
                              seccomp_flags=flags, caps=caps, prefixes=prefixes, errtext=texts)
    except ValueError as exc:  # a NUL byte in process.args or process.env
        raise PyruncError(f"process: {exc}") from None
    raise PyruncError(prefixes[step] + _errtext(err))


def _errtext(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))} ({posix.strerror(err)})" if err else ""
