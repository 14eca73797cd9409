"""The systemd driver's pure logic: cgroupsPath "slice:prefix:name", slice nesting, unit
properties. The driver against a real systemd: tests/systemd (hack/test-systemd.sh)."""
from __future__ import annotations

import pytest

from pyrunc.cgroups import systemd as sd
from pyrunc.errors import ConfigError

INF = 2**64 - 1


@pytest.mark.parametrize("path, want", [
    ("system.slice:docker:abc", ("system.slice", "docker-abc.scope")),
    ("machine.slice:libpod:abc", ("machine.slice", "libpod-abc.scope")),
    ("kubepods-besteffort-pod123.slice:cri-containerd:abc",
     ("kubepods-besteffort-pod123.slice", "cri-containerd-abc.scope")),
    (":pyrunc:abc", ("system.slice", "pyrunc-abc.scope")),
    ("system.slice::abc", ("system.slice", "abc.scope")),
    ("system.slice:x:pod1.slice", ("system.slice", "pod1.slice")),
    ("", ("system.slice", "pyrunc-c1.scope")),
    (None, ("system.slice", "pyrunc-c1.scope")),
])
def test_parse_path(path, want):
    assert sd.parse_path(path, "c1") == want


def test_rootless_default_slice():
    assert sd.parse_path(None, "c1", rootless=True) == ("user.slice", "pyrunc-c1.scope")


@pytest.mark.parametrize("path", ["abc", "/sys/fs/cgroup/x", "a:b", "a:b:c:d", "system:pyrunc:abc",
                                  "system.slice:pyrunc:", "system.slice:py/runc:abc", "a--b.slice:p:n",
                                  "-a.slice:p:n", "a-.slice:p:n"])
def test_bad_path_names_the_field(path):
    with pytest.raises(ConfigError) as e:
        sd.parse_path(path, "c1")
    assert str(e.value).startswith("linux.cgroupsPath: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("name, want", [
    ("-.slice", "/"),
    ("system.slice", "/system.slice"),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("kubepods-besteffort-pod123.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice"),
])
def test_expand_slice(name, want):
    assert sd.expand_slice(name) == want


def test_cgroup_path():
    assert sd.cgroup_path("a-b.slice", "p-n.scope") == "/a.slice/a-b.slice/p-n.scope"
    assert sd.cgroup_path("-.slice", "p-n.scope") == "/p-n.scope"
    assert sd.cgroup_path("system.slice", "pod-x.slice") == "/pod.slice/pod-x.slice"


def test_properties_v2():
    res = {"memory": {"limit": 67108864, "reservation": 1 << 20}, "cpu": {"shares": 1024, "quota": 50000,
           "period": 100000, "cpus": "0-1,3", "mems": "0"}, "pids": {"limit": 64}}
    assert dict(sd.properties(res, "v2")) == {
        "MemoryMax": ("t", 67108864), "MemoryLow": ("t", 1 << 20), "CPUWeight": ("t", 39),
        "CPUQuotaPeriodUSec": ("t", 100000), "CPUQuotaPerSecUSec": ("t", 500000), "TasksMax": ("t", 64),
        "AllowedCPUs": ("ay", bytes([0b1011])), "AllowedMemoryNodes": ("ay", bytes([1]))}


def test_properties_v1_and_unlimited():
    res = {"memory": {"limit": -1}, "cpu": {"shares": 512, "quota": -1}, "pids": {"limit": -1}}
    assert dict(sd.properties(res, "hybrid")) == {
        "MemoryLimit": ("t", INF), "CPUShares": ("t", 512), "CPUQuotaPerSecUSec": ("t", INF), "TasksMax": ("t", INF)}
    assert sd.properties({}, "v2") == []


def test_cpuset_mask_refuses_garbage():
    with pytest.raises(ConfigError, match="linux.resources.cpu.cpus"):
        sd.properties({"cpu": {"cpus": "0-x"}}, "v2")


def test_state_round_trip():
    from pyrunc.cgroups import load_manager

    mgr = sd.SystemdCgroupManager("v2", {"": "/sys/fs/cgroup/system.slice/p-n.scope"}, {"": "/sys/fs/cgroup"},
                                  "p-n.scope", "system.slice", "pyrunc container c1")
    again = load_manager(mgr.to_state())
    assert isinstance(again, sd.SystemdCgroupManager)
    assert (again.unit, again.slice, again.dirs) == ("p-n.scope", "system.slice", mgr.dirs)
