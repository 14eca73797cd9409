"""What a checkpoint and restore keep (issue 28), seen from the host: the mounts (external
binds, one through a symlink, nested binds; masked and read-only paths; the cgroup mount),
a network namespace joined by path, the cgroup namespace, the cgroup and its limits, the
org.criu.config annotation, and a --pre-dump followed by a dump with --parent-path. Each
container is a counter that must go on from where it stopped."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from criuhelp import COUNTER, continued, counter_bundle, need_criu, stopped, wait_count
from test_checkpoint import counting, detached, finish, restored

pytestmark = pytest.mark.usefixtures("criu")


@pytest.fixture(scope="module")
def criu() -> None:
    need_criu()


def mounts(pid: int) -> set[tuple[str, ...]]:
    """Each mount as the container sees it: root, mount point, per-mount options, type, and
    superblock options (ids and device numbers change with a restore)."""
    out = set()
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        f = line.split()
        sep = f.index("-")
        out.add((f[3], f[4], f[5], f[sep + 1], f[sep + 3] if len(f) > sep + 3 else ""))
    return out


def round_trip(pyrunc, bundle, cid: str, tmp_path: Path, *, checkpoint_args: tuple[str, ...] = ()) -> tuple[int, int]:
    """Run the counter, checkpoint it, restore it; (init pid before, init pid after), the
    counter checked to stop and go on."""
    data = tmp_path / "data"
    pyrunc.ids.add(cid)
    detached(pyrunc, "run", "-d", "-b", str(bundle.path), cid)
    wait_count(data, 3)
    before = pyrunc.state(cid)["pid"]
    images = tmp_path / "images"
    pyrunc("checkpoint", "--image-path", str(images), *checkpoint_args, cid)
    last = stopped(data)[-1]
    detached(pyrunc, "restore", "-d", "-b", str(bundle.path), "--image-path", str(images), cid)
    after = restored(pyrunc, cid)
    continued(data, last)
    return before, after


def test_mounts_come_back_as_they_were(pyrunc, bundle, cid, tmp_path):
    """A bind through a symlink, binds nested in a bind, masked and read-only paths, the
    cgroup mount, a read-only root: the restored container's mountinfo is the dumped one's."""
    counter_bundle(bundle, tmp_path / "data")
    (tmp_path / "data" / "inner").mkdir()
    for name in ("linked", "nested"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "hello").write_text(f"{name}\n")
    os.symlink("/target", bundle.rootfs / "link")
    bundle.config["root"]["readonly"] = True
    bundle.config["mounts"] += [
        {"destination": "/link", "type": "bind", "source": str(tmp_path / "linked"), "options": ["rbind", "ro"]},
        {"destination": "/data/inner", "type": "bind", "source": str(tmp_path / "nested"), "options": ["rbind"]}]
    bundle.write()
    data = tmp_path / "data"
    pyrunc.ids.add(cid)
    detached(pyrunc, "run", "-d", "-b", str(bundle.path), cid)
    wait_count(data, 3)
    seen = mounts(pyrunc.state(cid)["pid"])
    images = tmp_path / "images"
    pyrunc("checkpoint", "--image-path", str(images), cid)
    last = stopped(data)[-1]
    detached(pyrunc, "restore", "-d", "-b", str(bundle.path), "--image-path", str(images), cid)
    pid = restored(pyrunc, cid)
    assert mounts(pid) == seen, (sorted(mounts(pid) - seen), sorted(seen - mounts(pid)))
    points = {m[1]: m for m in mounts(pid)}
    assert "/target" in points and points["/target"][2].startswith("ro")
    assert "/proc/keys" in points and points["/proc/sys"][2].startswith("ro") and points["/"][2].startswith("ro")
    assert "/data/inner" in points, sorted(points)
    root = f"/proc/{pid}/root"
    assert Path(f"{root}/target/hello").read_text() == "linked\n"
    assert Path(f"{root}/data/inner/hello").read_text() == "nested\n"
    continued(data, last)
    finish(pyrunc, cid)


@pytest.fixture
def netns(cid) -> str:
    name = f"pyrunc-{cid}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    yield f"/var/run/netns/{name}"
    subprocess.run(["ip", "netns", "delete", name], check=True, timeout=30)


def test_network_namespace_joined_by_path(pyrunc, bundle, cid, tmp_path, netns):
    counter_bundle(bundle, tmp_path / "data")
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = netns
    bundle.write()
    _, pid = round_trip(pyrunc, bundle, cid, tmp_path)
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(netns).st_ino
    finish(pyrunc, cid)


def test_cgroup_namespace_and_limits(pyrunc, bundle, cid, tmp_path):
    """The restored init is in a cgroup namespace of its own rooted at its cgroup, which
    has the config's limits again."""
    counter_bundle(bundle, tmp_path / "data")
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 77}}
    bundle.write()
    _, pid = round_trip(pyrunc, bundle, cid, tmp_path)
    assert os.readlink(f"/proc/{pid}/ns/cgroup") != os.readlink("/proc/self/ns/cgroup")
    inside = subprocess.run(["nsenter", "-t", str(pid), "-C", "cat", f"/proc/{pid}/cgroup"], capture_output=True,
                            text=True, timeout=30).stdout
    assert inside and all(line.endswith(":/") for line in inside.splitlines()), inside
    limits = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        base = Path("/sys/fs/cgroup") / ("unified" if not ctrls and Path("/sys/fs/cgroup/unified").is_dir() else
                                          ctrls.split(",")[0].removeprefix("name=") if ctrls else "")
        d = base / path.lstrip("/")
        for name in ("memory.max", "memory.limit_in_bytes", "pids.max"):
            if (d / name).exists():
                limits[name.split(".")[0]] = (d / name).read_text().strip()
    assert limits == {"memory": str(64 << 20), "pids": "77"}, limits
    finish(pyrunc, cid)


def test_criu_config_annotation(pyrunc, bundle, cid, tmp_path):
    """org.criu.config names a criu configuration file for this container, which criu reads:
    the counter holds a deleted file open, which criu keeps in the image (a ghost file) up to
    its ghost-limit; the file's "ghost-limit 0" makes the dump fail, without it the round
    trip goes through and the deleted file is open again."""
    data = tmp_path / "data"
    conf = tmp_path / "criu.conf"
    conf.write_text("ghost-limit 0\n")
    counter_bundle(bundle, data, "exec 3>/tmp/ghost; echo boo >&3; rm /tmp/ghost; " + COUNTER)
    bundle.config["annotations"] = {"org.criu.config": str(conf)}
    bundle.write()
    pyrunc.ids.add(cid)
    detached(pyrunc, "run", "-d", "-b", str(bundle.path), cid)
    wait_count(data, 3)
    res = pyrunc("checkpoint", "--image-path", str(tmp_path / "refused"), cid, check=False)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "ghost" in res.stderr.lower(), res.stderr
    assert pyrunc.state(cid)["status"] == "running"
    conf.write_text("# no limit but the default\n")
    images = tmp_path / "images"
    pyrunc("checkpoint", "--image-path", str(images), cid)
    last = stopped(data)[-1]
    detached(pyrunc, "restore", "-d", "-b", str(bundle.path), "--image-path", str(images), cid)
    pid = restored(pyrunc, cid)
    assert os.readlink(f"/proc/{pid}/fd/3") == "/tmp/ghost (deleted)"
    assert Path(f"/proc/{pid}/fd/3").read_text() == "boo\n"
    continued(data, last)
    finish(pyrunc, cid)


def test_pre_dump_then_dump_with_parent(pyrunc, bundle, cid, tmp_path):
    """--pre-dump leaves the container running; the final dump with --parent-path links the
    parent (criu writes only what changed since) and restores as a whole. A kernel without
    dirty-page tracking cannot pre-dump: one line saying so, the container untouched."""
    data = tmp_path / "data"
    counting(pyrunc, bundle, cid, data)
    pre = tmp_path / "pre"
    res = pyrunc("checkpoint", "--pre-dump", "--image-path", str(pre), cid, check=False)
    assert pyrunc.state(cid)["status"] == "running"
    tracking = subprocess.run(["/usr/local/sbin/criu", "check", "--feature", "mem_dirty_track"],
                              capture_output=True, timeout=30).returncode == 0
    if not tracking:
        assert res.returncode == 1 and res.stderr.count("\n") == 1
        assert "--pre-dump: criu /usr/local/sbin/criu: this kernel does not track dirty memory" in res.stderr
        return
    assert res.returncode == 0, res.stderr
    n = len(data.joinpath("count").read_text().split())
    wait_count(data, n + 3)
    images = tmp_path / "images"
    pyrunc("checkpoint", "--parent-path", "../pre", "--image-path", str(images), cid)
    assert os.readlink(images / "parent") == "../pre"
    last = stopped(data)[-1]
    detached(pyrunc, "restore", "-d", "-b", str(bundle.path), "--image-path", str(images), cid)
    restored(pyrunc, cid)
    continued(data, last)
    finish(pyrunc, cid)


def test_parent_path_that_is_no_image(pyrunc, bundle, cid, tmp_path):
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    res = pyrunc("checkpoint", "--parent-path", str(tmp_path / "nothing"), "--image-path", str(tmp_path / "x"), cid,
                 check=False)
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert f"--parent-path {tmp_path / 'nothing'}: not a (pre-)dump image (no pagemap-*.img)" in res.stderr
    assert pyrunc.state(cid)["status"] == "running" and not (tmp_path / "x").exists()
