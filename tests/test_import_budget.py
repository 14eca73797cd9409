"""Start-up is pyrunc's main cost: each command imports only what it needs.

The modules below cost milliseconds each to import (typing ~3 ms, shutil pulls
in bz2/lzma, json and string pull in re and enum ...). The test runs real
commands under ``python -X importtime`` and fails if one of them shows up.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO

# every command: no `re` (json and string import it), no enum (signal builds its enums),
# not even `os` (~1.1 ms: it builds collections.abc for os.environ; pyrunc uses posix
# and pyrunc.fs). The generated validator tests patterns without re, JSON goes through
# pyrunc.jsonio, sockets through pyrunc.unixsock, undo steps through pyrunc.undo.
ALWAYS_FORBIDDEN = {"typing", "dataclasses", "shutil", "subprocess", "argparse", "jsonschema", "pyroute2",
                    "inspect", "threading", "tempfile", "logging", "pathlib", "asyncio", "ctypes", "cffi",
                    "traceback", "uuid", "datetime", "socket", "selectors", "re", "json", "enum", "signal",
                    "contextlib", "collections", "_collections_abc", "os", "posixpath",
                    # `explain` alone reads what create would do (its modules, the foreseen cgroup view)
                    "pyrunc.explain", "pyrunc.cli.explain", "pyrunc.cgroups.foresee",
                    # the man pages' and completion's generator runs at set-up time only
                    "pyrunc.cli.docgen",
                    # criu's code only for checkpoint and restore (and check, features)
                    "pyrunc.criu", "pyrunc.criu.binary", "pyrunc.criu.options", "pyrunc.cli.checkpoint"}
# the status commands do not even load the spec, native code, or (for a container
# without hooks) the hook runner
LIGHT_FORBIDDEN = ALWAYS_FORBIDDEN | {"pyrunc.spec.plan", "pyrunc.syscalls._native", "pyrunc.hooks"}
# run and exec talk to their children over bare fds (process/protocol.py): no `_socket` (~0.2 ms)
# unless a terminal, a notify socket or a seccomp agent asks for one
CHANNEL_FORBIDDEN = ALWAYS_FORBIDDEN | {"_socket", "pyrunc.unixsock"}


def imported(pyrunc, *args: str) -> set[str]:
    """Module names a real pyrunc run imported, read from -X importtime."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    code = ("import sys; sys.path[:0] = [%r, %r]; sys.argv = ['pyrunc'] + %r; "
            "from pyrunc.cli import main; sys.exit(main())") % (str(REPO / "runtime"), site,
                                                               ["--root", str(pyrunc.root), *args])
    proc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", code], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60)
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert names, proc.stderr
    return names


@pytest.fixture
def running(pyrunc, bundle, cid) -> str:
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    return cid


@pytest.mark.parametrize("cmd", [["state"], ["list"], ["start"], ["delete"]])
def test_status_commands_stay_light(pyrunc, running, cmd):
    args = cmd + ([running] if cmd != ["list"] else [])
    heavy = imported(pyrunc, *args) & LIGHT_FORBIDDEN
    assert not heavy, f"{' '.join(cmd)} imports {sorted(heavy)}"


def test_run_stays_light(pyrunc, bundle, cid):
    bundle.args("true")
    heavy = imported(pyrunc, "run", "-b", str(bundle.path), cid) & CHANNEL_FORBIDDEN
    assert not heavy, f"run imports {sorted(heavy)}"


def test_exec_stays_light(pyrunc, running):
    heavy = imported(pyrunc, "exec", running, "true") & CHANNEL_FORBIDDEN
    assert not heavy, f"exec imports {sorted(heavy)}"


def test_kill_stays_light(pyrunc, running):
    heavy = imported(pyrunc, "kill", running, "KILL") & LIGHT_FORBIDDEN
    assert not heavy, f"kill imports {sorted(heavy)}"
