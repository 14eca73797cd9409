"""The steps that turn a prepared child into the container's process, shared by
create's init (process/init.py) and exec (process/exec.py), in the order the kernel
needs: everything that needs root first, then the user switch, then what only the
final user may do. Returns what execve needs; the caller execs when its barrier allows.
"""
from __future__ import annotations

import posix

from pyrunc.linux import attrs, confine, execute, rlimits, sched


def become(process: dict, a, c: confine.Confinement, chan) -> tuple[str, list[str]]:
    """``a``: the spec.procattrs.ProcAttrs of the process; returns (program path, env)."""
    env = execute.final_env(process)
    path = execute.find_executable(process["args"][0], env)
    posix.umask(process.get("user", {}).get("umask", 0o022))
    attrs.set_memory_policy(a.mempolicy)
    attrs.set_personality(a.personality)
    sched.set_scheduler(a.sched_attr)
    sched.set_io_priority(a.ioprio)
    rlimits.apply(a.rlimits)  # last before the switch: only root may raise a hard limit
    if not process.get("terminal"):
        posix.setsid()  # a session of its own, as runc's processes (terminal.setup made one already)
    cwd = process.get("cwd", "/")
    entered = execute.enter_cwd(cwd, retry_later=True)  # with the runtime's privileges first, as runc
    confine.before_user_switch(c)
    execute.switch_user(process.get("user", {}))
    if not entered:
        execute.enter_cwd(cwd)
    confine.after_user_switch(c)
    confine.before_ready(c, chan)
    return path, env
