"""The runtime's own defences (issue 4), each after a real runtime CVE.

- fds: only stdio, --preserve-fds and LISTEN_FDS reach the container (CVE-2024-21626 leaked
  a host cgroup directory fd into the container).
- process.cwd resolved beneath the container root (CVE-2024-21626: cwd /proc/self/fd/N).
- non-dumpable: pyrunc's /proc/<pid>/exe is the host's Python interpreter and must not be
  reachable from the container (CVE-2019-5736 overwrote the runtime binary that way).
- the internal channel refuses anything unexpected.
"""
from __future__ import annotations

import errno
import json
import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import seccomp_agent
from helpers import wait_for

from pyrunc.errors import PyruncError
from pyrunc.process.protocol import MAX_MSG, Channel, ProtocolError
from pyrunc.syscalls import calls as sc

O_CLOEXEC_OCTAL = 0o2000000


def fd_numbers(pid: int | str) -> set[int]:
    return {int(n) for n in os.listdir(f"/proc/{pid}/fd")}


def stray_fds(tmp_path: Path) -> tuple[int, int]:
    """An inheritable host file and host directory, as a careless caller would leak them."""
    f = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    g = os.open(tmp_path / "stray.txt", os.O_WRONLY | os.O_CREAT, 0o600)
    os.set_inheritable(f, True)
    os.set_inheritable(g, True)
    return f, g


def running_pid(pyrunc, cid: str) -> int:
    wait_for(lambda: pyrunc.state(cid)["status"] == "running", what="running")
    return pyrunc.state(cid)["pid"]


def test_only_stdio_reaches_the_container(pyrunc, bundle, cid, tmp_path):
    bundle.sh("exec sleep 1000")
    strays = stray_fds(tmp_path)
    try:  # the control: pass_fds really hands them on
        seen = subprocess.run(["ls", "/proc/self/fd"], pass_fds=strays, capture_output=True, text=True).stdout
        assert {str(fd) for fd in strays} <= set(seen.split())
        pyrunc("create", "--bundle", str(bundle.path), cid, pass_fds=strays)
    finally:
        for fd in strays:
            os.close(fd)
    init = pyrunc.state(cid)["pid"]
    # The waiting init is the sealed launcher: the caller's strays went at its execve (the
    # interpreter marked them close-on-exec first), and what it holds above stdio (the
    # exec.fifo) is close-on-exec.
    assert not set(strays) & fd_numbers(init)
    for n in fd_numbers(init) - {0, 1, 2}:
        flags = int(Path(f"/proc/{init}/fdinfo/{n}").read_text().split("flags:")[1].split()[0], 8)
        assert flags & O_CLOEXEC_OCTAL, (n, os.readlink(f"/proc/{init}/fd/{n}"))
    pyrunc("start", cid)
    pid = running_pid(pyrunc, cid)
    assert fd_numbers(pid) == {0, 1, 2}, [os.readlink(f"/proc/{pid}/fd/{n}") for n in fd_numbers(pid)]


def test_fd_listing_inside(pyrunc, bundle, cid, tmp_path):
    bundle.args("ls", "-l", "/proc/self/fd")
    strays = stray_fds(tmp_path)
    try:
        proc = pyrunc("run", "--bundle", str(bundle.path), cid, pass_fds=strays, check=False)
    finally:
        for fd in strays:
            os.close(fd)
    linked = sorted(int(m) for m in re.findall(r":\d\d (\d+) -> ", proc.stdout))
    assert linked == [0, 1, 2], proc.stdout
    # ls's own directory fd (3) is the only other entry, gone before ls could read it
    listed = sorted(int(m) for m in re.findall(r":\d\d (\d+)(?: ->|$)", proc.stdout, re.M))
    assert listed == [0, 1, 2, 3], proc.stdout


def test_fd_listing_of_an_exec_process(pyrunc, bundle, cid, tmp_path):
    bundle.sh("exec sleep 1000")
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    strays = stray_fds(tmp_path)
    try:
        proc = pyrunc("exec", cid, "ls", "-l", "/proc/self/fd", pass_fds=strays)
    finally:
        for fd in strays:
            os.close(fd)
    assert sorted(int(m) for m in re.findall(r":\d\d (\d+) -> ", proc.stdout)) == [0, 1, 2], proc.stdout
    assert sorted(int(m) for m in re.findall(r":\d\d (\d+)(?: ->|$)", proc.stdout, re.M)) == [0, 1, 2, 3]


def test_preserve_fds_and_listen_fds(pyrunc, bundle, cid, tmp_path):
    bundle.sh("exec sleep 1000")
    (tmp_path / "three").write_text("3")
    (tmp_path / "four").write_text("4")
    # fds 3 and 4 are passed on (--preserve-fds 1, LISTEN_FDS=1), 9 is a stray; the shell
    # sets them up in pyrunc's process only.
    pyrunc.ids.add(cid)
    env = {**os.environ, "LISTEN_FDS": "1", "LISTEN_PID": "1"}
    subprocess.run(["sh", "-c", 'exec "$@" 3<three 4<four 9<three', "sh",
                    *pyrunc.cmd("run", "-d", "--preserve-fds", "1", "--bundle", str(bundle.path), cid)],
                   cwd=tmp_path, env=env, check=True, timeout=60, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = running_pid(pyrunc, cid)
    assert fd_numbers(pid) == {0, 1, 2, 3, 4}
    assert {os.readlink(f"/proc/{pid}/fd/{n}") for n in (3, 4)} == {str(tmp_path / "three"), str(tmp_path / "four")}
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"LISTEN_FDS=1" in env


def test_cwd_through_proc_self_fd_cannot_reach_the_host(pyrunc, bundle, cid, tmp_path):
    marker = tmp_path / "host-secret"
    marker.write_text("host")
    strays = stray_fds(tmp_path)  # a host directory fd, as runc leaked /sys/fs/cgroup
    bundle.config["process"]["cwd"] = f"/proc/self/fd/{strays[0]}"
    bundle.sh("ls > /seen; cat host-secret >> /seen")
    try:
        proc = pyrunc("create", "--bundle", str(bundle.path), cid, pass_fds=strays, check=False)
    finally:
        for fd in strays:
            os.close(fd)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "process.cwd /proc/self/fd/" in proc.stderr, proc.stderr
    assert "ELOOP" in proc.stderr
    assert not (pyrunc.root / cid).exists() and not (bundle.rootfs / "seen").exists()


def test_cwd_symlink_stays_inside_the_rootfs(pyrunc, bundle, cid, tmp_path):
    # /work -> ../../../../../<host tmp dir>: resolved in the container root it is /<...>
    # inside the rootfs, which is made there (0755); the host directory is never entered.
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    (bundle.rootfs / "work").symlink_to("../../../../../../../.." + str(host_dir))
    bundle.config["process"]["cwd"] = "/work"
    bundle.sh("pwd; touch made-here")
    assert pyrunc("run", "--bundle", str(bundle.path), cid).stdout == f"{host_dir}\n"
    inner = bundle.rootfs / str(host_dir).lstrip("/")
    assert os.listdir(inner) == ["made-here"] and os.stat(inner).st_mode & 0o7777 == 0o755
    assert os.listdir(host_dir) == []
    (inner / "made-here").rename(inner / "inside")  # what is there is where the program starts
    bundle.sh("ls")
    assert pyrunc("run", "--bundle", str(bundle.path), cid).stdout == "inside\n"


# Run as a process inside the container during create: the container's pid and
# mount namespaces, its root, uid 0 and the container's capabilities (the same as
# the target's, so only dumpability decides). It reports what it can do with the
# waiting init's /proc/1/{exe,fd}.
PROBE = r"""
import json, os, sys
from pyrunc.syscalls import calls as sc
pid, target, inner = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]  # init, probed process, its pid inside
prm = int(dict(l.split(":\t") for l in open(f"/proc/{target}/status").read().splitlines() if ":\t" in l)["CapPrm"], 16)
ns = {n: os.open(f"/proc/{pid}/ns/{n}", os.O_RDONLY) for n in ("pid", "mnt")}
root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
sc.setns(ns["pid"], 0)
sc.setns(ns["mnt"], 0)
os.fchdir(root)
os.chroot(".")
# the capabilities of the container's processes: exactly the target's permitted set
for cap in range(int(open("/proc/sys/kernel/cap_last_cap").read()) + 1):
    if not prm >> cap & 1:
        sc.prctl(sc.PR_CAPBSET_DROP, cap)
sc.capset(prm, prm, 0)
r, w = os.pipe()
child = os.fork()
if child == 0:
    out = {}
    exe = f"/proc/{inner}/exe"
    for name, path, flags in (("exe_write", exe, os.O_WRONLY), ("exe_read", exe, os.O_RDONLY),
                              ("exe_path", exe, os.O_PATH), ("fd_0", f"/proc/{inner}/fd/0", os.O_RDONLY),
                              ("own_exe", "/proc/self/exe", os.O_RDONLY)):
        try:
            os.close(os.open(path, flags))
            out[name] = "opened"
        except OSError as exc:
            out[name] = exc.errno
    try:
        out["exe_link"] = os.readlink(exe)
    except OSError as exc:
        out["exe_link"] = exc.errno
    os.write(w, json.dumps(out).encode())
    os._exit(0)
os.close(w)
os.waitpid(child, 0)
print(os.read(r, 65536).decode())
"""


LAUNCHER_EXE = "/memfd:pyrunc-launch (deleted)"


def probe(init: int, target: int) -> dict:
    inner = Path(f"/proc/{target}/status").read_text().split("NSpid:")[1].split("\n")[0].split()[-1]
    proc = subprocess.run([sys.executable, "-c", PROBE, str(init), str(target), inner], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_unreachable(seen: dict) -> None:
    assert seen["own_exe"] == "opened"  # the probe works: it can open what it may
    for what in ("exe_write", "exe_read", "exe_path", "fd_0", "exe_link"):
        assert seen[what] == errno.EACCES, seen


def test_container_process_cannot_reach_pyrunc_exe(pyrunc, bundle, cid):
    bundle.sh("exec sleep 1000")
    pyrunc("create", "--bundle", str(bundle.path), cid)
    init = pyrunc.state(cid)["pid"]
    assert os.readlink(f"/proc/{init}/exe") == LAUNCHER_EXE  # the waiting init is the sealed launcher
    assert_unreachable(probe(init, init))
    # Control: once the init has exec'd the (dumpable) program, the same probe reaches it.
    pyrunc("start", cid)
    wait_for(lambda: os.readlink(f"/proc/{init}/exe") != LAUNCHER_EXE, what="the exec")
    seen = probe(init, init)
    assert seen["exe_read"] == "opened" and seen["exe_link"] == "/bin/busybox", seen


def test_channel_refuses_unexpected_messages():
    parent, child = Channel.pair()
    with parent, child:
        os.write(child.fd, b"x" * (MAX_MSG + 10))
        with pytest.raises(ProtocolError, match="oversized"):
            parent.recv("ready")
        for raw in (b"{not json", b"[1, 2]", b'"ready"', b'{"no_type": 1}', b"\xff\xfe"):
            os.write(child.fd, raw)
            with pytest.raises(ProtocolError, match="malformed"):
                parent.recv("ready")
        child.send("pid", pid=1)
        with pytest.raises(ProtocolError, match="expected ready from the container, got 'pid'"):
            parent.recv("ready")
        child.send("error", msg="mounts[2] /proc: EPERM")
        with pytest.raises(PyruncError, match=r"^mounts\[2\] /proc: EPERM$"):
            parent.recv("ready")
        with pytest.raises(ProtocolError, match="too large"):
            child.send("ready", pad="y" * MAX_MSG)
        # fds where none are expected are refused and closed, and a missing fd too
        before = len(os.listdir("/proc/self/fd"))
        r, w = os.pipe()
        sc.send_fds(child.fd, b'{"type": "ready"}', [r])
        os.close(r)
        with pytest.raises(ProtocolError, match="with 1 fds refused"):
            parent.recv("ready")
        os.close(w)
        assert len(os.listdir("/proc/self/fd")) == before
        child.send("seccomp-fd")
        with pytest.raises(ProtocolError, match="with 0 fds refused"):
            parent.recv_fd("seccomp-fd")
        child.close()
        with pytest.raises(ProtocolError, match="died before sending ready"):
            parent.recv("ready")


def test_pyrunc_exe_unreachable_while_it_execs_for_create_and_exec(pyrunc, bundle, cid, tmp_path):
    # An agent holds every execve until the test releases it: pyrunc's execveat of the
    # launcher, then the launcher's execve of the program, each caught in the act.
    held: queue.Queue = queue.Queue()

    def hold(pid: int, _nr: int) -> tuple[int, int]:
        release = threading.Event()
        held.put((pid, release))
        release.wait(30)
        return 0, seccomp_agent.CONTINUE

    gate = seccomp_agent.Agent(tmp_path / "gate.sock", hold)
    gate.start()
    exec_proc = None
    try:
        bundle.config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "gate.sock"),
            "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"}]}
        bundle.args("sleep", "1000")
        pyrunc("create", "--bundle", str(bundle.path), cid)
        init = pyrunc.state(cid)["pid"]
        # 1. pyrunc enters the sealed launcher: the caller is still pyrunc (the host's Python)
        pid, release = held.get(timeout=30)
        assert pid == init and "python" in os.readlink(f"/proc/{init}/exe")
        assert_unreachable(probe(init, init))
        release.set()
        wait_for(lambda: os.readlink(f"/proc/{init}/exe") == LAUNCHER_EXE, what="the launcher")
        # 2. the launcher execs the program: the caller's exe is the sealed launcher
        pyrunc("start", cid)
        pid, release = held.get(timeout=30)
        assert pid == init and os.readlink(f"/proc/{init}/exe") == LAUNCHER_EXE
        assert_unreachable(probe(init, init))
        release.set()
        wait_for(lambda: "busybox" in os.readlink(f"/proc/{init}/exe"), what="the init's execve")

        exec_proc = subprocess.Popen(pyrunc.cmd("exec", "-d", cid, "sleep", "999"), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for caller in ("python", LAUNCHER_EXE):  # the same two steps for exec
            pid, release = held.get(timeout=30)
            assert pid != init and caller in os.readlink(f"/proc/{pid}/exe")
            assert_unreachable(probe(init, pid))
            release.set()
        assert exec_proc.wait(30) == 0
    finally:
        if exec_proc is not None and exec_proc.poll() is None:
            exec_proc.kill()
            exec_proc.wait()
        gate.finish()
    assert not gate.errors, gate.errors


@pytest.mark.parametrize("pivot", ["--no-pivot", "pivot_root"])
def test_nested_userns_cannot_mount_an_unmasked_procfs(pyrunc, bundle, cid, pivot):
    """The kernel lets a user namespace mount a procfs only while a fully visible one is in
    its mount namespace. --no-pivot's MS_MOVE + chroot would keep the host's /proc and /sys
    there (issue 25): they are detached first. Control: the same probe succeeds in a
    container whose own /proc is left unmasked, so the probe can tell."""
    probe = ("unshare -mrpf true 2>/dev/null || { echo no-userns; exit; }; "
             "unshare -mrpf sh -c 'mount -t proc none /proc' 2>/dev/null && echo mounted || echo refused")
    bundle.sh(probe)
    # A user: mapping uid 0 of the parent namespace needs CAP_SETFCAP (Linux >= 5.12)
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.write()
    extra = ["--no-pivot"] if pivot == "--no-pivot" else []
    seen = pyrunc("run", *extra, "-b", str(bundle.path), cid).stdout
    if seen == "no-userns\n":
        pytest.skip("a user in the container may not make a user namespace here (user.max_user_namespaces)")
    assert seen == "refused\n"
    bundle.config["linux"]["maskedPaths"] = bundle.config["linux"]["readonlyPaths"] = []
    bundle.write()
    assert pyrunc("run", *extra, "-b", str(bundle.path), cid + "c").stdout == "mounted\n"
