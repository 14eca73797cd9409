"""restore [flags] ID: a container made from a bundle and a checkpoint image (runc's flags).
In the foreground it waits for the restored init, as `run` does; with -d it returns."""
from __future__ import annotations

import posix

from pyrunc import fs, lifecycle
from pyrunc import state as st
from pyrunc.cli.args import STR, Flag, one_id, parse
from pyrunc.cli.checkpoint import SHARED
from pyrunc.cli.create import foreground
from pyrunc.errors import PyruncError, context

FLAGS = SHARED + [Flag("--bundle,-b", STR, "."), Flag("--console-socket", STR), Flag("--detach,-d"),
                  Flag("--pid-file", STR), Flag("--no-subreaper"), Flag("--no-pivot"), Flag("--lsm-profile", STR),
                  Flag("--lsm-mount-context", STR)]


def main(cmd: str, g, argv: list[str]) -> int:
    from pyrunc.criu import restore
    from pyrunc.criu.binary import usable
    from pyrunc.spec.load import load_config
    from pyrunc.syscalls import calls as sc

    opts, pos = parse(FLAGS, argv)
    cid = one_id(pos, cmd)
    st.check_id(cid)
    with context(f"{cmd} {cid}"):
        criu_path, _ = usable(g.criu)  # before anything is made
        if fs.exists(fs.join(g.root, cid)):  # before a console socket is connected to
            raise PyruncError(f"container {cid!r} already exists ({fs.join(g.root, cid)})")
        config, bundle = load_config(opts["bundle"])
        plan, rootless = lifecycle.prepare(config, bundle, cid, g.rootless, no_pivot=opts["no_pivot"])
        console, slave = _terminal(config, opts)
        if not opts["detach"] and not opts["no_subreaper"]:
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the init's orphans come to us to be reaped
        try:
            c = restore.restore(g.root, plan, opts, criu_path, stdio_fds=(slave,) * 3 if slave is not None else None,
                                systemd_cgroup=g.systemd_cgroup, rootless=rootless)
        finally:
            if slave is not None:
                posix.close(slave)
        master = console.created() if console is not None else None
        return foreground(g, c, master, detach=opts["detach"])


def _terminal(config: dict, opts: dict):
    """For a container with process.terminal: a new pty whose slave stands for the dumped
    terminal and whose master goes to --console-socket (or to us, in the foreground)."""
    if not (config.get("process", {}).get("terminal") or opts["console_socket"]):
        return None, None
    from pyrunc import unixsock
    from pyrunc.linux.terminal import HostConsole

    console = HostConsole(bool(config.get("process", {}).get("terminal")), opts["console_socket"], opts["detach"])
    master, slave = posix.openpty()
    try:
        unixsock.send_fds(console.theirs, [posix.ttyname(slave).encode()], [master])
    finally:
        posix.close(master)
    return console, slave
