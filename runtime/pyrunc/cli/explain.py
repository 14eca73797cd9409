"""explain [-b BUNDLE] [--format text|json] [--no-pivot] [--no-new-keyring] [ID]: what create does.

Without an ID of an existing container: the plan for BUNDLE (default "."), step by step in
create's order, each with the config.json field it comes from (ID, if given, is the id the
plan is made for: the default cgroup path and the keyring are named after it). With the ID
of an existing container: the same steps for the config it was created from, each checked
against the kernel (/proc/<pid>/ns, cgroup, mountinfo, status and the cgroup files), a
difference marked. Reads only. A bundle create would refuse gets create's one-line error.
"""
from __future__ import annotations

import sys

from pyrunc import fs
from pyrunc.cli.args import STR, Flag, parse
from pyrunc.errors import UsageError, context

FLAGS = [Flag("--bundle,-b", STR), Flag("--format,-f", STR, "text"), Flag("--no-pivot"), Flag("--no-new-keyring")]
PLACEHOLDER_ID = "<id>"
_MARKS = {"same": "✓", "differs": "✗", "unverified": "?"}


def main(cmd: str, g, argv: list[str]) -> int:
    from pyrunc import state as st

    opts, pos = parse(FLAGS, argv)
    if len(pos) > 1:
        raise UsageError(f'"explain" takes at most 1 argument (a container id), got {len(pos)}')
    if opts["format"] not in ("text", "json"):
        raise UsageError(f"invalid --format {opts['format']!r}: use text or json")
    cid = pos[0] if pos else None
    if cid is not None:
        st.check_id(cid)
    with context(f"explain {cid}" if cid else "explain"):
        if cid is not None and fs.isdir(fs.join(g.root, cid)):
            from pyrunc.explain.live import explain_container
            report, status = explain_container(g, cid, opts)
            mode = "live"
        else:
            from pyrunc.explain import explain_bundle
            report, status = explain_bundle(g, opts["bundle"] or ".", cid or PLACEHOLDER_ID, opts), None
            mode = "plan"
    doc = report.to_json(mode, status)
    if opts["format"] == "json":
        import json
        out = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        out = render(doc)
    sys.stdout.buffer.write(out.encode())  # UTF-8 whatever the locale: the marks are not ASCII
    return 1 if doc.get("differences") else 0


def render(doc: dict) -> str:
    from pyrunc.explain import WHO

    if doc["mode"] == "live" and not any("live" in step for step in doc["steps"]):
        head = (f"container {doc['id']} ({doc['status']}: no process to check), bundle {doc['bundle']}: "
                "what its create did, in order")
    elif doc["mode"] == "live":
        head = (f"container {doc['id']} ({doc['status']}), bundle {doc['bundle']}: each step of its create, "
                "checked against the kernel (✓ as planned, ✗ not as planned, ? cannot be seen from outside)")
    else:
        head = (f"bundle {doc['bundle']}, container {doc['id']}: what create does, in order "
                "(nothing has been created)")
    lines = [head, f"rootfs {doc['rootfs']}"]
    who = None
    for n, step in enumerate(doc["steps"], 1):
        if step["who"] != who:
            who = step["who"]
            lines.append(f"{who}: {WHO.get(who, who)}")
        live = step.get("live")
        mark = f"{_MARKS[live['status']]} " if live else ""
        lines.append(f"  {n:>3} {mark}{step['section']:<10} {step['text']}  [{step['jsonPath']}]")
        if live and live["status"] != "same" and live["actual"]:
            lines.append(f"        {'now' if live['status'] == 'differs' else 'why'}: {live['actual']}")
    if doc["mode"] == "live":
        lines.append(f"{doc['differences']} difference(s) from the plan" if doc["differences"]
                     else "no difference from the plan")
    return "\n".join(lines) + "\n"
