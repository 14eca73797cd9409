"""create and run."""
from __future__ import annotations

from pyrunc import fs, lifecycle, log
from pyrunc import state as st
from pyrunc.cli.args import INT, STR, Flag, one_id, parse
from pyrunc.errors import UsageError, context
from pyrunc.process.children import block_signals, wait

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
        return foreground(g, c, master, detach=opts["detach"], keep=opts["keep"])


def foreground(g, c: st.Container, master: int | None, *, detach: bool, keep: bool = False) -> int:
    """After run's (or restore's) start: unless detached, relay signals (and the pty's
    ``master``) to the container's init until it exits, delete it unless ``keep``, and
    return its status."""
    pid, cid = c.pid, c.id
    c.close()
    if detach:
        return 0
    if master is None:
        status = wait(pid)
    else:
        from pyrunc.linux.terminal import relay
        block_signals()  # before relay starts its threads
        status = relay(master, lambda on_winch: wait(pid, on_winch))
    if not keep:
        lifecycle.delete(st.load(g.root, cid), force=True)
    return status


def _create(g, cid: str, opts: dict, detach: bool) -> tuple[st.Container, int | None]:
    """The container, and the pty master when this foreground run relays the terminal itself."""
    from pyrunc.spec.load import load_config

    if opts["pidfd_socket"]:
        raise UsageError("--pidfd-socket is not supported yet")  # refused, never silently ignored
    config, bundle = load_config(opts["bundle"])
    if fs.getenv("NOTIFY_SOCKET"):
        from pyrunc import notify
        notify.add_to_config(config, fs.join(g.root, cid))
    preserve = opts["preserve_fds"] + listen_fds(config)
    terminal = bool(config.get("process", {}).get("terminal"))
    console = None
    if terminal or opts["console_socket"]:  # terminal.py (and termios) only for those who need it
        from pyrunc.linux.terminal import HostConsole
        console = HostConsole(terminal, opts["console_socket"], detach)
    plan, rootless = lifecycle.prepare(config, bundle, cid, g.rootless, no_pivot=opts["no_pivot"],
                                       no_new_keyring=opts["no_new_keyring"], preserve_fds=preserve)
    plan.console_fd = console.child_fd() if console is not None else None
    log.step("create", "config", fs.join(bundle, "config.json"))  # read, checked and planned
    c = lifecycle.create(g.root, plan, pid_file=opts["pid_file"], systemd_cgroup=g.systemd_cgroup,
                         rootless=rootless)
    return c, console.created() if console is not None else None


def listen_fds(config: dict) -> int:
    """Socket activation: LISTEN_FDS fds after stdio are passed on, as runc does."""
    n = fs.getenv("LISTEN_FDS") or ""
    if not n.isdigit() or int(n) == 0:
        return 0
    env = config.setdefault("process", {}).setdefault("env", [])
    env += [f"LISTEN_FDS={n}", "LISTEN_PID=1"]
    return int(n)
