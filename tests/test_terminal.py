"""process.terminal (issue 3 item 2): the console socket protocol, /dev/console, the foreground relay.

The console-socket receiver is a real unix socket server getting the master with SCM_RIGHTS, as
runc's recvtty, containerd and conmon do; the foreground test gives pyrunc a real pty as its stdio.
"""
from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import termios
import threading
import time

import pytest

from helpers import wait_for


class ConsoleReceiver:
    """A console socket: accepts one connection and keeps the (message, fd) it carried."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.srv.settimeout(30)
        self.msg, self.fds = b"", []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        conn, _ = self.srv.accept()
        with conn:
            self.msg, self.fds, _, _ = socket.recv_fds(conn, 4096, 4)

    def master(self) -> int:
        self.thread.join(timeout=30)
        assert len(self.fds) == 1, f"expected one fd, got {self.fds}"
        return self.fds[0]

    def close(self) -> None:
        self.srv.close()
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def receiver(tmp_path):
    r = ConsoleReceiver(str(tmp_path / "console.sock"))
    yield r
    r.close()


def read_until_eof(fd: int, timeout: float = 20) -> str:
    """Read a pty master until the slave side is gone (EIO)."""
    out, end = b"", time.monotonic() + timeout
    while time.monotonic() < end:
        if not select.select([fd], [], [], 0.5)[0]:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    return out.decode(errors="replace").replace("\r\n", "\n")


def mount_dev(mountinfo: str, point: str) -> str:
    return [line.split()[2] for line in mountinfo.splitlines() if line.split()[4:5] == [point]][-1]


def test_console_socket_pty_is_the_containers(pyrunc, bundle, cid, receiver):
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["consoleSize"] = {"height": 33, "width": 101}
    bundle.sh("tty; stty size; for n in 0 1 2; do readlink /proc/self/fd/$n; done;"
              " cut -d' ' -f6,7 /proc/self/stat; stat -c 'console %t:%T' /dev/console;"
              " grep -E ' /dev/(console|pts) ' /proc/self/mountinfo")
    pyrunc("create", "-b", str(bundle.path), "--console-socket", receiver.path, cid)
    master = receiver.master()
    assert receiver.msg == b"/dev/pts/0"
    # From the host: the master is a ptmx of the container's own devpts, the init's stdio its slave.
    pid = pyrunc.state(cid)["pid"]
    mst = os.fstat(master)
    assert stat.S_ISCHR(mst.st_mode) and (os.major(mst.st_rdev), os.minor(mst.st_rdev)) == (5, 2)
    pts_dev = mount_dev(open(f"/proc/{pid}/mountinfo").read(), "/dev/pts")
    for n in (0, 1, 2):
        st = os.stat(f"/proc/{pid}/fd/{n}")
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (136, 0)
        assert f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" == pts_dev
    assert pts_dev != mount_dev(open("/proc/self/mountinfo").read(), "/dev/pts")
    pyrunc("start", cid)
    out = read_until_eof(master).splitlines()
    assert out[0] == "/dev/pts/0"
    assert out[1] == "33 101"
    assert out[2:5] == ["/dev/pts/0"] * 3
    sid, tty_nr = out[5].split()
    assert sid == "1" and int(tty_nr) == os.makedev(136, 0)  # session leader, controlling tty set
    assert out[6] == "console 88:0"  # 136 in hex: the slave bound on /dev/console
    console = [line.split() for line in out if " /dev/console " in line][0]
    assert console[3] == "/0" and console[2] == pts_dev
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="stopped")
    pyrunc("delete", cid)


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_foreground_run_relays_the_pty(pyrunc, bundle, cid):
    bundle.config["process"]["terminal"] = True
    bundle.sh("tty; stty size; read x; echo got:$x; stty size; exit 7")
    m, s = os.openpty()
    _set_size(s, 40, 120)
    before = termios.tcgetattr(s)
    proc = subprocess.Popen(pyrunc.cmd("run", "-b", str(bundle.path), cid), stdin=s, stdout=s, stderr=s,
                            start_new_session=True)
    os.close(s)
    try:
        buf = b""
        while b"40 120" not in buf:
            assert select.select([m], [], [], 20)[0], f"no output: {buf!r}"
            buf += os.read(m, 4096)
        assert not termios.tcgetattr(m)[3] & termios.ICANON  # pyrunc put its terminal in raw mode
        time.sleep(0.3)  # the SIGWINCH handler is installed right after start
        _set_size(m, 50, 132)
        os.kill(proc.pid, signal.SIGWINCH)
        time.sleep(0.3)
        os.write(m, b"hello\r")
        assert proc.wait(timeout=20) == 7
        buf += read_until_eof(m, timeout=3).encode()
        out = buf.decode().replace("\r\n", "\n").splitlines()
        assert out[0] == "/dev/pts/0"
        assert "got:hello" in out and out[-1] == "50 132", out
        assert termios.tcgetattr(m) == before  # restored on exit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(m)


@pytest.mark.parametrize("args,terminal,needle", [
    (["create"], True, "--console-socket"),
    (["run", "-d"], True, "--console-socket"),
    (["create", "--console-socket", "SOCK"], False, "process.terminal"),
    (["run", "--console-socket", "SOCK"], True, "will not detach"),
])
def test_terminal_and_console_socket_misuse(pyrunc, bundle, cid, tmp_path, args, terminal, needle):
    bundle.config["process"]["terminal"] = terminal
    bundle.args("true")
    args = [str(tmp_path / "sock") if a == "SOCK" else a for a in args]
    proc = pyrunc(*args, "-b", str(bundle.path), cid, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and needle in err, err
    assert pyrunc.list_ids() == []


def test_console_socket_that_does_not_exist(pyrunc, bundle, cid, tmp_path):
    bundle.config["process"]["terminal"] = True
    bundle.args("true")
    proc = pyrunc("create", "-b", str(bundle.path), "--console-socket", str(tmp_path / "nope"), cid, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and "--console-socket" in err and "No such file" in err, err


def test_terminal_without_devpts_is_an_error(pyrunc, bundle, cid, receiver):
    bundle.config["process"]["terminal"] = True
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev/pts"]
    bundle.args("true")
    proc = pyrunc("create", "-b", str(bundle.path), "--console-socket", receiver.path, cid, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and "process.terminal" in err and "/dev/pts/ptmx" in err, err


def test_pty_belongs_to_the_process_user(pyrunc, bundle, cid, receiver):
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001}
    bundle.sh("id -u; stat -c '%u %g' $(tty); echo reopened > $(tty)")
    pyrunc("create", "-b", str(bundle.path), "--console-socket", receiver.path, cid)
    master = receiver.master()
    pyrunc("start", cid)
    # The user owns it; the group stays devpts' gid=5 ("tty"), as runc leaves it.
    assert read_until_eof(master).split() == ["1000", "1000", "5", "reopened"]
