"""Crash points: the named steps of create, start, exec, delete, checkpoint and restore at which a test makes
the runtime die, to show that `delete -f` cleans up after a runtime killed at any step.

For tests only: PYRUNC_CRASH_AT=OP:STEP SIGKILLs the runtime when it reaches STEP of
OP (OP:STEP:exit makes it _exit(EXIT_STATUS) instead, which no error exit uses). Unset,
a point costs one comparison. A step that a container-side child reaches (child_point:
"child:" and "init:" below) travels to the runtime as a "crash" message, which the
runtime dies on reading while the child waits for that: the runtime is killed exactly
while its child stands at that step.
"""
from __future__ import annotations

import posix

from pyrunc import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.process.protocol import Channel

# OP -> its steps, in the order they happen
STEPS: dict[str, tuple[str, ...]] = {
    "create": ("state-dir",      # <root>/<id>/state.json says "creating": creator, planned cgroup
               "cgroup",         # cgroup directories made
               "fifo",           # exec.fifo made and opened
               "child-born",     # first child forked (in its cgroup2 dir, maybe its pid namespace)
               "namespaces",     # child: namespaces joined and created, init not forked yet
               "init-pid",       # the init exists (its pid received)
               "resources",      # linux.resources written
               "rootfs",         # init: mounts done, before pivot_root
               "user",           # init: pivoted, user switched, before "ready"
               "ready",          # the init waits on exec.fifo
               "state-written",  # state.json complete: pid and its start time
               "pid-file",       # --pid-file written
               "detached"),      # the init no longer dies with us: create is done
    "start": ("loaded", "fifo-opened", "fifo-written", "fifo-removed"),
    "exec": ("loaded",           # the container's state read
             "child-born",       # the exec child forked
             "joined",           # child: in the container's namespaces, before the user switch
             "placed",           # the child is in every cgroup ("go" sent)
             "exec-done",        # the child called execve
             "pid-file"),
    "delete": ("loaded", "init-killed", "cgroup-removed", "files-removed"),
    "checkpoint": ("loaded",     # the container's state read
                   "dumping",    # descriptors.json written, criu about to run
                   "dumped"),    # criu done (the container's processes gone), state not yet removed
    "restore": ("state-dir",     # state.json says "creating": creator, planned cgroup
                "cgroup",        # cgroup directories made
                "restoring",     # criu about to run
                "restored",      # criu done: the tree runs in the cgroup, its pid not yet in the state
                "state-written"),  # state.json complete: pid and its start time
}
EXIT_STATUS = 86
_AT = fs.getenv("PYRUNC_CRASH_AT")


def point(op: str, step: str) -> None:
    if _AT is not None and _AT.split(":")[:2] == [op, step]:
        die()


def child_point(op: str, step: str, chan: Channel) -> None:
    """In a container-side child: have the runtime die now, and wait until it has."""
    if _AT is not None and _AT.split(":")[:2] == [op, step]:
        chan.send("crash")
        while chan.sock.recv(65536):  # EOF: the runtime is gone (its death signal usually comes first)
            pass
        posix._exit(1)


def die() -> None:
    if _AT is not None and _AT.endswith(":exit"):
        posix._exit(EXIT_STATUS)
    posix.kill(posix.getpid(), 9)  # ourselves: SIGKILL, no handler, no cleanup
