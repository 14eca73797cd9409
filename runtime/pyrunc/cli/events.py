"""events [--stats] [--interval 5s] ID: the container's cgroup stats and OOM events as JSON.

--stats prints one {"type":"stats","id":ID,"data":{...}} (runc's shape) and
exits. Without it, one JSON object per line: stats every --interval and
{"type":"oom","id":ID} each time the kernel's OOM killer fires in the cgroup,
until the container's init exits.
"""
from __future__ import annotations

import json
import re
import sys
import time

from pyrunc import fs
from pyrunc import state as st
from pyrunc.cli.args import STR, Flag, one_id, parse
from pyrunc.errors import InvalidStatus, UsageError, context

_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_POLL = 0.2   # how soon the end of the container is noticed, in seconds


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse([Flag("--stats"), Flag("--interval", STR, "5s")], argv)
    cid = one_id(pos, cmd)
    interval = parse_duration(opts["interval"])
    with context(f"{cmd} {cid}"):
        c = st.load(g.root, cid, shared=True)
        try:
            status = c.status()
            if status == "stopped":
                raise InvalidStatus(cid, "get events of", status)
            cg, pid, start = c.cgroup(), c.pid, c.data.get("pid_start")
        finally:
            c.close()   # do not hold the lock: delete must not wait for a stream
        if opts["stats"]:
            _emit({"type": "stats", "id": cid, "data": cg.stats()})
            return 0
        try:
            _stream(cid, cg, lambda: st.pid_start_time(pid) == start, interval)
        except BrokenPipeError:
            pass
    return 0


def _stream(cid: str, cg, alive, interval: float) -> None:
    memdir = cg.dir_of("memory")
    watcher = cg.oom_watcher() if memdir else None

    def oom() -> None:
        # a cgroup removed under us also wakes a v1 watcher: that is no OOM
        if watcher and fs.isdir(memdir) and watcher.check():
            _emit({"type": "oom", "id": cid})

    try:
        due = time.monotonic() + interval   # like runc, the first stats after one interval
        while alive():
            wait = min(max(due - time.monotonic(), 0), _POLL)
            if watcher is None:
                time.sleep(wait)
            elif watcher.wait(wait):
                oom()
            if time.monotonic() >= due:
                try:
                    data = cg.stats()
                except OSError:
                    break   # the cgroup is gone
                _emit({"type": "stats", "id": cid, "data": data})
                due += interval
        oom()   # an OOM kill of the init itself ends the loop before it is reported
    finally:
        if watcher:
            watcher.close()


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def parse_duration(text: str) -> float:
    """Seconds from a Go duration ("5s", "250ms", "1m30s")."""
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise UsageError(f"invalid --interval {text!r}: use a duration like 5s or 500ms")
    if total <= 0:
        raise UsageError(f"invalid --interval {text!r}: must be greater than 0")
    return total
