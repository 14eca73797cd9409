"""restore: a container made from a bundle and a checkpoint image. Its state and cgroup
are made as create makes them (lifecycle.first_state, the same Undo and crash points);
then criu, placed in that cgroup and in a private mount namespace where the rootfs is a
mount point of its own, restores the process tree. The restored init is the container's
init: its pid and start time go into state.json, and state, kill and delete work on it.
"""
from __future__ import annotations

import posix

from pyrunc import crash, fs, lifecycle
from pyrunc import state as st
from pyrunc.criu import actions, options, stdio
from pyrunc.criu.binary import CriuError
from pyrunc.criu.run import RESTORE_TIMEOUT, criu, image_dir, work_dir
from pyrunc.errors import PyruncError, context
from pyrunc.undo import Undo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

PID_FILE = "restored.pid"  # criu writes the restored init's pid here, in the work directory


def _private_root(plan, cg) -> None:
    """In criu's process before exec: into the container's cgroups (criu restores the tree
    below them), then a mount namespace of its own where the rootfs is bound onto itself
    (criu wants a mount point), so that nothing is left mounted on the host. That bind is
    the restored container's /: read-only if root.readonly says so."""
    from pyrunc.syscalls import calls as sc

    cg.apply(posix.getpid())
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount(plan.rootfs, plan.rootfs, None, sc.MS_BIND | sc.MS_REC)
    if plan.readonly_root:
        sc.mount(None, plan.rootfs, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def _hold_scope(cg) -> Callable[[], None]:
    """systemd starts a scope with its first process, and criu's tree is made later inside
    it: a child that waits (until released, or we die and its pipe closes) starts the scope
    instead. Returns the release, which may be called more than once."""
    r, w = posix.pipe()
    pid = posix.fork()
    if pid == 0:
        try:
            posix.close(w)
            posix.read(r, 1)  # EOF: released
        finally:
            posix._exit(0)
    posix.close(r)
    held = [True]

    def release() -> None:
        if held:
            held.clear()
            posix.close(w)
            posix.waitpid(pid, 0)

    try:
        with context("linux.cgroupsPath"):
            cg.join(v1=True, pid=pid)
            cg.join(v1=False, pid=pid)
    except BaseException:
        release()
        raise
    return release


def _cgroup_roots(cg) -> list[str]:
    """Each hierarchy's tree goes below the container's directory (the image's paths are
    relative to the dumped container's own), whatever the new id or cgroupsPath is."""
    out = []
    for key, d in cg.dirs.items():
        if key in cg.mounts:
            rel = fs.relpath(d, cg.mounts[key])
            prefix = f"{key}:" if key else ""  # cgroup2 has no controller name: the default root
            out += ["--cgroup-root", f"{prefix}/{'' if rel == '.' else rel}"]
    return out


def restore_argv(plan, opts: dict, images: str, stdio_fds: tuple[int, int, int]) -> tuple[list[str], list[int]]:
    """criu's arguments (but the action, logging, cgroup and pid file), and fds to pass on."""
    argv = ["--images-dir", images, "--root", plan.rootfs, "--restore-detached", "--restore-sibling",
            *options.common(plan, opts)]
    for point, src in options.bind_mounts(plan, make=True):
        argv += ["--external", f"mnt[{point}]:{src}"]
    fds: list[int] = []
    if (netns := options.external_netns(plan)) is not None:
        try:
            fd = posix.open(netns, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as exc:
            raise PyruncError(f"linux.namespaces network path {netns}: {exc.strerror}") from None
        fds.append(fd)
        argv += ["--inherit-fd", f"fd[{fd}]:{options.EXT_NETNS}"]
    if opts["lsm_profile"]:
        argv += ["--lsm-profile", opts["lsm_profile"]]
    if opts["lsm_mount_context"]:
        argv += ["--lsm-mount-context", opts["lsm_mount_context"]]
    if opts["no_pivot"]:
        from pyrunc import log
        log.warn("--no-pivot: criu rebuilds the restored mount namespace with pivot_root all the same")
    more, inherited = stdio.inherit(images, stdio_fds)
    return argv + more, fds + inherited


def restore(root: str, plan, opts: dict, criu_path: str, *, stdio_fds: tuple[int, int, int] | None = None,
            systemd_cgroup: bool = False, rootless: bool = False) -> st.Container:
    """Restore the image into a new container ``plan.id``; return its (locked) state.
    ``stdio_fds``: criu's fds 0-2 (a new terminal's slave), else ours."""
    images = image_dir(opts["image_path"], create=False)
    work = work_dir(opts["work_path"], images)
    if opts["pid_file"]:
        lifecycle.check_pid_file_dir(opts["pid_file"])
    cg = lifecycle.cgroup_for(plan, systemd_cgroup=systemd_cgroup, rootless=rootless)
    data = lifecycle.first_state(plan, cg)
    poststop = (plan.config.get("hooks") or {}).get("poststop")
    if poststop:  # delete, or a failed restore, runs them (runc's too)
        data["hooks"] = {"poststop": poststop}
    io = stdio_fds or (0, 1, 2)
    with Undo() as undo:
        argv, fds = restore_argv(plan, opts, images, io)
        for fd in fds:
            undo.callback(posix.close, fd)
        if stdio_fds is not None and options.has_terminal(plan):
            argv += ["--external", f"mnt[{options.CONSOLE}]:{posix.ttyname(stdio_fds[0])}"]
        c = st.create_dir(root, plan.id, data)
        undo.callback(c.remove)
        if poststop:
            from pyrunc import hooks

            hooks.poststop_on_failure(undo, c)
        crash.point("restore", "state-dir")
        lifecycle.save_config(c, plan.config)
        script, env = actions.criu_args(plan.config, c.dir)  # prestart, createRuntime
        argv += script
        with context("linux.cgroupsPath"):
            cg.create()
        undo.callback(cg.destroy)  # kills whatever criu put in it, too
        crash.point("restore", "cgroup")
        release = _hold_scope(cg) if getattr(cg, "owned", None) is False else None  # a scope to start
        if release is not None:
            undo.callback(release)
        cg.set_resources(plan.config.get("linux", {}).get("resources") or {})
        pid_path = fs.join(work, PID_FILE)
        if fs.exists(pid_path):
            posix.unlink(pid_path)
        argv += ["--pidfile", pid_path, *_cgroup_roots(cg)]
        for point, src in options.cgroup_binds(plan, cg):  # the new container's directories
            argv += ["--external", f"mnt[{point}]:{src}"]
        crash.point("restore", "restoring")
        try:
            criu(criu_path, "restore", argv, work, timeout=RESTORE_TIMEOUT, pass_fds=tuple(fds),
                 prepare=lambda: _private_root(plan, cg), stdio=io, env=env)
        except CriuError:
            hook = actions.failure(c.dir) if env is not None else None
            if hook is not None:
                raise hook from None  # the hook's own line, not criu's "script failed"
            raise
        crash.point("restore", "restored")
        if release is not None:
            release()  # the tree is in the scope now
        with open(pid_path) as f:
            pid = int(f.read().strip())
        data["pid"], data["pid_start"] = pid, st.pid_start_time(pid)
        if data["pid_start"] is None:
            raise PyruncError(f"the restored init {pid} exited at once")
        data["restored"] = images  # explain: criu, not create, made the namespaces and mounts
        c.save()
        crash.point("restore", "state-written")
        if opts["pid_file"]:
            lifecycle.write_pid_file(opts["pid_file"], pid)
        undo.pop_all()
    for fd in fds:
        posix.close(fd)
    return c
