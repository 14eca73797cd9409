"""check [-b BUNDLE]: what this host offers containers; with a bundle, what it cannot give it.

One line per fact: ✓ met, ✗ not met, ! met in part (create warns). Reads only. Exits 1
when the bundle asks for something this host cannot give (create would refuse it).
"""
from __future__ import annotations

import sys

from pyrunc import hostcheck
from pyrunc.cli.args import STR, Flag, parse


def _lines(title: str, facts: list[hostcheck.Fact]) -> list[str]:
    return [title] + [f"  {mark} {subject}: {meaning}" for mark, subject, meaning in facts]


def main(cmd: str, g, argv: list[str]) -> int:
    opts, _ = parse([Flag("--bundle,-b", STR)], argv)
    out = _lines("host", hostcheck.host(g.criu))
    missing = 0
    if opts["bundle"]:
        facts = hostcheck.bundle(opts["bundle"])
        missing = sum(mark == hostcheck.NO for mark, _, _ in facts)
        out += _lines(f"bundle {opts['bundle']}", facts)
        out.append(f"  {missing} request(s) this host cannot meet" if missing else "  this host can run it")
    # UTF-8 whatever the locale: the marks are not ASCII.
    sys.stdout.buffer.write(("\n".join(out) + "\n").encode())
    return 1 if missing else 0
