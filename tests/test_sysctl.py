"""linux.sysctl (issue 3 item 5): namespaced keys are written inside the container,
everything else is refused with the reason, and the host never changes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from probe import create_fails, run_inside

HOST_KEYS = ("kernel/shmmax", "kernel/msgmax", "fs/mqueue/msg_max", "net/ipv4/ip_forward",
             "net/ipv4/tcp_syncookies", "kernel/domainname", "kernel/pid_max", "vm/swappiness")


@pytest.fixture
def host_sysctls():
    """The host's values of every key these tests touch, compared after the test."""
    before = {k: Path("/proc/sys", k).read_text() for k in HOST_KEYS}
    yield
    after = {k: Path("/proc/sys", k).read_text() for k in HOST_KEYS}
    assert after == before


def without_ns(bundle, ns_type: str) -> None:
    bundle.config["linux"]["namespaces"] = [ns for ns in bundle.config["linux"]["namespaces"]
                                            if ns["type"] != ns_type]


def test_namespaced_sysctls_are_set_inside(pyrunc, bundle, cid, host_sysctls):
    bundle.config["linux"]["sysctl"] = {
        "kernel.shmmax": "123456789", "kernel.msgmax": "4321", "fs.mqueue.msg_max": "77",
        "net.ipv4.ip_forward": "1", "net/ipv4/tcp_syncookies": "0", "kernel.domainname": "pyrt.example",
    }
    out = run_inside(pyrunc, bundle, cid, "cd /proc/sys; cat kernel/shmmax kernel/msgmax fs/mqueue/msg_max "
                                          "net/ipv4/ip_forward net/ipv4/tcp_syncookies kernel/domainname")
    assert out.split() == ["123456789", "4321", "77", "1", "0", "pyrt.example"]


def test_sysctl_set_before_readonly_proc_sys(pyrunc, bundle, cid, host_sysctls):
    """/proc/sys is in the default readonlyPaths: the write happens before it turns read-only."""
    assert "/proc/sys" in bundle.config["linux"]["readonlyPaths"]
    bundle.config["linux"]["sysctl"] = {"kernel.shmmni": "1000"}
    out = run_inside(pyrunc, bundle, cid, "cat /proc/sys/kernel/shmmni; echo 5 > /proc/sys/kernel/shmmni || echo ro")
    assert out.split()[0] == "1000" and out.split()[-1] == "ro"


@pytest.mark.parametrize("key, drop_ns, reason", [
    ("kernel.pid_max", None, "is not in a separate kernel namespace"),
    ("vm.swappiness", None, "is not in a separate kernel namespace"),
    ("kernel.shmmax", "ipc", "is not allowed in the host's ipc namespace"),
    ("fs.mqueue.msg_max", "ipc", "is not allowed in the host's ipc namespace"),
    ("net.ipv4.ip_forward", "network", "is not allowed in the host's network namespace"),
    ("kernel.domainname", "uts", "is not allowed in the host's uts namespace"),
])
def test_sysctl_refused_with_reason(pyrunc, bundle, cid, host_sysctls, key, drop_ns, reason):
    if drop_ns:
        without_ns(bundle, drop_ns)
        bundle.config.pop("hostname", None)
    bundle.config["linux"]["sysctl"] = {key: "1"}
    err = create_fails(pyrunc, bundle, cid)
    assert f"linux.sysctl.{key}: '{key}' {reason}" in err, err


def test_net_sysctl_refused_in_a_joined_host_netns(pyrunc, bundle, cid, host_sysctls):
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/proc/{os.getpid()}/ns/net"
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    err = create_fails(pyrunc, bundle, cid)
    assert "linux.sysctl.net.ipv4.ip_forward:" in err and "is the host's network namespace" in err, err


@pytest.mark.parametrize("hostname", ["box", "other", None])
def test_hostname_sysctl_refused_in_own_uts_namespace(pyrunc, bundle, cid, host_sysctls, hostname):
    """As runc and crun (issue 27): the hostname field sets it, whether it is set or not."""
    bundle.config.pop("hostname", None)
    if hostname:
        bundle.config["hostname"] = hostname
    bundle.config["linux"]["sysctl"] = {"kernel.hostname": "other"}
    err = create_fails(pyrunc, bundle, cid)
    assert "linux.sysctl.kernel.hostname:" in err and "conflicts with the OCI 'hostname' field" in err, err


def test_domainname_sysctl_equal_to_domainname(pyrunc, bundle, cid, host_sysctls):
    """Accepted as runc accepts it (issue 27); a different value is still a conflict."""
    bundle.config["domainname"] = "pyrt.example"
    bundle.config["linux"]["sysctl"] = {"kernel.domainname": "pyrt.example"}
    assert run_inside(pyrunc, bundle, cid, "cat /proc/sys/kernel/domainname").split() == ["pyrt.example"]
    bundle.config["linux"]["sysctl"] = {"kernel/domainname": "other.example"}
    err = create_fails(pyrunc, bundle, cid)
    assert "linux.sysctl.kernel/domainname:" in err and "set to 'pyrt.example'" in err, err


def test_value_the_kernel_rejects(pyrunc, bundle, cid, host_sysctls):
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "not-a-number"}
    err = create_fails(pyrunc, bundle, cid)
    assert "linux.sysctl.net.ipv4.ip_forward:" in err and "EINVAL" in err, err


def test_unknown_namespaced_key(pyrunc, bundle, cid, host_sysctls):
    bundle.config["linux"]["sysctl"] = {"net.ipv4.no_such_knob": "1"}
    err = create_fails(pyrunc, bundle, cid)
    assert "linux.sysctl.net.ipv4.no_such_knob:" in err and "ENOENT" in err, err


def test_proc_path_spelling():
    from pyrunc.spec.sysctl import dotted, proc_path

    assert proc_path("net.ipv4.conf.eth0/100.forwarding") == "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
    assert proc_path("net/ipv4/conf/eth0.100/forwarding") == "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
    assert dotted("fs/mqueue/msg_max") == "fs.mqueue.msg_max"
