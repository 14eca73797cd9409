"""NOTIFY_SOCKET passing (issue 14, as runc): the program's READY=1 reaches the caller's
socket, with MAINPID= the init's host pid, once the program says it; the program sees its
own socket at /run/notify/notify.sock; nothing is left after delete."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def caller(tmp_path):
    """The caller's notify socket (what systemd gives a Type=notify service)."""
    path = tmp_path / "caller.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield path, sock
    sock.close()


@pytest.fixture
def notifying_bundle(bundle, tmp_path):
    """The busybox bundle with a static sd_notify sender at /bin/sdnotify."""
    subprocess.run(["gcc", "-static", "-O2", "-o", str(bundle.rootfs / "bin/sdnotify"), str(HERE / "data/sdnotify.c")],
                   check=True)
    return bundle


def test_ready_is_relayed_with_the_init_pid(pyrunc, notifying_bundle, cid, caller):
    path, sock = caller
    b = notifying_bundle
    b.sh('echo "$NOTIFY_SOCKET" > /seen; sleep 0.3; sdnotify "STATUS=up\nREADY=1\nMAINPID=1"; exec sleep 1000')
    pyrunc("run", "-d", "--bundle", str(b.path), cid, env={**os.environ, "NOTIFY_SOCKET": str(path)})
    # run -d returned: READY=1 was already relayed, so the datagram is there now
    sock.settimeout(0.5)
    got = sock.recv(4096).decode().splitlines()
    assert got == ["STATUS=up", "READY=1", f"MAINPID={pyrunc.state(cid)['pid']}"]
    assert (b.rootfs / "seen").read_text() == "/run/notify/notify.sock\n"
    pyrunc("delete", "--force", cid)


def test_create_then_start_relays(pyrunc, notifying_bundle, cid, caller):
    path, sock = caller
    b = notifying_bundle
    b.sh("sdnotify READY=1; exec sleep 1000")
    env = {**os.environ, "NOTIFY_SOCKET": str(path)}
    pyrunc("create", "--bundle", str(b.path), cid, env=env)
    assert (pyrunc.root / cid / "notify").is_dir()
    pyrunc("start", cid, env=env)
    assert sock.recv(4096).decode().splitlines() == ["READY=1", f"MAINPID={pyrunc.state(cid)['pid']}"]
    pyrunc("delete", "--force", cid)


def test_program_that_exits_without_ready_does_not_hang(pyrunc, notifying_bundle, cid, caller):
    path, sock = caller
    notifying_bundle.args("true")
    pyrunc("run", "-d", "--bundle", str(notifying_bundle.path), cid, env={**os.environ, "NOTIFY_SOCKET": str(path)},
           timeout=20)
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(4096)
    pyrunc("delete", cid)
