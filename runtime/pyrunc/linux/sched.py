"""Scheduling of the container process: process.scheduler, ioPriority and execCPUAffinity."""
from __future__ import annotations

import errno
import posix
import sys

from pyrunc.errors import SyscallError, context
from pyrunc.syscalls import calls as sc

IOPRIO_WHO_PROCESS = 1
SCHED_FIFO, SCHED_RR = 1, 2


def set_scheduler(attr: bytes | None) -> None:
    """``attr`` is a packed struct sched_attr (spec.procattrs); children inherit it."""
    if attr is None:
        return
    with context("process.scheduler"):
        try:
            sc.sched_setattr(0, attr)
        except SyscallError as exc:
            policy = int.from_bytes(attr[4:8], sys.byteorder)  # sched_attr.sched_policy
            if exc.errno == errno.EPERM and policy in (SCHED_FIFO, SCHED_RR):
                exc.msg += (" (with RT group scheduling a realtime policy needs a budget in the "
                            "container's cgroup: linux.resources.cpu.realtimeRuntime)")
            raise


def set_io_priority(ioprio: int | None) -> None:
    if ioprio is None:
        return
    with context("process.ioPriority"):
        sc.ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio)


def set_affinity(pid: int, cpus: list[int] | None, which: str) -> None:
    """For `exec` only (runtime-spec: execCPUAffinity does not apply to the init, as in runc):
    ``which`` is "initial" (the new process, before it joins the cgroup) or "final" (right before execve)."""
    if cpus is None:
        return
    with context(f"process.execCPUAffinity.{which}"):
        posix.sched_setaffinity(pid, cpus)
