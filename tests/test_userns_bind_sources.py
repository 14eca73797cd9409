"""Bind sources the container's mapped root cannot reach (issue 26, item 3): host root
opens them before the user namespace is entered, as runc does, and the container gets
them; the copies are slaves, so a mount made on one inside never shows on the host.
Destinations are still resolved inside the rootfs."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers import wait_for
from test_idmap import host_tree, mount_line
from usernshelp import base, make_bundle  # noqa: F401 (fixtures)


def private_dir(base: Path) -> tuple[Path, Path]:
    """data below a 0700 directory of host root's, and a symlink to it from outside."""
    locked = base / "locked"
    locked.mkdir(mode=0o700)
    data = host_tree(locked)
    link = base / "link"
    link.symlink_to(data)
    return data, link


def test_sources_below_a_0700_directory(pyrunc, make_bundle, base, cid):
    data, link = private_dir(base)
    b = make_bundle()
    b.config["mounts"] += [
        {"destination": "/plain", "type": "bind", "source": str(data), "options": ["rbind", "ro"]},
        {"destination": "/via-link", "type": "bind", "source": str(link), "options": ["bind"]},
        {"destination": "/idmapped", "type": "bind", "source": str(link), "options": ["bind", "idmap"]},
        {"destination": "/one-file", "type": "bind", "source": str(data / "by-root"), "options": ["bind"]},
    ]
    b.sh("for d in plain via-link idmapped; do echo $(cat /$d/by-root) $(stat -c %u /$d/by-root); done > /tmp/seen;"
         " echo $(cat /one-file) >> /tmp/seen; touch /plain/ro 2>/dev/null || echo ro >> /tmp/seen;"
         " touch /idmapped/made-inside; exec sleep 1000")
    pyrunc("run", "-d", "--bundle", str(b.path), cid)
    wait_for(lambda: (data / "made-inside").exists(), what="the container's file")
    seen = (b.rootfs / "tmp" / "seen").read_text().split()
    # host root's file: nobody through a plain bind, the container's root through the idmapped one
    assert seen == ["r", "65534", "r", "65534", "r", "0", "r", "ro"], seen
    st = (data / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    pid = pyrunc.state(cid)["pid"]
    assert "idmapped" in mount_line(pid, "/idmapped").split()[5].split(",")
    assert not [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if str(base) in ln]
    pyrunc("delete", "--force", cid)


def test_a_mount_inside_stays_inside(pyrunc, make_bundle, base, cid):
    """A shared host mount as the source: the container's mount on it does not reach the
    host; the host's mounts still reach the container (a slave, as runc's binds are)."""
    shared = base / "shared"
    (shared / "in").mkdir(parents=True)
    (shared / "out").mkdir()
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        b = make_bundle()
        for k in ("bounding", "effective", "permitted"):
            b.config["process"]["capabilities"][k].append("CAP_SYS_ADMIN")
        b.config["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared),
                                   "options": ["rbind"]})
        b.sh("mount -t tmpfs inside /shared/in && touch /tmp/mounted; exec sleep 1000")
        pyrunc("run", "-d", "--bundle", str(b.path), cid)
        wait_for((b.rootfs / "tmp" / "mounted").exists, what="the container's mount")
        host = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
        assert str(shared / "in") not in host
        subprocess.run(["mount", "-t", "tmpfs", "from-host", str(shared / "out")], check=True)
        try:
            inside = pyrunc("exec", cid, "cat", "/proc/self/mountinfo").stdout
            assert " /shared/out " in inside and " /shared/in " in inside
        finally:
            subprocess.run(["umount", str(shared / "out")], check=True)
        pyrunc("delete", "--force", cid)
    finally:
        subprocess.run(["umount", "-l", str(shared)], check=True)


def test_destination_through_a_symlink_stays_in_the_rootfs(pyrunc, make_bundle, base, cid):
    """The source opened on the host; the destination, a symlink in the rootfs to an
    absolute path, is resolved in the rootfs, never on the host."""
    data, _ = private_dir(base)
    outside = base / "outside"
    outside.mkdir()
    b = make_bundle()
    os.symlink(str(outside), b.rootfs / "escape")
    inner = b.rootfs / str(outside).lstrip("/")
    inner.mkdir(parents=True)
    b.config["mounts"].append({"destination": "/escape", "type": "bind", "source": str(data), "options": ["bind"]})
    b.sh("cat /escape/by-root > /tmp/seen; exec sleep 1000")
    pyrunc("run", "-d", "--bundle", str(b.path), cid)
    wait_for((b.rootfs / "tmp" / "seen").exists, what="the container's read")
    assert (b.rootfs / "tmp" / "seen").read_text() == "r"
    pid = pyrunc.state(cid)["pid"]
    mount_line(pid, str(outside))  # where /escape leads inside
    assert list(outside.iterdir()) == []
    assert not [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if str(outside) in ln]
    pyrunc("delete", "--force", cid)
