"""Idmapped mounts (issue 9): mount_setattr(MOUNT_ATTR_IDMAP) on bind mounts."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import wait_for
from usernshelp import MAP, base, make_bundle  # noqa: F401 (fixtures)


def host_tree(base: Path) -> Path:
    """Host files owned by host root and by host 1234, as an image layer would be."""
    d = base / "data"
    d.mkdir()
    (d / "by-root").write_text("r")
    (d / "by-1234").write_text("u")
    os.chown(d / "by-1234", 1234, 1234)
    return d


def mount_line(pid: int, dst: str) -> str:
    lines = [ln for ln in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if ln.split()[4] == dst]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("own_maps", [True, False], ids=["mount-maps", "container-maps"])
def test_idmapped_bind_shows_host_root_as_root(pyrunc, make_bundle, base, cid, own_maps):
    data = host_tree(base)
    b = make_bundle()
    m = {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "idmap"]}
    if own_maps:
        m.update(uidMappings=MAP, gidMappings=MAP)
    b.config["mounts"].append(m)
    b.sh("stat -c '%n %u:%g' /data/by-root /data/by-1234 > /tmp/owners; touch /data/made-inside; exec sleep 1000")
    pyrunc("run", "-d", "--bundle", str(b.path), cid)
    wait_for(lambda: (data / "made-inside").exists(), what="the container's file")
    pid = pyrunc.state(cid)["pid"]
    assert "idmapped" in mount_line(pid, "/data").split()[5].split(",")
    # inside, the container's root (host 100000) sees host root's files as its own
    assert (b.rootfs / "tmp" / "owners").read_text().splitlines() == ["/data/by-root 0:0", "/data/by-1234 1234:1234"]
    st = (data / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)  # written through the mapping back to host root
    pyrunc("delete", "--force", cid)


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_ridmap_reaches_submounts(pyrunc, make_bundle, base, cid, option):
    """rbind copies a submount; only ridmap idmaps it too (idmap leaves it unmapped: nobody)."""
    data = host_tree(base)
    sub = data / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "tmpfs", str(sub)], check=True)
    try:
        (sub / "inner").write_text("i")
        b = make_bundle()
        b.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                   "options": ["rbind", option]})
        b.sh("stat -c %u /data/by-root /data/sub/inner")
        out = pyrunc("run", "--bundle", str(b.path), cid).stdout.split()
        assert out == (["0", "0"] if option == "ridmap" else ["0", "65534"])
    finally:
        subprocess.run(["umount", str(sub)], check=True)


def test_idmapped_bind_without_userns(pyrunc, bundle, base, cid):
    """A container in the host's user namespace still sees the mount's own mapping."""
    data = host_tree(base)
    one = [{"containerID": 0, "hostID": 1000, "size": 1}]
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                    "options": ["bind", "idmap"], "uidMappings": one, "gidMappings": one})
    bundle.sh("stat -c %u:%g /data/by-root")
    out = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert out.stdout.strip() == "1000:1000"


BAD = {
    "idmap-without-any-mapping": ("mounts[{i}].options", {"options": ["bind", "idmap"]}),
    "uid-without-gid": ("mounts[{i}]", {"options": ["bind", "idmap"], "uidMappings": MAP}),
    "not-a-bind": ("mounts[{i}]", {"type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                                   "uidMappings": MAP, "gidMappings": MAP}),
    "overlapping-mount-map": ("mounts[{i}].uidMappings[1]", {
        "options": ["bind", "idmap"], "gidMappings": MAP,
        "uidMappings": MAP + [{"containerID": 5, "hostID": 0, "size": 1}]}),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_idmap_mounts(pyrunc, bundle, base, cid, case):
    field, extra = BAD[case]
    i = len(bundle.config["mounts"])
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(base), **extra})
    bundle.write()
    out = pyrunc("create", "--bundle", str(bundle.path), cid, check=False)
    assert out.returncode != 0
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and field.format(i=i) in err, err
    assert pyrunc.list_ids() == []


def test_features_lists_user_and_idmap(pyrunc):
    feats = json.loads(pyrunc("features").stdout)
    assert "user" in feats["linux"]["namespaces"]
    assert feats["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert {"idmap", "ridmap"} <= set(feats["mountOptions"])
