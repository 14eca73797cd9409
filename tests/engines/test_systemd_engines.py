"""podman (cgroup_manager = systemd) and containerd (the runc v2 shim's SystemdCgroup)
running containers through pyrunc's systemd cgroup driver (issue 14). Needs systemd as
PID 1 and its bus: hack/test-systemd.sh runs this module in its guest boots (SYSTEMD_ENGINES=1);
on this host it is skipped. Each container's scope is checked from systemd's side and
from the init's /proc/<pid>/cgroup, and must be gone after removal.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine_helpers import IMAGE, TIMEOUT, run, wait_for

SYSTEMD = Path("/run/systemd/system").is_dir() and Path("/run/dbus/system_bus_socket").exists()
pytestmark = pytest.mark.skipif(not SYSTEMD, reason="needs systemd as PID 1 and its bus: run hack/test-systemd.sh")


def unit_state(unit: str) -> tuple[str, str]:
    out = subprocess.run(["systemctl", "show", unit, "-pLoadState", "-pActiveState", "-pControlGroup"],
                         capture_output=True, text=True, check=True, timeout=TIMEOUT).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return props["ActiveState"], props.get("ControlGroup", "")


def in_scope(pid: int, cgroup: str) -> bool:
    return f"0::{cgroup}" in Path(f"/proc/{pid}/cgroup").read_text().splitlines()


def test_podman_with_the_systemd_cgroup_manager(podman, pod):
    _, name = pod
    proc = podman("--cgroup-manager", "systemd", "run", "-d", "--name", name, "--network", "none",
                  "--memory", "64m", IMAGE, "sleep", "1000")
    assert proc.returncode == 0, proc.stderr
    cid = podman.container_id(name)
    unit = f"libpod-{cid}.scope"
    state, cgroup = unit_state(unit)
    assert state == "active" and cgroup == f"/machine.slice/{unit}", (state, cgroup)
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    assert in_scope(pid, cgroup)
    assert any("--systemd-cgroup" in call.argv for call in podman.calls.calls() if "create" in call.argv)
    assert podman("rm", "--force", "--time", "0", name).returncode == 0
    assert wait_for(lambda: unit_state(unit)[0] == "inactive", timeout=30)
    assert not Path(f"/sys/fs/cgroup/machine.slice/{unit}").exists()


def test_containerd_shim_with_systemd_cgroup(containerd, ctd):
    _, cid = ctd
    unit = f"pyrunc-ctr-{cid}.scope"
    # --runc-systemd-cgroup: the shim's SystemdCgroup option (the CRI's SystemdCgroup = true)
    # native: the guest's / is an overlay, which overlayfs snapshots cannot sit on
    proc = run(containerd.run_cmd(cid, "-d", "--snapshotter", "native", "--runc-systemd-cgroup", "--cgroup",
                                  f"system.slice:pyrunc-ctr:{cid}", command=("sleep", "1000")))
    assert proc.returncode == 0, proc.stderr
    state, cgroup = unit_state(unit)
    assert state == "active" and cgroup == f"/system.slice/{unit}", (state, cgroup)
    assert in_scope(containerd.task_pid(cid), cgroup)
    containerd.remove(cid)
    assert wait_for(lambda: unit_state(unit)[0] == "inactive", timeout=30)
    assert not Path(f"/sys/fs/cgroup/system.slice/{unit}").exists()


def test_cri_pod_with_systemd_cgroup(cri_systemd):
    """The kubelet's systemd driver: the pod's parent is a slice; with SystemdCgroup = true
    the handler is called with --systemd-cgroup and each container is a scope in it."""
    cri = cri_systemd
    pod = cri.run_pod("sd")
    try:
        cid = cri.create_container(pod, "app", ["sleep", "1000"], resources={"memory_limit_in_bytes": 64 << 20})
        cri.cri("StartContainer", container_id=cid)
        pid = cri.container_status(cid)[1]["pid"]
        unit = f"cri-containerd-{cid}.scope"
        prefix, _, _ = pod.cgroup_parent.partition("-")
        cgroup = f"/{prefix}.slice/{pod.cgroup_parent}/{unit}"
        assert unit_state(unit) == ("active", cgroup)
        assert in_scope(pid, cgroup)
        assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{pod.pid}/ns/net")
        assert (Path("/sys/fs/cgroup") / cgroup.lstrip("/") / "memory.max").read_text().strip() == str(64 << 20)
        assert "--systemd-cgroup" in " ".join(" ".join(c.argv) for c in cri.calls.calls())
    finally:
        cri.remove_pod(pod.id)
    assert wait_for(lambda: unit_state(unit)[0] == "inactive", timeout=30)
    assert not cri.pod_leftovers(pod)
