"""Our own children: signal them, reap them, and wait for one while relaying signals to it."""
from __future__ import annotations

import posix

# _signal is the C module: `signal` would first build its enums (start-up time)
import _signal as signal
from _signal import SIGKILL

from pyrunc.process.pidfd import signal_child

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def kill_quietly(pid: int, sig: int = SIGKILL) -> None:
    """Signal our child ``pid`` if it is still there (through a pidfd: process/pidfd.py)."""
    signal_child(pid, sig)


def reap(pid: int, timeout_ms: int | None = None) -> None:
    """Wait for our child ``pid`` if it is still ours to wait for; with ``timeout_ms``, give
    up after that long (whoever inherits it reaps it)."""
    if timeout_ms is not None and not _exits_within(pid, timeout_ms):
        return
    try:
        posix.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _exits_within(pid: int, timeout_ms: int) -> bool:
    import select

    try:
        fd = posix.pidfd_open(pid)
    except ProcessLookupError:
        return True  # reaped already
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # readable once it has exited
        return bool(poller.poll(timeout_ms))
    finally:
        posix.close(fd)


def block_signals() -> set[int]:
    """Block every catchable signal; threads started afterwards (the pty relay) inherit it."""
    sigs = set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)  # a blocked SIGCHLD stays pending, never ignored
    return sigs


def wait(pid: int, on_winch: Callable[[], None] | None = None) -> int:
    """Relay every signal we receive to ``pid`` until it exits; return its status (128+N
    when killed by signal N). Signals are blocked and taken with sigwaitinfo, so none is
    lost between a check and a wait, and no Python handler runs. As a subreaper we are
    also the parent of the container's orphans: they are reaped on the way."""
    sigs = block_signals()
    while True:
        try:
            wpid, status = posix.waitpid(-1, posix.WNOHANG)
        except ChildProcessError:  # pid was never ours, or already reaped
            raise ProcessLookupError(f"process {pid} is not our child") from None
        if wpid == pid:
            code = posix.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code
        if wpid:
            continue  # an orphan: look again before waiting
        signo = signal.sigwaitinfo(sigs).si_signo
        if signo == signal.SIGCHLD:
            continue
        if signo == signal.SIGWINCH and on_winch is not None:
            on_winch()
            continue
        kill_quietly(pid, signo)
