"""The container side of create: a forked copy of pyrunc that becomes the container's init.

Runs without threads and without re-executing the interpreter. Every step is
small and named; any exception travels to the parent as an "error" message
and the child exits. Nothing here parses config: it carries out the Plan.
"""
from __future__ import annotations

import os
import select
import socket
import sys
from typing import NoReturn

from pyrunc import log
from pyrunc.errors import PyruncError
from pyrunc.linux import devices, execute, mounts, namespaces, net, rootfs
from pyrunc.process.protocol import Channel
from pyrunc.spec.plan import Plan
from pyrunc.syscalls import calls as sc


_traceback = None


def report_and_exit(chan: Channel, exc: BaseException) -> NoReturn:
    """Never returns: a child must not unwind into the parent's code."""
    try:
        if isinstance(exc, (PyruncError, OSError)):
            msg = str(exc)
        else:  # a bug: name it, and keep the traceback for --debug
            msg = f"internal error: {type(exc).__name__}: {exc}"
            if _traceback is not None:
                log.debug("container setup: " + "".join(_traceback.format_exception(exc)))
        try:
            chan.send("error", msg=msg)
        except OSError:
            os.write(2, f"pyrunc: {msg}\n".encode(errors="replace"))
    finally:
        os._exit(1)


def bootstrap(plan: Plan, chan: Channel, fifo_fd: int, cgroup) -> NoReturn:
    """First child: enter namespaces, fork the init if a pid/time namespace needs it."""
    global _traceback
    try:
        if log.debugging():  # imported now: after pivot_root our modules are out of reach
            import traceback as _traceback
        # Non-dumpable before touching container namespaces: a container process
        # must not be able to open our /proc/<pid>/{exe,fd,mem} or ptrace us.
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        chan.recv("go")
        namespaces.join(plan)
        namespaces.unshare(plan)
        offsets = plan.config.get("linux", {}).get("timeOffsets")
        if offsets:
            namespaces.write_time_offsets(offsets)
        if namespaces.needs_fork(plan):
            pid = os.fork()
            if pid:
                chan.send("pid", pid=pid)
                os._exit(0)
        else:
            chan.send("pid", pid=os.getpid())
        init(plan, chan, fifo_fd, cgroup)
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as data
        report_and_exit(chan, exc)


def init(plan: Plan, chan: Channel, fifo_fd: int, cgroup) -> NoReturn:
    process = plan.process
    if plan.has_ns("mount"):
        rootfd = mounts.setup_root(plan)
        mounts.apply_all(plan, rootfd, cgroup)
        devices.setup(rootfd, plan.config.get("linux", {}).get("devices", []),
                      defaults=not devices.dev_is_bind(plan.mounts))
        os.close(rootfd)
    if plan.hostname is not None and plan.has_ns("uts"):
        socket.sethostname(plan.hostname)
    if plan.domainname is not None and plan.has_ns("uts"):
        sc.setdomainname(plan.domainname)
    if plan.new_ns & sc.CLONE_NEWNET:
        net.loopback_up()
    rootfs.pivot(plan.rootfs, plan.no_pivot)
    if plan.has_ns("mount"):
        rootfs.mask_paths(plan.masked_paths)
        rootfs.readonly_paths(plan.readonly_paths)
        if plan.readonly_root:
            rootfs.readonly_root()
    if not plan.no_new_keyring:
        _join_keyring(plan.id)
    env = execute.final_env(process)
    path = execute.find_executable(process["args"][0], env)
    os.umask(process.get("user", {}).get("umask", 0o022))
    execute.switch_user(process.get("user", {}))
    execute.enter_cwd(process.get("cwd", "/"))
    chan.send("ready")
    _wait_for_start(fifo_fd)
    # Everything above fd 2 (+ preserved fds) is close-on-exec from here on.
    sc.close_range(3 + plan.preserve_fds, flags=4)  # CLOSE_RANGE_CLOEXEC
    sys.stdout.flush()
    os.execve(path, process["args"], execute.env_dict(env))


def _join_keyring(cid: str) -> None:
    try:
        sc.keyctl_join_session_keyring(f"_ses.{cid}")
    except OSError as exc:
        if exc.errno not in (38, 13, 1):  # ENOSYS, EACCES, EPERM: keyrings unavailable here, as runc
            raise


def _wait_for_start(fifo_fd: int) -> None:
    """Block until `start` writes to exec.fifo (opened O_RDONLY|O_NONBLOCK by the parent)."""
    poller = select.poll()
    poller.register(fifo_fd, select.POLLIN)
    while True:
        poller.poll()
        try:
            if os.read(fifo_fd, 1):
                return
        except BlockingIOError:
            continue
        select.select([], [], [], 0.05)  # a writer came and went without a byte: keep waiting
