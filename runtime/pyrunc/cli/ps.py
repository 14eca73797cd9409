"""ps [-f table|json] ID [PS ARGS...]: the processes in the container's cgroup.

json (containerd's call) is the array of their host pids; table runs the host's
ps(1) with PS ARGS (default -ef) and keeps the header and those pids' rows.
"""
from __future__ import annotations

import json
import sys

from pyrunc import state as st
from pyrunc.cli.args import STR, Flag, parse
from pyrunc.errors import PyruncError, UsageError, context


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse([Flag("--format,-f", STR, "table")], argv, stop_at_positional=True)
    if not pos:
        raise UsageError(f'"{cmd}" requires the container id and optional ps(1) arguments')
    if opts["format"] not in ("table", "json"):
        raise UsageError(f"invalid --format {opts['format']!r}: use table or json")
    cid, ps_args = pos[0], pos[1:]
    with context(f"{cmd} {cid}"), st.load(g.root, cid, shared=True) as c:
        pids = c.cgroup().pids()
        if opts["format"] == "json":
            sys.stdout.write(json.dumps(sorted(pids)) + "\n")
        else:
            sys.stdout.write(_table(ps_args or ["-ef"], set(pids)))
    return 0


def _table(ps_args: list[str], pids: set[int]) -> str:
    import subprocess   # only the table needs it (containerd asks for json)

    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise PyruncError(f"ps: {exc.strerror}") from None
    if out.returncode != 0:
        raise PyruncError(f"ps {' '.join(ps_args)}: {out.stderr.strip() or f'exit {out.returncode}'}")
    lines = out.stdout.splitlines()
    header = lines[0].split() if lines else []
    if "PID" not in header:
        raise PyruncError(f"ps {' '.join(ps_args)}: no PID column in its output")
    col = header.index("PID")
    rows = [ln for ln in lines[1:] if _pid_at(ln, col) in pids]
    return "\n".join([lines[0], *rows]) + "\n"


def _pid_at(line: str, col: int) -> int | None:
    fields = line.split()
    try:
        return int(fields[col])
    except (IndexError, ValueError):
        return None
