"""state: the OCI state of one container as JSON."""
from __future__ import annotations

import sys

from pyrunc import jsonio
from pyrunc import state as st
from pyrunc.cli.args import one_id, parse
from pyrunc.errors import context


def main(cmd: str, g, argv: list[str]) -> int:
    _, pos = parse([], argv)
    cid = one_id(pos, cmd)
    with context(f"{cmd} {cid}"), st.load(g.root, cid, shared=True) as c:
        sys.stdout.write(jsonio.dumps(c.oci_state(), indent=2) + "\n")
    return 0
