"""create / start / kill / delete: the parent side of the container lifecycle.

create acquires resources in order (state dir, cgroup, children) inside an
Undo whose steps run on any failure, so a failed create leaves no
process, cgroup, mount namespace or state directory behind; a create that is
killed instead leaves a state that names them, for `delete -f`. The steps are
named crash points (crash.py), where the tests kill the runtime.
"""
from __future__ import annotations

import gc
import posix
import time

# _signal is the C module: `signal` would first build its enums (~2 ms of start-up)
from _signal import SIGKILL

from pyrunc import crash, fs
from pyrunc import state as st
from pyrunc.errors import InvalidStatus, PyruncError, context
from pyrunc.process.children import kill_quietly, reap
from pyrunc.process.pidfd import kill_checked, signal_checked
from pyrunc.undo import Undo

TYPE_CHECKING = False  # typing costs ~3 ms to import; start/kill/delete must stay light
if TYPE_CHECKING:
    from pyrunc.process.protocol import Channel
    from pyrunc.spec.plan import Plan

# which statuses each operation accepts (runtime.md "Operations")
ALLOWED = {
    "start": {"created"},
    "kill": {"created", "running", "paused"},
    "pause": {"running"},
    "resume": {"paused"},
    "exec": {"created", "running"},
    # runtime.md says delete of a container that is not stopped MUST fail; as runc and crun,
    # a created one is deleted (its waiting init killed): containerd's shim and podman
    # remove a never-started container with a plain delete
    "delete": {"stopped", "created"},
    "update": {"created", "running", "paused"},
    "checkpoint": {"running", "paused"},  # containerd pauses a task around its checkpoint
}


def require(c: st.Container, op: str) -> str:
    status = c.status()
    if status not in ALLOWED[op]:
        raise InvalidStatus(c.id, op, status)
    return status


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def prepare(config: dict, bundle: str, cid: str, rootless_flag: str, **build_opts) -> tuple[Plan, bool]:
    """config -> Plan, and whether cgroups go the rootless way: every check made before
    anything exists. create and `explain` both start here, so they refuse alike."""
    from pyrunc.errors import BundleError
    from pyrunc.rootless import preflight
    from pyrunc.spec.plan import build

    plan = build(config, bundle, cid, **build_opts)
    if not fs.isdir(plan.rootfs):
        raise BundleError(f"root.path {plan.rootfs}: not a directory or does not exist")
    return plan, preflight(plan, rootless_flag)


def cgroup_for(plan: Plan, *, systemd_cgroup: bool = False, rootless: bool = False):
    """The container's CgroupManager, its linux.resources checked; nothing is made yet."""
    from pyrunc.cgroups import open_manager
    from pyrunc.cgroups.resources import validate as validate_resources

    linux = plan.config.get("linux", {})
    cg = open_manager(linux.get("cgroupsPath"), plan.id, systemd=systemd_cgroup, rootless=rootless)
    validate_resources(linux.get("resources") or {}, warn=True)  # before any process exists; written in _spawn
    return cg


def create(root: str, plan: Plan, *, pid_file: str | None = None, systemd_cgroup: bool = False,
           rootless: bool = False) -> st.Container:
    """Set the container up to the exec.fifo barrier; return its (locked) state.

    Killed at any step, it leaves nothing that `delete -f` cannot find: the state is
    written before anything else exists and names what is about to be made, and every
    process made here dies with us until the init is told it may outlive us."""
    from pyrunc.cgroups.delegate import delegate
    from pyrunc.cgroups.delegate import owner as delegation_owner

    if pid_file:
        check_pid_file_dir(pid_file)
    cg = cgroup_for(plan, systemd_cgroup=systemd_cgroup, rootless=rootless)
    data = first_state(plan, cg)
    hooks = _config_hooks(plan)
    later = hooks.saved(plan.config) if hooks is not None else {}
    if later:
        data["hooks"] = later  # startContainer, poststart, poststop: for start and delete
    with Undo() as undo:
        c = st.create_dir(root, plan.id, data)
        undo.callback(c.remove)
        crash.point("create", "state-dir")
        if fs.getenv("NOTIFY_SOCKET"):  # the init binds it in (cli/create.py added the mount)
            from pyrunc import notify
            notify.make_dir(c.dir_fd)
        if hooks is not None:
            hooks.on_create(undo, c, plan.config)
        save_config(c, plan.config)
        undo.callback(cg.discard)  # what this create made; `delete -f` of a crash destroys the lot
        with context("linux.cgroupsPath"):
            cg.create()
            cg.check_joinable()
        crash.point("create", "cgroup")
        if cg.to_state() != data["cgroup"]:  # rootless: hierarchies we may not use were dropped
            data["cgroup"] = cg.to_state()
            c.save()
        delegate_to = delegation_owner(plan.config, cg.mode)
        if delegate_to is not None:
            with context("linux.namespaces cgroup (delegation)"):
                delegate(cg.unified, *delegate_to)
        posix.mkfifo(st.FIFO, 0o600, dir_fd=c.dir_fd)
        # Read-write: the init keeps it open, a writer itself, until execve; that is how
        # `state` tells a waiting init (Container.init_waiting) without waking it.
        fifo_fd = posix.open(st.FIFO, posix.O_RDWR | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=c.dir_fd)
        undo.callback(posix.close, fifo_fd)
        crash.point("create", "fifo")
        init_pid, chan = _spawn(plan, c, cg, fifo_fd, undo)
        with chan:
            data["pid_start"] = st.pid_start_time(init_pid)
            if data["pid_start"] is None:
                raise PyruncError("container init exited during create")
            data["pid"] = init_pid
            c.save()
            crash.point("create", "state-written")
            if pid_file:
                write_pid_file(pid_file, init_pid)
                crash.point("create", "pid-file")
            # The init dies with us until here (PR_SET_PDEATHSIG): now it may outlive us.
            chan.send("created")
            chan.recv("detached")
        crash.point("create", "detached")
        undo.pop_all()
    posix.close(fifo_fd)
    return c


def first_state(plan: Plan, cg) -> dict:
    """What state.json says before anything exists: the creator (us, while we live) and
    the cgroup directories about to be made (cg.plan() lists them)."""
    cg.plan()
    me = posix.getpid()
    return {"id": plan.id, "bundle": plan.bundle, "rootfs": plan.rootfs, "created": _now(),
            "owner": _owner(), "annotations": plan.config.get("annotations") or {},
            "creator": [me, st.pid_start_time(me)], "cgroup": cg.to_state()}


def _spawn(plan: Plan, c: st.Container, cg, fifo_fd: int, undo: Undo) -> tuple[int, Channel]:
    """Fork the container's first child and see it through to "ready"; return the init's
    pid and the channel to it, over which create tells the init it may outlive us."""
    from pyrunc.linux import confine, namespaces
    from pyrunc.process import init as child
    from pyrunc.process.launch import sealed_launcher
    from pyrunc.process.protocol import Channel, setup_timeout
    from pyrunc.syscalls import calls as sc

    # Orphans of our children come to us while create runs, so a failed setup can still
    # be reaped; on success they pass on to our caller's subreaper (containerd's shim, conmon).
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    launcher_fd = sealed_launcher()  # before the fork: its file is out of the child's reach later
    parent_end, child_end = Channel.pair()
    gc_was_on = gc.isenabled()
    gc.disable()  # no collector run in the child between fork and exec
    # born in the cgroup2 directory, and in a new pid namespace, where the kernel lets us
    try:
        pid, placed, born = cg.fork_into(namespaces.born_in(plan))
        if pid == 0:
            try:
                parent_end.close()
                posix.close(c.dir_fd)  # the child must not hold the state lock
                child.bootstrap(plan, child_end, fifo_fd, cg, born, launcher_fd)
            finally:
                posix._exit(1)
    finally:
        posix.close(launcher_fd)
    if gc_was_on:
        gc.enable()
    child_end.close()
    parent_end.timeout = setup_timeout()
    _undo_child(undo, cg, pid)
    undo.callback(parent_end.close)
    crash.point("create", "child-born")
    if not placed:
        with context("cgroup"):
            cg.join(v1=False, pid=pid)
    parent_end.send("go")  # the child joins the v1 hierarchies itself, before anything else
    if plan.new_ns & sc.CLONE_NEWUSER:
        _userns().handshake_parent(parent_end, pid, plan.config["linux"]["uidMappings"],
                                   plan.config["linux"]["gidMappings"])
    init_pid = parent_end.recv("pid")["pid"] or pid
    if init_pid != pid:  # forked with CLONE_PARENT: our child too
        _undo_child(undo, cg, init_pid)
    crash.point("create", "init-pid")
    # Limits go on once the init exists (as runc does at its "ready"): with
    # pids.limit 0 our own pid-namespace fork inside the cgroup would fail.
    cg.set_resources(plan.config.get("linux", {}).get("resources") or {})
    parent_end.send_ahead("resources")  # the init makes its device nodes after this
    crash.point("create", "resources")
    hooks = _config_hooks(plan)
    if hooks is not None:
        hooks.create_runtime(parent_end, plan, c, init_pid)  # prestart, createRuntime
    if plan.config.get("linux", {}).get("netDevices"):
        _netdev().attach(plan.config["linux"]["netDevices"], init_pid, undo)
        parent_end.send("netdevices-done")
    confine.hand_over_listener(plan.confine, parent_end, confine.creating_state(plan, init_pid), init_pid)
    parent_end.recv("ready")
    crash.point("create", "ready")
    if init_pid != pid:
        posix.waitpid(pid, 0)
    return init_pid, parent_end


def _undo_child(undo: Undo, cg, pid: int) -> None:
    """On failure: SIGKILL our child ``pid``, thaw its cgroup should something have frozen
    it since (else the kill waits for a thaw), and reap it."""
    undo.callback(reap, pid)
    undo.callback(cg.thaw_if_frozen)
    undo.callback(kill_quietly, pid)


def _userns():
    from pyrunc.linux import userns

    return userns


def _netdev():
    """pyroute2 is imported only for containers that have linux.netDevices."""
    from pyrunc.linux import netdev

    return netdev


def _owner() -> str:
    return "" if posix.geteuid() == 0 else str(posix.geteuid())


def save_config(c: st.Container, config: dict) -> None:
    """Later commands (exec, hooks, delete) read the config the container was created from."""
    from pyrunc import jsonio

    fd = posix.open("config.json", posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o600,
                    dir_fd=c.dir_fd)
    with open(fd, "w") as f:
        f.write(jsonio.dumps(config))


def check_pid_file_dir(path: str) -> None:
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
    crash.point("start", "loaded")
    try:
        fd = posix.open(st.FIFO, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=c.dir_fd)
    except OSError as exc:  # ENXIO: nobody reads the fifo, the init is gone
        raise PyruncError(f"start {c.id}: container init is not waiting: {exc.strerror}") from None
    hooks = _later_hooks(c)
    sync_fd = hooks.before_start(c) if hooks else None
    ready = _notify_listener(c)
    crash.point("start", "fifo-opened")
    try:
        posix.write(fd, b"0")
    finally:
        posix.close(fd)
    crash.point("start", "fifo-written")
    posix.unlink(st.FIFO, dir_fd=c.dir_fd)
    crash.point("start", "fifo-removed")
    if hooks is not None:
        _after_start(c, hooks, sync_fd)
    if ready is not None:
        _relay_ready(c, ready)


def _notify_listener(c: st.Container):
    """With NOTIFY_SOCKET, the socket the program's READY=1 comes to (notify.py)."""
    if not fs.getenv("NOTIFY_SOCKET") or not fs.isdir(fs.join(c.dir, "notify")):
        return None
    from pyrunc import notify
    return notify.listen(c.dir)


def _relay_ready(c: st.Container, sock) -> None:
    from pyrunc import notify
    from pyrunc.process.pidfd import open_checked

    with sock:
        pidfd = open_checked(c.pid, c.pid_start)
        if pidfd is None:
            return  # the program is gone already
        try:
            notify.relay_ready(sock, fs.getenv("NOTIFY_SOCKET") or "", c.pid, pidfd)
        finally:
            posix.close(pidfd)


def _after_start(c: st.Container, hooks, sync_fd) -> None:
    try:
        hooks.after_start(c, sync_fd)  # startContainer's outcome, then poststart
    except hooks.HookError:
        # runtime.md lifecycle 7 and 9: stop the container and go on at step 12,
        # destroying what create made (then poststop), before reporting the error.
        delete(c, force=True)
        raise


def kill(c: st.Container, sig: int, all_procs: bool = False) -> None:
    crash.point("kill", "loaded")
    _kill(c, sig, all_procs)
    crash.point("kill", "signalled")


def _kill(c: st.Container, sig: int, all_procs: bool) -> None:
    if all_procs and c.status() == "stopped":
        # Not an error, as in runc: containerd's shim deletes an exited task with
        # `kill --all ID KILL` first (the CRI does so for every container), to end what
        # may be left in its cgroup: processes of a container that shares a pid namespace.
        if c.data.get("cgroup") and (cg := c.cgroup()).pids():
            cg.kill_all(sig)
        return
    status = require(c, "kill")
    if all_procs:
        c.cgroup().kill_all(sig)
        return
    if not signal_checked(c.pid, c.pid_start, sig):
        raise InvalidStatus(c.id, "kill", "stopped")
    if status == "paused" and sig == SIGKILL:
        c.cgroup().thaw()


def pause(c: st.Container) -> None:
    require(c, "pause")
    c.cgroup().freeze()


def resume(c: st.Container) -> None:
    require(c, "resume")
    c.cgroup().thaw()


def delete(c: st.Container, force: bool = False) -> None:
    """Also the clean-up of a create that died: its state names all it had made (a
    "creating" container whose creator is gone is stopped)."""
    status = c.status()
    crash.point("delete", "loaded")
    if status != "stopped":
        if not force and status not in ALLOWED["delete"]:
            raise InvalidStatus(c.id, "delete", status)
        # a frozen init dies only once thawed, which destroy() does: no wait for it here
        kill_checked(c.pid, c.pid_start, timeout_ms=0 if status == "paused" else 1000)
    crash.point("delete", "init-killed")
    if c.data.get("cgroup"):
        c.cgroup().destroy()  # SIGKILLs whatever is left in it first, exec'd processes too
    crash.point("delete", "cgroup-removed")
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
