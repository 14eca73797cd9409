"""list [-f table|json] [-q]."""
from __future__ import annotations

import sys

from pyrunc import jsonio
from pyrunc import state as st
from pyrunc.cli.args import STR, Flag, parse
from pyrunc.errors import PyruncError, UsageError


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse([Flag("--format,-f", STR, "table"), Flag("--quiet,-q")], argv)
    if opts["format"] not in ("table", "json"):
        raise UsageError(f"invalid --format {opts['format']!r}: use table or json")
    rows = []
    for cid in st.list_ids(g.root):
        try:
            c = st.load(g.root, cid, shared=True)
        except PyruncError:
            continue  # deleted meanwhile
        try:
            rows.append(c.oci_state())
        finally:
            c.close()
    if opts["quiet"]:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif opts["format"] == "json":
        sys.stdout.write(jsonio.dumps(rows) + "\n")
    else:
        fmt = "{:<12} {:<10} {:<10} {:<40} {:<31} {}\n"
        out = [fmt.format("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        out += [fmt.format(r["id"], r["pid"], r["status"], r["bundle"], r["created"], r["owner"] or "root")
                for r in rows]
        sys.stdout.write("".join(out))
    return 0
