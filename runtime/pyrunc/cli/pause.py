"""pause ID / resume ID: freeze or thaw every process of the container's cgroup."""
from __future__ import annotations

from pyrunc import lifecycle
from pyrunc import state as st
from pyrunc.cli.args import one_id, parse
from pyrunc.errors import context


def main(cmd: str, g, argv: list[str]) -> int:
    _, pos = parse([], argv)
    cid = one_id(pos, cmd)
    with context(f"{cmd} {cid}"), st.load(g.root, cid) as c:
        lifecycle.pause(c) if cmd == "pause" else lifecycle.resume(c)
    return 0
