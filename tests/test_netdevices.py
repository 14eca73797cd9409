"""linux.netDevices (issue 3 item 6): a host interface moved into the container's
network namespace under its new name, with its addresses. On delete pyrunc leaves it
where it is (runtime-spec 1.3: the runtime MUST NOT move it out before deletion): the
kernel destroys a virtual device with its namespace.

Each test makes its own veth pair (this kernel has no dummy driver) with
addresses from TEST-NET-1 (192.0.2.0/24) and 2001:db8::/32, and removes it.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import wait_for
from probe import create_fails, create_waiting


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def link(name: str, netns_pid: int | None = None) -> dict | None:
    """`ip -j addr show` of one device, in the host or in a process's namespace."""
    cmd = ["ip", "-j", "addr", "show", "dev", name]
    if netns_pid:
        cmd = ["nsenter", "-t", str(netns_pid), "-n", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def addrs(info: dict) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for a in info["addr_info"] if a.get("scope") == "global"}


@pytest.fixture
def veth(cid):
    """A veth pair: (the end to move, its peer); both removed after the test."""
    dev, peer = f"pv{cid[1:9]}", f"pp{cid[1:9]}"
    made = subprocess.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", peer], capture_output=True,
                          text=True)
    if made.returncode != 0 and "Unknown device type" in made.stderr:
        pytest.skip(f"the kernel cannot make a veth pair (CONFIG_VETH): {made.stderr.strip()}")
    assert made.returncode == 0, made.stderr
    try:
        ip("addr", "add", "192.0.2.10/24", "dev", dev)
        ip("addr", "add", "2001:db8::10/64", "dev", dev, "nodad")
        yield dev, peer
    finally:
        for name in (dev, peer):
            ip("link", "del", name, check=False)


EXPECTED = {"192.0.2.10/24", "2001:db8::10/64"}


def gone_with_the_namespace(dev: str, peer: str) -> None:
    """A veth moved into a container dies with its namespace, and takes its peer along."""
    wait_for(lambda: link(dev) is None and link(peer) is None, what="the veth to go with the namespace")


def test_move_in_renamed_with_addresses_and_not_moved_out_on_delete(pyrunc, bundle, cid, veth):
    dev, peer = veth
    bundle.config["linux"]["netDevices"] = {dev: {"name": "ctr0"}}
    pid = create_waiting(pyrunc, bundle, cid)
    assert link(dev) is None  # gone from the host
    inside = link("ctr0", netns_pid=pid)
    assert inside is not None and addrs(inside) == EXPECTED
    assert "UP" in inside["flags"]
    assert pyrunc.state(cid)["status"] == "created"

    pyrunc("delete", "--force", cid)
    gone_with_the_namespace(dev, peer)
    assert link("ctr0") is None


def test_seen_from_inside_with_a_sysctl_naming_it(pyrunc, bundle, cid, veth):
    dev, peer = veth
    bundle.config["linux"]["netDevices"] = {dev: {"name": "net0"}}
    bundle.config["linux"]["sysctl"] = {"net.ipv4.conf.net0.forwarding": "1"}
    bundle.sh("ip addr show net0; cat /proc/sys/net/ipv4/conf/net0/forwarding")
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "inet 192.0.2.10/24" in proc.stdout and "inet6 2001:db8::10/64" in proc.stdout
    assert proc.stdout.split()[-1] == "1"
    gone_with_the_namespace(dev, peer)


def test_with_a_create_runtime_hook(pyrunc, bundle, cid, veth, tmp_path):
    """Both steps talk to the init over the same channel: they must not cross."""
    dev, peer = veth
    mark = tmp_path / "hook-ran"
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {mark}"]}]}
    bundle.config["linux"]["netDevices"] = {dev: {"name": "net0"}}
    pid = create_waiting(pyrunc, bundle, cid)
    assert mark.exists() and link("net0", netns_pid=pid) is not None
    pyrunc("delete", "--force", cid)
    gone_with_the_namespace(dev, peer)


def test_keeps_its_name_without_name_field(pyrunc, bundle, cid, veth):
    dev, peer = veth
    bundle.config["linux"]["netDevices"] = {dev: {}}
    pid = create_waiting(pyrunc, bundle, cid)
    assert link(dev, netns_pid=pid) is not None and link(dev) is None
    pyrunc("delete", "--force", cid)
    gone_with_the_namespace(dev, peer)


def test_name_template(pyrunc, bundle, cid, veth):
    dev, peer = veth
    bundle.config["linux"]["netDevices"] = {dev: {"name": "lo%d"}}
    pid = create_waiting(pyrunc, bundle, cid)
    assert link("lo0", netns_pid=pid) is not None
    pyrunc("delete", "--force", cid)
    gone_with_the_namespace(dev, peer)


def test_joined_netns_keeps_the_device_on_delete(pyrunc, bundle, cid, veth):
    """runtime-spec 1.3: a namespace the container did not create is not the runtime's to empty."""
    dev, _ = veth
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"),
                 what="the holder's netns")
        for ns in bundle.config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{holder.pid}/ns/net"
        bundle.config["linux"]["netDevices"] = {dev: {"name": "net0"}}
        create_waiting(pyrunc, bundle, cid)
        assert "netDevices" not in json.loads((pyrunc.root / cid / "state.json").read_text())
        pyrunc("delete", "--force", cid)
        assert link(dev) is None
        assert addrs(link("net0", netns_pid=holder.pid)) == EXPECTED
    finally:
        holder.kill()
        holder.wait()


def test_missing_device(pyrunc, bundle, cid):
    bundle.config["linux"]["netDevices"] = {"pyrnosuch0": {"name": "eth0"}}
    err = create_fails(pyrunc, bundle, cid)
    assert "linux.netDevices.pyrnosuch0: no network device 'pyrnosuch0' on the host" in err, err


def test_name_taken_in_the_container(pyrunc, bundle, cid, veth):
    dev, _ = veth
    bundle.config["linux"]["netDevices"] = {dev: {"name": "lo"}}
    err = create_fails(pyrunc, bundle, cid)
    assert f"linux.netDevices.{dev}: the container already has a device named 'lo'" in err, err
    assert addrs(link(dev)) == EXPECTED  # still on the host, unchanged


def test_failure_after_the_move_gives_it_back(pyrunc, bundle, cid, veth):
    dev, _ = veth
    bundle.config["linux"]["netDevices"] = {dev: {"name": "net0"}}
    bundle.config["linux"]["sysctl"] = {"net.ipv4.conf.net0.forwarding": "bogus"}
    err = create_fails(pyrunc, bundle, cid)
    assert "linux.sysctl.net.ipv4.conf.net0.forwarding: write" in err and "EINVAL" in err, err
    assert addrs(link(dev)) == EXPECTED


@pytest.mark.parametrize("change, msg", [
    ("no-netns", "linux.netDevices: moving devices needs a network namespace"),
    ("bad-name", "linux.netDevices.pyrt0: 'a/b' must not be"),
    ("long-name", "is not 1-15 characters"),
])
def test_config_errors(pyrunc, bundle, cid, change, msg):
    linux = bundle.config["linux"]
    linux["netDevices"] = {"pyrt0": {"name": {"bad-name": "a/b", "long-name": "x" * 16}.get(change, "eth0")}}
    if change == "no-netns":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    assert msg in create_fails(pyrunc, bundle, cid)
