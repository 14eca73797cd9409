"""checkpoint and restore (issue 28): a busybox counter appending to a bind-mounted file is
checkpointed (it stops, the container is gone), restored (the same program goes on counting
from where it was), and the restored container is one like any other: state, kill, delete.
Its stdio survives the trip: /dev/null, pipes, a terminal. Checked from the host."""
from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from criuhelp import continued, counter_bundle, counts, need_criu, stopped, wait_count
from helpers import wait_for
from test_terminal import ConsoleReceiver

pytestmark = pytest.mark.usefixtures("criu")


@pytest.fixture(scope="module")
def criu() -> None:
    need_criu()


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def restored(pyrunc, cid: str) -> int:
    """The restored container, seen from the host: running, its init alive in its cgroup."""
    st = pyrunc.state(cid)
    assert st["status"] == "running"
    assert all(line.endswith(f"/{cid}") for line in cgroup_of(st["pid"]).splitlines()), cgroup_of(st["pid"])
    return st["pid"]


def detached(pyrunc, *args: str, stdin: int = subprocess.DEVNULL, stdout: int = subprocess.DEVNULL) -> None:
    """pyrunc run -d / restore -d whose stdio (the container's) is what the test gives,
    stderr /dev/null: the container would hold an error pipe or file open."""
    proc = subprocess.run(pyrunc.cmd(*args), stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL,
                          start_new_session=True, timeout=60)
    if proc.returncode != 0:  # again, to see why
        err = pyrunc(*args, check=False).stderr
        pytest.fail(f"pyrunc {' '.join(args)} exited {proc.returncode}: {err}")


def counting(pyrunc, bundle, cid: str, data: Path) -> None:
    """The counter container, run detached (stdio on /dev/null) until it has counted to 3."""
    counter_bundle(bundle, data)
    pyrunc.ids.add(cid)
    detached(pyrunc, "run", "-d", "-b", str(bundle.path), cid)
    wait_count(data, 3)


def dying(pid: int) -> bool:
    """Gone, a zombie, or exiting (a process that closes a pty nobody reads sleeps a while
    in its exit, PF_EXITING set)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return True
    fields = raw[raw.rindex(b")") + 2:].split()
    return fields[0] in (b"Z", b"X") or bool(int(fields[6]) & 0x4)


def finish(pyrunc, cid: str) -> None:
    """kill and delete work on the restored init."""
    pid = pyrunc.state(cid)["pid"]
    pyrunc("kill", cid, "KILL")
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="the restored init to die")
    assert dying(pid)
    pyrunc("delete", cid)


def test_devnull_round_trip(pyrunc, bundle, cid, tmp_path):
    data = tmp_path / "data"
    counting(pyrunc, bundle, cid, data)
    images = tmp_path / "images"
    pyrunc("checkpoint", "--image-path", str(images), cid)
    assert pyrunc.list_ids() == [], "the checkpointed container is gone, as with runc"
    last = stopped(data)[-1]
    assert json.loads((images / "descriptors.json").read_text()) == ["/dev/null"] * 3
    detached(pyrunc, "restore", "-d", "-b", str(bundle.path), "--image-path", str(images), cid)
    pid = restored(pyrunc, cid)
    assert [os.readlink(f"/proc/{pid}/fd/{n}") for n in range(3)] == ["/dev/null"] * 3
    live = pyrunc("explain", cid, check=False)  # checked against the kernel: what create would have made
    assert live.returncode == 0 and live.stdout.endswith("no difference from the plan\n"), live.stdout[-2000:]
    continued(data, last)
    finish(pyrunc, cid)


def _read_numbers(fd: int, want: int, timeout: float = 20) -> list[int]:
    buf, end = b"", time.monotonic() + timeout
    while time.monotonic() < end and len(buf.split()) < want:
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    return [int(x) for x in buf.replace(b"\r", b"").split()]


def test_pipes_round_trip(pyrunc, bundle, cid, tmp_path):
    """The restored program writes to the pipe the restoring caller gave it, not to the old one."""
    data = tmp_path / "data"
    counter_bundle(bundle, data)
    r1, w1 = os.pipe()
    pyrunc.ids.add(cid)
    detached(pyrunc, "run", "-d", "-b", str(bundle.path), cid, stdout=w1)
    os.close(w1)
    first = _read_numbers(r1, 3)
    images = tmp_path / "images"
    pyrunc("checkpoint", "--image-path", str(images), cid)
    last = stopped(data)[-1]
    desc = json.loads((images / "descriptors.json").read_text())
    assert desc[0] == "/dev/null" and desc[1].startswith("pipe:[")
    os.set_blocking(r1, False)
    while True:  # the old pipe: what was written before the dump, then EOF (no writer left)
        try:
            if not os.read(r1, 4096):
                break
        except BlockingIOError:
            pytest.fail("the old pipe still has a writer after checkpoint")
    os.close(r1)
    r2, w2 = os.pipe()
    detached(pyrunc, "restore", "-d", "-b", str(bundle.path), "--image-path", str(images), cid, stdout=w2)
    os.close(w2)
    pid = restored(pyrunc, cid)
    assert os.readlink(f"/proc/{pid}/fd/1") == f"pipe:[{os.fstat(r2).st_ino}]"
    after = _read_numbers(r2, 5)
    assert first[0] == 1 and after[0] > last and after == list(range(after[0], after[0] + len(after)))
    continued(data, last)
    finish(pyrunc, cid)
    os.close(r2)


def _terminal_checkpointed(pyrunc, bundle, cid: str, tmp_path):
    """A counter with a terminal, run, seen counting on its pty, then checkpointed with
    --shell-job: (its data file, the image path, the last number before the checkpoint)."""
    data = tmp_path / "data"
    counter_bundle(bundle, data)
    bundle.config["process"]["terminal"] = True
    bundle.write()
    first = ConsoleReceiver(str(tmp_path / "c1.sock"))
    pyrunc("run", "-d", "--console-socket", first.path, "-b", str(bundle.path), cid)
    _read_numbers(first.master(), 3)
    images = tmp_path / "images"
    pyrunc("checkpoint", "--shell-job", "--image-path", str(images), cid)
    last = stopped(data)[-1]
    first.close()
    return data, images, last


def test_terminal_round_trip(pyrunc, bundle, cid, tmp_path):
    """process.terminal with --shell-job: restore sends a new pty master to --console-socket
    and the restored program writes to its slave."""
    data, images, last = _terminal_checkpointed(pyrunc, bundle, cid, tmp_path)
    second = ConsoleReceiver(str(tmp_path / "c2.sock"))
    pyrunc("restore", "-d", "--shell-job", "--console-socket", second.path, "-b", str(bundle.path),
           "--image-path", str(images), cid)
    pid = restored(pyrunc, cid)
    master = second.master()
    slave = os.readlink(f"/proc/{pid}/fd/1")
    assert slave.startswith("/dev/pts/") and second.msg.decode() == slave
    after = _read_numbers(master, 5)
    assert after[0] > last and after == list(range(after[0], after[0] + len(after)))
    continued(data, last)
    finish(pyrunc, cid)
    second.close()


def test_leave_running(pyrunc, bundle, cid, tmp_path):
    """--leave-running: the image is made and the container counts on, untouched."""
    data = tmp_path / "data"
    counter_bundle(bundle, data)
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    wait_count(data, 3)
    pid = pyrunc.state(cid)["pid"]
    pyrunc("checkpoint", "--leave-running", "--image-path", str(tmp_path / "images"), cid)
    assert pyrunc.state(cid)["pid"] == pid and pyrunc.state(cid)["status"] == "running"
    n = len(counts(data))
    wait_count(data, n + 3)
    assert (tmp_path / "images" / "inventory.img").exists()
    finish(pyrunc, cid)


def test_foreground_restore_relays_the_exit_status(pyrunc, bundle, cid, tmp_path):
    """restore without -d waits for the restored init and exits with its status, then deletes it."""
    data = tmp_path / "data"
    counter_bundle(bundle, data, "i=0; while [ $i -lt 25 ]; do i=$((i+1)); echo $i >> /data/count; sleep 0.1; done;"
                                 " exit 7")
    pyrunc.ids.add(cid)
    detached(pyrunc, "run", "-d", "-b", str(bundle.path), cid)
    wait_count(data, 3)
    pyrunc("checkpoint", "--image-path", str(tmp_path / "images"), cid)
    last = stopped(data)[-1]
    proc = pyrunc("restore", "-b", str(bundle.path), "--image-path", str(tmp_path / "images"), cid,
                  check=False, timeout=60)
    assert proc.returncode == 7, proc.stderr
    assert counts(data) == list(range(1, 26)) and last < 25
    assert pyrunc.list_ids() == []


# ---- failures: one line, nothing changed or left -------------------------------------------------

def one_line(proc, *needles: str) -> None:
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("criu_path, why", [("/nonexistent/criu", "not an executable file"),
                                            ("/bin/false", "--version printed no version")])
def test_checkpoint_without_a_usable_criu_changes_nothing(pyrunc, bundle, cid, tmp_path, criu_path, why):
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    before = pyrunc.state(cid)
    images = tmp_path / "images"
    one_line(pyrunc("--criu", criu_path, "checkpoint", "--image-path", str(images), cid, check=False),
             f"checkpoint {cid}: criu", why)
    assert pyrunc.state(cid) == before and not images.exists()
    one_line(pyrunc("--criu", criu_path, "restore", "-b", str(bundle.path), "--image-path", str(images), "r" + cid,
                    check=False), "criu", why)
    assert pyrunc.list_ids() == [cid]


def test_criu_failing_its_check_is_named(pyrunc, bundle, cid, tmp_path):
    """A criu older than 4 (Debian 12's 3.17.1 fails `criu check` on this kernel) is refused."""
    old = Path("/usr/sbin/criu")
    if not old.exists() or b"Version: 3." not in subprocess.run([old, "--version"], capture_output=True).stdout:
        pytest.skip("no criu 3.x at /usr/sbin/criu")
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    one_line(pyrunc("--criu", str(old), "checkpoint", "--image-path", str(tmp_path / "i"), cid, check=False),
             f"criu {old}: version 3.", "older than 4.0")
    assert pyrunc.state(cid)["status"] == "running"


@pytest.fixture
def image(pyrunc, bundle, cid, tmp_path) -> Path:
    """A checkpoint of a counter, its container gone."""
    counter_bundle(bundle, tmp_path / "data")
    pyrunc.ids.add(cid)
    detached(pyrunc, "run", "-d", "-b", str(bundle.path), cid)
    wait_count(tmp_path / "data", 2)
    pyrunc("checkpoint", "--image-path", str(tmp_path / "images"), cid)
    return tmp_path / "images"


def test_restore_failures_leave_nothing(pyrunc, bundle, cid, tmp_path, image):
    """An existing id, a missing image directory, one that is not an image, a corrupt image:
    one line naming the path; no state, cgroup, process or mount left (the fixture checks)."""
    other = "o" + cid
    pyrunc.ids.add(other)
    pyrunc("run", "-d", "-b", str(bundle.path), other)
    one_line(pyrunc("restore", "-d", "-b", str(bundle.path), "--image-path", str(image), other, check=False),
             f"container {other!r} already exists ({pyrunc.root / other})")
    assert pyrunc.state(other)["status"] == "running"
    pyrunc("delete", "-f", other)
    args = ("restore", "-d", "-b", str(bundle.path), "--image-path")
    one_line(pyrunc(*args, str(tmp_path / "nothing"), cid, check=False),
             f"--image-path {tmp_path / 'nothing'}: no such directory")
    (tmp_path / "empty").mkdir()
    one_line(pyrunc(*args, str(tmp_path / "empty"), cid, check=False),
             f"--image-path {tmp_path / 'empty'}: not a checkpoint image (no inventory.img)")
    core = next(image.glob("core-*.img"))
    core.write_bytes(b"\0garbage" * 16)
    one_line(pyrunc(*args, str(image), cid, check=False), f"restore {cid}: criu restore failed",
             f"(log: {image}/restore.log)")
    assert pyrunc.list_ids() == []


# ---- what features and explain say -----------------------------------------------------------

def test_features_lists_checkpoint_support(pyrunc):
    got = json.loads(pyrunc("features").stdout)["annotations"]["io.github.pyrunc.checkpoint"]
    version = subprocess.run(["/usr/local/sbin/criu", "--version"], capture_output=True, text=True).stdout
    assert got.startswith("criu ") and got.split()[1] in version, got
    got = json.loads(pyrunc("--criu", "/nonexistent/criu", "features").stdout)["annotations"]
    assert got["io.github.pyrunc.checkpoint"].startswith("unavailable: criu /nonexistent/criu: not an executable")


def test_explain_names_what_criu_is_told(pyrunc, bundle, cid, tmp_path):
    counter_bundle(bundle, tmp_path / "data")
    bundle.config["annotations"] = {"org.criu.config": str(tmp_path / "criu.conf")}
    bundle.write()
    doc = json.loads(pyrunc("explain", "--format", "json", "-b", str(bundle.path), cid).stdout)
    told = {s["jsonPath"]: s["text"] for s in doc["steps"] if s["who"] == "criu"}
    n = len(bundle.config["mounts"]) - 1
    assert told[f"mounts[{n}]"] == (f"bind mount /data is external: dump --external mnt[/data]:/data, "
                                    f"restore --external mnt[/data]:{tmp_path / 'data'}")
    assert told["annotations['org.criu.config']"] == f"criu --config {tmp_path / 'criu.conf'}"
    assert "--cgroup-root" in told["linux.cgroupsPath"] and cid in told["linux.cgroupsPath"]


def test_flags_passed_to_criu(pyrunc, bundle, cid, tmp_path):
    """runc's pass-through switches reach criu on both sides (criu refuses what it does not
    know), --manage-cgroups-mode full restores the cgroup's properties, and restore's
    --pid-file gets the restored init's pid."""
    data = tmp_path / "data"
    counting(pyrunc, bundle, cid, data)
    flags = ("--tcp-established", "--ext-unix-sk", "--file-locks", "--auto-dedup", "--manage-cgroups-mode", "full")
    images = tmp_path / "images"
    pyrunc("checkpoint", "--image-path", str(images), "--work-path", str(tmp_path / "work"), *flags, cid)
    assert (tmp_path / "work" / "dump.log").exists() and (images / "inventory.img").exists()
    last = stopped(data)[-1]
    detached(pyrunc, "restore", "-d", "-b", str(bundle.path), "--image-path", str(images), "--pid-file",
             str(tmp_path / "pid"), "--no-subreaper", *flags, cid)
    pid = restored(pyrunc, cid)
    assert (tmp_path / "pid").read_text() == str(pid)
    continued(data, last)
    finish(pyrunc, cid)


@pytest.mark.parametrize("args, needle", [
    (["--manage-cgroups-mode", "bogus"], "--manage-cgroups-mode 'bogus': use one of soft, full, strict, ignore"),
    (["--empty-ns", "ipc"], "--empty-ns 'ipc': only network is supported"),
    (["--page-server", "nohost"], "--page-server 'nohost': use ADDRESS:PORT"),
    (["--status-fd", "x"], "invalid value 'x' for --status-fd: not an integer")])
def test_bad_checkpoint_flags(pyrunc, bundle, cid, tmp_path, args, needle):
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    one_line(pyrunc("checkpoint", "--image-path", str(tmp_path / "i"), *args, cid, check=False), needle)
    assert pyrunc.state(cid)["status"] == "running" and not (tmp_path / "i").exists()


def test_terminal_restored_in_the_foreground(pyrunc, bundle, cid, tmp_path):
    """Without -d and --console-socket, restore keeps the new pty's master and relays it to
    its own stdout, as `run` does; it exits with the init's status once it is killed."""
    data, images, last = _terminal_checkpointed(pyrunc, bundle, cid, tmp_path)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        fg = subprocess.Popen(pyrunc.cmd("restore", "--shell-job", "-b", str(bundle.path), "--image-path", str(images),
                                         cid), stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        wait_count(data, last + 5)
        wait_for(lambda: len(out.read_bytes().split()) >= 3, what="the relayed output")
        pyrunc("kill", cid, "KILL")
        assert fg.wait(timeout=30) == 128 + 9, fg.stderr.read()
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.wait()
    got = [int(x) for x in out.read_bytes().replace(b"\r", b"").split()]
    assert got[0] > last and got == list(range(got[0], got[0] + len(got))), got
    assert pyrunc.list_ids() == []
    continued(data, last)


@pytest.mark.skipif(not (Path("/run/systemd/system").is_dir() and Path("/run/dbus/system_bus_socket").exists()),
                    reason="needs systemd as PID 1 and its bus: run hack/test-systemd.sh")
def test_round_trip_in_a_systemd_scope(pyrunc, bundle, cid, tmp_path):
    """--systemd-cgroup: the restored tree is in a scope of its own (started before criu
    makes it), with the config's limit as the scope's property; delete stops the scope."""
    data = tmp_path / "data"
    counter_bundle(bundle, data)
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:pyrunc:{cid}"
    bundle.config["linux"]["resources"] = {"pids": {"limit": 55}}
    bundle.write()
    unit = f"pyrunc-{cid}.scope"
    pyrunc.ids.add(cid)
    detached(pyrunc, "--systemd-cgroup", "run", "-d", "-b", str(bundle.path), cid)
    wait_count(data, 3)
    pyrunc("--systemd-cgroup", "checkpoint", "--image-path", str(tmp_path / "images"), cid)
    last = stopped(data)[-1]
    detached(pyrunc, "--systemd-cgroup", "restore", "-d", "-b", str(bundle.path), "--image-path",
             str(tmp_path / "images"), cid)
    pid = pyrunc.state(cid)["pid"]
    assert f"/system.slice/{unit}" in cgroup_of(pid), cgroup_of(pid)
    show = subprocess.run(["systemctl", "show", unit, "-p", "ActiveState", "-p", "TasksMax"], capture_output=True,
                          text=True, timeout=30).stdout.split()
    assert sorted(show) == ["ActiveState=active", "TasksMax=55"], show
    continued(data, last)
    finish(pyrunc, cid)
    state = subprocess.run(["systemctl", "show", unit, "-p", "ActiveState"], capture_output=True, text=True,
                           timeout=30).stdout.strip()
    assert state == "ActiveState=inactive", state


def test_help_answers_podmans_probe(pyrunc):
    """podman runs `RUNTIME checkpoint --help` and takes exit 0 for checkpoint support."""
    for cmd in ("checkpoint", "restore"):
        res = pyrunc(cmd, "--help")
        assert res.returncode == 0 and res.stdout.startswith(f"NAME:\n   pyrunc {cmd} - ")
        assert "--image-path" in res.stdout
