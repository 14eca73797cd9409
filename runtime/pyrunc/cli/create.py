"""create and run."""
from __future__ import annotations

import os
from _collections_abc import Callable  # collections.abc minus the ~1.5 ms collections import

# the C module: `signal` would first build its enums (~3 ms of start-up)
import _signal as signal

from pyrunc import lifecycle
from pyrunc import state as st
from pyrunc.cli.args import INT, STR, Flag, one_id, parse
from pyrunc.errors import BundleError, UsageError, context

CREATE_FLAGS = [
    Flag("--bundle,-b", STR, "."), Flag("--pid-file", STR), Flag("--console-socket", STR),
    Flag("--pidfd-socket", STR), Flag("--no-pivot"), Flag("--no-new-keyring"),
    Flag("--preserve-fds", INT, 0),
]
RUN_FLAGS = CREATE_FLAGS + [Flag("--detach,-d"), Flag("--keep"), Flag("--no-subreaper")]


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse(RUN_FLAGS if cmd == "run" else CREATE_FLAGS, argv)
    cid = one_id(pos, cmd)
    st.check_id(cid)
    with context(f"{cmd} {cid}"):
        c, master = _create(g, cid, opts, detach=cmd == "create" or opts["detach"])
        if cmd == "create":
            c.close()
            return 0
        try:
            lifecycle.start(c)
        except BaseException:
            if not c.removed:  # a failed hook has already destroyed it
                lifecycle.delete(c, force=True)
            raise
        pid = c.pid
        c.close()
        if opts["detach"]:
            return 0
        if master is None:
            status = _wait(pid)
        else:
            from pyrunc.linux.terminal import relay
            status = relay(master, lambda on_winch: _wait(pid, on_winch))
        if not opts["keep"]:
            lifecycle.delete(st.load(g.root, cid), force=True)
        return status


def _create(g, cid: str, opts: dict, detach: bool) -> tuple[st.Container, int | None]:
    """The container, and the pty master when this foreground run relays the terminal itself."""
    from pyrunc.linux.terminal import HostConsole
    from pyrunc.rootless import preflight
    from pyrunc.spec.load import load_config
    from pyrunc.spec.plan import build

    if opts["pidfd_socket"]:
        raise UsageError("--pidfd-socket is not supported yet")  # refused, never silently ignored
    config, bundle = load_config(opts["bundle"])
    preserve = opts["preserve_fds"] + _listen_fds(config)
    console = HostConsole(bool(config.get("process", {}).get("terminal")), opts["console_socket"], detach)
    plan = build(config, bundle, cid, no_pivot=opts["no_pivot"], no_new_keyring=opts["no_new_keyring"],
                 preserve_fds=preserve)
    plan.console_fd = console.child_fd()
    if not os.path.isdir(plan.rootfs):
        raise BundleError(f"root.path {plan.rootfs}: not a directory or does not exist")
    rootless = preflight(plan, g.rootless)
    c = lifecycle.create(g.root, plan, pid_file=opts["pid_file"], systemd_cgroup=g.systemd_cgroup,
                         rootless=rootless)
    return c, console.created()


def _listen_fds(config: dict) -> int:
    """Socket activation: LISTEN_FDS fds after stdio are passed on, as runc does."""
    n = os.environ.get("LISTEN_FDS", "")
    if not n.isdigit() or int(n) == 0:
        return 0
    env = config.setdefault("process", {}).setdefault("env", [])
    env += [f"LISTEN_FDS={n}", "LISTEN_PID=1"]
    return int(n)


def _wait(pid: int, on_winch: Callable[[], None] | None = None) -> int:
    """Forward signals to the init and return its exit status (128+signal when killed).

    With ``on_winch`` (we relay a pty), SIGWINCH resizes the pty instead of being forwarded."""
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
            try:
                signal.signal(sig, (lambda *_: on_winch()) if on_winch and sig == signal.SIGWINCH else forward)
            except (OSError, ValueError):
                pass
    while True:
        wpid, status = os.waitpid(-1, 0)  # as subreaper we also reap the container's orphans
        if wpid == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
