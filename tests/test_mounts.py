"""Mounts and path policies (issue 3 items 3-4): every mount option of config.md checked for real in
the container's mountinfo, tmpcopyup, file binds, cgroup mounts, maskedPaths and readonlyPaths."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

MOUNT_OPTS_WITH_FLAGS = "nosuid,nodev,noexec,noatime,nodiratime,nosymfollow"


class Mount:
    """One mountinfo line."""

    def __init__(self, line: str) -> None:
        f = line.split()
        sep = f.index("-")
        self.root, self.point, self.dev = f[3], f[4], f[2]
        self.opts = set(f[5].split(","))
        self.optional = f[6:sep]
        self.fstype = f[sep + 1]
        self.super = set(f[sep + 3].split(","))


def mounts(text: str) -> dict[str, Mount]:
    """Mount point -> its topmost mount."""
    return {m.point: m for m in (Mount(line) for line in text.splitlines() if " - " in line)}


def run_mountinfo(pyrunc, bundle, cid, extra: list[dict], script: str = "") -> dict[str, Mount]:
    bundle.config["mounts"] += extra
    bundle.sh(f"{script} cat /proc/self/mountinfo")
    return mounts(pyrunc("run", "-b", str(bundle.path), cid).stdout)


def run_error(pyrunc, bundle, cid) -> str:
    bundle.args("true")
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err, err
    return err


@pytest.fixture
def host_trees(pyrunc, tmp_path):
    """Two host tmpfs trees, each with a submount: "plain" and "flagged" (nosuid ... nosymfollow, ro).

    Requests ``pyrunc`` so it is unmounted before the leak check runs."""
    made = []
    trees = {}
    for name, opts in (("plain", ""), ("flagged", MOUNT_OPTS_WITH_FLAGS)):
        top = tmp_path / name
        top.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts or "defaults", "tmpfs", str(top)], check=True)
        made.append(top)
        (top / "sub").mkdir()
        (top / "file").write_text("top")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts or "defaults", "tmpfs", str(top / "sub")], check=True)
        made.append(top / "sub")
        if opts:
            for m in (top / "sub", top):
                subprocess.run(["mount", "-o", f"remount,bind,ro,{opts}", str(m)], check=True)
        trees[name] = str(top)
    yield trees
    for m in reversed(made):
        subprocess.run(["umount", "-l", str(m)], check=False)


# Options whose effect shows in mountinfo: option -> (where, token, present)
VISIBLE = {
    "ro": ("opts", "ro", True), "nosuid": ("opts", "nosuid", True), "nodev": ("opts", "nodev", True),
    "noexec": ("opts", "noexec", True), "noatime": ("opts", "noatime", True),
    "nodiratime": ("opts", "nodiratime", True), "relatime": ("opts", "relatime", True),
    "strictatime": ("opts", "relatime", False), "nosymfollow": ("opts", "nosymfollow", True),
    "sync": ("super", "sync", True), "dirsync": ("super", "dirsync", True),
    "lazytime": ("super", "lazytime", True), "mand": ("super", "mand", True),
}
# "set, then clear" pairs: the second option must undo the first
CLEARS = {"rw": "ro", "suid": "nosuid", "dev": "nodev", "exec": "noexec", "atime": "noatime",
          "diratime": "nodiratime", "symfollow": "nosymfollow", "async": "sync", "nomand": "mand",
          "nolazytime": "lazytime", "nostrictatime": "strictatime"}
# accepted by the kernel with no trace in mountinfo (a tmpfs shows no i_version, silent only quiets printk)
INVISIBLE = ("defaults", "iversion", "noiversion", "silent", "loud", "norelatime")
PROPAGATION = {"shared": "shared:", "rshared": "shared:", "unbindable": "unbindable", "runbindable": "unbindable",
               "private": None, "rprivate": None, "slave": None, "rslave": None}
RECURSIVE_SET = {"rro": "ro", "rnosuid": "nosuid", "rnodev": "nodev", "rnoexec": "noexec",
                 "rnoatime": "noatime", "rnodiratime": "nodiratime", "rnosymfollow": "nosymfollow"}
RECURSIVE_CLEAR = {"rrw": "ro", "rsuid": "nosuid", "rdev": "nodev", "rexec": "noexec", "ratime": "noatime",
                   "rdiratime": "nodiratime", "rsymfollow": "nosymfollow"}
RECURSIVE_ATIME = {"rstrictatime": "strictatime", "rrelatime": "relatime", "rnostrictatime": "relatime",
                   "rnorelatime": "relatime"}
STRUCTURAL = ("bind", "rbind", "remount", "tmpcopyup")  # tested by their own tests below
IDMAP = ("idmap", "ridmap")  # linux/idmap.py (user namespaces), not this file's concern


def _has(m: Mount, where: str, token: str) -> bool:
    return token in (m.opts if where == "opts" else m.super)


def test_every_classic_option_on_tmpfs(pyrunc, bundle, cid):
    extra = [{"destination": f"/mnt/v/{o}", "type": "tmpfs", "source": "tmpfs", "options": [o]} for o in VISIBLE]
    extra += [{"destination": f"/mnt/c/{o}", "type": "tmpfs", "source": "tmpfs", "options": [CLEARS[o], o]}
              for o in CLEARS]
    extra += [{"destination": f"/mnt/i/{o}", "type": "tmpfs", "source": "tmpfs", "options": [o]} for o in INVISIBLE]
    extra += [{"destination": f"/mnt/p/{o}", "type": "tmpfs", "source": "tmpfs", "options": [o]}
              for o in PROPAGATION]
    got = run_mountinfo(pyrunc, bundle, cid, extra)
    for o, (where, token, present) in VISIBLE.items():
        assert _has(got[f"/mnt/v/{o}"], where, token) == present, o
    assert "noatime" not in got["/mnt/v/strictatime"].opts
    for o, undone in CLEARS.items():
        where, token, present = VISIBLE[undone]
        assert _has(got[f"/mnt/c/{o}"], where, token) != present, o
    for o in INVISIBLE:
        m = got[f"/mnt/i/{o}"]
        assert m.fstype == "tmpfs" and "rw" in m.opts and "relatime" in m.opts, o
    for o, field in PROPAGATION.items():
        optional = " ".join(got[f"/mnt/p/{o}"].optional)
        if field:
            assert field in optional, o
        else:
            assert "shared:" not in optional, o


def test_bind_options_and_clearing_the_sources_flags(pyrunc, bundle, cid, host_trees):
    plain, flagged = host_trees["plain"], host_trees["flagged"]
    extra = [
        {"destination": "/mnt/set", "type": "bind", "source": plain,
         "options": ["rbind", "ro", *MOUNT_OPTS_WITH_FLAGS.split(",")]},
        {"destination": "/mnt/clear", "type": "none", "source": flagged,
         "options": ["rbind", "rw", "suid", "dev", "exec", "atime", "diratime", "symfollow"]},
        {"destination": "/mnt/keep", "type": "none", "source": flagged, "options": ["rbind", "noatime"]},
        {"destination": "/mnt/strict", "type": "none", "source": plain, "options": ["bind", "strictatime"]},
    ]
    got = run_mountinfo(pyrunc, bundle, cid, extra)
    flags = {"ro", *MOUNT_OPTS_WITH_FLAGS.split(",")}
    assert flags <= got["/mnt/set"].opts
    assert got["/mnt/set/sub"].opts.isdisjoint(flags - {"noatime"})  # not recursive: sub keeps its own
    assert got["/mnt/clear"].opts.isdisjoint(flags) and "relatime" in got["/mnt/clear"].opts
    assert flags <= got["/mnt/clear/sub"].opts
    assert flags <= got["/mnt/keep"].opts  # a bind keeps the source's flags unless cleared
    assert "relatime" not in got["/mnt/strict"].opts and "noatime" not in got["/mnt/strict"].opts
    assert "/mnt/strict/sub" not in got  # "bind" without "rbind" leaves submounts out


def test_recursive_attributes(pyrunc, bundle, cid, host_trees):
    plain, flagged = host_trees["plain"], host_trees["flagged"]
    extra = [{"destination": f"/mnt/s/{o}", "type": "bind", "source": plain, "options": ["rbind", o]}
             for o in RECURSIVE_SET]
    extra += [{"destination": f"/mnt/c/{o}", "type": "bind", "source": flagged, "options": ["rbind", o]}
              for o in RECURSIVE_CLEAR]
    extra += [{"destination": f"/mnt/a/{o}", "type": "bind", "source": flagged,
               "options": ["rbind", "rstrictatime" if o != "rstrictatime" else "rnoatime", o]}
              for o in RECURSIVE_ATIME]
    got = run_mountinfo(pyrunc, bundle, cid, extra)
    for o, token in RECURSIVE_SET.items():
        for sub in ("", "/sub"):
            assert token in got[f"/mnt/s/{o}{sub}"].opts, o + sub
    for o, token in RECURSIVE_CLEAR.items():
        for sub in ("", "/sub"):
            m = got[f"/mnt/c/{o}{sub}"]
            assert token not in m.opts, o + sub
            assert len({"ro", *MOUNT_OPTS_WITH_FLAGS.split(",")} - m.opts) == 1, (o, m.opts)  # only that one
    for o, mode in RECURSIVE_ATIME.items():
        for sub in ("", "/sub"):
            opts = got[f"/mnt/a/{o}{sub}"].opts
            atime = "relatime" if "relatime" in opts else "noatime" if "noatime" in opts else "strictatime"
            # rnorelatime changes nothing: the rstrictatime before it stays
            assert atime == (mode if o != "rnorelatime" else "strictatime"), (o + sub, opts)


def test_features_lists_exactly_the_tested_options(pyrunc):
    listed = set(json.loads(pyrunc("features").stdout)["mountOptions"])
    tested = (set(VISIBLE) | set(CLEARS) | set(INVISIBLE) | set(PROPAGATION) | set(RECURSIVE_SET)
              | set(RECURSIVE_CLEAR) | set(RECURSIVE_ATIME) | set(STRUCTURAL) | set(IDMAP))
    assert listed == tested


def test_tmpcopyup_content_inside(pyrunc, bundle, cid):
    data = bundle.rootfs / "opt" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "file").write_text("hello")
    os.chmod(data / "file", 0o604)
    os.chown(data / "file", 123, 456)
    (data / "sub" / "deep").write_text("deep")
    os.symlink("../file", data / "sub" / "link")
    os.mkfifo(data / "fifo")
    bundle.config["mounts"].append({"destination": "/opt/data", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["tmpcopyup"]})
    bundle.sh("cat /opt/data/sub/link; echo; cat /opt/data/sub/deep; echo;"
              " stat -c '%a %u %g %F' /opt/data/file /opt/data/fifo; readlink /opt/data/sub/link;"
              " echo new > /opt/data/new && cat /opt/data/new; grep ' /opt/data ' /proc/self/mountinfo")
    out = pyrunc("run", "-b", str(bundle.path), cid).stdout.splitlines()
    assert out[:6] == ["hello", "deep", "604 123 456 regular file", "644 0 0 fifo", "../file", "new"], out
    assert " - tmpfs " in out[6]
    assert not (data / "new").exists()


def test_file_bind_and_mountpoints_created_in_rootfs(pyrunc, bundle, cid, tmp_path):
    src = tmp_path / "hostfile"
    src.write_text("from host\n")
    bundle.config["mounts"] += [
        {"destination": "/etc/hostfile", "type": "bind", "source": str(src), "options": ["bind", "ro"]},
        {"destination": "/a/b/c", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700"]},
    ]
    bundle.sh("cat /etc/hostfile; echo x >> /etc/hostfile || echo refused; grep -E ' /(etc/hostfile|a/b/c) '"
              " /proc/self/mountinfo")
    out = pyrunc("run", "-b", str(bundle.path), cid).stdout
    assert out.startswith("from host\n") and "refused" in out
    got = mounts(out)
    assert "ro" in got["/etc/hostfile"].opts
    # unknown options went to tmpfs as data
    assert got["/a/b/c"].fstype == "tmpfs" and {"size=1024k", "mode=700"} <= got["/a/b/c"].super
    assert (bundle.rootfs / "etc" / "hostfile").is_file() and (bundle.rootfs / "a" / "b" / "c").is_dir()
    assert src.read_text() == "from host\n"


def test_remount_option(pyrunc, bundle, cid):
    extra = [{"destination": "/mnt/r", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
             {"destination": "/mnt/r", "type": "tmpfs", "source": "tmpfs", "options": ["remount", "ro", "size=2m"]}]
    got = run_mountinfo(pyrunc, bundle, cid, extra)
    assert "ro" in got["/mnt/r"].opts and "size=2048k" in got["/mnt/r"].super


@pytest.mark.parametrize("mount,needle", [
    ({"type": "tmpfs", "source": "tmpfs", "options": ["pyrunc_bogus=1"]}, "EINVAL"),
    ({"type": "pyruncnofs", "source": "none"}, "ENODEV"),
    ({"type": "bind", "source": "/nonexistent/pyrunc", "options": ["bind"]}, "/nonexistent/pyrunc: ENOENT"),
])
def test_refused_mount_names_the_entry(pyrunc, bundle, cid, mount, needle):
    bundle.config["mounts"].append({"destination": "/mnt/bad", **mount})
    idx = len(bundle.config["mounts"]) - 1
    err = run_error(pyrunc, bundle, cid)
    assert f"mounts[{idx}] /mnt/bad" in err and needle in err, err


@pytest.mark.parametrize("cgroupns,ro", [(True, False), (False, True)])
def test_cgroup_mount_readonly_without_cgroup_namespace(pyrunc, bundle, cid, cgroupns, ro):
    for m in bundle.config["mounts"]:
        if m["type"] == "cgroup":
            m["options"] = ["nosuid", "noexec", "nodev", "rw"]
    if not cgroupns:
        ns = bundle.config["linux"]["namespaces"]
        bundle.config["linux"]["namespaces"] = [n for n in ns if n["type"] != "cgroup"]
    got = run_mountinfo(pyrunc, bundle, cid, [])
    memory = got["/sys/fs/cgroup/memory"]
    assert memory.fstype == "cgroup" and ("ro" in memory.opts) == ro
    # the container's own cgroup: the namespace root, or its host path without a namespace
    assert (memory.root == "/") == cgroupns or memory.root.endswith(cid)


def test_masked_paths(pyrunc, bundle, cid):
    for d in ("d1", "d2"):
        (bundle.rootfs / "opt" / d).mkdir(parents=True)
        (bundle.rootfs / "opt" / d / "secret").write_text("secret")
    (bundle.rootfs / "etc" / "secret").write_text("secret")
    bundle.config["linux"]["maskedPaths"] = ["/etc/secret", "/opt/d1", "/opt/d2", "/opt/missing", "/proc/kcore"]
    got = run_mountinfo(pyrunc, bundle, cid, [])
    d1, d2 = got["/opt/d1"], got["/opt/d2"]
    assert d1.fstype == "tmpfs" and "ro" in d1.opts and d1.dev == d2.dev and "ro" in d2.opts  # one tmpfs
    secret = got["/etc/secret"]
    assert secret.root == "/null" and secret.dev == got["/dev"].dev  # the container's /dev/null
    assert "/opt/missing" not in got


def test_masked_paths_inside(pyrunc, bundle, cid):
    (bundle.rootfs / "opt" / "d1").mkdir(parents=True)
    (bundle.rootfs / "opt" / "d1" / "secret").write_text("secret")
    (bundle.rootfs / "etc" / "secret").write_text("secret")
    bundle.config["linux"]["maskedPaths"] = ["/etc/secret", "/opt/d1"]
    bundle.sh("cat /etc/secret; ls -A /opt/d1; touch /opt/d1/x 2>/dev/null && echo WROTE; echo end")
    assert pyrunc("run", "-b", str(bundle.path), cid).stdout == "end\n"


def test_readonly_paths_are_recursive(pyrunc, bundle, cid):
    (bundle.rootfs / "opt" / "ro" / "sub").mkdir(parents=True)
    bundle.config["mounts"].append({"destination": "/opt/ro/sub", "type": "tmpfs", "source": "tmpfs"})
    bundle.config["linux"]["readonlyPaths"] = ["/opt/ro", "/opt/nonexistent"]
    got = run_mountinfo(pyrunc, bundle, cid, [],
                        "touch /opt/ro/x 2>/dev/null && echo WROTE1; touch /opt/ro/sub/x 2>/dev/null && echo WROTE2;")
    assert "ro" in got["/opt/ro"].opts and "ro" in got["/opt/ro/sub"].opts
    assert got["/opt/ro/sub"].fstype == "tmpfs"
    assert not (bundle.rootfs / "opt" / "ro" / "x").exists()


def test_readonly_paths_inside(pyrunc, bundle, cid):
    (bundle.rootfs / "opt" / "ro" / "sub").mkdir(parents=True)
    bundle.config["mounts"].append({"destination": "/opt/ro/sub", "type": "tmpfs", "source": "tmpfs"})
    bundle.config["linux"]["readonlyPaths"] = ["/opt/ro"]
    bundle.sh("touch /opt/ro/x 2>/dev/null && echo WROTE1; touch /opt/ro/sub/x 2>/dev/null && echo WROTE2;"
              " touch /tmp/ok && echo end")
    assert pyrunc("run", "-b", str(bundle.path), cid).stdout == "end\n"


def test_proc_that_is_not_procfs_is_refused_for_masking(pyrunc, bundle, cid):
    # /proc is a tmpfs here: masking cannot trust /proc/self/fd paths in it.
    for m in bundle.config["mounts"]:
        if m["destination"] == "/proc":
            m.update(type="tmpfs", source="tmpfs", options=[])
    bundle.config["linux"]["readonlyPaths"] = []
    bundle.config["linux"]["maskedPaths"] = ["/etc/passwd"]
    err = run_error(pyrunc, bundle, cid)
    assert "linux.maskedPaths[0] /etc/passwd" in err and "procfs" in err, err
    assert Path(bundle.rootfs / "etc" / "passwd").read_text().startswith("root:")


@pytest.mark.parametrize("prop", ["shared", "rshared", "private", "rprivate", "slave", "rslave", "unbindable"])
def test_rootfs_propagation(pyrunc, bundle, cid, prop):
    bundle.config["linux"]["rootfsPropagation"] = prop
    extra = [{"destination": "/mnt/s", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]}]
    got = run_mountinfo(pyrunc, bundle, cid, extra)
    root_shared = any(o.startswith("shared:") for o in got["/"].optional)
    assert root_shared == prop.endswith("shared")
    assert ("unbindable" in got["/"].optional) == (prop == "unbindable")  # the rootfs: cannot be bound
    assert any(o.startswith("shared:") for o in got["/mnt/s"].optional)  # a mount's own option stays


def test_no_mount_namespace_chroots_and_leaves_the_runtimes_root(pyrunc, bundle, cid, tmp_path):
    """Without a mount namespace the container shares the runtime's (config-linux.md: it
    MUST inherit it): pyrunc chroots, and must never pivot_root that namespace. Run in a
    mount namespace of the test's own, with the rootfs a mount point (as under containerd),
    so a runtime that pivots cannot take the host's root away."""
    bundle.config["linux"]["namespaces"] = []
    bundle.config.pop("hostname", None)
    (bundle.rootfs / "marker").write_text("inside\n")
    bundle.sh("cat /marker; exec sleep 1000")  # no mounts without a mount namespace: no /proc inside
    rt = " ".join(pyrunc.cmd())
    script = (f"mount --bind {bundle.rootfs} {bundle.rootfs}; {rt} run -d -b {bundle.path} {cid} > {tmp_path}/out; "
              f"pid=$({rt} state {cid} | sed -n 's/.*\"pid\": \\([0-9]*\\).*/\\1/p'); "
              f"readlink /proc/$pid/ns/mnt /proc/self/ns/mnt; {rt} delete -f {cid}; "
              "test -x /usr/bin/python3 && echo host-root-intact")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, start_new_session=True, timeout=60)
    out = proc.stdout.split()
    assert len(out) == 3 and out[2] == "host-root-intact", f"the runtime's root was replaced: {proc.stderr}"
    inside_ns, outside_ns, _ = out
    assert (tmp_path / "out").read_text() == "inside\n"  # it saw its rootfs as /
    assert inside_ns == outside_ns  # the runtime's mount namespace, inherited
