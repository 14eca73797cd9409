"""config.md mounts: order, destinations, every Linux mount option string, bind/rbind,
propagation, recursive attributes and idmapped mounts."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import mountinfo_entry

# option -> (options passed, predicate on the mountinfo entry of /m, or None when the kernel
# does not report the flag: then only acceptance and a working mount are checked)
TMPFS_OPTIONS = {
    "ro": (["ro"], lambda e: "ro" in e["opts"]),
    "rw": (["ro", "rw"], lambda e: "rw" in e["opts"]),
    "nosuid": (["nosuid"], lambda e: "nosuid" in e["opts"]),
    "suid": (["nosuid", "suid"], lambda e: "nosuid" not in e["opts"]),
    "nodev": (["nodev"], lambda e: "nodev" in e["opts"]),
    "dev": (["nodev", "dev"], lambda e: "nodev" not in e["opts"]),
    "noexec": (["noexec"], lambda e: "noexec" in e["opts"]),
    "exec": (["noexec", "exec"], lambda e: "noexec" not in e["opts"]),
    "noatime": (["noatime"], lambda e: "noatime" in e["opts"]),
    "atime": (["noatime", "atime"], lambda e: "noatime" not in e["opts"]),
    # mount(8) does not let relatime cancel an earlier atime flag, so test it alone
    "relatime": (["relatime"], lambda e: "relatime" in e["opts"]),
    "norelatime": (["norelatime"], None),
    "strictatime": (["strictatime"], lambda e: not {"relatime", "noatime"} & e["opts"]),
    "nostrictatime": (["strictatime", "nostrictatime"], lambda e: "relatime" in e["opts"]),
    "nodiratime": (["nodiratime"], lambda e: "nodiratime" in e["opts"]),
    "diratime": (["nodiratime", "diratime"], lambda e: "nodiratime" not in e["opts"]),
    "sync": (["sync"], lambda e: "sync" in e["super"]),
    "async": (["sync", "async"], lambda e: "sync" not in e["super"]),
    "dirsync": (["dirsync"], lambda e: "dirsync" in e["super"]),
    "lazytime": (["lazytime"], lambda e: "lazytime" in e["super"]),
    "nolazytime": (["lazytime", "nolazytime"], lambda e: "lazytime" not in e["super"]),
    "iversion": (["iversion"], None),
    "noiversion": (["noiversion"], None),
    "silent": (["silent"], None),
    "loud": (["loud"], None),
    "defaults": (["defaults"], lambda e: "rw" in e["opts"] and
                 not {"nosuid", "nodev", "noexec"} & e["opts"]),
    "nosymfollow": (["nosymfollow"], lambda e: "nosymfollow" in e["opts"]),
    "symfollow": (["nosymfollow", "symfollow"], lambda e: "nosymfollow" not in e["opts"]),
}
OPTION_REQ = {  # option -> requirement id of its row in the Linux mount options table
    "async": 2, "atime": 3, "bind": 4, "defaults": 5, "dev": 6, "diratime": 7, "dirsync": 8,
    "exec": 9, "iversion": 10, "lazytime": 11, "loud": 12, "noatime": 13, "nodev": 14,
    "nodiratime": 15, "noexec": 16, "noiversion": 17, "nolazytime": 18, "norelatime": 19,
    "nostrictatime": 20, "nosuid": 21, "nosymfollow": 22, "private": 23, "ratime": 24,
    "rbind": 25, "rdev": 26, "rdiratime": 27, "relatime": 28, "remount": 29, "rexec": 30,
    "rnoatime": 31, "rnodiratime": 32, "rnoexec": 33, "rnorelatime": 34, "rnostrictatime": 35,
    "rnosuid": 36, "rnosymfollow": 37, "ro": 38, "rprivate": 39, "rrelatime": 40, "rro": 41,
    "rrw": 42, "rshared": 43, "rslave": 44, "rstrictatime": 45, "rsuid": 46, "rsymfollow": 47,
    "runbindable": 48, "rw": 49, "shared": 50, "silent": 51, "slave": 52, "strictatime": 53,
    "suid": 54, "symfollow": 55, "sync": 56, "unbindable": 57, "idmap": 58, "ridmap": 59,
}


def rid(opt: str) -> str:
    return f"config.linux-mount-options.{OPTION_REQ[opt]}"


def _mountinfo(h, b) -> str:
    return h.sh(b, "cat /proc/self/mountinfo")


def _case(opt: str):
    return pytest.param(opt, marks=pytest.mark.req(rid(opt)), id=opt)


@pytest.mark.parametrize("opt", [_case(o) for o in TMPFS_OPTIONS])
@pytest.mark.req("config.linux-mount-options.1", "config.linux-mount-options.60",
                 "config.linux-mount-options.61")
def test_tmpfs_mount_option(h, opt):
    options, pred = TMPFS_OPTIONS[opt]
    b = h.bundle()
    (b.rootfs / "m").mkdir()
    b.config["mounts"].append({"destination": "/m", "type": "tmpfs", "source": "tmpfs",
                               "options": options})
    entry = mountinfo_entry(_mountinfo(h, b), "/m")
    assert entry is not None and entry["fstype"] == "tmpfs"
    if pred is not None:
        assert pred(entry), entry


@pytest.mark.req("config.linux-mount-options.62")
def test_unknown_option_is_passed_as_filesystem_data(h):
    b = h.bundle()
    (b.rootfs / "m").mkdir()
    b.config["mounts"].append({"destination": "/m", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "size=1m", "nr_inodes=77"]})
    entry = mountinfo_entry(_mountinfo(h, b), "/m")
    assert entry is not None and {"size=1024k", "nr_inodes=77"} <= entry["super"], entry


@pytest.mark.req("config.linux-mount-options.29")
def test_remount_option_changes_previous_mount(h):
    b = h.bundle()
    (b.rootfs / "m").mkdir()
    b.config["mounts"] += [
        {"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]},
        {"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["remount", "ro"]}]
    entry = mountinfo_entry(_mountinfo(h, b), "/m")
    assert entry is not None and "ro" in entry["opts"]


@pytest.fixture
def src_tree(h) -> Path:
    """A host directory that is a shared tmpfs with a shared tmpfs submount at sub/."""
    src = h.tmp / "src"
    src.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "conf-src", str(src)], check=True)
    subprocess.run(["mount", "--make-shared", str(src)], check=True)
    (src / "sub").mkdir()
    (src / "top").write_text("top\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "conf-sub", str(src / "sub")],
                   check=True)
    subprocess.run(["mount", "--make-shared", str(src / "sub")], check=True)
    (src / "sub/inner").write_text("inner\n")
    return src


def _bind(h, src: Path, options: list[str], propagation: str | None = "rslave"):
    b = h.bundle()
    (b.rootfs / "m").mkdir()
    if propagation:
        b.linux["rootfsPropagation"] = propagation
    b.config["mounts"].append({"destination": "/m", "type": "bind", "source": str(src),
                               "options": options})
    text = _mountinfo(h, b)
    return mountinfo_entry(text, "/m"), mountinfo_entry(text, "/m/sub")


@pytest.mark.req(rid("bind"))
def test_bind_is_not_recursive(h, src_tree):
    top, sub = _bind(h, src_tree, ["bind"])
    assert top is not None and sub is None


@pytest.mark.req(rid("rbind"))
def test_rbind_is_recursive(h, src_tree):
    top, sub = _bind(h, src_tree, ["rbind"])
    assert top is not None and sub is not None


def _shared(e) -> bool:
    return any(f.startswith("shared:") for f in e["optional"])


def _slave(e) -> bool:
    return any(f.startswith("master:") for f in e["optional"])


PROPAGATION = {
    "shared": lambda e: _shared(e),
    "private": lambda e: not e["optional"],
    "slave": lambda e: _slave(e) and not _shared(e),
    "unbindable": lambda e: "unbindable" in e["optional"],
}


@pytest.mark.parametrize("opt", [_case(o) for o in PROPAGATION])
def test_propagation_option(h, src_tree, opt):
    top, sub = _bind(h, src_tree, ["rbind", opt])
    assert PROPAGATION[opt](top), top
    assert sub is not None


@pytest.mark.parametrize("opt", [_case("r" + o) for o in PROPAGATION])
def test_recursive_propagation_option(h, src_tree, opt):
    top, sub = _bind(h, src_tree, ["rbind", opt])
    assert PROPAGATION[opt[1:]](top), top
    assert sub is not None and PROPAGATION[opt[1:]](sub), sub


RECURSIVE = {  # option -> (flag in mountinfo per-mount options, expected present?)
    "rro": ("ro", True), "rrw": ("ro", False), "rnosuid": ("nosuid", True),
    "rsuid": ("nosuid", False), "rnodev": ("nodev", True), "rdev": ("nodev", False),
    "rnoexec": ("noexec", True), "rexec": ("noexec", False), "rnoatime": ("noatime", True),
    "ratime": ("noatime", False), "rnodiratime": ("nodiratime", True),
    "rdiratime": ("nodiratime", False), "rrelatime": ("relatime", True),
    "rnorelatime": ("relatime", False), "rstrictatime": ("relatime", False),
    "rnostrictatime": ("relatime", True), "rnosymfollow": ("nosymfollow", True),
    "rsymfollow": ("nosymfollow", False),
}
# the source tmpfs mounts start with these flags so that clearing them is observable
RECURSIVE_START = {"rrw": "ro", "rsuid": "nosuid", "rdev": "nodev", "rexec": "noexec",
                   "ratime": "noatime", "rdiratime": "nodiratime", "rnorelatime": "noatime",
                   "rsymfollow": "nosymfollow", "rnostrictatime": "strictatime"}


@pytest.mark.parametrize("opt", [pytest.param(o, marks=pytest.mark.req(
    rid(o) if o != "rnodev" else "config.linux-mount-options.1"), id=o) for o in RECURSIVE])
def test_recursive_attribute_option(h, src_tree, opt):
    start = RECURSIVE_START.get(opt)
    if start:
        for d in (src_tree / "sub", src_tree):
            subprocess.run(["mount", "-o", f"remount,bind,{start}", str(d)], check=True)
    top, sub = _bind(h, src_tree, ["rbind", opt], propagation=None)
    flag, present = RECURSIVE[opt]
    assert top is not None and sub is not None
    assert (flag in top["opts"]) == present, top
    assert (flag in sub["opts"]) == present, sub


@pytest.mark.req("config.mounts.1")
@pytest.mark.parametrize("order", ["parent-first", "child-first"])
def test_mounts_applied_in_listed_order(h, order):
    b = h.bundle()
    (b.rootfs / "m/sub").mkdir(parents=True)
    parent = {"destination": "/m", "type": "tmpfs", "source": "conf-parent",
              "options": ["size=1m"]}
    child = {"destination": "/m/sub", "type": "tmpfs", "source": "conf-child",
             "options": ["size=1m"]}
    b.config["mounts"] += [parent, child] if order == "parent-first" else [child, parent]
    text = _mountinfo(h, b)
    points = [line.split()[4] for line in text.splitlines()]
    assert "/m" in points and "/m/sub" in points
    if order == "parent-first":
        assert points.index("/m") < points.index("/m/sub")
    else:
        assert points.index("/m/sub") < points.index("/m")


@pytest.mark.req("config.mounts.4", "config.mounts.3")
def test_relative_destination_is_relative_to_root(h):
    b = h.bundle()
    (b.rootfs / "rel").mkdir()
    b.config["mounts"].append({"destination": "rel", "type": "tmpfs", "source": "tmpfs",
                               "options": ["size=1m"]})
    b.process["cwd"] = "/tmp"
    entry = mountinfo_entry(_mountinfo(h, b), "/rel")
    assert entry is not None and entry["fstype"] == "tmpfs"


def _userns_bundle(h):
    b = h.bundle()
    (b.rootfs / "m").mkdir()
    b.linux["namespaces"].append({"type": "user"})
    m = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["uidMappings"], b.linux["gidMappings"] = m, list(m)
    return b


@pytest.mark.req(rid("idmap"), "config.posix-platform-mounts.1", "config.posix-platform-mounts.2")
def test_idmap_bind_mount_uses_container_mapping(h):
    src = h.tmp / "idsrc"
    src.mkdir()
    (src / "f").write_text("x")
    b = _userns_bundle(h)
    b.config["mounts"].append({"destination": "/m", "type": "bind", "source": str(src),
                               "options": ["bind", "idmap"]})
    out = h.sh(b, "stat -c '%u %g' /m/f; awk '$5 == \"/m\"' /proc/self/mountinfo")
    owner, info = out.splitlines()
    assert owner == "0 0"  # host root, seen through the idmapped mount as container root
    assert "idmapped" in info.split()[5].split(",")


@pytest.mark.req(rid("ridmap"), "config.posix-platform-mounts.4", "config.posix-platform-mounts.5")
def test_ridmap_applies_to_submounts(h, src_tree):
    b = _userns_bundle(h)
    b.config["mounts"].append({"destination": "/m", "type": "bind", "source": str(src_tree),
                               "options": ["rbind", "ridmap"]})
    out = h.sh(b, "stat -c '%u' /m/top /m/sub/inner")
    assert out.split() == ["0", "0"]


@pytest.mark.req("config.posix-platform-mounts.3", "config.posix-platform-mounts.6")
def test_mount_uid_mappings_without_gid_mappings_is_rejected(h):
    src = h.tmp / "idsrc"
    src.mkdir()
    b = _userns_bundle(h)
    b.config["mounts"].append({"destination": "/m", "type": "bind", "source": str(src),
                               "options": ["bind"]})
    h.expect_rejected(b, lambda b: b.config["mounts"][-1].update(
        uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}]))
