"""Signals that can only reach the process meant: through a pidfd, never a bare pid.

A pid read from state.json may belong to another process by now (the init exited and
the number was reused). pidfd_open pins whatever process has the pid at that moment;
if its start time (/proc/<pid>/stat field 22) is the one recorded when the init was
made, the pidfd is the init's and stays so. kill(2) has no such guarantee, and with
pid 0 or -1 it signals a whole process group or every process: pid <= 1 is refused here.
"""
from __future__ import annotations

import posix

# _signal is the C module: `signal` would first build its enums (start-up time)
from _signal import SIGKILL, pidfd_send_signal

from pyrunc.state import pid_start_time


def open_checked(pid: int, start: int | None) -> int | None:
    """A pidfd of the live process ``pid`` that started at ``start``, else None."""
    if pid <= 1 or start is None:
        return None
    try:
        fd = posix.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if pid_start_time(pid) != start:  # read after pinning: a reused pid shows another start
        posix.close(fd)
        return None
    return fd


def signal_checked(pid: int, start: int | None, sig: int) -> bool:
    """Signal ``pid`` if it is still the process that started at ``start``; False if it is gone."""
    fd = open_checked(pid, start)
    if fd is None:
        return False
    return _send(fd, sig)


def kill_checked(pid: int, start: int | None, timeout_ms: int = 1000) -> None:
    """SIGKILL ``pid`` if it is still the process that started at ``start``, and wait (up to
    ``timeout_ms``) until it has exited: what comes next (removing its cgroup) needs it gone,
    and the pidfd says so at once, where polling the cgroup would sleep."""
    import select  # here: start, kill and state import this module too, and never wait

    fd = open_checked(pid, start)
    if fd is None:
        return
    try:
        pidfd_send_signal(fd, SIGKILL)
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # readable once the process has exited
        poller.poll(timeout_ms)
    except ProcessLookupError:  # exited after the pidfd was opened
        pass
    finally:
        posix.close(fd)


def signal_child(pid: int, sig: int) -> bool:
    """Signal our own child ``pid``: not reaped yet, it cannot have been reused."""
    if pid <= 1:
        return False
    try:
        fd = posix.pidfd_open(pid)
    except ProcessLookupError:
        return False
    return _send(fd, sig)


def _send(fd: int, sig: int) -> bool:
    try:
        pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:  # exited after the pidfd was opened
        return False
    finally:
        posix.close(fd)
