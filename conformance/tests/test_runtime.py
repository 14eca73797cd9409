"""runtime.md: state, lifecycle and the create/start/kill/delete/state operations."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import alive, cgroup_dirs, ns_inode

STATUSES = {"creating", "created", "running", "stopped"}


def assert_state_schema(st: dict) -> None:
    """Every constraint of schema/state-schema.json (v1.3.0), checked by hand."""
    assert isinstance(st, dict)
    for key in ("ociVersion", "id", "status", "bundle"):
        assert key in st, f"state lacks {key}"
    for key in ("ociVersion", "id", "status", "bundle"):
        assert isinstance(st[key], str), key
    assert st["status"] in STATUSES, st["status"]
    if "pid" in st:
        assert isinstance(st["pid"], int) and not isinstance(st["pid"], bool) and st["pid"] >= 0
    if "annotations" in st:
        assert isinstance(st["annotations"], dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in st["annotations"].items())


@pytest.mark.req("runtime.state.1", "runtime.state.2", "runtime.state.4", "runtime.state.5",
                 "runtime.state.6", "runtime.state.7", "runtime.state.8", "runtime.query-state.3",
                 "runtime.scope-of-a-container.1", "runtime.operations.1")
def test_state_document_through_lifecycle(h):
    b = h.bundle(["sleep", "30"])
    b.config["annotations"] = {"org.example.key": "value"}
    cid, _ = h.create(b)
    st = h.state(cid)
    assert_state_schema(st)
    assert st["status"] == "created"
    assert isinstance(st["ociVersion"], str) and st["ociVersion"]
    assert st["id"] == cid
    assert isinstance(st["pid"], int) and st["pid"] > 0 and alive(st["pid"])
    assert os.path.isabs(st["bundle"]) and Path(st["bundle"]).resolve() == b.path.resolve()
    assert st.get("annotations") == {"org.example.key": "value"}
    h.rt("start", cid)
    st = h.state(cid)
    assert_state_schema(st)
    assert st["status"] == "running" and isinstance(st["pid"], int) and st["pid"] > 0
    h.rt("kill", cid, "KILL")
    st = h.wait_status(cid, "stopped")
    assert_state_schema(st)
    h.rt("delete", cid)
    assert not h.exists(cid)


@pytest.mark.req("runtime.state.7")
def test_state_bundle_is_absolute_for_relative_bundle_arg(h):
    b = h.bundle(["sleep", "30"])
    b.write()
    cid = h.new_id()
    with open(h.tmp / "rel.out", "w") as fo:
        proc = subprocess.run([h.runtime, "--root", str(h.root), "create", "--bundle",
                               b.path.name, cid], cwd=h.tmp, stdin=subprocess.DEVNULL,
                              stdout=fo, stderr=fo, timeout=30)
    assert proc.returncode == 0, (h.tmp / "rel.out").read_text()
    bundle = h.state(cid)["bundle"]
    assert os.path.isabs(bundle) and Path(bundle).resolve() == b.path.resolve()


@pytest.mark.req("runtime.state.3", "runtime.create.2")
def test_duplicate_id_is_rejected_and_first_container_untouched(h):
    b = h.bundle(["sleep", "30"])
    cid, _ = h.create(b)
    pid = h.pid(cid)
    b2 = h.bundle(["sleep", "30"])
    _, proc = h.create(b2, cid=cid, check=False)
    assert proc.returncode != 0
    st = h.state(cid)
    assert st["pid"] == pid and st["status"] == "created"
    assert Path(st["bundle"]).resolve() == b.path.resolve()
    assert not cgroup_dirs(b2.linux["cgroupsPath"])


@pytest.mark.parametrize("bad", ["a/b", "..", "bad id"])
@pytest.mark.req("runtime.create.2")
def test_invalid_id_is_rejected(h, bad):
    b = h.bundle(["sleep", "30"])
    cid, _ = h.create(b)  # positive control with a valid id
    h.rt("delete", "--force", cid)
    _, proc = h.create(b, cid=bad, check=False)
    h.ids.append(bad)
    assert proc.returncode != 0
    assert h.rt("list", "-q", check=False).stdout.split() in ([], [""])
    assert not cgroup_dirs(b.linux["cgroupsPath"])


@pytest.mark.req("runtime.create.1")
def test_create_without_id_fails(h):
    b = h.bundle(["true"])
    cid, _ = h.create(b)  # positive control
    h.rt("delete", "--force", cid)
    proc = h.rt("create", "--bundle", str(b.path), check=False)
    assert proc.returncode != 0
    assert h.rt("list", "-q").stdout.strip() == ""


@pytest.mark.req("runtime.create.1", "bundle.container-format.1")
def test_create_with_bundle_lacking_config_fails(h):
    b = h.bundle(["true"])
    cid, _ = h.create(b)  # positive control
    h.rt("delete", "--force", cid)
    (b.path / "config.json").rename(b.path / "other.json")
    proc = h.rt("create", "--bundle", str(b.path), h.new_id(), check=False)
    assert proc.returncode != 0
    assert h.rt("list", "-q").stdout.strip() == ""


@pytest.mark.req("runtime.lifecycle.1", "runtime.lifecycle.3", "runtime.create.3",
                 "runtime.create.4", "runtime.create.5")
def test_create_builds_environment_but_does_not_run_program(h):
    b = h.bundle(["sh", "-c", "touch /ran; sleep 30"])
    b.config["hostname"] = "created-host"
    cid, _ = h.create(b)
    pid = h.pid(cid)
    # environment exists: own namespaces and cgroup already in place
    for kind in ("pid", "net", "uts", "ipc", "mnt"):
        assert ns_inode(pid, kind) != ns_inode("self", kind), kind
    assert cgroup_dirs(b.linux["cgroupsPath"])
    assert any(b.linux["cgroupsPath"] in line
               for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    # but the user program has not run
    time.sleep(0.3)
    assert not (b.rootfs / "ran").exists()
    assert not os.readlink(f"/proc/{pid}/exe").endswith("busybox")
    h.rt("start", cid)
    deadline = time.monotonic() + 5
    while not (b.rootfs / "ran").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (b.rootfs / "ran").exists()


@pytest.mark.req("runtime.lifecycle.4")
def test_config_changes_after_create_have_no_effect(h):
    b = h.bundle(["sh", "-c", "echo original > /out"])
    cid, _ = h.create(b)
    b.process["args"] = ["sh", "-c", "echo changed > /out"]
    b.config["hostname"] = "changed"
    b.write()
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    assert (b.rootfs / "out").read_text().strip() == "original"


@pytest.mark.req("runtime.lifecycle.2", "runtime.create.6", "runtime.errors.1",
                 "runtime.lifecycle.16")
def test_failed_create_leaves_no_trace(h):
    b = h.bundle(["true"])
    b.config["mounts"].append({"destination": "/data", "type": "bind",
                               "source": str(h.tmp / "does-not-exist"),
                               "options": ["bind"]})
    cid, proc = h.create(b, check=False)
    assert proc.returncode != 0
    assert not h.exists(cid)
    assert h.rt("list", "-q").stdout.strip() == ""
    assert not cgroup_dirs(b.linux["cgroupsPath"])
    # the id is free again
    good = h.bundle(["true"])
    h.create(good, cid=cid)
    assert h.state(cid)["status"] == "created"


@pytest.mark.req("runtime.query-state.1")
def test_state_without_id_fails(h):
    cid, _ = h.create(h.bundle(["sleep", "30"]))
    assert h.state(cid)["id"] == cid  # positive control
    assert h.rt("state", check=False).returncode != 0


@pytest.mark.req("runtime.query-state.2")
def test_state_of_unknown_container_fails(h):
    cid, _ = h.create(h.bundle(["sleep", "30"]))
    assert h.state(cid)["id"] == cid  # positive control
    assert h.rt("state", cid + "x", check=False).returncode != 0


@pytest.mark.req("runtime.start.1")
def test_start_without_id_fails(h):
    b = h.bundle(["sh", "-c", "touch /ran"])
    cid, _ = h.create(b)
    assert h.rt("start", check=False).returncode != 0
    assert h.state(cid)["status"] == "created"


@pytest.mark.req("runtime.start.2")
def test_start_running_container_fails_without_effect(h):
    b = h.bundle(["sleep", "30"])
    cid, _ = h.create(b)
    h.rt("start", cid)
    pid = h.pid(cid)
    assert h.rt("start", cid, check=False).returncode != 0
    st = h.state(cid)
    assert st["status"] == "running" and st["pid"] == pid and alive(pid)


@pytest.mark.req("runtime.start.2")
def test_start_stopped_container_fails(h):
    b = h.bundle(["sh", "-c", "echo x >> /count"])
    cid, _ = h.create(b)
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    assert h.rt("start", cid, check=False).returncode != 0
    assert h.state(cid)["status"] == "stopped"
    assert (b.rootfs / "count").read_text() == "x\n"


@pytest.mark.req("runtime.start.3", "runtime.lifecycle.13")
def test_start_runs_process_args(h):
    b = h.bundle(["sh", "-c", "echo started-$0-$1 > /out", "a", "b"])
    cid, _ = h.create(b)
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    assert (b.rootfs / "out").read_text() == "started-a-b\n"


@pytest.mark.req("runtime.start.4", "config.process.1")
def test_start_without_process_fails(h):
    b = h.bundle(["true"])
    cid, _ = h.create(b)  # positive control
    h.rt("delete", "--force", cid)
    del b.config["process"]
    cid, proc = h.create(b, check=False)
    if proc.returncode == 0:  # create MAY accept it; start MUST then fail
        assert h.rt("start", cid, check=False).returncode != 0
    else:
        assert not h.exists(cid)


@pytest.mark.req("runtime.kill.1")
def test_kill_without_id_fails(h):
    b = h.bundle(["sleep", "30"])
    cid, _ = h.create(b)
    assert h.rt("kill", check=False).returncode != 0
    assert h.state(cid)["status"] == "created"


@pytest.mark.req("runtime.kill.2")
def test_kill_stopped_container_fails(h):
    b = h.bundle(["true"])
    cid, _ = h.create(b)
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    assert h.rt("kill", cid, "KILL", check=False).returncode != 0
    assert h.state(cid)["status"] == "stopped"


@pytest.mark.req("runtime.kill.3")
def test_kill_delivers_the_named_signal(h):
    b = h.bundle(["sh", "-c", "trap 'echo usr1 > /got; exit 0' USR1; touch /ready; "
                              "while true; do sleep 0.05; done"])
    cid, _ = h.create(b)
    h.rt("start", cid)
    deadline = time.monotonic() + 10
    while not (b.rootfs / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    h.rt("kill", cid, "USR1")
    h.wait_status(cid, "stopped")
    assert (b.rootfs / "got").read_text() == "usr1\n"


@pytest.mark.req("runtime.kill.3")
def test_kill_numeric_signal_on_created_container(h):
    b = h.bundle(["sleep", "30"])
    cid, _ = h.create(b)
    pid = h.pid(cid)
    h.rt("kill", cid, str(int(signal.SIGKILL)))
    h.wait_status(cid, "stopped")
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(pid)


@pytest.mark.req("runtime.delete.1")
def test_delete_without_id_fails(h):
    b = h.bundle(["true"])
    cid, _ = h.create(b)
    h.rt("kill", cid, "KILL")
    h.wait_status(cid, "stopped")
    assert h.rt("delete", check=False).returncode != 0
    assert h.state(cid)["status"] == "stopped"


@pytest.mark.req("runtime.delete.2")
def test_delete_running_container_fails_without_effect(h):
    b = h.bundle(["sleep", "30"])
    cid, _ = h.create(b)
    h.rt("start", cid)
    pid = h.pid(cid)
    assert h.rt("delete", cid, check=False).returncode != 0
    st = h.state(cid)
    assert st["status"] == "running" and st["pid"] == pid and alive(pid)
    assert cgroup_dirs(b.linux["cgroupsPath"])


@pytest.mark.req("runtime.delete.2")
def test_delete_created_container_fails_without_effect(h):
    b = h.bundle(["sleep", "30"])
    cid, _ = h.create(b)
    pid = h.pid(cid)
    assert h.rt("delete", cid, check=False).returncode != 0
    st = h.state(cid)
    assert st["status"] == "created" and st["pid"] == pid and alive(pid)


@pytest.mark.req("runtime.delete.3", "runtime.lifecycle.16")
def test_delete_removes_created_resources(h):
    b = h.bundle(["true"])
    cid, _ = h.create(b)
    assert cgroup_dirs(b.linux["cgroupsPath"])
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    h.rt("delete", cid)
    assert not h.exists(cid)
    assert not cgroup_dirs(b.linux["cgroupsPath"])
    assert str(b.rootfs) not in Path("/proc/self/mountinfo").read_text()
    # the id can be reused
    h.create(h.bundle(["true"]), cid=cid)


@pytest.mark.req("runtime.delete.4")
def test_delete_keeps_resources_it_did_not_create(h):
    holder = h.ns_holder("net", "uts")
    parent = h.new_cgroup()
    for d in ("pids", "memory"):
        (Path("/sys/fs/cgroup") / d / parent.lstrip("/")).mkdir()
    shared = h.tmp / "shared"
    shared.mkdir()
    (shared / "keep").write_text("keep")
    b = h.bundle(["sh", "-c", "echo x > /data/new"])
    b.linux["cgroupsPath"] = parent + "/child"
    b.ns("network")["path"] = f"/proc/{holder.pid}/ns/net"
    b.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(shared),
                               "options": ["rbind"]})
    (b.rootfs / "data").mkdir()
    netns = ns_inode(holder.pid, "net")
    cid, _ = h.create(b)
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    h.rt("delete", cid)
    assert holder.poll() is None and ns_inode(holder.pid, "net") == netns
    for d in ("pids", "memory"):
        assert (Path("/sys/fs/cgroup") / d / parent.lstrip("/")).is_dir()
    assert (shared / "keep").read_text() == "keep" and (shared / "new").exists()
