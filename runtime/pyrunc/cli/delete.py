"""delete [--force] ID."""
from __future__ import annotations

from pyrunc import lifecycle
from pyrunc import state as st
from pyrunc.cli.args import Flag, one_id, parse
from pyrunc.errors import context


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse([Flag("--force,-f")], argv)
    cid = one_id(pos, cmd)
    with context(f"{cmd} {cid}"), st.load(g.root, cid) as c:
        lifecycle.delete(c, opts["force"])
    return 0
