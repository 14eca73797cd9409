"""kill [--all] ID [SIGNAL]: SIGTERM by default; KILL, SIGKILL and 9 all work."""
from __future__ import annotations

from pyrunc import lifecycle
from pyrunc import state as st
from pyrunc.cli.args import Flag, parse
from pyrunc.errors import UsageError, context
from pyrunc.signals import parse_signal


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse([Flag("--all,-a")], argv)
    if len(pos) not in (1, 2):
        raise UsageError(f'"{cmd}" requires the container id and an optional signal')
    cid = pos[0]
    with context(f"{cmd} {cid}"):
        sig = parse_signal(pos[1] if len(pos) == 2 else "SIGTERM")
        with st.load(g.root, cid) as c:
            lifecycle.kill(c, sig, opts["all"])
    return 0
