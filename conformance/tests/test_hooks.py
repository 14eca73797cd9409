"""config.md hooks + runtime.md lifecycle steps 3-13: order, namespaces, state on stdin, failures."""
from __future__ import annotations

import json
import os
import time

import pytest

from conftest import alive, cgroup_dirs, ns_inode, read_log

HOST_NS = {k: os.readlink(f"/proc/self/ns/{k}") for k in ("mnt", "pid", "net", "uts")}


def _start_hook(marker: str) -> dict:
    """A startContainer hook: its path resolves inside the container's rootfs (busybox sh)."""
    return {"path": "/bin/sh", "args": ["sh", "-c",
            f"cat > /{marker}.state; readlink /proc/self/ns/mnt > /{marker}.mnt; "
            f"readlink /proc/self/ns/pid > /{marker}.pid"]}


@pytest.mark.req("runtime.lifecycle.5", "runtime.lifecycle.7", "runtime.lifecycle.9",
                 "runtime.lifecycle.11", "runtime.lifecycle.17",
                 "config.posix-platform-hooks.19", "config.posix-platform-hooks.20",
                 "config.prestart.2", "config.createcontainer-hooks.2",
                 "config.posix-platform-hooks.1", "config.posix-platform-hooks.2",
                 "config.posix-platform-hooks.6", "config.posix-platform-hooks.7",
                 "features.hooks.1")
def test_all_hooks_run_in_order_with_state(h):
    log = h.tmp / "hooks.log"
    b = h.bundle(["sh", "-c", "sleep 0.2"])
    b.config["annotations"] = {"org.example.hook": "yes"}
    # poststart has its own tests, so a misplaced poststart does not mask the rest
    for stage in ("prestart", "createRuntime", "createContainer", "poststop"):
        b.add_hook(stage, h.hook(f"{stage}-1", log))
        b.add_hook(stage, h.hook(f"{stage}-2", log))
    b.add_hook("startContainer", _start_hook("sc"))
    cid, _ = h.create(b)
    names = [r["name"] for r in read_log(log)]
    assert names == ["prestart-1", "prestart-2", "createRuntime-1", "createRuntime-2",
                     "createContainer-1", "createContainer-2"]
    h.rt("start", cid)
    assert len(read_log(log)) == 6
    assert (b.rootfs / "sc.state").exists()
    h.wait_status(cid, "stopped")
    h.rt("delete", cid)
    recs = read_log(log)
    assert [r["name"] for r in recs][6:] == ["poststop-1", "poststop-2"]
    for r in recs:
        st = r["state"]
        assert st.get("id") == cid, r["name"]
        assert os.path.realpath(st.get("bundle", "")) == os.path.realpath(b.path), r["name"]
        assert st.get("ociVersion"), r["name"]
        assert st.get("annotations", {}).get("org.example.hook") == "yes", r["name"]
    inside = json.loads((b.rootfs / "sc.state").read_text())
    assert inside["id"] == cid and inside["status"] in ("created", "running")
    assert {r["name"]: r for r in recs}["poststop-1"]["state"]["status"] == "stopped"


@pytest.mark.req("config.posix-platform-hooks.4", "config.posix-platform-hooks.5",
                 "config.posix-platform-hooks.9", "config.posix-platform-hooks.10",
                 "config.posix-platform-hooks.11", "config.posix-platform-hooks.12",
                 "config.posix-platform-hooks.15", "config.posix-platform-hooks.16",
                 "config.posix-platform-hooks.17", "config.posix-platform-hooks.18",
                 "config.prestart.3", "config.prestart.4", "config.createruntime-hooks.2",
                 "config.createruntime-hooks.3", "config.createcontainer-hooks.3",
                 "config.createcontainer-hooks.4", "config.poststart.2", "config.poststart.3",
                 "config.poststop.2", "config.poststop.3")
def test_hook_namespaces(h):
    log = h.tmp / "ns.log"
    b = h.bundle(["sleep", "30"])
    for stage in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        b.add_hook(stage, h.hook(stage, log))
    cid, _ = h.create(b)
    pid = h.pid(cid)
    ctr = {k: ns_inode(pid, k) for k in ("mnt", "net", "uts")}
    h.rt("start", cid)
    h.rt("kill", cid, "KILL")
    h.wait_status(cid, "stopped")
    h.rt("delete", cid)
    by = {r["name"]: r for r in read_log(log)}
    for stage in ("prestart", "createRuntime", "poststart", "poststop"):
        assert by[stage]["ns"]["mnt"] == HOST_NS["mnt"], stage
        assert by[stage]["ns"]["net"] == HOST_NS["net"], stage
    # createContainer: path resolved on the host filesystem, run in the container's namespaces
    cc = by["createContainer"]["ns"]
    assert cc["mnt"] == ctr["mnt"] and cc["net"] == ctr["net"] and cc["uts"] == ctr["uts"]


@pytest.mark.req("config.posix-platform-hooks.13", "config.posix-platform-hooks.14",
                 "config.startcontainer-hooks.1", "config.startcontainer-hooks.2",
                 "config.startcontainer-hooks.3")
def test_start_container_hook_runs_inside_before_program(h):
    b = h.bundle(["sh", "-c", "test -e /sc.state && echo seen > /program"])
    # /bin/sh must come from the container rootfs: make the host-visible path differ
    b.add_hook("startContainer", _start_hook("sc"))
    cid, _ = h.create(b)
    pid = h.pid(cid)
    mnt = ns_inode(pid, "mnt")
    pidns = ns_inode(pid, "pid")
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    assert (b.rootfs / "sc.mnt").read_text().strip() == mnt
    assert (b.rootfs / "sc.pid").read_text().strip() == pidns
    assert (b.rootfs / "program").read_text() == "seen\n"


@pytest.mark.req("config.prestart.1", "config.createruntime-hooks.1",
                 "config.createcontainer-hooks.1", "runtime.create.5")
def test_create_hooks_run_before_pivot_and_before_program(h):
    log = h.tmp / "pre.log"
    b = h.bundle(["sleep", "30"])
    for stage in ("prestart", "createRuntime", "createContainer"):
        b.add_hook(stage, h.hook(stage, log))
    cid, _ = h.create(b)
    pid = h.pid(cid)
    recs = {r["name"]: r for r in read_log(log)}
    assert set(recs) == {"prestart", "createRuntime", "createContainer"}
    for name in ("prestart", "createRuntime"):
        # the state pid is the container process as the host sees it; no program yet
        assert recs[name]["state"]["pid"] == pid, name
        assert recs[name]["pid_cmdline"] != "sleep", name
    # a hook in the container namespace sees the pid from inside the new pid namespace
    assert recs["createContainer"]["state"]["pid"] == 1
    assert (b.rootfs / "proc").exists() and not list((b.rootfs / "proc").iterdir())
    # createContainer ran in the container mount namespace while the host tree was still
    # its root: it could resolve python3 and the log path, i.e. before pivot_root.
    assert recs["createContainer"]["ns"]["mnt"] == ns_inode(pid, "mnt")


@pytest.mark.req("config.poststart.1", "runtime.lifecycle.14")
def test_poststart_after_program_exec_and_before_start_returns(h):
    log = h.tmp / "ps.log"
    b = h.bundle(["sleep", "30"])
    b.add_hook("poststart", h.hook("poststart", log, sleep=0.5))
    cid, _ = h.create(b)
    h.rt("start", cid)
    recs = read_log(log)
    assert [r["name"] for r in recs] == ["poststart"] and "done" in recs[0]
    assert recs[0]["pid_cmdline"] == "sleep"


@pytest.mark.req("config.poststop.1")
def test_poststop_after_delete_before_return(h):
    log = h.tmp / "pst.log"
    b = h.bundle(["true"])
    b.add_hook("poststop", h.hook("poststop", log, sleep=0.5))
    cid, _ = h.create(b)
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    assert read_log(log) == []
    h.rt("delete", cid)
    recs = read_log(log)
    assert [r["name"] for r in recs] == ["poststop"] and "done" in recs[0]
    assert not cgroup_dirs(b.linux["cgroupsPath"])


@pytest.mark.parametrize("stage", [
    pytest.param("prestart", marks=pytest.mark.req("runtime.lifecycle.6")),
    pytest.param("createRuntime", marks=pytest.mark.req("runtime.lifecycle.8")),
    pytest.param("createContainer", marks=pytest.mark.req("runtime.lifecycle.10"))])
def test_failing_create_hook_aborts_create(h, stage):
    log = h.tmp / "fail.log"
    b = h.bundle(["sh", "-c", "touch /ran"])
    b.add_hook(stage, h.hook(stage, log, rc=1))
    b.add_hook("poststop", h.hook("poststop", log))
    cid, proc = h.create(b, check=False)
    assert proc.returncode != 0
    assert stage in [r["name"] for r in read_log(log)], "the failing hook never ran"
    assert not (b.rootfs / "ran").exists()
    # stopped and destroyed (step 12), poststop hooks run (step 13)
    assert not h.exists(cid) or h.state(cid)["status"] == "stopped"
    h.rt("delete", "--force", cid, check=False)
    assert not cgroup_dirs(b.linux["cgroupsPath"])
    assert "poststop" in [r["name"] for r in read_log(log)]


@pytest.mark.req("runtime.lifecycle.12")
def test_failing_start_container_hook(h):
    log = h.tmp / "sc.log"
    b = h.bundle(["sh", "-c", "touch /ran"])
    b.add_hook("startContainer", {"path": "/bin/false", "args": ["false"]})
    b.add_hook("poststop", h.hook("poststop", log))
    cid, _ = h.create(b)
    pid = h.pid(cid)
    assert h.rt("start", cid, check=False).returncode != 0
    time.sleep(0.2)
    assert not (b.rootfs / "ran").exists()
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(pid)
    assert not h.exists(cid) or h.state(cid)["status"] == "stopped"
    h.rt("delete", "--force", cid, check=False)
    assert "poststop" in [r["name"] for r in read_log(log)]


@pytest.mark.req("runtime.lifecycle.15")
def test_failing_poststart_hook(h):
    log = h.tmp / "pst.log"
    b = h.bundle(["sleep", "30"])
    b.add_hook("poststart", h.hook("poststart", log, rc=1))
    b.add_hook("poststop", h.hook("poststop", log))
    cid, _ = h.create(b)
    pid = h.pid(cid)
    assert h.rt("start", cid, check=False).returncode != 0
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(pid)
    assert not h.exists(cid) or h.state(cid)["status"] == "stopped"
    h.rt("delete", "--force", cid, check=False)
    assert "poststop" in [r["name"] for r in read_log(log)]


@pytest.mark.req("runtime.lifecycle.18", "runtime.warnings.1")
def test_failing_poststop_hook_is_only_a_warning(h):
    log = h.tmp / "stop.log"
    b = h.bundle(["true"])
    b.add_hook("poststop", h.hook("poststop-1", log, rc=1))
    b.add_hook("poststop", h.hook("poststop-2", log))
    cid, _ = h.create(b)
    h.rt("start", cid)
    h.wait_status(cid, "stopped")
    proc = h.rt("delete", cid, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in read_log(log)] == ["poststop-1", "poststop-2"]
    assert not h.exists(cid)
    assert not cgroup_dirs(b.linux["cgroupsPath"])
