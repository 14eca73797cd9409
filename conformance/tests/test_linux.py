"""config-linux.md + runtime-linux.md: namespaces, user namespaces, devices, /dev symlinks,
default filesystems, masked/readonly paths, network devices, intelRdt."""
from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from conftest import ns_inode

NS_PROC = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
           "user": "user", "cgroup": "cgroup", "time": "time"}
USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _userns(b) -> None:
    b.linux["namespaces"].append({"type": "user"})
    b.linux["uidMappings"] = list(USERNS_MAP)
    b.linux["gidMappings"] = list(USERNS_MAP)
    # sysfs cannot be mounted by a user namespace that does not own the net namespace it
    # would show; we create a new network namespace anyway, so keep it.


@pytest.mark.parametrize("kind", sorted(NS_PROC))
@pytest.mark.req("config-linux.namespaces.5", "config-linux.namespaces.1")
def test_new_namespace_per_type(h, kind):
    b = h.bundle(["sleep", "30"])
    if b.ns(kind) is None:
        if kind == "user":
            _userns(b)
        else:
            b.linux["namespaces"].append({"type": kind})
    cid, _ = h.create(b)
    pid = h.pid(cid)
    proc_name = NS_PROC[kind]
    if kind == "time":  # a new time namespace applies to children: check the one for them
        proc_name = "time_for_children"
        assert ns_inode(pid, "time") != ns_inode("self", "time") or \
            ns_inode(pid, proc_name) != ns_inode("self", "time")
        return
    assert ns_inode(pid, proc_name) != ns_inode("self", proc_name)


@pytest.mark.parametrize("kind", ["network", "ipc", "uts", "cgroup"])
@pytest.mark.req("config-linux.namespaces.6")
def test_unlisted_namespace_is_inherited(h, kind):
    b = h.bundle(["sleep", "30"])
    b.drop_ns(kind)
    if kind == "uts":
        b.config.pop("hostname", None)
    if kind == "network":  # sysfs of the host netns needs no new mount restrictions
        b.config["mounts"] = [m for m in b.config["mounts"] if m["type"] != "sysfs"]
    cid, _ = h.create(b)
    assert ns_inode(h.pid(cid), NS_PROC[kind]) == ns_inode("self", NS_PROC[kind])


@pytest.mark.req("config-linux.namespaces.2", "config-linux.namespaces.3")
def test_join_namespaces_by_path(h):
    holder = h.ns_holder("net", "uts", "ipc")
    b = h.bundle(["sleep", "30"])
    for kind in ("network", "uts", "ipc"):
        b.ns(kind)["path"] = f"/proc/{holder.pid}/ns/{NS_PROC[kind]}"
    b.config.pop("hostname", None)
    cid, _ = h.create(b)
    pid = h.pid(cid)
    for kind in ("network", "uts", "ipc"):
        assert ns_inode(pid, NS_PROC[kind]) == ns_inode(holder.pid, NS_PROC[kind]), kind


@pytest.mark.req("config-linux.namespaces.4")
def test_namespace_path_of_wrong_type_is_an_error(h):
    holder = h.ns_holder("uts")
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.ns("network").update(path=f"/proc/{holder.pid}/ns/uts"))


@pytest.mark.req("config-linux.namespaces.7")
def test_duplicate_namespace_type_is_an_error(h):
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.linux["namespaces"].append({"type": "uts"}))


@pytest.mark.req("config-linux.user-namespace-mappings.1", "config-linux.user-namespace-mappings.2",
                 "config-linux.user-namespace-mappings.3", "config-linux.user-namespace-mappings.4")
def test_user_namespace_mappings_without_chown(h):
    b = h.bundle(["sleep", "30"])
    _userns(b)
    before = {p: (p.lstat().st_uid, p.lstat().st_gid) for p in [b.rootfs, *b.rootfs.iterdir()]}
    cid, _ = h.create(b)
    pid = h.pid(cid)
    uid_map = Path(f"/proc/{pid}/uid_map").read_text().split()
    gid_map = Path(f"/proc/{pid}/gid_map").read_text().split()
    assert uid_map == ["0", "100000", "65536"] and gid_map == ["0", "100000", "65536"]
    after = {p: (p.lstat().st_uid, p.lstat().st_gid) for p in before}
    assert after == before


@pytest.mark.req("config-linux.devices.1", "config-linux.devices.2", "config-linux.devices.3",
                 "config-linux.devices.5")
def test_configured_devices_exist(h):
    b = h.bundle()
    b.linux["devices"] = [
        {"path": "/dev/confnull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 0, "gid": 0},
        {"path": "/dev/conffifo", "type": "p"},
    ]
    b.linux["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    out = h.sh(b, "stat -c '%F %t %T %a' /dev/confnull; stat -c '%F' /dev/conffifo")
    lines = out.splitlines()
    assert lines[0] == "character special file 1 3 640"
    assert lines[1] == "fifo"


@pytest.mark.req("config-linux.devices.4")
def test_device_path_clashing_with_existing_file_is_an_error(h):
    b = h.bundle(["sleep", "30"])
    (b.rootfs / "etc/confdev").write_text("regular file\n")
    h.expect_rejected(b, lambda b: b.linux.update(
        devices=[{"path": "/etc/confdev", "type": "c", "major": 1, "minor": 3}]))
    assert (b.rootfs / "etc/confdev").read_text() == "regular file\n"


@pytest.mark.req("config-linux.default-devices.1")
def test_default_devices(h):
    b = h.bundle()
    out = h.sh(b, "for d in null zero full random urandom tty; do "
                  "stat -c \"$d %F %t:%T\" /dev/$d; done; readlink /dev/ptmx; "
                  "echo x > /dev/null && head -c 4 /dev/zero | od -An -tx1")
    lines = out.splitlines()
    expect = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8",
              "urandom": "1:9", "tty": "5:0"}
    for line in lines[:6]:
        name, kind, nums = line.split(" ", 1)[0], line.split(" ", 1)[1].rsplit(" ", 1)[0], \
            line.rsplit(" ", 1)[1]
        assert kind == "character special file", line
        major, minor = (int(x, 16) for x in nums.split(":"))
        assert f"{major}:{minor}" == expect[name], line
    assert lines[6] in ("pts/ptmx", "/dev/pts/ptmx")
    assert lines[7].split() == ["00", "00", "00", "00"]


@pytest.mark.req("runtime-linux.dev-symbolic-links.1")
def test_dev_symlinks(h):
    b = h.bundle()
    out = h.sh(b, "for l in fd stdin stdout stderr; do echo $l $(readlink /dev/$l); done")
    assert out.splitlines() == ["fd /proc/self/fd", "stdin /proc/self/fd/0",
                                "stdout /proc/self/fd/1", "stderr /proc/self/fd/2"]


@pytest.mark.req("config-linux.default-filesystems.1")
def test_default_filesystems_available(h):
    b = h.bundle()
    out = h.sh(b, "awk '{for (i = 7; $i != \"-\"; i++); print $5, $(i + 1)}' /proc/self/mountinfo")
    mounts = dict(line.split() for line in out.splitlines())
    assert mounts.get("/proc") == "proc"
    assert mounts.get("/sys") == "sysfs"
    assert mounts.get("/dev/pts") == "devpts"
    assert mounts.get("/dev/shm") == "tmpfs"


@pytest.mark.req("config-linux.masked-paths.1", "runtime.create.4")
def test_masked_paths(h):
    b = h.bundle()
    b.linux["maskedPaths"] = ["/proc/meminfo", "/proc/sys/kernel", "/etc/confsecret",
                              "/etc/confdir"]
    (b.rootfs / "etc/confsecret").write_text("secret\n")
    (b.rootfs / "etc/confdir").mkdir()
    (b.rootfs / "etc/confdir/file").write_text("hidden\n")
    out = h.sh(b, "cat /proc/meminfo | wc -c; ls /proc/sys/kernel | wc -l; "
                  "cat /etc/confsecret | wc -c; ls /etc/confdir | wc -l")
    assert out.split() == ["0", "0", "0", "0"]


@pytest.mark.req("config-linux.readonly-paths.1", "runtime.create.4")
def test_readonly_paths(h):
    b = h.bundle()
    (b.rootfs / "data").mkdir()
    b.linux["readonlyPaths"] = ["/data", "/proc/sys"]
    b.process["capabilities"] = {k: ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"] for k in
                                 ("bounding", "permitted", "effective", "inheritable", "ambient")}
    out = h.sh(b, "touch /data/x 2>/dev/null && echo rw || echo ro; "
                  "echo conf > /proc/sys/kernel/hostname 2>/dev/null && echo rw || echo ro")
    assert out.split() == ["ro", "ro"]


def _dummy(h) -> str:
    """A veth end on the host (this kernel has no dummy driver); removed at cleanup."""
    name = f"cf{secrets.token_hex(4)}"
    subprocess.run(["ip", "link", "add", name, "mtu", "1400", "type", "veth", "peer", "name",
                    name + "p"], check=True)
    h.later(lambda: subprocess.run(["ip", "link", "del", name], capture_output=True))
    subprocess.run(["ip", "addr", "add", "192.0.2.7/24", "dev", name], check=True)
    return name


@pytest.mark.req("config-linux.network-devices.1", "config-linux.network-devices.2",
                 "config-linux.network-devices.5", "config-linux.network-devices.6")
def test_net_device_moved_renamed_preserved_and_up(h):
    dev = _dummy(h)
    b = h.bundle()
    b.linux["netDevices"] = {dev: {"name": "conf0"}}
    out = h.sh(b, "ip -o link show conf0; ip -o -4 addr show conf0")
    link, addr = out.splitlines()[0], out.splitlines()[1]
    assert "mtu 1400" in link
    assert "UP" in link.split("<", 1)[1].split(">", 1)[0].split(",")
    assert "192.0.2.7/24" in addr


@pytest.mark.req("config-linux.network-devices.4")
def test_net_device_name_template(h):
    dev = _dummy(h)
    b = h.bundle()
    b.linux["netDevices"] = {dev: {"name": "conf%d"}}
    out = h.sh(b, "ls /sys/class/net")
    assert "conf0" in out.split()


@pytest.mark.req("config-linux.network-devices.3")
def test_net_device_name_clash_is_an_error(h):
    dev = _dummy(h)
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.linux.update(netDevices={dev: {"name": "lo"}}))
    assert Path(f"/sys/class/net/{dev}").exists()


@pytest.mark.req("config-linux.namespace-lifecycle-and-container-termination.1",
                 "config-linux.namespace-lifecycle-and-container-termination.2")
def test_net_device_not_moved_back_on_delete(h):
    dev = _dummy(h)
    holder = h.ns_holder("net")
    b = h.bundle(["sleep", "30"])
    b.ns("network")["path"] = f"/proc/{holder.pid}/ns/net"
    b.linux["netDevices"] = {dev: {}}
    cid, _ = h.create(b)
    h.rt("delete", "--force", cid)
    inside = subprocess.run(["nsenter", "-t", str(holder.pid), "-n", "ip", "-o", "link"],
                            capture_output=True, text=True, check=True).stdout
    assert dev in inside
    assert not Path(f"/sys/class/net/{dev}").exists()


@pytest.mark.req("config-linux.intelrdt.2")
def test_intel_rdt_without_resctrl_is_an_error(h):
    assert "resctrl" not in Path("/proc/self/mountinfo").read_text()
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.linux.update(intelRdt={"closID": "conf"}))
