"""A small runc-compatible flag parser: --flag v, --flag=v, Go-style -flag, short -f.

argparse costs ~2 ms to import and rejects Go's single-dash long flags, which
runc's callers may use.
"""
from __future__ import annotations

from pyrunc.errors import UsageError

BOOL, STR, INT, LIST = "bool", "str", "int", "list"


class HelpRequested(Exception):
    """-h or --help among a command's flags: the CLI prints the command's help (cli/help.py)."""

    def __init__(self, flags: list[Flag]) -> None:
        super().__init__()
        self.flags = flags


class Flag:
    __slots__ = ("name", "kind", "default", "names")

    def __init__(self, names: str, kind: str = BOOL, default: object = None) -> None:
        self.names = names.split(",")
        self.name = self.names[0].lstrip("-").replace("-", "_")
        self.kind = kind
        self.default = ([] if kind == LIST else False if kind == BOOL else None) if default is None else default


def parse(flags: list[Flag], argv: list[str], *, stop_at_positional: bool = False) -> tuple[dict, list[str]]:
    """Return (options, positional args). With stop_at_positional, everything after
    the first positional is positional (for `exec ID CMD ARGS...` and ps args)."""
    table: dict[str, Flag] = {}
    for f in flags:
        for n in f.names:
            table[n] = f
            if n.startswith("--"):
                table[n[1:]] = f  # Go's flag package accepts -name too
    opts = {f.name: (list(f.default) if f.kind == LIST else f.default) for f in flags}
    pos: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            pos.extend(argv[i:])
            break
        if not a.startswith("-") or a == "-":
            pos.append(a)
            if stop_at_positional:
                pos.extend(argv[i:])
                break
            continue
        name, eq, value = a.partition("=")
        f = table.get(name)
        if f is None and name in ("-h", "--help", "-help"):
            raise HelpRequested(flags)
        if f is None:
            raise UsageError(f"flag provided but not defined: {name}")
        if f.kind == BOOL:
            if eq and value not in ("true", "false", "1", "0"):
                raise UsageError(f"invalid boolean value {value!r} for {name}")
            opts[f.name] = not eq or value in ("true", "1")
            continue
        if not eq:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: {name}")
            value = argv[i]
            i += 1
        if f.kind == INT:
            try:
                opts[f.name] = int(value)
            except ValueError:
                raise UsageError(f"invalid value {value!r} for {name}: not an integer") from None
            if opts[f.name] < 0:
                raise UsageError(f"invalid value {value!r} for {name}: must not be negative")
        elif f.kind == LIST:
            opts[f.name].append(value)
        else:
            opts[f.name] = value
    return opts, pos


def one_id(pos: list[str], cmd: str) -> str:
    if len(pos) != 1:
        raise UsageError(f'"{cmd}" requires exactly 1 argument (the container id), got {len(pos)}')
    return pos[0]
