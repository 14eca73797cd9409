"""config.md: root, process (cwd/env/args/user/rlimits/caps/oomScoreAdj...), annotations,
extensibility and valid values."""
from __future__ import annotations

import array
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

def _status(text: str, field: str) -> str:
    return next(l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith(field + ":"))


@pytest.mark.req("config.root.4", "config.root.6", "runtime.lifecycle.1")
def test_root_path_is_container_root(h):
    b = h.bundle()
    (b.rootfs / "marker").write_text("rootfs-marker")
    assert h.sh(b, "cat /marker") == "rootfs-marker"


@pytest.mark.req("config.root.8")
def test_readonly_root(h):
    b = h.bundle()
    b.config["root"]["readonly"] = True
    out = h.sh(b, "touch /x 2>/dev/null && echo writable || echo readonly; "
                  "awk '$5 == \"/\"' /proc/self/mountinfo")
    assert out.splitlines()[0] == "readonly"
    assert "ro" in out.splitlines()[1].split()[5].split(",")
    assert not (b.rootfs / "x").exists()


@pytest.mark.req("config.root.8")
def test_root_writable_by_default(h):
    b = h.bundle()
    h.sh(b, "touch /x")
    assert (b.rootfs / "x").exists()


@pytest.mark.req("config.process.5", "config.process.6")
def test_cwd(h):
    b = h.bundle()
    (b.rootfs / "work/dir").mkdir(parents=True)
    b.process["cwd"] = "/work/dir"
    assert h.sh(b, "pwd").strip() == "/work/dir"


@pytest.mark.req("config.process.7")
def test_args_first_entry_searched_in_path(h):
    b = h.bundle()
    b.process["args"] = ["echo", "hello", "world"]
    b.process["env"] = ["PATH=/bin"]
    assert h.run(b).stdout == "hello world\n"


@pytest.mark.req("runtime.create.4")
def test_env(h):
    b = h.bundle()
    b.process["env"] = ["PATH=/bin", "CONF_A=1", "CONF_B=two words"]
    out = h.sh(b, "env").splitlines()
    assert "CONF_A=1" in out and "CONF_B=two words" in out


@pytest.mark.req("config.posix-platform-user.1", "config.posix-platform-user.2")
def test_user_uid_gid_additional_gids(h):
    b = h.bundle()
    b.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000]}
    out = h.sh(b, "cat /proc/self/status")
    assert _status(out, "Uid").split() == ["1000"] * 4
    assert _status(out, "Gid").split() == ["1000"] * 4
    assert set(_status(out, "Groups").split()) >= {"2000", "3000"}


@pytest.mark.req("runtime.create.4")
def test_umask(h):
    b = h.bundle()
    b.process["user"]["umask"] = 0o027
    assert _status(h.sh(b, "cat /proc/self/status"), "Umask") == "0027"


@pytest.mark.req("config.posix-process.1", "config.posix-process.3", "config.posix-process.4",
                 "config.posix-process.5", "config.posix-process.6", "config.posix-process.7")
def test_rlimits(h):
    b = h.bundle()
    b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                            {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}]
    out = h.sh(b, "cat /proc/self/limits")
    nofile = next(l for l in out.splitlines() if l.startswith("Max open files")).split()
    core = next(l for l in out.splitlines() if l.startswith("Max core file size")).split()
    assert nofile[3:5] == ["123", "456"]
    assert core[4:6] == ["0", "4096"]


@pytest.mark.req("config.posix-process.8")
def test_duplicate_rlimit_is_an_error(h):
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.process.update(rlimits=[
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
        {"type": "RLIMIT_NOFILE", "soft": 150, "hard": 200}]))


@pytest.mark.req("config.posix-process.2", "config.valid-values.1")
def test_unknown_rlimit_is_an_error(h):
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.process.update(
        rlimits=[{"type": "RLIMIT_CONFBOGUS", "soft": 1, "hard": 1}]))


@pytest.mark.req("runtime.create.4")
def test_no_new_privileges(h):
    b = h.bundle()
    b.process["noNewPrivileges"] = True
    assert _status(h.sh(b, "cat /proc/self/status"), "NoNewPrivs") == "1"
    b.process["noNewPrivileges"] = False
    assert _status(h.sh(b, "cat /proc/self/status"), "NoNewPrivs") == "0"


@pytest.mark.req("features-linux.capabilities.1", "runtime.create.4")
def test_capability_bounding_set_for_root(h):
    b = h.bundle()
    sets = ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"]
    b.process["capabilities"] = {k: list(sets) for k in
                                 ("bounding", "permitted", "effective", "inheritable")}
    b.process["capabilities"]["ambient"] = []
    # CAP_CHOWN=0, CAP_KILL=5, CAP_NET_RAW=13
    assert int(_status(h.sh(b, "cat /proc/self/status"), "CapBnd"), 16) == 0x2021


@pytest.mark.req("features-linux.capabilities.1", "runtime.create.4")
def test_capability_sets_for_non_root_with_ambient(h):
    b = h.bundle()
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.process["capabilities"] = {k: ["CAP_KILL"] for k in
                                 ("permitted", "effective", "inheritable", "ambient")}
    b.process["capabilities"]["bounding"] = ["CAP_KILL", "CAP_CHOWN"]
    out = h.sh(b, "cat /proc/self/status")
    assert int(_status(out, "CapBnd"), 16) == 0x21
    for field in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
        assert int(_status(out, field), 16) == 0x20, field


@pytest.mark.req("config.linux-process.1", "config.linux-process.2")
def test_unknown_capability_is_a_warning_not_an_error(h):
    b = h.bundle()
    b.process["capabilities"] = {k: ["CAP_KILL", "CAP_CONF_DOES_NOT_EXIST"] for k in
                                 ("bounding", "permitted", "effective", "inheritable", "ambient")}
    b.process["args"] = ["sh", "-c", "grep CapBnd /proc/self/status"]
    proc = h.run(b, check=False)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[1], 16) == 1 << 5


@pytest.mark.req("config.linux-process.3")
def test_oom_score_adj_set(h):
    b = h.bundle()
    b.process["oomScoreAdj"] = 345
    assert h.sh(b, "cat /proc/self/oom_score_adj").strip() == "345"


@pytest.mark.req("config.linux-process.4")
def test_oom_score_adj_unset_is_inherited(h):
    b = h.bundle()
    b.process.pop("oomScoreAdj", None)
    b.process["args"] = ["cat", "/proc/self/oom_score_adj"]
    b.write()

    def raise_oom() -> None:
        Path("/proc/self/oom_score_adj").write_text("211")
    proc = subprocess.run([h.runtime, "--root", str(h.root), "run", "--bundle", str(b.path),
                           h.new_id()], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, preexec_fn=raise_oom)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "211"


@pytest.mark.req("config.linux-process.8")
def test_cpu_affinity_not_changed_without_exec_cpu_affinity(h):
    b = h.bundle()
    b.process["args"] = ["grep", "Cpus_allowed_list", "/proc/self/status"]
    b.write()
    proc = subprocess.run([h.runtime, "--root", str(h.root), "run", "--bundle", str(b.path),
                           h.new_id()], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[1] == "0"


@pytest.mark.req("runtime.create.4")
def test_hostname(h):
    b = h.bundle()
    b.config["hostname"] = "conf-host"
    assert h.sh(b, "hostname").strip() == "conf-host"


@pytest.mark.req("runtime.create.4")
def test_domainname(h):
    b = h.bundle()
    b.config["domainname"] = "conf.example"
    assert h.sh(b, "cat /proc/sys/kernel/domainname").strip() == "conf.example"


@pytest.mark.req("config.process.2")
def test_console_size_ignored_without_terminal(h):
    b = h.bundle()
    b.process["terminal"] = False
    b.process["consoleSize"] = {"height": 40, "width": 100}
    out = h.sh(b, "test -t 1 && echo tty || echo notty")
    assert out.strip() == "notty"


@pytest.mark.req("config.annotations.1", "config.annotations.2", "config.annotations.15",
                 "config.annotations.16")
def test_annotations_including_unknown_keys_are_accepted_and_reported(h):
    b = h.bundle(["sleep", "30"])
    ann = {"org.example.a": "1", "com.example.unknown-to-anyone": "x y z",
           "org.opencontainers.image.os": "linux"}
    b.config["annotations"] = ann
    cid, _ = h.create(b)
    assert h.state(cid)["annotations"] == ann


@pytest.mark.req("config.extensibility.1")
def test_unknown_properties_are_ignored(h):
    b = h.bundle()
    b.config["conf.unknown.top"] = {"anything": [1, 2]}
    b.process["confUnknownProcessField"] = True
    b.linux["confUnknownLinuxField"] = "x"
    b.config["mounts"][0]["confUnknownMountField"] = 1
    assert h.sh(b, "echo fine") == "fine\n"


@pytest.mark.parametrize("where", ["namespace", "propagation", "mounttype", "signal"])
@pytest.mark.req("config.valid-values.1", "runtime.lifecycle.2", "runtime.create.6")
def test_invalid_values_are_errors(h, where):
    b = h.bundle(["sleep", "30"])
    (b.rootfs / "m").mkdir()

    def break_it(b) -> None:
        if where == "namespace":
            b.linux["namespaces"].append({"type": "confbogus"})
        elif where == "propagation":
            b.linux["rootfsPropagation"] = "confbogus"
        elif where == "mounttype":
            b.config["mounts"].append({"destination": "/m", "type": "confbogusfs",
                                       "source": "none"})
        else:
            b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]
    h.expect_rejected(b, break_it)


def _recv_fd(server: socket.socket) -> int:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(10)
        _, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4))
    fds = array.array("i")
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:4])
    assert len(fds) == 1
    return fds[0]


@pytest.mark.req("config-linux.default-devices.1", "runtime.create.4")
def test_terminal_console_and_size(h):
    """process.terminal: the pty master comes over --console-socket; /dev/console is the pty."""
    sock_path = h.tmp / "console.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    server.settimeout(10)
    h.later(server.close)
    b = h.bundle(["sh", "-c", "tty; stat -c '%F' /dev/console; stty size"])
    b.process["terminal"] = True
    b.process["consoleSize"] = {"height": 33, "width": 101}
    got: list[int] = []
    receiver = threading.Thread(target=lambda: got.append(_recv_fd(server)), daemon=True)
    receiver.start()
    cid, _ = h.create(b, extra=("--console-socket", str(sock_path)))
    receiver.join(10)
    assert got, "no pty master received on the console socket"
    master = got[0]
    h.later(lambda: os.close(master))
    h.rt("start", cid)
    out, deadline = b"", time.monotonic() + 10
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO once the last slave fd is closed
                break
            if not chunk:
                break
            out += chunk
        elif h.state(cid)["status"] == "stopped":
            break
    lines = out.decode(errors="replace").replace("\r", "").split("\n")
    assert lines[0].startswith("/dev/pts/"), lines
    assert lines[1] == "character special file", lines
    assert lines[2] == "33 101", lines
