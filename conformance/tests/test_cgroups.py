"""config-linux.md control groups: cgroupsPath, resources, device allow list, ownership,
unified, update."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import CGROUP_ROOT, cgroup_dirs, remove_cgroup

V1 = ("memory", "pids", "cpu", "devices", "freezer", "blkio", "cpuset")


def _proc_cgroups(pid: int) -> dict[str, str]:
    """controller -> path from /proc/<pid>/cgroup (v1 lines only)."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


@pytest.mark.req("config-linux.cgroups-path.2", "runtime.create.4")
def test_absolute_cgroups_path_under_each_hierarchy(h):
    b = h.bundle(["sleep", "30"])
    path = b.linux["cgroupsPath"]
    cid, _ = h.create(b)
    pid = h.pid(cid)
    cg = _proc_cgroups(pid)
    for ctrl in ("memory", "pids", "cpu", "devices", "freezer"):
        assert cg[ctrl] == path, ctrl
        procs = (CGROUP_ROOT / ctrl / path.lstrip("/") / "cgroup.procs").read_text().split()
        assert str(pid) in procs, ctrl


@pytest.mark.req("config-linux.cgroups-path.1")
def test_relative_cgroups_path_is_accepted(h):
    b = h.bundle(["sleep", "30"])
    rel = b.linux["cgroupsPath"].lstrip("/") + "-rel"
    b.linux["cgroupsPath"] = rel
    h.later(lambda: [remove_cgroup(p) for p in {v for v in _seen.values()}])
    _seen: dict[str, str] = {}
    cid, _ = h.create(b)
    _seen.update(_proc_cgroups(h.pid(cid)))
    assert _seen["pids"].endswith("/" + rel)


@pytest.mark.req("config-linux.cgroups-path.3")
def test_same_cgroups_path_gives_same_cgroup(h):
    path = h.new_cgroup()
    seen = []
    for _ in range(2):
        b = h.bundle(["sleep", "30"])
        b.linux["cgroupsPath"] = path
        cid, _ = h.create(b)
        seen.append(_proc_cgroups(h.pid(cid)))
        h.rt("delete", "--force", cid)
    assert seen[0] == seen[1]
    assert seen[0]["memory"] == path


@pytest.mark.req("runtime.create.4", "runtime.lifecycle.1")
def test_resources_are_written(h):
    disk = [int(x) for x in next(Path("/sys/block").glob("vd*")).joinpath("dev")
            .read_text().split(":")]
    b = h.bundle(["sleep", "30"])
    b.linux["resources"] = {
        "memory": {"limit": 64 * 1024 * 1024},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 42},
        "blockIO": {"throttleReadBpsDevice": [{"major": disk[0], "minor": disk[1],
                                               "rate": 1048576}]},
    }
    cid, _ = h.create(b)
    d = b.linux["cgroupsPath"].lstrip("/")

    def read(ctrl: str, name: str) -> str:
        return (CGROUP_ROOT / ctrl / d / name).read_text().strip()
    assert read("memory", "memory.limit_in_bytes") == str(64 * 1024 * 1024)
    assert read("cpu", "cpu.shares") == "512"
    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("pids", "pids.max") == "42"
    assert read("blkio", "blkio.throttle.read_bps_device") == f"{disk[0]}:{disk[1]} 1048576"


@pytest.mark.req("config-linux.pids.1")
def test_pids_limit_zero_is_a_limit(h):
    b = h.bundle(["sleep", "30"])
    b.linux["resources"] = {"pids": {"limit": 0}}
    h.create(b)
    pids_max = CGROUP_ROOT / "pids" / b.linux["cgroupsPath"].lstrip("/") / "pids.max"
    assert pids_max.read_text().strip() == "0"


def _kmsg_probe(h, rules: list[dict]) -> str:
    """Open (write-only, nothing written) a device no runtime allows by default: kmsg 1:11."""
    b = h.bundle()
    b.linux["devices"] = [{"path": "/dev/confkmsg", "type": "c", "major": 1, "minor": 11,
                           "fileMode": 0o600}]
    b.linux["resources"] = {"devices": rules}
    return h.sh(b, "(exec 3>/dev/confkmsg) 2>&- && echo open || echo denied").strip()


@pytest.mark.req("config-linux.allowed-device-list.1", "config-linux.allowed-device-list.2")
def test_device_rules_applied_in_order_deny_then_allow(h):
    assert _kmsg_probe(h, [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 11,
                           "access": "w"}]) == "open"


@pytest.mark.req("config-linux.allowed-device-list.1")
def test_device_rules_applied_in_order_allow_then_deny(h):
    assert _kmsg_probe(h, [{"allow": True, "type": "c", "major": 1, "minor": 11,
                           "access": "w"},
                          {"allow": False, "access": "rwm"}]) == "denied"


@pytest.mark.req("config-linux.cgroup-ownership.1", "config-linux.cgroup-ownership.2",
                 "config-linux.cgroup-ownership.4", "config-linux.cgroup-ownership.8")
def test_cgroup_ownership_unchanged_on_v1_with_userns(h):
    b = h.bundle(["sleep", "30"])
    b.linux["namespaces"].append({"type": "user"})
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    h.create(b)
    dirs = cgroup_dirs(b.linux["cgroupsPath"])
    assert dirs
    for d in dirs:
        assert (d.stat().st_uid, d.stat().st_gid) == (0, 0), d
        for f in d.iterdir():
            assert f.stat().st_uid == 0, f


@pytest.mark.req("config-linux.unified.3")
def test_unified_for_absent_v2_controller_is_an_error(h):
    assert "memory" not in (CGROUP_ROOT / "unified/cgroup.controllers").read_text().split()
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.linux.update(resources={"unified": {"memory.max": "67108864"}}))
    assert not cgroup_dirs(b.linux["cgroupsPath"])


@pytest.mark.req("config-linux.memory.1")
def test_update_memory_below_usage_is_rejected(h):
    b = h.bundle(["sh", "-c", "head -c 8000000 /dev/zero > /dev/shm/fill; sleep 30"])
    b.linux["resources"] = {"memory": {"limit": 256 * 1024 * 1024, "checkBeforeUpdate": True}}
    cid, _ = h.create(b)
    h.rt("start", cid)
    usage_file = CGROUP_ROOT / "memory" / b.linux["cgroupsPath"].lstrip("/") / \
        "memory.usage_in_bytes"
    deadline = time.monotonic() + 5
    while int(usage_file.read_text()) < 8_000_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(usage_file.read_text()) >= 8_000_000
    res = h.tmp / "res.json"
    res.write_text(json.dumps({"memory": {"limit": 1024 * 1024, "checkBeforeUpdate": True}}))
    proc = h.rt("update", "--resources", str(res), cid, check=False)
    assert proc.returncode != 0
    limit = (usage_file.parent / "memory.limit_in_bytes").read_text().strip()
    assert limit == str(256 * 1024 * 1024)
    assert h.state(cid)["status"] == "running"


@pytest.mark.req("config-linux.cgroups-path.4")
def test_unrepresentable_cgroups_path_is_an_error(h):
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.linux.update(cgroupsPath=b.linux["cgroupsPath"] + "\u0000x"))
