"""exec into a container (issue 6): output and status, namespaces, cgroup, flags, tty, detach, refusals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ns_inode, wait_for
from test_terminal import ConsoleReceiver, read_until_eof

NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "uts")


@pytest.fixture
def running(pyrunc, bundle, cid):
    """A running container (sleep) and its init pid."""
    bundle.config["root"]["readonly"] = False
    bundle.sh("exec sleep 1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    return pyrunc.state(cid)["pid"]


def one_line_error(r: subprocess.CompletedProcess, code: int = 255) -> str:
    msg = r.stderr.strip()
    assert r.returncode == code and msg and "\n" not in msg, (r.returncode, r.stderr)
    return msg


def no_exec_process_left(init: int) -> bool:
    """Only the init (and nothing we exec'd) is in the init's cgroup."""
    cg = [line for line in Path(f"/proc/{init}/cgroup").read_text().splitlines() if ":pids:" in line]
    path = Path("/sys/fs/cgroup/pids") / cg[0].split(":", 2)[2].lstrip("/")
    return (path / "cgroup.procs").read_text().split() == [str(init)]


def test_output_and_exit_status(pyrunc, running, cid):
    r = pyrunc("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    assert pyrunc("exec", cid, "true").returncode == 0
    assert pyrunc.state(cid)["status"] == "running"


def test_namespaces_cgroup_root_and_settings(pyrunc, running, cid, tmp_path):
    init = running
    pid_file = tmp_path / "exec.pid"
    r = pyrunc("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "1000")
    assert r.returncode == 0 and r.stdout == ""
    pid = int(pid_file.read_text())
    try:
        for ns in NAMESPACES:
            assert ns_inode(pid, ns) == ns_inode(init, ns), ns
            assert ns_inode(pid, ns) != ns_inode("self", ns), ns
        assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()
        st_root, init_root = os.stat(f"/proc/{pid}/root"), os.stat(f"/proc/{init}/root")
        assert (st_root.st_dev, st_root.st_ino) == (init_root.st_dev, init_root.st_ino)
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        init_status = dict(line.split(":\t", 1) for line in Path(f"/proc/{init}/status").read_text().splitlines())
        # the container's process settings: capabilities, no_new_privs (default config: true)
        for key in ("CapBnd", "CapEff", "CapPrm", "NoNewPrivs"):
            assert status[key] == init_status[key], key
        assert status["NoNewPrivs"].strip() == "1"
        # from inside: the pid namespace view
        inside = pyrunc("exec", cid, "sh", "-c", "ps -o args | grep -cx 'sleep 1000'").stdout.strip()
        assert inside == "2"  # the init and ours, both visible in the container's pid namespace
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: no_exec_process_left(init), what="the exec'd process to go")


def test_time_namespace_joined(pyrunc, bundle, cid):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 10 * 86400, "nanosecs": 0}}
    bundle.sh("exec sleep 1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    init = pyrunc.state(cid)["pid"]
    out = pyrunc("exec", cid, "sh", "-c", "readlink /proc/self/ns/time; cut -d. -f1 /proc/uptime").stdout.split()
    assert out[0] == ns_inode(init, "time") != ns_inode("self", "time")
    assert int(out[1]) >= 10 * 86400  # the container's boottime offset applies to the exec'd process


def test_flags_env_cwd_user_gids(pyrunc, running, cid):
    out = pyrunc("exec", "-e", "FOO=bar", "--cwd", "/tmp", "-u", "1000:1001", "-g", "10", "-g", "20", cid,
                 "sh", "-c", "echo $FOO; pwd; id -u; id -g; id -G").stdout.split("\n")
    assert out[:4] == ["bar", "/tmp", "1000", "1001"]
    assert set(out[4].split()) == {"1001", "10", "20"}


def test_cap_flag_adds_a_capability(pyrunc, running, cid):
    def eff(*flags: str) -> int:
        line = pyrunc("exec", *flags, cid, "grep", "CapEff", "/proc/self/status").stdout
        return int(line.split()[1], 16)
    cap_sys_admin = 1 << 21
    assert not eff() & cap_sys_admin
    assert eff("--cap", "CAP_SYS_ADMIN") & cap_sys_admin


def test_process_file(pyrunc, running, cid, tmp_path):
    proc = {"args": ["sh", "-c", "echo $X; pwd; id -u"], "env": ["PATH=/bin", "X=from-file"], "cwd": "/etc",
            "user": {"uid": 65534, "gid": 65534}}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    r = pyrunc("exec", "-p", str(tmp_path / "p.json"), cid)
    assert r.stdout.split() == ["from-file", "/etc", "65534"]


@pytest.mark.parametrize("doc,where", [({"args": [], "cwd": "/"}, "args"),
                                       ({"args": ["true"], "cwd": "/", "user": {"uid": "x", "gid": 0}}, "uid"),
                                       ({"cwd": "/"}, "args")])
def test_process_file_failing_schema(pyrunc, running, cid, tmp_path, doc, where):
    (tmp_path / "p.json").write_text(json.dumps(doc))
    msg = one_line_error(pyrunc("exec", "-p", str(tmp_path / "p.json"), cid, check=False))
    assert "p.json" in msg and where in msg, msg
    assert no_exec_process_left(running)


def test_tty_through_console_socket(pyrunc, running, cid, tmp_path):
    receiver = ConsoleReceiver(str(tmp_path / "console.sock"))
    try:
        pyrunc("exec", "-d", "-t", "--console-socket", receiver.path, cid,
               "sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-tty")
        master = receiver.master()
        assert receiver.msg.startswith(b"/dev/pts/")
        out = read_until_eof(master)
    finally:
        receiver.close()
    assert "/dev/pts/" in out and "stdio-is-tty" in out


def test_tty_in_the_foreground_is_relayed(pyrunc, running, cid):
    r = pyrunc("exec", "-t", cid, "sh", "-c", "tty; [ -t 1 ] && echo stdout-is-tty; exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert "/dev/pts/" in r.stdout and "stdout-is-tty" in r.stdout


def test_detach_returns_at_once(pyrunc, running, cid, tmp_path):
    pid_file = tmp_path / "p.pid"
    t0 = time.monotonic()
    pyrunc("exec", "-d", "--pid-file", str(pid_file), cid, "sh", "-c", "sleep 5")
    assert time.monotonic() - t0 < 4
    pid = int(pid_file.read_text())
    # left to our caller's subreaper (the test runner's pid 1 here), not a zombie of pyrunc
    assert Path(f"/proc/{pid}").exists()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: no_exec_process_left(running), what="the exec'd process to go")


def test_signals_are_relayed(pyrunc, running, cid, bundle):
    marker = bundle.rootfs / "tmp" / "trapped"
    p = subprocess.Popen(pyrunc.cmd("exec", cid, "sh", "-c",
                                    "trap 'exit 42' TERM; touch /tmp/trapped; while :; do sleep 0.05; done"),
                         stdin=subprocess.DEVNULL)
    try:
        wait_for(marker.exists, what="the trap to be set")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 42
    finally:
        p.kill()
        p.wait()


def test_process_starts_with_no_signal_blocked(pyrunc, running, cid):
    """A foreground exec blocks every signal before it forks (so none sent once the process
    runs is lost instead of relayed); the process itself must start with none blocked."""
    out = pyrunc("exec", cid, "grep", "^SigBlk", "/proc/self/status").stdout
    assert out.split() == ["SigBlk:", "0000000000000000"]


def test_preserve_fds(pyrunc, running, cid):
    r_fd, w_fd = os.pipe()
    try:
        # fd 3 is passed on; the pipe's own (higher) fd number must not reach the process
        out = subprocess.run(pyrunc.cmd("exec", "--preserve-fds", "1", cid, "sh", "-c",
                                        "echo via-fd3 >&3; ls /proc/self/fd"),
                             pass_fds=(3, w_fd), preexec_fn=lambda: os.dup2(w_fd, 3), check=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, timeout=60).stdout
        assert out.split() == ["0", "1", "2", "3", "4"]  # 4: ls's own directory fd; no other fd leaked
        os.close(w_fd)
        w_fd = -1
        assert os.read(r_fd, 100) == b"via-fd3\n"
    finally:
        os.close(r_fd)
        if w_fd >= 0:
            os.close(w_fd)


def test_sub_cgroup(pyrunc, running, cid):
    line = [x for x in Path(f"/proc/{running}/cgroup").read_text().splitlines() if ":memory:" in x][0]
    sub = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/") / "sub"
    sub.mkdir()
    out = pyrunc("exec", "--cgroup", "memory:sub", cid, "cat", "/proc/self/cgroup").stdout
    mem = [x for x in out.splitlines() if ":memory:" in x][0]
    assert mem.endswith("/sub"), out
    msg = one_line_error(pyrunc("exec", "--cgroup", "memory:nope", cid, "true", check=False))
    assert "nope" in msg and "does not exist" in msg


def test_exec_into_created_container(pyrunc, bundle, cid):
    bundle.sh("exec sleep 1000")
    pyrunc("create", "-b", str(bundle.path), cid)
    assert pyrunc("exec", cid, "echo", "hi").stdout == "hi\n"
    assert pyrunc.state(cid)["status"] == "created"


def test_paused_refused_unless_ignore_paused(pyrunc, running, cid, bundle):
    pyrunc("pause", cid)
    msg = one_line_error(pyrunc("exec", cid, "true", check=False))
    assert "paused" in msg and "--ignore-paused" in msg
    # with --ignore-paused it joins the frozen cgroup: it runs once the container resumes
    p = subprocess.Popen(pyrunc.cmd("exec", "--ignore-paused", cid, "sh", "-c", "echo resumed > /tmp/r"),
                         stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert not (bundle.rootfs / "tmp" / "r").exists()
        pyrunc("resume", cid)
        assert p.wait(timeout=30) == 0
    finally:
        p.kill()
        p.wait()
    assert (bundle.rootfs / "tmp" / "r").read_text() == "resumed\n"


def test_exec_into_stopped_or_unknown_refused(pyrunc, bundle, cid):
    msg = one_line_error(pyrunc("exec", "nosuch", "true", check=False))
    assert "does not exist" in msg
    pyrunc("run", "-d", "-b", str(bundle.path), cid)  # runs `true`: stopped at once
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="stopped")
    msg = one_line_error(pyrunc("exec", cid, "true", check=False))
    assert "stopped" in msg


@pytest.mark.parametrize("argv,expect", [
    (["nonexistent"], "executable file not found"),
    (["/etc/passwd"], "permission denied"),
    (["/etc"], "is a directory"),
])
def test_exec_failure_exits_255_with_cause(pyrunc, running, cid, argv, expect):
    msg = one_line_error(pyrunc("exec", cid, *argv, check=False))
    assert expect in msg, msg
    assert no_exec_process_left(running)


@pytest.mark.parametrize("flags,expect", [(["-u", "1a:x"], "UID"), (["-u", "1:x"], "UID"),
                                          (["-g", "abc"], "additional-gids")])
def test_bad_user_flags(pyrunc, running, cid, flags, expect):
    msg = one_line_error(pyrunc("exec", *flags, cid, "true", check=False))
    assert expect in msg
    assert no_exec_process_left(running)


@pytest.mark.parametrize("flags,expect", [(["--apparmor", "unconfined-x"], "AppArmor"),
                                          (["--process-label", "system_u:system_r:x:s0"], "SELinux")])
def test_lsm_flags_refused_without_the_lsm(pyrunc, running, cid, flags, expect):
    msg = one_line_error(pyrunc("exec", *flags, cid, "true", check=False))
    assert expect in msg and "not enabled" in msg
    assert no_exec_process_left(running)


def test_no_new_privs_flag(pyrunc, bundle, cid):
    bundle.config["process"]["noNewPrivileges"] = False
    bundle.sh("exec sleep 1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    def nnp(*flags: str) -> str:
        return pyrunc("exec", *flags, cid, "grep", "NoNewPrivs", "/proc/self/status").stdout.split()[1]
    assert (nnp(), nnp("--no-new-privs")) == ("0", "1")


def test_usage_errors_exit_1(pyrunc):
    assert pyrunc("exec", check=False).returncode == 1
    assert pyrunc("exec", "x", check=False).returncode == 1
