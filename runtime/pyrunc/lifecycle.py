"""create / start / kill / delete: the parent side of the container lifecycle.

create acquires resources in order (state dir, cgroup, children) inside an
Undo whose steps run on any failure, so a failed create leaves no
process, cgroup, mount namespace or state directory behind.
"""
from __future__ import annotations

import gc
import posix
import time

# _signal is the C module: `signal` would first build its enums (~2 ms of start-up)
from _signal import SIGKILL

from pyrunc import fs
from pyrunc import state as st
from pyrunc.errors import InvalidStatus, PyruncError, context
from pyrunc.process.children import kill_quietly, reap
from pyrunc.undo import Undo

TYPE_CHECKING = False  # typing costs ~3 ms to import; start/kill/delete must stay light
if TYPE_CHECKING:
    from pyrunc.spec.plan import Plan

# which statuses each operation accepts (runtime.md "Operations")
ALLOWED = {
    "start": {"created"},
    "kill": {"created", "running", "paused"},
    "pause": {"running"},
    "resume": {"paused"},
    "exec": {"created", "running"},
    "delete": {"stopped"},  # runc also deletes a created container; the spec forbids it
    "update": {"created", "running", "paused"},
}


def require(c: st.Container, op: str) -> str:
    status = c.status()
    if status not in ALLOWED[op]:
        raise InvalidStatus(c.id, op, status)
    return status


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def create(root: str, plan: Plan, *, pid_file: str | None = None, systemd_cgroup: bool = False,
           rootless: bool = False) -> st.Container:
    """Set the container up to the exec.fifo barrier; return its (locked) state."""
    from pyrunc.cgroups import open_manager
    from pyrunc.cgroups.delegate import delegate
    from pyrunc.cgroups.delegate import owner as delegation_owner
    from pyrunc.cgroups.resources import validate as validate_resources

    if pid_file:
        _check_pid_file_dir(pid_file)
    linux = plan.config.get("linux", {})
    data = {"id": plan.id, "pid": 0, "bundle": plan.bundle, "rootfs": plan.rootfs, "created": _now(),
            "owner": _owner(), "annotations": plan.config.get("annotations") or {}}
    with Undo() as undo:
        c = st.create_dir(root, plan.id, data)
        undo.callback(c.remove)
        hooks = _config_hooks(plan)
        if hooks is not None:
            hooks.on_create(undo, c, plan.config)
        _save_config(c, plan.config)
        cg = open_manager(linux.get("cgroupsPath"), plan.id, systemd=systemd_cgroup, rootless=rootless)
        validate_resources(linux.get("resources") or {})  # before any process exists; written in _spawn
        with context("linux.cgroupsPath"):
            cg.create()
        undo.callback(cg.destroy)
        delegate_to = delegation_owner(plan.config, cg.mode)
        if delegate_to is not None:
            with context("linux.namespaces cgroup (delegation)"):
                delegate(cg.unified, *delegate_to)
        data["cgroup"] = cg.to_state()
        posix.mkfifo(st.FIFO, 0o600, dir_fd=c.dir_fd)
        fifo_fd = posix.open(st.FIFO, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=c.dir_fd)
        undo.callback(posix.close, fifo_fd)
        init_pid = _spawn(plan, c, cg, fifo_fd, undo)
        data["pid"] = init_pid
        data["pid_start"] = st.pid_start_time(init_pid)
        c.save()
        if pid_file:
            write_pid_file(pid_file, init_pid)
        undo.pop_all()
    posix.close(fifo_fd)
    return c


def _spawn(plan: Plan, c: st.Container, cg, fifo_fd: int, undo: Undo) -> int:
    from pyrunc.linux import confine, namespaces
    from pyrunc.process import init as child
    from pyrunc.process.protocol import Channel
    from pyrunc.syscalls import calls as sc

    # Orphans of our children (the init after the pid-namespace fork) come to
    # us while create runs, so a failed setup can still be reaped; on success
    # they pass on to our caller's subreaper (containerd's shim, conmon).
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    parent_end, child_end = Channel.pair()
    gc_was_on = gc.isenabled()
    gc.disable()  # no collector run in the child between fork and exec
    # born in the cgroup2 directory, and in a new pid namespace, where the kernel lets us
    pid, placed, born = cg.fork_into(namespaces.born_in(plan))
    if pid == 0:
        try:
            parent_end.close()
            posix.close(c.dir_fd)  # the child must not hold the state lock
            child.bootstrap(plan, child_end, fifo_fd, cg, born)
        finally:
            posix._exit(1)
    if gc_was_on:
        gc.enable()
    child_end.close()
    undo.callback(reap, pid)
    undo.callback(kill_quietly, pid)
    with parent_end:
        if not placed:
            with context("cgroup"):
                cg.join(v1=False, pid=pid)
        parent_end.send("go")  # the child joins the v1 hierarchies itself, before anything else
        if plan.new_ns & sc.CLONE_NEWUSER:
            _userns().handshake_parent(parent_end, pid, plan.config["linux"]["uidMappings"],
                                       plan.config["linux"]["gidMappings"])
        init_pid = parent_end.recv("pid")["pid"] or pid
        if init_pid != pid:
            undo.callback(reap, init_pid)
        undo.callback(kill_quietly, init_pid)
        # Limits go on once the init exists (as runc does at its "ready"): with
        # pids.limit 0 our own pid-namespace fork inside the cgroup would fail.
        cg.set_resources(plan.config.get("linux", {}).get("resources") or {})
        hooks = _config_hooks(plan)
        if hooks is not None:
            hooks.create_runtime(parent_end, plan, c, init_pid)  # prestart, createRuntime
        if plan.config.get("linux", {}).get("netDevices"):
            _netdev().attach(plan.config["linux"]["netDevices"], init_pid, undo)
            parent_end.send("netdevices-done")
        confine.hand_over_listener(plan.confine, parent_end, confine.creating_state(plan, init_pid), init_pid)
        parent_end.recv("ready")
    if init_pid != pid:
        posix.waitpid(pid, 0)
    return init_pid


def _userns():
    from pyrunc.linux import userns

    return userns


def _netdev():
    """pyroute2 is imported only for containers that have linux.netDevices."""
    from pyrunc.linux import netdev

    return netdev


def _owner() -> str:
    return "" if posix.geteuid() == 0 else str(posix.geteuid())


def _save_config(c: st.Container, config: dict) -> None:
    """Later commands (exec, hooks, delete) read the config the container was created from."""
    from pyrunc import jsonio

    fd = posix.open("config.json", posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o600,
                    dir_fd=c.dir_fd)
    with open(fd, "w") as f:
        f.write(jsonio.dumps(config))


def _check_pid_file_dir(path: str) -> None:
    d = fs.dirname(fs.abspath(path))
    if not fs.isdir(d):
        raise PyruncError(f"--pid-file {path}: directory {d} does not exist")


def write_pid_file(path: str, pid: int) -> None:
    path = fs.abspath(path)
    tmp = fs.join(fs.dirname(path), f".{fs.basename(path)}.tmp")
    with context(f"--pid-file {path}"):
        with open(tmp, "w") as f:
            f.write(str(pid))
        posix.rename(tmp, path)


def start(c: st.Container) -> None:
    require(c, "start")
    try:
        fd = posix.open(st.FIFO, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=c.dir_fd)
    except OSError as exc:  # ENXIO: nobody reads the fifo, the init is gone
        raise PyruncError(f"start {c.id}: container init is not waiting: {exc.strerror}") from None
    hooks = _later_hooks(c)
    sync_fd = hooks.before_start(c) if hooks else None
    try:
        posix.write(fd, b"0")
    finally:
        posix.close(fd)
    posix.unlink(st.FIFO, dir_fd=c.dir_fd)
    if hooks is None:
        return
    try:
        hooks.after_start(c, sync_fd)  # startContainer's outcome, then poststart
    except hooks.HookError:
        # runtime.md lifecycle 7 and 9: stop the container and go on at step 12,
        # destroying what create made (then poststop), before reporting the error.
        delete(c, force=True)
        raise


def kill(c: st.Container, sig: int, all_procs: bool = False) -> None:
    status = require(c, "kill")
    if all_procs:
        c.cgroup().kill_all(sig)
        return
    try:
        posix.kill(c.pid, sig)
    except ProcessLookupError:
        raise InvalidStatus(c.id, "kill", "stopped") from None
    if status == "paused" and sig == SIGKILL:
        c.cgroup().thaw()


def pause(c: st.Container) -> None:
    require(c, "pause")
    c.cgroup().freeze()


def resume(c: st.Container) -> None:
    require(c, "resume")
    c.cgroup().thaw()


def delete(c: st.Container, force: bool = False) -> None:
    status = c.status()
    if status != "stopped":
        if not force:  # runtime.md: deleting a container that is not stopped MUST fail
            raise InvalidStatus(c.id, "delete", status)
        kill_quietly(c.pid)
    if c.data.get("cgroup"):
        c.cgroup().destroy()
    c.remove()
    hooks = _later_hooks(c)
    if hooks is not None:
        hooks.after_delete(c)  # poststop


def _config_hooks(plan: Plan):
    """hooks.py, for a config that has hooks; the others never import it."""
    if not plan.config.get("hooks"):
        return None
    from pyrunc import hooks

    return hooks


def _later_hooks(c: st.Container):
    """hooks.py, for a container that has startContainer, poststart or poststop hooks
    (state.json keeps them); start, kill and delete of the others skip importing it."""
    if not c.data.get("hooks"):
        return None
    from pyrunc import hooks

    return hooks
