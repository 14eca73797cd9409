"""/dev in the container (issue 3 item 1): default devices, linux.devices, the symlinks, devpts.

Checked inside (busybox stat/readlink/mountinfo) and from the host (/proc/<pid>/root, mountinfo).
"""
from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import wait_for

DEFAULTS = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
         "stderr": "/proc/self/fd/2", "core": "/proc/kcore", "ptmx": "pts/ptmx"}
STAT = "stat -c '%n|%F|%t|%T|%a|%u|%g'"


def parse_stat(out: str) -> dict[str, tuple]:
    """busybox stat lines -> {path: (kind, major, minor, mode, uid, gid)} (major/minor in hex)."""
    found = {}
    for line in out.splitlines():
        if line.count("|") == 6:
            name, kind, ma, mi, mode, uid, gid = line.split("|")
            found[name] = (kind, int(ma, 16), int(mi, 16), int(mode, 8), int(uid), int(gid))
    return found


def mount_of(mountinfo: str, point: str) -> tuple[str, str]:
    """(major:minor, fstype) of the topmost mount at ``point``."""
    hit = None
    for line in mountinfo.splitlines():
        f = line.split()
        if " - " in line and f[4] == point:
            hit = (f[2], f[f.index("-") + 1])
    assert hit, f"no mount at {point}"
    return hit


def test_default_devices_symlinks_and_devpts(pyrunc, bundle, cid):
    names = " ".join(f"/dev/{n}" for n in DEFAULTS)
    bundle.sh(f"{STAT} {names}; for l in {' '.join(LINKS)}; do echo \"link $l $(readlink /dev/$l)\"; done;"
              " cat /proc/self/mountinfo")
    out = pyrunc("run", "-b", str(bundle.path), cid).stdout
    st = parse_stat(out)
    for name, (ma, mi) in DEFAULTS.items():
        assert st[f"/dev/{name}"] == ("character special file", ma, mi, 0o666, 0, 0), name
    links = dict(line.split()[1:3] for line in out.splitlines() if line.startswith("link "))
    assert links == LINKS
    # /dev/pts is a devpts of its own (not the host's instance), /dev/shm a tmpfs.
    pts_dev, pts_type = mount_of(out, "/dev/pts")
    assert pts_type == "devpts"
    host_pts = {mount_of(open("/proc/self/mountinfo").read(), "/dev/pts")[0]}
    assert pts_dev not in host_pts
    assert mount_of(out, "/dev/shm")[1] == "tmpfs"


def test_config_devices_from_host_and_inside(pyrunc, bundle, cid):
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1000, "gid": 1001},
        {"path": "/dev/blk0", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600},
        {"path": "/dev/sub/dir/ttyu", "type": "u", "major": 4, "minor": 64, "fileMode": 0o620, "gid": 5},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o622},
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 7},
    ]
    bundle.sh(f"{STAT} /dev/fuse /dev/blk0 /dev/sub/dir/ttyu /dev/myfifo /dev/null > /tmp/stat; exec sleep 1000")
    pyrunc("create", "-b", str(bundle.path), cid)
    pid = pyrunc.state(cid)["pid"]
    root = f"/proc/{pid}/root"
    expect = {"/dev/fuse": (stat.S_IFCHR, 10, 229, 0o640, 1000, 1001),
              "/dev/blk0": (stat.S_IFBLK, 7, 0, 0o600, 0, 0),
              "/dev/sub/dir/ttyu": (stat.S_IFCHR, 4, 64, 0o620, 0, 5),
              "/dev/myfifo": (stat.S_IFIFO, 0, 0, 0o622, 0, 0),
              "/dev/null": (stat.S_IFCHR, 1, 3, 0o600, 7, 0)}
    for path, (kind, ma, mi, mode, uid, gid) in expect.items():
        st = os.lstat(root + path)
        got = (stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode),
               st.st_uid, st.st_gid)
        assert got == (kind, ma if kind != stat.S_IFIFO else got[1], mi if kind != stat.S_IFIFO else got[2],
                       mode, uid, gid), path
    # Nothing was created on the host's /dev, nor in the bundle's rootfs (it is under a tmpfs /dev).
    assert not os.path.exists("/dev/blk0") and not os.path.exists("/dev/myfifo")
    assert not (bundle.rootfs / "dev" / "blk0").exists()
    pyrunc("start", cid)
    out = bundle.rootfs / "tmp" / "stat"
    wait_for(lambda: out.exists() and out.read_text().count("\n") == 5, what="stat output")
    inside = parse_stat(out.read_text())
    assert inside["/dev/fuse"] == ("character special file", 10, 229, 0o640, 1000, 1001)
    assert inside["/dev/blk0"] == ("block special file", 7, 0, 0o600, 0, 0)
    assert inside["/dev/sub/dir/ttyu"] == ("character special file", 4, 64, 0o620, 0, 5)
    assert inside["/dev/myfifo"][0] == "fifo" and inside["/dev/myfifo"][3] == 0o622
    assert inside["/dev/null"] == ("character special file", 1, 3, 0o600, 7, 0)
    pyrunc("delete", "--force", cid)


@pytest.mark.parametrize("path, made", [("/opt/pyrunc-null", "/opt/pyrunc-null"), ("/dev/pyrunc-xx/", "/dev/pyrunc-xx"),
                                        ("/dev/../etc/pyrunc-node", "/etc/pyrunc-node"),
                                        ("/dev/a/../../tmp/pyrunc-x", "/tmp/pyrunc-x")])
def test_device_path_anywhere_in_the_container(pyrunc, bundle, cid, path, made):
    """config-linux.md: the path "MAY be anywhere in the container filesystem", taken lexically
    as runc takes it (a trailing slash dropped); made inside the rootfs, never on the host."""
    bundle.config["linux"]["devices"] = [{"path": path, "type": "c", "major": 1, "minor": 3, "fileMode": 0o640}]
    bundle.sh("exec sleep 1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    st = os.lstat(f"/proc/{pyrunc.state(cid)['pid']}/root{made}")
    assert (stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode)) == (
        stat.S_IFCHR, 1, 3, 0o640)
    assert not os.path.exists(made)  # not on the host
    pyrunc("delete", "--force", cid)


def test_device_path_on_another_file_is_refused_the_same_device_kept(pyrunc, bundle, cid):
    """config-linux.md: a file at the path that is not the requested device MUST be an error
    (runc replaces it: the spec is kept); the very device there is kept, its mode set."""
    (bundle.rootfs / "etc" / "pyrunc-conf").write_text("regular file\n")
    bundle.config["linux"]["devices"] = [{"path": "/etc/pyrunc-conf", "type": "c", "major": 1, "minor": 3}]
    bundle.args("true")
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False)
    err = proc.stderr.strip()
    assert proc.returncode != 0 and "\n" not in err and "linux.devices[0]" in err and "not the requested device" in err
    assert (bundle.rootfs / "etc" / "pyrunc-conf").read_text() == "regular file\n"
    (bundle.rootfs / "opt").mkdir(exist_ok=True)
    os.mknod(bundle.rootfs / "opt" / "pyrunc-null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    bundle.config["linux"]["devices"] = [{"path": "/opt/pyrunc-null", "type": "c", "major": 1, "minor": 3,
                                          "fileMode": 0o644}]
    bundle.write()
    pyrunc("run", "-b", str(bundle.path), cid)
    assert stat.S_IMODE(os.lstat(bundle.rootfs / "opt" / "pyrunc-null").st_mode) == 0o644


@pytest.mark.parametrize("path, why", [("/", "names the container's root"), ("/dev", "directory is in the way")])
def test_device_path_on_a_directory_is_refused(pyrunc, bundle, cid, path, why):
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/fine", "type": "c", "major": 1, "minor": 3},
        {"path": path, "type": "c", "major": 1, "minor": 3},
    ]
    bundle.args("true")
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and "linux.devices[1]" in err and why in err, err


def test_directory_in_the_way_is_refused(pyrunc, bundle, cid):
    # /dev comes from the rootfs itself here (no tmpfs), with a directory where the device goes.
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev"]
    (bundle.rootfs / "dev" / "thing").mkdir(parents=True)
    (bundle.rootfs / "dev" / "thing" / "keep").write_text("kept")
    bundle.config["linux"]["devices"] = [{"path": "/dev/thing", "type": "c", "major": 1, "minor": 3}]
    bundle.args("true")
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and "linux.devices[0] /dev/thing" in err and "directory is in the way" in err, err
    assert (bundle.rootfs / "dev" / "thing" / "keep").read_text() == "kept"


def _without_mknod(cmd: list[str]) -> list[str]:
    """Run ``cmd`` with CAP_MKNOD gone from the bounding set (so root's exec lacks it too)."""
    return ["capsh", "--drop=cap_mknod", "--", "-c", shlex.join(cmd)]


def test_host_node_bound_when_mknod_is_refused(pyrunc, bundle, cid):
    try:  # the bind's source is the host's own node
        fuse = os.stat("/dev/fuse")
    except FileNotFoundError:
        pytest.skip("the host has no /dev/fuse (the fuse module is not loaded) to bind")
    assert (os.major(fuse.st_rdev), os.minor(fuse.st_rdev)) == (10, 229)
    if not any(line.split()[1:3] == ["/dev", "devtmpfs"] for line in Path("/proc/mounts").read_text().splitlines()):
        pytest.skip("the host's /dev is not a devtmpfs")
    bundle.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    bundle.sh(f"{STAT} /dev/null /dev/zero /dev/fuse; grep -E ' /dev/(null|fuse) ' /proc/self/mountinfo;"
              " echo hi > /dev/null && head -c 3 /dev/zero | wc -c")
    proc = subprocess.run(_without_mknod(pyrunc.cmd("run", "-b", str(bundle.path), cid)), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    st = parse_stat(proc.stdout)
    assert st["/dev/null"][:3] == ("character special file", 1, 3)
    assert st["/dev/fuse"][:3] == ("character special file", 10, 229)
    binds = [line.split() for line in proc.stdout.splitlines() if " - " in line]
    # Each node is a bind mount of the host's devtmpfs node.
    assert {b[4] for b in binds} == {"/dev/null", "/dev/fuse"}
    assert all(b[3] in ("/null", "/fuse") and b[b.index("-") + 1] == "devtmpfs" for b in binds), binds
    assert proc.stdout.rstrip().endswith("3")


def test_mknod_refused_and_no_host_node_is_an_error(pyrunc, bundle, cid):
    bundle.config["linux"]["devices"] = [{"path": "/dev/pyrunc-no-such-node", "type": "c", "major": 1, "minor": 3}]
    bundle.args("true")
    proc = subprocess.run(_without_mknod(pyrunc.cmd("run", "-b", str(bundle.path), cid)), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and "linux.devices[0] /dev/pyrunc-no-such-node" in err and "EPERM" in err, err



def test_config_entry_for_a_default_device_replaces_it(pyrunc, bundle, cid):
    """podman --privileged lists every host device, /dev/null among them. With mknod refused
    (here: no CAP_MKNOD; under podman: a devices cgroup rule written meanwhile) the default
    /dev/null was bound from the host, and the config's own /dev/null then hit that mount
    point. The config's entry now replaces the default: one node, with the config's mode."""
    bundle.config["linux"]["devices"] = [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3,
                                          "fileMode": 0o640}]
    bundle.sh(f"{STAT} /dev/null; grep -c ' /dev/null ' /proc/self/mountinfo; echo hi > /dev/null && echo wrote")
    proc = subprocess.run(_without_mknod(pyrunc.cmd("run", "-b", str(bundle.path), cid)), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert parse_stat(proc.stdout)["/dev/null"][:3] == ("character special file", 1, 3)
    assert proc.stdout.split()[-2:] == ["1", "wrote"]  # bound once from the host
    out = pyrunc("run", "-b", str(bundle.path), cid).stdout  # mknod allowed: the config's mode
    assert parse_stat(out)["/dev/null"][3] == 0o640, out
