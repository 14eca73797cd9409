"""Join existing namespaces by path and create the new ones."""
from __future__ import annotations

import posix

from pyrunc.errors import context
from pyrunc.linux import idmap
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


def born_in(plan: Plan) -> int:
    """The new namespaces the first child can be born in (clone3), which spares the init's
    fork: the pid namespace, unless a user namespace must own it (the child makes that one
    first), a time namespace needs its offsets written before anyone enters it, or idmapped
    mounts need helper processes whose maps the child writes through the host's /proc."""
    if plan.has_ns("user") or plan.has_ns("time") or idmap.any_wanted(plan):
        return 0
    return plan.new_ns & sc.CLONE_NEWPID


def unshare(plan: Plan, born: int) -> None:
    """``born``: the flags the child was created with already."""
    flags = plan.new_ns & ~sc.CLONE_NEWUSER & ~born  # the user namespace: linux/userns.py enter_new
    if flags:
        with context("linux.namespaces"):
            sc.unshare(flags)


def needs_fork(plan: Plan, born: int) -> bool:
    """pid and time namespaces apply to children only: entered after birth, the init must be forked."""
    return (plan.has_ns("pid") and not born & sc.CLONE_NEWPID) or plan.has_ns("time")


def write_time_offsets(offsets: dict) -> None:
    """Offsets go in before the first process enters the new time namespace."""
    lines = [f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n" for clock, o in offsets.items()]
    with context("linux.timeOffsets"), open("/proc/self/timens_offsets", "w") as f:
        for line in lines:
            f.write(line)
            f.flush()
