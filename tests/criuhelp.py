"""For checkpoint/restore tests: the criu they need (skipped, naming what is missing, where
set-up could not install it), and a busybox counter that appends to a bind-mounted file."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import Bundle, wait_for

# a counter: one line a tick, into the bind-mounted /data/count and onto stdout
COUNTER = "i=0; while :; do i=$((i+1)); echo $i >> /data/count; echo $i; sleep 0.1; done"


def criu_path() -> str | None:
    """The criu pyrunc runs: /usr/local/sbin's (hack/criu-setup.sh's), else the one on PATH."""
    return shutil.which("criu", path="/usr/local/sbin:" + os.environ.get("PATH", ""))


def usable_criu() -> str | None:
    """Why criu cannot be used here, or None (what `pyrunc check` says, found the same way)."""
    criu = criu_path()
    if criu is None:
        return "criu is not installed (hack/criu-setup.sh installs it)"
    done = subprocess.run([criu, "check"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return f"{criu} check fails: {(done.stdout + done.stderr).strip().splitlines()[-1:]}"
    return None


def need_criu() -> None:
    why = usable_criu()
    if why is not None:
        pytest.skip(why)


def counter_bundle(bundle: Bundle, data: Path, script: str = COUNTER) -> Bundle:
    data.mkdir(exist_ok=True)
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                    "options": ["rbind", "rw"]})
    return bundle.sh(script)


def counts(data: Path) -> list[int]:
    try:
        return [int(x) for x in (data / "count").read_text().split()]
    except FileNotFoundError:
        return []


def wait_count(data: Path, n: int, timeout: float = 20) -> None:
    wait_for(lambda: len(counts(data)) >= n, timeout, f"the counter to reach {n}")


def stopped(data: Path) -> list[int]:
    """The counter, checked not to move for half a second."""
    before = counts(data)
    time.sleep(0.5)
    after = counts(data)
    assert after == before, f"the counter moved after checkpoint: {before[-3:]} -> {after[-3:]}"
    return after


def continued(data: Path, last: int) -> None:
    """It goes on from ``last``, one by one: the restored program, not a new one."""
    wait_count(data, last + 5)
    got = counts(data)
    assert got == list(range(1, len(got) + 1)), f"not one by one across the restore: {got[last - 3:last + 5]}"
