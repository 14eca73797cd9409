"""delete [--force] ID."""
from __future__ import annotations

from pyrunc import lifecycle
from pyrunc import state as st
from pyrunc.cli.args import Flag, one_id, parse
from pyrunc.errors import ContainerNotFound, context


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse([Flag("--force,-f")], argv)
    cid = one_id(pos, cmd)
    with context(f"{cmd} {cid}"):
        try:
            c = st.load(g.root, cid)
        except ContainerNotFound:
            # As runc: engines force-delete after every exit and failed create, and
            # an id that is already gone is what they asked for. A directory left
            # without a state (its creator or deleter was killed) goes too.
            if opts["force"]:
                st.remove_leftover(g.root, cid)
                return 0
            raise
        with c:
            lifecycle.delete(c, opts["force"])
    return 0
