"""checkpoint [flags] ID: criu dumps the running container into --image-path (runc's flags)."""
from __future__ import annotations

from pyrunc import state as st
from pyrunc.cli.args import LIST, STR, Flag, one_id, parse
from pyrunc.errors import UsageError, context

# the switches restore takes too
SHARED = [Flag("--image-path", STR), Flag("--work-path", STR), Flag("--tcp-established"), Flag("--ext-unix-sk"),
          Flag("--shell-job"), Flag("--file-locks"), Flag("--manage-cgroups-mode", STR), Flag("--empty-ns", LIST),
          Flag("--auto-dedup"), Flag("--lazy-pages")]
FLAGS = SHARED + [Flag("--parent-path", STR), Flag("--leave-running"), Flag("--status-fd", STR, "-1"),
                  Flag("--page-server", STR), Flag("--pre-dump")]


def main(cmd: str, g, argv: list[str]) -> int:
    from pyrunc.criu import dump
    from pyrunc.criu.binary import usable

    opts, pos = parse(FLAGS, argv)
    cid = one_id(pos, cmd)
    try:
        opts["status_fd"] = int(opts["status_fd"])
    except ValueError:
        raise UsageError(f"invalid value {opts['status_fd']!r} for --status-fd: not an integer") from None
    with context(f"{cmd} {cid}"):
        criu_path, _ = usable(g.criu)  # before anything is touched
        with st.load(g.root, cid) as c:
            dump.checkpoint(c, opts, criu_path)
    return 0
