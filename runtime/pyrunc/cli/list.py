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
            row = c.oci_state()
        finally:
            c.close()
        row["owner"] = _owner_name(row["owner"])
        rows.append(row)
    if opts["quiet"]:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif opts["format"] == "json":
        sys.stdout.write(jsonio.dumps(rows) + "\n")
    else:
        fmt = "{:<12} {:<10} {:<10} {:<40} {:<31} {}\n"
        out = [fmt.format("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        out += [fmt.format(r["id"], r["pid"], r["status"], r["bundle"], r["created"], r["owner"])
                for r in rows]
        sys.stdout.write("".join(out))
    return 0


def _owner_name(uid: str) -> str:
    """As runc's list: the user name of the container's owner ("" in the state is root)."""
    if not uid:
        return "root"
    import pwd  # only for containers of other users

    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        return uid
