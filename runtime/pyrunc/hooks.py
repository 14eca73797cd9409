"""OCI hooks (config.md "POSIX-platform Hooks"): run one hook list with the state on stdin.

Where each kind runs (runtime-spec 1.3):

    kind             who runs it              namespaces  path resolves in   state status
    prestart         create's parent          runtime     runtime            creating
    createRuntime    create's parent          runtime     runtime            creating
    createContainer  the init, before pivot   container   runtime (old root) creating (pid as seen inside)
    startContainer   the init, after start    container   container          created  (pid as seen inside)
    poststart        start, after execve      runtime     runtime            running
    poststop         delete (or failed create) runtime    runtime            stopped

restore runs prestart and createRuntime as runc does: as criu's child (criu/actions.py) once
criu has made the restored tree's namespaces, with the restored init's pid; poststop runs on a
failed restore and on delete, as after create; the other kinds never run for it.

The runner is plain posix.posix_spawn + poll on a pidfd: it imports nothing new,
so the init can use it after pivot_root, when the host's modules are out of reach.
"""
from __future__ import annotations

import posix
import select
import time

# _signal is the C module: `signal` would first build its enums (~2 ms of start-up)
from _signal import SIGKILL, SIGPIPE, SIGXFSZ

from pyrunc import fs, jsonio, log
from pyrunc.errors import PyruncError

_OUTPUT_LIMIT = 4096  # bytes of a failed hook's output kept for the error message


# kind -> (who runs it, when): the table above, for `explain`
WHEN = {
    "prestart": ("parent", "create, once the init has its mounts (restore: once criu has made the namespaces), "
                           "in the runtime's namespaces (deprecated)"),
    "createRuntime": ("parent", "create, once the init has its mounts (restore: once criu has made the "
                                "namespaces), in the runtime's namespaces"),
    "createContainer": ("init", "create, in the container's namespaces before pivot_root, in the rootfs"),
    "startContainer": ("init", "start, in the container, just before the program is executed"),
    "poststart": ("start", "start, once the program runs, in the runtime's namespaces"),
    "poststop": ("delete", "delete (or a failed create), once the container is gone"),
}


class HookError(PyruncError):
    """A hook could not be started, failed, or timed out."""


def of(config: dict, kind: str) -> list[dict]:
    return (config.get("hooks") or {}).get(kind) or []


def saved(config: dict) -> dict:
    """The hooks later commands run (start, delete): kept in state.json."""
    return {k: of(config, k) for k in ("startContainer", "poststart", "poststop") if of(config, k)}


def run(kind: str, hooks: list[dict], state: dict) -> None:
    """Run ``hooks`` in order; the first failure raises HookError (with the hook's output)."""
    if not hooks:
        return
    payload = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks):
        _run_one(f"hooks.{kind}[{i}] {hook['path']}", hook, payload)


def run_warn(kind: str, hooks: list[dict], state: dict) -> None:
    """poststop: a failure is a warning and the remaining hooks still run (runtime.md step 13)."""
    payload = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            _run_one(f"hooks.{kind}[{i}] {hook['path']}", hook, payload)
        except HookError as exc:
            log.warn(str(exc))


def _run_one(label: str, hook: dict, payload: bytes) -> None:
    path = hook["path"]
    argv = hook.get("args") or [path]
    # Like runc: no "env" means the runtime's environment, an empty list means none.
    env = fs.environ() if hook.get("env") is None else _env_dict(hook["env"])
    in_r, in_w = posix.pipe2(posix.O_CLOEXEC)
    out_r, out_w = posix.pipe2(posix.O_CLOEXEC)
    fds = [in_r, in_w, out_r, out_w]
    try:
        try:
            # Python ignores SIGPIPE/SIGXFSZ; a hook (often a shell script) must not inherit that.
            # Its own process group: a timeout kills what the hook started, too.
            pid = posix.posix_spawn(path, argv, env, setsigdef=(SIGPIPE, SIGXFSZ), setpgroup=0, file_actions=[
                (posix.POSIX_SPAWN_DUP2, in_r, 0), (posix.POSIX_SPAWN_DUP2, out_w, 1),
                (posix.POSIX_SPAWN_DUP2, out_w, 2), *_close_the_rest()])
        except OSError as exc:
            raise HookError(f"{label}: cannot run: {exc.strerror}") from None
        for fd in (in_r, out_w, in_w):  # in_w: _wait closes it once the state is written
            fds.remove(fd)
        posix.close(in_r)
        posix.close(out_w)
        status, output = _wait(pid, payload, in_w, out_r, hook.get("timeout"), label)
    finally:
        for fd in fds:
            posix.close(fd)
    if status != 0:
        why = f"exit status {status}" if status > 0 else f"killed by signal {-status}"
        tail = output.decode(errors="replace").strip().replace("\n", "; ")
        raise HookError(f"{label}: {why}" + (f": {tail}" if tail else ""))


def _close_the_rest() -> list[tuple[int, int]]:
    """A hook gets fds 0-2 alone: posix_spawn closes nothing by itself, and some of ours are
    inheritable (the container's preserved fds, the init's fifo). Closing a descriptor that
    is not open is no error for posix_spawn; without a procfs every number up to 1024 goes."""
    try:
        fds = [int(name) for name in posix.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(1024))
    return [(posix.POSIX_SPAWN_CLOSE, fd) for fd in fds if fd > 2]


def _env_dict(env: list[str]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in env if "=" in e)


def _wait(pid: int, payload: bytes, in_w: int, out_r: int, timeout: int | None,
          label: str) -> tuple[int, bytes]:
    """Feed the state to stdin, collect stdout+stderr, wait for the exit (a pidfd,
    so a daemon the hook left holding the pipe cannot stall us); SIGKILL on timeout."""
    pidfd = posix.pidfd_open(pid)
    posix.set_blocking(in_w, False)
    deadline = time.monotonic() + timeout if timeout else None
    todo = memoryview(payload)
    output = bytearray()
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(out_r, select.POLLIN)
    poller.register(in_w, select.POLLOUT)
    try:
        while True:
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000) + 1)
            events = poller.poll(left)
            if deadline is not None and time.monotonic() >= deadline and not _exited(pidfd):
                # the group spawned for the hook: its leader is not reaped, so the id is still its
                posix.killpg(pid, SIGKILL)
                posix.waitpid(pid, 0)
                raise HookError(f"{label}: timed out after {timeout}s (killed)")
            for fd, _ev in events:
                if fd == in_w:
                    todo = _feed(in_w, todo)
                    if not todo:  # EOF on the hook's stdin
                        poller.unregister(in_w)
                        posix.close(in_w)
                        in_w = -1
                elif fd == out_r:
                    if not _read_some(out_r, output):
                        poller.unregister(out_r)
                elif fd == pidfd:
                    _, wstatus = posix.waitpid(pid, 0)
                    posix.set_blocking(out_r, False)
                    while _read_some(out_r, output):
                        pass
                    return posix.waitstatus_to_exitcode(wstatus), bytes(output[-_OUTPUT_LIMIT:])
    finally:
        posix.close(pidfd)
        if in_w >= 0:
            posix.close(in_w)


def _exited(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


def _feed(fd: int, todo: memoryview) -> memoryview:
    """Write what the pipe takes; a hook that exits without reading stdin is fine."""
    try:
        return todo[posix.write(fd, todo):]
    except BlockingIOError:
        return todo
    except BrokenPipeError:
        return todo[:0]


def _read_some(fd: int, out: bytearray) -> bool:
    try:
        chunk = posix.read(fd, 65536)
    except BlockingIOError:
        return False
    out += chunk
    del out[:-_OUTPUT_LIMIT]
    return bool(chunk)


# ---- lifecycle glue: one call at each point of create / init / start / delete -----------------

SYNC_FIFO = "hooks.fifo"  # the init -> start report of startContainer (EOF = the init called execve)


def _state(data: dict, cid: str, status: str, pid: int) -> dict:
    return {"ociVersion": "1.3.0", "id": cid, "status": status, "pid": pid, "bundle": data["bundle"],
            "annotations": data.get("annotations") or {}}


def _has_sync(config: dict) -> bool:
    return bool(of(config, "startContainer") or of(config, "poststart"))


def _needs_parent(config: dict) -> bool:
    """Whether the init stops before pivot_root for the parent: runtime-namespace hooks to run,
    or a sync fifo to receive because start must learn how startContainer went."""
    return bool(of(config, "prestart") or of(config, "createRuntime") or _has_sync(config))


def on_create(undo, c, config: dict) -> None:
    """create, right after the state dir exists (its state keeps saved(config) from the
    start): make a failed create end like a delete (runtime.md lifecycle: "continue at
    step 12", so poststop runs)."""
    if _has_sync(config):
        posix.mkfifo(SYNC_FIFO, 0o600, dir_fd=c.dir_fd)
    poststop_on_failure(undo, c)


def poststop_on_failure(undo, c) -> None:
    """create and restore, once the state dir exists: if they fail, poststop (saved in the
    state) runs once the rest is undone, as after a delete."""
    poststop = (c.data.get("hooks") or {}).get("poststop")
    if poststop:
        undo.callback(lambda: run_warn("poststop", poststop, _state(c.data, c.id, "stopped", c.data.get("pid", 0))))


def create_runtime(chan, plan, c, init_pid: int) -> None:
    """create's parent, once the init has its mounts ("hooks"): prestart, createRuntime; then
    hand the init the write end of the sync fifo with "hooks-done"."""
    if not _needs_parent(plan.config):
        return
    chan.recv("hooks")
    prestart_create_runtime(plan.config, c.data, c.id, init_pid)
    if not _has_sync(plan.config):
        chan.send("hooks-done")
        return
    # O_RDWR: opening never blocks, and the init keeps a writer open until execve closes it.
    fd = posix.open(SYNC_FIFO, posix.O_RDWR | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=c.dir_fd)
    try:
        chan.send_fd("hooks-done", fd)
    finally:
        posix.close(fd)


def prestart_create_runtime(config: dict, data: dict, cid: str, init_pid: int) -> None:
    """prestart, then createRuntime, in the runtime's namespaces with the state "creating":
    create's parent, and restore once criu has made the namespaces (criu/actions.py)."""
    state = _state(data, cid, "creating", init_pid)
    run("prestart", of(config, "prestart"), state)
    run("createRuntime", of(config, "createRuntime"), state)


def create_container(plan, chan) -> int | None:
    """The init, mounts done and before pivot_root (so paths resolve as on the host):
    wait for the parent's hooks, then run createContainer here, in the container's
    namespaces. Returns the sync fifo fd for start_container."""
    from pyrunc.process.protocol import ProtocolError  # already loaded in the init: no import cost

    sync_fd = None
    if _needs_parent(plan.config):
        chan.send("hooks")
        try:
            if _has_sync(plan.config):
                sync_fd = chan.recv_fd("hooks-done")[1]
            else:
                chan.recv("hooks-done")
        except ProtocolError:  # the parent gave up (a hook failed): it reports why
            posix._exit(1)
    hooks = of(plan.config, "createContainer")
    if hooks:
        posix.chdir(plan.rootfs)  # their working directory, as runc's: the container's root to be
        run("createContainer", hooks, _state({"bundle": plan.bundle, "annotations": plan.config.get("annotations")},
                                             plan.id, "creating", posix.getpid()))
    return sync_fd


def start_container(plan, sync_fd: int | None) -> None:
    """The init, after start released it: startContainer in the container (paths resolve inside).
    A failure goes to `start` through the sync fifo and the init exits: the container is stopped."""
    hooks = of(plan.config, "startContainer")
    if not hooks or sync_fd is None:
        return
    try:
        run("startContainer", hooks, _state({"bundle": plan.bundle, "annotations": plan.config.get("annotations")},
                                            plan.id, "created", posix.getpid()))
    except HookError as exc:
        posix.write(sync_fd, str(exc).encode(errors="replace")[:4000])
        posix._exit(1)


def before_start(c) -> int | None:
    """start, before it writes exec.fifo: open the read end of the sync fifo."""
    if not _has_sync(c.data):
        return None
    return posix.open(SYNC_FIFO, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=c.dir_fd)


def after_start(c, sync_fd: int | None) -> None:
    """start, after exec.fifo: wait until the init called execve (EOF) or reported a failed
    startContainer hook; then poststart. Either failure stops the container."""
    if sync_fd is None:
        return
    report = bytearray()
    bound = _execve_bound(c.data)
    deadline = None if bound is None else time.monotonic() + bound
    try:
        poller = select.poll()
        poller.register(sync_fd, select.POLLIN)
        while True:
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not poller.poll(left):
                report += f"container init did not reach execve within {bound:g} s".encode()
                break
            try:
                chunk = posix.read(sync_fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                break
            report += chunk
    finally:
        posix.close(sync_fd)
    posix.unlink(SYNC_FIFO, dir_fd=c.dir_fd)
    if report:
        _stop(c)
        raise HookError(report.decode(errors="replace"))
    try:
        run("poststart", (c.data.get("hooks") or {}).get("poststart") or [],
            _state(c.data, c.id, "running", c.pid))
    except HookError:
        _stop(c)
        raise


def _execve_bound(data: dict) -> float | None:
    """Seconds the init may take from start to execve: the setup's bound and every
    startContainer hook's timeout (None: a hook without one may run for ever)."""
    from pyrunc.process.protocol import setup_timeout

    timeouts = [h.get("timeout") for h in (data.get("hooks") or {}).get("startContainer") or []]
    return None if None in timeouts else setup_timeout() + sum(timeouts)


def _stop(c) -> None:
    """SIGKILL the init and wait until it is gone (it is not our child: poll its start time)."""
    from pyrunc.process.pidfd import signal_checked

    if not signal_checked(c.pid, c.pid_start, SIGKILL):
        return
    deadline = time.monotonic() + 10
    while c.init_alive() and time.monotonic() < deadline:
        time.sleep(0.005)


def after_delete(c) -> None:
    """delete, once everything is gone: poststop, where a failure is only a warning."""
    later = c.data.get("hooks") or {}
    if later.get("poststop"):
        run_warn("poststop", later["poststop"], _state(c.data, c.id, "stopped", c.data.get("pid", 0)))
