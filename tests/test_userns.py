"""User namespaces (issue 9): the container's root is host uid 100000."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from helpers import ns_inode, wait_for
from usernshelp import HOST_ROOT, base, make_bundle  # noqa: F401 (fixtures)

NS_GET_USERNS = 0xB701  # ioctl_ns(2): an fd of the user namespace owning a namespace


def owner_userns(pid: int, ns: str) -> str:
    fd = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    finally:
        os.close(fd)
    try:
        return os.readlink(f"/proc/self/fd/{owner}")
    finally:
        os.close(owner)


def status_ids(pid: int) -> dict[str, list[str]]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.split() for k, v in (line.split(":", 1) for line in lines) if k in ("Uid", "Gid")}


def test_container_root_is_host_100000(pyrunc, make_bundle, base, cid):
    b = make_bundle()
    shared = base / "shared"
    shared.mkdir()
    os.chown(shared, HOST_ROOT, HOST_ROOT)
    b.config["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind"]})
    b.sh("id -u > /shared/id; cat /proc/self/uid_map > /shared/map; touch /shared/made-inside; exec sleep 1000")
    pyrunc("create", "--bundle", str(b.path), cid)
    pid = pyrunc.state(cid)["pid"]

    # seen from the host: the maps the config asked for, and every id of the init is 100000
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", str(HOST_ROOT), "65536"]
    assert Path(f"/proc/{pid}/gid_map").read_text().split() == ["0", str(HOST_ROOT), "65536"]
    assert status_ids(pid) == {"Uid": [str(HOST_ROOT)] * 4, "Gid": [str(HOST_ROOT)] * 4}
    assert Path(f"/proc/{pid}/setgroups").read_text().strip() == "allow"  # "deny" only where required
    userns = ns_inode(pid, "user")
    assert userns != ns_inode("self", "user")
    # the other namespaces were made after the user namespace, so it owns them
    for ns in ("mnt", "pid", "net", "ipc", "uts", "cgroup"):
        assert owner_userns(pid, ns) == userns, ns

    pyrunc("start", cid)
    wait_for(lambda: (shared / "made-inside").exists(), what="the container's file")
    st = (shared / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (HOST_ROOT, HOST_ROOT)
    assert (shared / "id").read_text().strip() == "0"
    assert (shared / "map").read_text().split() == ["0", str(HOST_ROOT), "65536"]
    out = pyrunc("exec", cid, "sh", "-c", "id -u; touch /shared/by-exec")
    assert out.stdout.strip() == "0"
    st = (shared / "by-exec").stat()
    assert (st.st_uid, st.st_gid) == (HOST_ROOT, HOST_ROOT)
    pyrunc("kill", cid, "KILL")
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="stopped")
    pyrunc("delete", cid)


def test_proc_sys_and_devices_inside_userns(pyrunc, make_bundle, cid):
    """Without a network namespace of its own, sysfs cannot be mounted: the host's /sys
    is bound read-only instead; device nodes are the host's, bound (no mknod)."""
    b = make_bundle()
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "network"]
    b.sh("set -e; grep -q ' /sys ' /proc/self/mountinfo; test -d /sys/kernel; ! touch /sys/x 2>/dev/null;"
         " test \"$(stat -c %t:%T /dev/null)\" = 1:3; echo ok > /dev/null; test -r /proc/self/status;"
         " grep ' /dev/null ' /proc/self/mountinfo | grep -q devtmpfs")
    out = pyrunc("run", "--bundle", str(b.path), cid)
    assert out.returncode == 0, out.stderr


def test_sysfs_with_own_netns(pyrunc, make_bundle, cid):
    b = make_bundle()
    b.sh("grep ' /sys ' /proc/self/mountinfo | grep -q ' - sysfs '")
    assert pyrunc("run", "--bundle", str(b.path), cid).returncode == 0


def test_join_user_namespace_by_path(pyrunc, make_bundle, cid):
    first = make_bundle("first")
    first.sh("exec sleep 1000")
    pyrunc("create", "--bundle", str(first.path), cid)
    pid = pyrunc.state(cid)["pid"]
    second = make_bundle("second")
    linux = second.config["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "user"]
    linux["namespaces"].append({"type": "user", "path": f"/proc/{pid}/ns/user"})
    del linux["uidMappings"], linux["gidMappings"]
    second.sh("id -u > /tmp/id.new; mv /tmp/id.new /tmp/id; exec sleep 1000")
    other = cid + "b"
    pyrunc("create", "--bundle", str(second.path), other)
    pid2 = pyrunc.state(other)["pid"]
    assert ns_inode(pid2, "user") == ns_inode(pid, "user")
    assert owner_userns(pid2, "mnt") == ns_inode(pid, "user")
    assert status_ids(pid2)["Uid"] == [str(HOST_ROOT)] * 4
    pyrunc("start", other)
    wait_for(lambda: (second.rootfs / "tmp" / "id").exists(), what="the second container")
    assert (second.rootfs / "tmp" / "id").read_text().strip() == "0"
    pyrunc("delete", "--force", other)
    pyrunc("delete", "--force", cid)


BAD = {
    "overlap-container": ("linux.uidMappings[1]", lambda l: l["uidMappings"].append(
        {"containerID": 10, "hostID": 300000, "size": 5})),
    "overlap-host": ("linux.gidMappings[1]", lambda l: l["gidMappings"].append(
        {"containerID": 70000, "hostID": HOST_ROOT + 5, "size": 5})),
    "out-of-range": ("linux.uidMappings[0]", lambda l: l["uidMappings"].__setitem__(
        0, {"containerID": 0, "hostID": 4294967290, "size": 65536})),
    "no-gid-maps": ("linux.gidMappings", lambda l: l.pop("gidMappings")),
    "no-userns": ("linux.uidMappings", lambda l: l.__setitem__(
        "namespaces", [ns for ns in l["namespaces"] if ns["type"] != "user"])),
    "proc-without-pidns": ("mounts[0]: proc in a new user namespace", lambda l: l.__setitem__(
        "namespaces", [ns for ns in l["namespaces"] if ns["type"] != "pid"])),
    "root-unmapped": ("linux.uidMappings", lambda l: l.__setitem__(
        "uidMappings", [{"containerID": 1, "hostID": HOST_ROOT, "size": 10}])),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_mappings(pyrunc, make_bundle, cid, case):
    field, breakit = BAD[case]
    b = make_bundle()
    breakit(b.config["linux"])
    b.write()
    out = pyrunc("create", "--bundle", str(b.path), cid, check=False)
    assert out.returncode != 0
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and field in err, err
    assert pyrunc.list_ids() == []


def test_kernel_refused_map_names_the_field():
    """A map the kernel refuses (here: a range overlapping itself, which spec rules
    would stop first) is reported with the field and the map, the helper reaped."""
    from pyrunc.errors import PyruncError
    from pyrunc.linux import userns

    bad = [{"containerID": 0, "hostID": HOST_ROOT, "size": 10}, {"containerID": 5, "hostID": 0, "size": 10}]
    before = _children()
    with pytest.raises(PyruncError) as exc:
        userns.mapped_userns_fd(bad, [{"containerID": 0, "hostID": 0, "size": 1}])
    msg = str(exc.value)
    assert msg.startswith("linux.uidMappings: write /proc/") and "the kernel refused" in msg, msg
    assert "Invalid argument" in msg
    assert _children() == before  # the helper child was reaped


def _children() -> set[str]:
    """Pids of this process's children, zombies included (other tests may have left some)."""
    return {pid for tid in os.listdir("/proc/self/task")
            for pid in open(f"/proc/self/task/{tid}/children").read().split()}
