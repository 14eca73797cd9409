"""OOM notifications for `events`: a pollable fd plus a counter to confirm.

v1: an eventfd registered on memory.oom_control through cgroup.event_control
(the kernel signals it on every OOM in the cgroup, and once when the cgroup is
removed). v2: memory.events itself, which the kernel marks with POLLPRI when a
counter in it changes.
"""
from __future__ import annotations

import posix
import select

from pyrunc import fs
from . import files
from .files import CgroupError


class OomWatcher:
    def __init__(self, mgr) -> None:
        self.mgr = mgr
        d = mgr.dir_of("memory")
        if d is None:
            raise CgroupError("events: the memory cgroup controller is not available")
        self.v2 = mgr.mode == "v2"
        self._fds: list[int] = []
        if self.v2:
            self._fd = posix.open(fs.join(d, "memory.events"), posix.O_RDONLY | posix.O_CLOEXEC)
            self._fds.append(self._fd)
            posix.pread(self._fd, 4096, 0)   # kernfs reports POLLPRI until a first read
            self._events = select.POLLPRI | select.POLLERR
        else:
            self._fd = posix.eventfd(0, posix.EFD_CLOEXEC | posix.EFD_NONBLOCK)
            ctl = posix.open(fs.join(d, "memory.oom_control"), posix.O_RDONLY | posix.O_CLOEXEC)
            self._fds += [self._fd, ctl]
            files.write(d, "cgroup.event_control", f"{self._fd} {ctl}", "events")
            self._events = select.POLLIN
        self._last = self._count()

    def _count(self) -> int:
        d = self.mgr.dir_of("memory")
        if self.v2:
            return files.read_keyed(d, "memory.events").get("oom", 0)
        return self.mgr.oom_kill_count()

    def fileno(self) -> int:
        return self._fd

    def wait(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` seconds for an OOM notification."""
        p = select.poll()
        p.register(self._fd, self._events)
        return bool(p.poll(None if timeout is None else int(timeout * 1000)))

    def check(self) -> int:
        """OOM events since the last check (0 if none)."""
        fired = 0
        if not self.v2:
            try:
                fired = posix.eventfd_read(self._fd)
            except BlockingIOError:
                pass
        else:
            posix.pread(self._fd, 4096, 0)   # re-arm POLLPRI
        try:
            now = self._count()
        except OSError:      # cgroup gone
            return fired
        new, self._last = max(now - self._last, 0), now
        # v1 with the OOM killer disabled fires the eventfd without a kill
        return max(new, fired if not self.v2 else 0)

    def close(self) -> None:
        for fd in self._fds:
            posix.close(fd)
        self._fds = []
