"""The named steps of create, start, exec, kill, delete, checkpoint and restore: with --debug each is logged with
its duration and the config.json field it carries out (log.step), and they are the crash
points at which a test makes the runtime die, to show that `delete -f` cleans up after a
runtime killed at any step.

For tests only: PYRUNC_CRASH_AT=OP:STEP SIGKILLs the runtime when it reaches STEP of
OP (OP:STEP:exit makes it _exit(EXIT_STATUS) instead, which no error exit uses). Unset
and without --debug, a point costs two comparisons. A step that a container-side child
reaches (Channel.crash_point in process/protocol.py: "child:" and "init:" below) travels to
the runtime as a "crash" message, which the runtime dies on reading while the child waits
for that: the runtime is killed exactly while its child stands at that step.
"""
from __future__ import annotations

import posix

from pyrunc import fs, log

# OP -> its steps, in the order they happen, each with the config.json field it carries out
# (or the runtime's own file or flag): pyrunc explain tags its steps with the same fields
STEPS: dict[str, dict[str, str]] = {
    "create": {"state-dir": "annotations",          # <root>/<id>/state.json says "creating": creator, planned cgroup
               "cgroup": "linux.cgroupsPath",       # cgroup directories made
               "fifo": "exec.fifo",                 # exec.fifo made and opened
               "child-born": "linux.namespaces",    # first child forked (in its cgroup2 dir, maybe its pid namespace)
               "namespaces": "linux.namespaces",    # child: namespaces joined and created, init not forked yet
               "init-pid": "linux.namespaces",      # the init exists (its pid received)
               "resources": "linux.resources",      # linux.resources written
               "rootfs": "mounts",                  # init: mounts done, before pivot_root
               "user": "process.user",              # init: pivoted, user switched, before "ready"
               "ready": "process",                  # the init waits on exec.fifo
               "state-written": "state.json",       # state.json complete: pid and its start time
               "pid-file": "--pid-file",            # --pid-file written
               "detached": "process.args"},         # the init no longer dies with us: create is done
    "start": {"loaded": "state.json", "fifo-opened": "exec.fifo", "fifo-written": "process.args",
              "fifo-removed": "exec.fifo"},
    "exec": {"loaded": "state.json",                # the container's state read
             "child-born": "linux.namespaces",      # the exec child forked
             "joined": "linux.namespaces",          # child: in the container's namespaces, before the user switch
             "placed": "linux.cgroupsPath",         # the child is in every cgroup ("go" sent)
             "exec-done": "process.args",           # the child called execve
             "pid-file": "--pid-file"},
    "kill": {"loaded": "state.json", "signalled": "process"},
    "delete": {"loaded": "state.json", "init-killed": "process", "cgroup-removed": "linux.cgroupsPath",
               "files-removed": "state.json"},
    "checkpoint": {"loaded": "state.json",          # the container's state read
                   "dumping": "--image-path",       # descriptors.json written, criu about to run
                   "dumped": "--image-path"},       # criu done (the container's processes gone), state not yet removed
    "restore": {"state-dir": "annotations",         # state.json says "creating": creator, planned cgroup
                "cgroup": "linux.cgroupsPath",      # cgroup directories made
                "restoring": "--image-path",        # criu about to run
                "restored": "process",              # criu done: the tree runs in the cgroup, its pid not yet in the state
                "state-written": "state.json"},     # state.json complete: pid and its start time
}
EXIT_STATUS = 86
_AT = fs.getenv("PYRUNC_CRASH_AT")


def point(op: str, step: str) -> None:
    if reached(op, step):
        die()


def reached(op: str, step: str) -> bool:
    """Log the step (with --debug); whether a test has the runtime die at it."""
    if log.debugging():
        log.step(op, step, STEPS[op][step])
    return _AT is not None and _AT.split(":")[:2] == [op, step]


def die() -> None:
    if _AT is not None and _AT.endswith(":exit"):
        posix._exit(EXIT_STATUS)
    posix.kill(posix.getpid(), 9)  # ourselves: SIGKILL, no handler, no cleanup
