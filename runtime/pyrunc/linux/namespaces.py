"""Join existing namespaces by path and create the new ones."""
from __future__ import annotations

import posix

from pyrunc.errors import context
from pyrunc.syscalls import calls as sc
from pyrunc.syscalls.consts import NAMESPACE_FLAGS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.spec.plan import Plan


def join(plan: Plan) -> None:
    for ns_type, path in plan.join_ns:
        with context(f"linux.namespaces {ns_type} {path}"):
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                sc.setns(fd, NAMESPACE_FLAGS[ns_type], path)
            finally:
                posix.close(fd)


def unshare(plan: Plan) -> None:
    flags = plan.new_ns & ~sc.CLONE_NEWUSER  # entered first and alone: linux/userns.py enter_new
    if flags:
        with context("linux.namespaces"):
            sc.unshare(flags)


def needs_fork(plan: Plan) -> bool:
    """pid and time namespaces apply to children only, so the init must be forked after them."""
    return plan.has_ns("pid") or plan.has_ns("time")


def write_time_offsets(offsets: dict) -> None:
    """Offsets go in before the first process enters the new time namespace."""
    lines = [f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n" for clock, o in offsets.items()]
    with context("linux.timeOffsets"), open("/proc/self/timens_offsets", "w") as f:
        for line in lines:
            f.write(line)
            f.flush()
