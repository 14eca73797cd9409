"""The container process's last step (process/launch.py, syscalls/launcher.c).

A created container's init waits for `start` as the sealed launcher, a static program in
a sealed memfd, not as an interpreter (issues 17 and 25); then it closes our fds, sets the
capabilities, installs the filter and calls execve, reporting any failure in one line.
Checked from the host (/proc/<init>/exe, smaps, status) and by what the program then sees.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wait_for

LAUNCHER_EXE = "/memfd:pyrunc-launch (deleted)"

SIGPIPE_BIT, SIGXFSZ_BIT = 1 << 12, 1 << 24  # SigIgn: bit n-1 for signal n


def mappings(pid: int) -> list[dict]:
    """/proc/<pid>/smaps as one dict per mapping: range, perms, path and the kB fields."""
    out: list[dict] = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                out.append({"range": head[0], "perms": head[1], "path": head[5] if len(head) > 5 else ""})
            elif head[0] != "VmFlags:":
                out[-1][head[0].rstrip(":")] = int(head[1])
    return out


def created(pyrunc, bundle, cid: str) -> int:
    pyrunc("create", "--bundle", str(bundle.path), cid)
    return pyrunc.state(cid)["pid"]


def test_waiting_init_is_the_sealed_launcher(pyrunc, bundle, cid):
    bundle.sh("{ echo started; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; } >/out")
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    bundle.write()
    init = created(pyrunc, bundle, cid)
    assert os.readlink(f"/proc/{init}/exe") == LAUNCHER_EXE
    maps = mappings(init)
    assert not any("python" in m["path"] or m["path"].endswith(".so") for m in maps), maps  # no interpreter left
    pss = sum(m.get("Pss", 0) for m in maps)
    assert pss < 100, f"the waiting init holds {pss} kB"  # runc's: ~1.7 MiB
    with open(f"/proc/{init}/status") as f:
        status = f.read()
    assert "Seccomp:\t0\n" in status  # the filter comes with start, not before
    assert Path(f"/proc/{init}/cmdline").read_bytes().split(b"\0")[0] == b"pyrunc-launch"
    pyrunc("start", cid)
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="the program to end")
    assert (bundle.rootfs / "out").read_text().split() == ["started", "NoNewPrivs:", "1", "Seccomp:", "2"]


def test_launcher_is_sealed_and_execute_only(pyrunc, bundle, cid):
    """What a container process could reach through /proc/<init>/exe (with CAP_SYS_PTRACE:
    the host's root here) cannot be changed: every write seal, mode 0111."""
    bundle.args("sleep", "1000")
    init = created(pyrunc, bundle, cid)
    fd = os.open(f"/proc/{init}/exe", os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        want = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        assert seals & want == want, hex(seals)
        assert os.fstat(fd).st_mode & 0o7777 == 0o111
    finally:
        os.close(fd)
    try:  # busy while it runs (ETXTBSY); were it not, the seals stop the write
        fd = os.open(f"/proc/{init}/exe", os.O_WRONLY)
    except OSError as exc:
        assert exc.errno == errno.ETXTBSY, exc
    else:
        try:
            with pytest.raises(PermissionError):
                os.write(fd, b"x")
        finally:
            os.close(fd)


def test_no_sealed_launcher_no_container(pyrunc, bundle, cid):
    """vm.memfd_noexec=2 forbids executable memfds (in this pid namespace and below): create
    refuses, naming why, rather than run the container's program from the interpreter."""
    if not os.path.exists("/proc/sys/vm/memfd_noexec"):
        pytest.skip("the kernel has no vm.memfd_noexec (Linux < 6.3)")
    script = f"echo 2 >/proc/sys/vm/memfd_noexec && exec {' '.join(pyrunc.cmd('run', '--bundle', str(bundle.path), cid))}"
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"pyrunc: run {cid}: memfd_create: EACCES (vm.memfd_noexec forbids executable memfds): "
        "without a sealed launcher the container could reach the host's Python; refusing"], proc.stderr


@pytest.mark.parametrize("how", ["run", "exec"])
def test_exec_failure_is_one_line(pyrunc, bundle, cid, how):
    """execve fails after every check passed (not an executable format): for the init only
    stderr is left (run: the init exits 1); exec's launcher reports on its channel to pyrunc
    (exec exits 255, as runc's exec does for its own errors)."""
    bad = bundle.rootfs / "bad"
    bad.write_bytes(b"\x00\x01 neither ELF nor a script\n")
    bad.chmod(0o755)
    want = 'exec: "/bad": execve /bad: ENOEXEC (Exec format error)'
    if how == "run":
        bundle.args("/bad")
        proc = pyrunc("run", "--bundle", str(bundle.path), cid, check=False)
    else:
        bundle.args("sleep", "1000")
        pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
        proc = pyrunc("exec", cid, "/bad", check=False)
    assert proc.returncode == {"run": 1, "exec": 255}[how]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyrunc: ") and lines[0].endswith(want), proc.stderr


def test_program_starts_with_default_sigpipe_and_sigxfsz(pyrunc, bundle, cid):
    """The interpreter ignores SIGPIPE and SIGXFSZ, and an ignored signal survives execve:
    the container's program must get them back at their default, as subprocess does."""
    bundle.sh("grep SigIgn /proc/self/status >/out; exec sleep 1000")
    out = bundle.rootfs / "out"
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    wait_for(lambda: "SigIgn" in out.read_text(), what="the program's status")
    ignored = [int(out.read_text().split()[1], 16)]
    ignored.append(int(pyrunc("exec", cid, "grep", "SigIgn", "/proc/self/status").stdout.split()[1], 16))
    assert [mask & (SIGPIPE_BIT | SIGXFSZ_BIT) for mask in ignored] == [0, 0], [hex(m) for m in ignored]


# The init becomes the launcher right after "ready", and the launcher ends create's last
# exchange (launcher.c's detach()): "created" in, "detached" out, a failure before that as
# the channel's "error" message, EOF (the runtime gave up) as a quiet exit. Driven here
# directly: a helper process becomes the launcher with one end of a socketpair.
BECOME_LAUNCHER = """
import posix, sys
from pyrunc.linux import caps, confine
from pyrunc.process.launch import launch, sealed_launcher
c = confine.Confinement(caps.parse({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                                    "effective": ["CAP_KILL"]}), False, None, {})
if sys.argv[2] == "bad-label":  # a label write that fails (EBADF): the launcher's step before detach
    c.labels = ((posix.open("/dev/null", posix.O_RDONLY), "unconfined"), (-1, ""))
launch(sealed_launcher(), "/bin/sh", ["sh", "-c", "echo ran >" + sys.argv[3]], [], c, 3,
       detach_fd=int(sys.argv[1]))
"""


def _launcher(tmp_path: Path, how: str) -> tuple[socket.socket, subprocess.Popen, Path]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    out = tmp_path / "ran"
    proc = subprocess.Popen([sys.executable, "-c", BECOME_LAUNCHER, str(theirs.fileno()), how, str(out)],
                            pass_fds=[theirs.fileno()], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "runtime")})
    theirs.close()
    ours.settimeout(30)
    return ours, proc, out


def test_launcher_answers_created_with_detached(tmp_path):
    chan, proc, out = _launcher(tmp_path, "ok")
    with chan:
        wait_for(lambda: os.readlink(f"/proc/{proc.pid}/exe") == LAUNCHER_EXE, what="the launcher")
        assert proc.poll() is None and not out.exists()  # waits for "created", dying with us meanwhile
        chan.send(b'{"type":"created"}')
        assert json.loads(chan.recv(4096)) == {"type": "detached"}
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert out.read_text() == "ran\n"


def test_launcher_failure_before_detach_goes_to_create(tmp_path):
    chan, proc, out = _launcher(tmp_path, "bad-label")
    with chan:
        msg = json.loads(chan.recv(4096))
        assert proc.wait(timeout=30) == 1
    assert msg == {"type": "error", "msg": "process.apparmorProfile/selinuxLabel: write: EBADF (Bad file descriptor)"}
    assert proc.stderr.read() == "" and not out.exists()


def test_launcher_exits_quietly_when_create_gives_up(tmp_path):
    chan, proc, out = _launcher(tmp_path, "ok")
    wait_for(lambda: os.readlink(f"/proc/{proc.pid}/exe") == LAUNCHER_EXE, what="the launcher")
    chan.close()  # as a failing create does: EOF, no "created"
    assert proc.wait(timeout=30) == 1
    assert proc.stderr.read() == "" and not out.exists()
