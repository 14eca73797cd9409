"""CVE-2019-5736: no container process reaches a host file through /proc/*/exe (issue 25).

A hostile image's program is `#!/proc/self/exe` (or /proc/self/exe itself, /proc/thread-self/exe,
a chain of symlinks to it, /proc/1/exe while the init waits): the kernel resolves it against
the process that calls execve, so the program becomes that process's executable and then
reopens it for writing. That caller is always pyrunc's sealed launcher (process/launch.py),
never the host's Python. Proven from the host: the interpreter's hash is unchanged and no
exploit ran as the interpreter. The launcher's own execve must not change what the program
gets: capabilities, no_new_privs and seccomp are compared with runc's on the same bundle.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wait_for

HOST_PYTHON = os.path.realpath(sys.executable)
REFUSAL = "pyrunc-launch: this is pyrunc's sealed launcher"
# Runs as the interpreter the kernel picked: records what that is, then (as the real attack
# does, to drop its own hold on the file) execs a shell that reopens it for writing.
EVIL = """#!/proc/self/exe
import os
fd = os.open("/proc/self/exe", os.O_RDONLY)
os.set_inheritable(fd, True)
os.execv("/bin/sh", ["sh", "-c", f"readlink /proc/self/fd/{fd} >/out; (exec 9>>/proc/self/fd/{fd}) && echo WRITABLE >>/out"])
"""


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def hostile(bundle):
    """An image that ships a Python (the host's /usr/lib, read-only) and the exploit, as
    /bin/evil and behind symlink chains; the host interpreter's hash is checked afterwards."""
    root = bundle.rootfs
    for lib in ("lib", "lib64"):
        if os.path.isdir(f"/usr/{lib}"):
            (root / "usr" / lib).mkdir(parents=True, exist_ok=True)
            (root / lib).symlink_to(f"usr/{lib}")
            bundle.config["mounts"].append({"destination": f"/usr/{lib}", "type": "bind", "source": f"/usr/{lib}",
                                            "options": ["rbind", "ro"]})
    (root / "bin/evil").write_text(EVIL)
    (root / "bin/chain2").symlink_to("/proc/self/exe")
    (root / "bin/chain").symlink_to("chain2")
    (root / "bin/evil-chain").write_text(EVIL.replace("#!/proc/self/exe", "#!/bin/chain", 1))
    for name in ("evil", "evil-chain"):
        (root / "bin" / name).chmod(0o755)
    before = digest(HOST_PYTHON)
    yield bundle
    assert digest(HOST_PYTHON) == before, "the host's interpreter was modified"


def assert_refused(proc: subprocess.CompletedProcess, bundle) -> None:
    assert proc.returncode != 0 and REFUSAL in proc.stderr, (proc.returncode, proc.stderr)
    assert not (bundle.rootfs / "out").exists(), (bundle.rootfs / "out").read_text()


ATTACKS = [["/bin/evil"], ["/proc/self/exe", "/bin/evil"], ["/proc/thread-self/exe", "/bin/evil"],
           ["/bin/chain", "/bin/evil"], ["/bin/evil-chain"]]


@pytest.mark.parametrize("args", ATTACKS, ids=lambda a: "+".join(a))
def test_init_cannot_become_the_host_interpreter(pyrunc, hostile, cid, args):
    hostile.args(*args)
    assert_refused(pyrunc("run", "--bundle", str(hostile.path), cid, check=False), hostile)


def test_create_then_start_cannot_either(pyrunc, hostile, cid):
    hostile.args("/bin/evil")
    pyrunc("create", "--bundle", str(hostile.path), cid)
    pyrunc("start", cid)
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="the program to end")
    assert not (hostile.rootfs / "out").exists()


@pytest.mark.parametrize("args", ATTACKS, ids=lambda a: "+".join(a))
def test_exec_cannot_become_the_host_interpreter(pyrunc, hostile, cid, args):
    hostile.args("sleep", "1000")
    pyrunc("run", "-d", "--bundle", str(hostile.path), cid)
    assert_refused(pyrunc("exec", cid, *args, check=False), hostile)


@pytest.mark.parametrize("ptrace", [False, True], ids=["default-caps", "cap-sys-ptrace"])
def test_waiting_init_exe_is_out_of_reach(pyrunc, hostile, cid, ptrace):
    """While the init waits for start, an exec'd process tries the init's exe (pid 1 inside):
    to write it, and to run it as the exploit's interpreter. Without CAP_SYS_PTRACE the init
    is not dumpable: EACCES. With it, what it reaches is the sealed launcher."""
    hostile.args("sleep", "1000")
    if ptrace:
        for caps in hostile.config["process"]["capabilities"].values():
            caps.append("CAP_SYS_PTRACE")
    hostile.write()
    pyrunc("create", "--bundle", str(hostile.path), cid)
    wrote = pyrunc("exec", cid, "sh", "-c", "echo x >>/proc/1/exe", check=False)
    assert wrote.returncode != 0, wrote.stderr
    assert_refused(pyrunc("exec", cid, "/proc/1/exe", "/bin/evil", check=False)
                   if ptrace else _refused_exec(pyrunc, cid), hostile)
    links = pyrunc("exec", cid, "sh", "-c", "for f in /proc/[0-9]*/exe /proc/[0-9]*/fd/*; do readlink $f; done",
                   check=False).stdout
    assert "python" not in links and "/pyrunc/" not in links, links


def _refused_exec(pyrunc, cid: str) -> subprocess.CompletedProcess:
    proc = pyrunc("exec", cid, "/proc/1/exe", "/bin/evil", check=False)
    assert proc.returncode != 0 and "EACCES" in proc.stderr, proc.stderr
    return subprocess.CompletedProcess(proc.args, 1, "", REFUSAL)  # the exec itself was refused


# ---- the launcher's execve changes nothing the program gets: compared with runc -------------

STATUS = "grep -E '^(Uid|Gid|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status"
CAPS = ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_CHOWN"]
SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def _variant(bundle, uid: int, nnp: bool, seccomp: bool) -> None:
    p = bundle.config["process"]
    p["user"] = {"uid": uid, "gid": uid}
    p["noNewPrivileges"] = nnp
    if uid:
        p["capabilities"] = {"bounding": CAPS, "effective": CAPS, "permitted": CAPS, "inheritable": CAPS,
                             "ambient": CAPS[:2]}
    if seccomp:
        bundle.config["linux"]["seccomp"] = SECCOMP
    else:
        bundle.config["linux"].pop("seccomp", None)
    bundle.sh(f"{STATUS}; echo --; sh -c \"{STATUS}\"")  # the program, and what it passes on through execve


def _runc(bundle, tmp_path: Path, cid: str) -> str:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (hack/setup.sh --test installs it)")
    proc = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "--bundle", str(bundle.path), cid],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("uid,nnp,seccomp", [(1000, True, False), (1000, False, True), (1000, True, True),
                                             (0, False, True), (0, True, False)])
def test_program_gets_what_runc_gives(pyrunc, bundle, cid, tmp_path, uid, nnp, seccomp):
    _variant(bundle, uid, nnp, seccomp)
    bundle.write()
    ours = pyrunc("run", "--bundle", str(bundle.path), cid).stdout
    assert ours == _runc(bundle, tmp_path, cid + "r")
    if uid:  # ambient: the program and what it execs keep the ambient capabilities
        amb = [line for line in ours.splitlines() if line.startswith("CapAmb")]
        assert amb and all(int(line.split()[1], 16) == 1 << 10 | 1 << 13 for line in amb), ours


def test_exec_as_a_user_gets_what_runc_gives(pyrunc, bundle, cid, tmp_path):
    _variant(bundle, 1000, False, True)
    bundle.args("sleep", "1000").write()
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    ours = pyrunc("exec", "--user", "1000:1000", cid, "sh", "-c", STATUS).stdout
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (hack/setup.sh --test installs it)")
    root = str(tmp_path / "runc")
    # the container keeps runc's stdio: no pipes, or they never reach EOF
    subprocess.run(["runc", "--root", root, "run", "-d", "--bundle", str(bundle.path), cid + "r"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, stdin=subprocess.DEVNULL)
    try:
        theirs = subprocess.run(["runc", "--root", root, "exec", "--user", "1000:1000", cid + "r", "sh", "-c", STATUS],
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL).stdout
    finally:
        subprocess.run(["runc", "--root", root, "delete", "-f", cid + "r"], capture_output=True, timeout=60)
    assert ours == theirs


def test_terminal_program_gets_the_same_as_without(pyrunc, bundle, cid, tmp_path):
    """With a terminal the launcher runs the same steps; a user with ambient capabilities
    and a filter without no_new_privs (the deferred path) sees what it sees without one."""
    from test_terminal import ConsoleReceiver, read_until_eof

    _variant(bundle, 1000, False, True)
    bundle.write()
    plain = pyrunc("run", "--bundle", str(bundle.path), cid + "p").stdout
    bundle.config["process"]["terminal"] = True
    bundle.write()
    receiver = ConsoleReceiver(str(tmp_path / "console.sock"))
    try:
        pyrunc("run", "-d", "--console-socket", str(tmp_path / "console.sock"), "--bundle", str(bundle.path), cid)
        text = read_until_eof(receiver.master())
    finally:
        receiver.close()
    assert text.replace("\r\n", "\n").strip() == plain.strip()
