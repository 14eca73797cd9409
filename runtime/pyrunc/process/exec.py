"""exec: one more process inside an existing container (both sides of the fork).

Parent: open the init's namespace files and root (/proc/<init>/ns/*, /proc/<init>/root)
while they are sure to be the init's; enter the pid and time namespaces (they apply to
children only, so this puts the child straight into them); fork; wait for EOF (the
child end is close-on-exec, so EOF means execve succeeded) or an "error".

Child: non-dumpable first, into the container's v1 cgroups, then setns into every other
namespace the init does not share with us (user first: it grants the rights for the
rest; mount last: it changes what paths mean), chroot to the init's root, apply the
process settings with the same functions as create, wait for "go" (sent once the
child is in the cgroup2: born there by clone3, or put there by the parent), execve. (Rootless, where the
parent may not enter the pid namespace, the child enters it and forks once more.)

The last execve is the sealed launcher's (process/launch.py), never the interpreter's:
a program exec'd from inside must not find the host's Python behind /proc/self/exe.
"""
from __future__ import annotations

import errno
import gc
import posix

# _signal is the C module: `signal` would first build its enums (start-up time)
import _signal as signal

from pyrunc import crash, log
from pyrunc import state as st
from pyrunc.errors import PyruncError, SyscallError, context
from pyrunc.linux import attrs, confine, sched
from pyrunc.process.become import become
from pyrunc.process.children import kill_quietly, reap
from pyrunc.process.launch import launch, sealed_launcher
from pyrunc.process.protocol import (Channel, ProtocolError, die_with_parent, fork_and_report_pid, report_and_exit,
                                     setup_timeout)
from pyrunc.syscalls import calls as sc
from pyrunc.syscalls.consts import JOIN_ORDER, NAMESPACE_FLAGS

TYPE_CHECKING = False  # typing costs milliseconds to import; exec is on the hot path
if TYPE_CHECKING:
    from typing import NoReturn

_PROC_NS = {"network": "net", "mount": "mnt"}  # spec names -> /proc/<pid>/ns names


class Job:
    """Everything the child needs, prepared in the parent (the child converts nothing)."""

    __slots__ = ("process", "attrs", "confine", "ns_fds", "root_fd", "console_fd", "preserve_fds", "terminal",
                 "launcher_fd")

    def __init__(self, process: dict, config: dict, preserve_fds: int) -> None:
        from pyrunc.spec import procattrs

        linux = config.get("linux", {})
        self.process = process
        self.attrs = procattrs.build({"process": process, "linux": linux})
        self.confine = confine.prepare(process, linux)
        self.ns_fds: list[tuple[str, int]] = []
        self.root_fd = -1
        self.console_fd: int | None = None
        self.preserve_fds = preserve_fds
        self.launcher_fd = -1
        self.terminal = None
        if process.get("terminal"):  # imported here: the child cannot import after chroot
            from pyrunc.linux import terminal
            self.terminal = terminal

    def open_init(self, c: st.Container) -> None:
        """Hold the init's namespaces and root; then make sure the pid was not reused meanwhile."""
        pid = c.pid
        for ns in JOIN_ORDER:
            name = _PROC_NS.get(ns, ns)
            try:
                theirs = posix.stat(f"/proc/{pid}/ns/{name}")
                ours = posix.stat(f"/proc/self/ns/{name}")
            except FileNotFoundError:  # the kernel lacks this namespace type (or the init is gone)
                continue
            if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
                with context(f"/proc/{pid}/ns/{name}"):
                    self.ns_fds.append((ns, posix.open(f"/proc/{pid}/ns/{name}", posix.O_RDONLY | posix.O_CLOEXEC)))
        with context(f"/proc/{pid}/root"):
            self.root_fd = posix.open(f"/proc/{pid}/root", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        if not c.init_alive():
            raise PyruncError(f"container {c.id!r} stopped while exec started")

    def needs_fork(self) -> bool:
        return any(ns in ("pid", "time") for ns, _ in self.ns_fds)

    def close(self) -> None:
        if self.launcher_fd >= 0:
            posix.close(self.launcher_fd)
            self.launcher_fd = -1
        for _, fd in self.ns_fds:
            posix.close(fd)
        self.ns_fds = []
        if self.root_fd >= 0:
            posix.close(self.root_fd)
            self.root_fd = -1


def spawn(job: Job, cgroup, state: dict) -> int:
    """Start the process; return its host pid once it has called execve."""
    if log.debugging():  # imported now for report_and_exit: after chroot our files are out of reach
        import traceback  # noqa: F401
    if job.launcher_fd < 0:
        job.launcher_fd = sealed_launcher()
    parent_end, child_end = Channel.pair()
    back = _enter_for_children(job)
    gc.disable()  # no collector run in the child between fork and exec
    try:
        pid, placed, _ = cgroup.fork_into()
        if pid == 0:
            try:
                parent_end.close()
                _child(job, child_end, cgroup)
            finally:
                posix._exit(1)
    finally:
        gc.enable()
        _leave_for_children(back)
    child_end.close()
    parent_end.timeout = setup_timeout()
    proc_pid = pid
    try:
        with parent_end:
            crash.point("exec", "child-born")
            if job.needs_fork():
                proc_pid = parent_end.recv("pid")["pid"]
            if not placed:
                with context("cgroup"):
                    cgroup.join(v1=False, pid=proc_pid)
            try:
                parent_end.send("go")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the child already failed: its error is queued for _await_exec
            crash.point("exec", "placed")
            confine.hand_over_listener(job.confine, parent_end, state, proc_pid)
            _await_exec(parent_end)
    except BaseException:
        for p in {pid, proc_pid}:
            kill_quietly(p)
            reap(p, timeout_ms=1000)  # frozen with a paused container, it dies once resumed
        raise
    if proc_pid != pid:
        reap(pid)  # the intermediate exits right after its fork
    return proc_pid


def _enter_for_children(job: Job) -> list[tuple[str, int]]:
    """pid and time namespaces apply only to the children of whoever enters them: entering
    them here puts the child straight into them, which spares it a second fork. Without
    the right to (rootless), they stay in the list and the child enters them and forks.
    Returns our own namespaces, to go back to after the fork (a process whose children's
    pid namespace is not its own cannot start threads, and the pty relay needs two)."""
    keep, back = [], []
    for ns, fd in job.ns_fds:
        if ns in ("pid", "time"):
            own = posix.open(f"/proc/self/ns/{ns}", posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                with context(f"setns {ns}"):
                    sc.setns(fd, NAMESPACE_FLAGS[ns], f"/proc/<init>/ns/{ns}")
            except SyscallError as exc:
                posix.close(own)
                if exc.errno != errno.EPERM:
                    raise
            else:
                back.append((ns, own))
                posix.close(fd)
                continue
        keep.append((ns, fd))
    job.ns_fds = keep
    return back


def _leave_for_children(back: list[tuple[str, int]]) -> None:
    for ns, fd in back:
        try:
            with context(f"setns {ns} (back to ours)"):
                sc.setns(fd, NAMESPACE_FLAGS[ns], f"/proc/self/ns/{ns}")
        finally:
            posix.close(fd)


def _await_exec(chan: Channel) -> None:
    """EOF: every child end closed on execve (CPython's errpipe rule). Otherwise the child's error."""
    chan.wait(("execve",))
    raw = chan.read_raw()  # past the reset of a child that exited leaving our "go" unread
    if raw:  # an error (raised here), or anything else: refused
        chan.decode(raw, ("execve",))
        raise ProtocolError("expected execve from the exec'd process")


# ---- child ------------------------------------------------------------------------------------

def _child(job: Job, chan: Channel, cgroup) -> NoReturn:
    try:
        # Until execve we die with `exec`: killed before we are in the container's cgroup,
        # we would be a process that no `delete` finds.
        die_with_parent(chan)
        # Before any container namespace: nothing inside may open our /proc files or ptrace us.
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        sched.set_affinity(0, job.attrs.cpus_initial, "initial")
        with context("cgroup"):
            cgroup.join(v1=True)
        attrs.set_oom_score_adj(job.attrs.oom_score_adj)  # as host root: lowering needs it
        for ns, fd in job.ns_fds:
            with context(f"setns {ns}"):
                sc.setns(fd, NAMESPACE_FLAGS[ns], f"/proc/<init>/ns/{_PROC_NS.get(ns, ns)}")
        chan.crash_point("exec", "joined")
        if job.needs_fork():
            fork_and_report_pid(chan)
        # setns(mnt) left us at that namespace's root; the init may be chroot'ed (--no-pivot)
        posix.fchdir(job.root_fd)
        posix.chroot(".")
        _finish(job, chan)
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as data
        report_and_exit(chan, exc, "exec")


def _finish(job: Job, chan: Channel) -> NoReturn:
    """Inside the container: the same steps as create's init (become.py), without the fifo."""
    process, a, c = job.process, job.attrs, job.confine
    if job.terminal is not None:
        job.terminal.setup(None, job.console_fd, process)  # rootfd None: no /dev/console bind for exec
    path, env = become(process, a, c, chan)
    sched.set_affinity(0, a.cpus_final, "final")
    chan.recv("go")  # in all of the container's cgroups now
    # The process outlives `exec` (`exec -d` exits right after execve); joining a user
    # namespace or switching user has cleared the death signal already, but not always.
    sc.prctl(sc.PR_SET_PDEATHSIG, 0)
    # A foreground `exec` blocks every signal before the fork, to relay them (children.wait):
    # the process starts with none blocked. (Before seccomp, which may forbid sigprocmask.)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    # The launcher reports a failure on our channel; it closes at execve, which the parent reads as success.
    launch(job.launcher_fd, path, process["args"], env, c, 3 + job.preserve_fds, report_fd=chan.fileno())
