"""The container side of create: a forked copy of pyrunc that becomes the container's init.

Runs without threads and without re-executing the interpreter. Every step is
small and named; any exception travels to the parent as an "error" message
and the child exits. Nothing here parses config: it carries out the Plan.
"""
from __future__ import annotations

import posix
import select

from pyrunc import log
from pyrunc.errors import context
from pyrunc.linux import attrs, confine, devices, mounts, namespaces, net, rootfs, sysctl
from pyrunc.linux import idmap, userns
from pyrunc.process.become import become
from pyrunc.process.launch import launch
from pyrunc.process.protocol import Channel, ProtocolError, die_with_parent, fork_and_report_pid, report_and_exit
from pyrunc.spec.plan import Plan
from pyrunc.syscalls import calls as sc

TYPE_CHECKING = False  # typing costs ~3 ms to import
if TYPE_CHECKING:
    from typing import NoReturn


def bootstrap(plan: Plan, chan: Channel, fifo_fd: int, cgroup, born: int, launcher_fd: int) -> NoReturn:
    """First child, born in the new namespaces ``born``: enter the others, fork the init
    if a pid/time namespace entered now needs it."""
    try:
        die_with_parent(chan)
        # Imported now, what only some configs need: after pivot_root (or in a new
        # user namespace) the host's files, our modules among them, are out of reach.
        if log.debugging():  # for report_and_exit
            import traceback  # noqa: F401
        if plan.process.get("terminal"):
            from pyrunc.linux import terminal  # noqa: F401
        if plan.config.get("hooks"):
            from pyrunc import hooks  # noqa: F401
        # Non-dumpable before touching container namespaces: a container process
        # must not be able to open our /proc/<pid>/{exe,fd,mem} or ptrace us.
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        with context("cgroup"):
            cgroup.join(v1=True)
        chan.recv("go")
        idmap.prepare(plan)  # while still root in the host's namespaces
        namespaces.join(plan)
        userns.enter(plan, chan)
        die_with_parent(chan)  # becoming root of a user namespace cleared it
        namespaces.unshare(plan, born)
        offsets = plan.config.get("linux", {}).get("timeOffsets")
        if offsets:
            namespaces.write_time_offsets(offsets)
        chan.crash_point("create", "namespaces")
        if namespaces.needs_fork(plan, born):
            fork_and_report_pid(chan)
        else:
            chan.send("pid", pid=0)  # the init is this process, whose host pid the parent has
        init(plan, chan, fifo_fd, cgroup, launcher_fd)
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as data
        report_and_exit(chan, exc)


def init(plan: Plan, chan: Channel, fifo_fd: int, cgroup, launcher_fd: int) -> NoReturn:
    process, a = plan.process, plan.attrs
    attrs.set_oom_score_adj(a.oom_score_adj)
    if plan.has_ns("mount"):
        rootfd = mounts.setup_root(plan)
        read_only_later = mounts.apply_all(plan, rootfd, cgroup)
    # The parent has written linux.resources meanwhile. Device nodes come after that: v1's
    # device rules pass through a deny-all while they are written, when mknod would fail.
    _await_parent(chan, "resources")
    if plan.has_ns("mount"):
        devices.setup(rootfd, plan.config.get("linux", {}).get("devices", []),
                      defaults=not devices.dev_is_bind(plan.mounts))
        if process.get("terminal"):
            from pyrunc.linux import terminal  # imported by bootstrap
            terminal.setup(rootfd, plan.console_fd, process)
        posix.close(rootfd)
    elif process.get("terminal"):
        from pyrunc.linux import terminal  # imported by bootstrap
        terminal.setup(None, plan.console_fd, process)
    rootfs.make_cwd(plan.rootfs, process.get("cwd", "/"))
    if plan.hostname is not None and plan.has_ns("uts"):
        sc.sethostname(plan.hostname)
    if plan.domainname is not None and plan.has_ns("uts"):
        sc.setdomainname(plan.domainname)
    if plan.new_ns & sc.CLONE_NEWNET:
        net.loopback_up()
    chan.crash_point("create", "rootfs")
    start_sync = None
    if plan.config.get("hooks"):
        from pyrunc import hooks  # imported by bootstrap
        start_sync = hooks.create_container(plan, chan)  # after prestart/createRuntime in the parent
    if plan.has_ns("mount"):
        mounts.remount_readonly(read_only_later)
        rootfs.pivot(plan.rootfs, plan.no_pivot, plan.config.get("linux", {}).get("rootfsPropagation"))
    else:  # the runtime's own mount namespace (config-linux.md: inherited): never pivot it
        rootfs.chroot(plan.rootfs)
    if plan.config.get("linux", {}).get("netDevices"):
        _await_parent(chan, "netdevices-done")  # net.* sysctls may name a moved device
    sysctl.apply(plan.config.get("linux", {}).get("sysctl") or {})
    if plan.has_ns("mount"):
        rootfs.mask_paths(plan.masked_paths)
        rootfs.readonly_paths(plan.readonly_paths)
        if plan.readonly_root:
            rootfs.readonly_root()
    if not plan.no_new_keyring:
        _join_keyring(plan.id)
    path, env = become(process, a, plan.confine, chan)  # process/become.py, shared with exec
    die_with_parent(chan)  # the user switch cleared it
    chan.crash_point("create", "user")
    chan.send("ready")
    # The launcher waits: a few pages, where we are an interpreter. It also takes "created"
    # and answers "detached", so its execve overlaps create's state save; not under a filter
    # in place already (SCMP_ACT_NOTIFY), where create would wait on the agent's answer to it.
    if start_sync is None and not plan.confine.installed:
        launch(launcher_fd, path, process["args"], env, plan.confine, 3 + plan.preserve_fds, fifo_fd,
               detach_fd=chan.fileno())
    _await_parent(chan, "created")  # the state is complete: from now on we outlive create
    sc.prctl(sc.PR_SET_PDEATHSIG, 0)
    chan.send("detached")
    if start_sync is None:
        launch(launcher_fd, path, process["args"], env, plan.confine, 3 + plan.preserve_fds, fifo_fd)
    _wait_for_start(fifo_fd)
    posix.close(fifo_fd)
    confine.install_early(plan.confine, any_filter=True)  # startContainer hooks run under it, as in runc
    from pyrunc import hooks  # imported by bootstrap
    hooks.start_container(plan, start_sync)  # in the container, after start, before the program
    launch(launcher_fd, path, process["args"], env, plan.confine, 3 + plan.preserve_fds)


def _await_parent(chan: Channel, kind: str) -> None:
    """Wait for a step the parent does for us; if the parent gives up it reports why, so exit quietly."""
    try:
        chan.recv(kind)
    except ProtocolError:
        posix._exit(1)


def _join_keyring(cid: str) -> None:
    try:
        sc.keyctl_join_session_keyring(f"_ses.{cid}")
    except OSError as exc:
        if exc.errno not in (38, 13, 1):  # ENOSYS, EACCES, EPERM: keyrings unavailable here, as runc
            raise


def _wait_for_start(fifo_fd: int) -> None:
    """Block until `start` writes to exec.fifo. The parent opened it O_RDWR|O_NONBLOCK: as a
    writer ourselves we never see EOF or POLLHUP when a `state` probe opens and closes it."""
    poller = select.poll()
    poller.register(fifo_fd, select.POLLIN)
    while True:
        poller.poll()
        try:
            if posix.read(fifo_fd, 1):
                return
        except BlockingIOError:  # woken without a byte: wait again
            continue
