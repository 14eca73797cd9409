"""A stand-in for an engine's shim, for the crash tests: runs runtime commands and reports.

Started in a session of its own (a runtime that signals its caller's process group
then kills only this and its sleeper, never the test runner). It starts a sleeper in
its own process group, the runtime's group too, as a shim's other children would be;
runs each command of the JSON list on stdin in turn, SIGKILLing it after "kill_after"
seconds when given; and prints one JSON object: each command's exit status and
stderr, and whether the sleeper survived.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def main() -> None:
    steps = json.load(sys.stdin)
    sleeper = subprocess.Popen(["sleep", "1000"])
    results = []
    for step in steps:
        with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryFile("w+") as out:
            env = {**os.environ, **step.get("env", {})}
            p = subprocess.Popen(step["argv"], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
            if step.get("kill_after") is not None:
                time.sleep(step["kill_after"])
                p.send_signal(signal.SIGKILL)  # our own unreaped child: this pid is still it
            rc = p.wait(timeout=60)
            err.seek(0)
            out.seek(0)
            results.append({"rc": rc, "stderr": err.read(), "stdout": out.read()})
    alive = sleeper.poll() is None
    sleeper.kill()
    sleeper.wait()
    json.dump({"results": results, "sleeper_alive": alive}, sys.stdout)


if __name__ == "__main__":
    main()
