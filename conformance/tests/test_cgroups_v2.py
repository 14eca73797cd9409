"""config-linux.md rules that only a pure cgroup v2 host can exercise: unified,
the v1 -> v2 conversion error, cgroup ownership (delegation).

On a v1 or hybrid host every test here is skipped (the layout decides, not the
runtime). hack/test-v2.sh runs this file inside a qemu guest whose only
hierarchy is cgroup v2 and writes the results for `report.py --merge`.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import CGROUP_ROOT, Bundle, Harness


def _pure_v2() -> bool:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(CGROUP_ROOT):
            return fields[fields.index("-") + 1] == "cgroup2"
    return False


pytestmark = pytest.mark.skipif(not _pure_v2(), reason="needs a pure cgroup v2 host "
                                "(/sys/fs/cgroup is not cgroup2 here): hack/test-v2.sh runs it")

HOST_ID = 100000  # container uid/gid 0 maps here
FALLBACK = {"cgroup.procs", "cgroup.subtree_control", "cgroup.threads"}
CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime"]}


def _cgdir(b: Bundle) -> Path:
    return CGROUP_ROOT / b.linux["cgroupsPath"].lstrip("/")


def _parent(h: Harness) -> Path:
    """A cgroup we make (and remove) to nest the container's under."""
    d = CGROUP_ROOT / h.new_cgroup().lstrip("/")
    d.mkdir()
    return d


def _delegating(h: Harness, rw: bool = True) -> Bundle:
    """User + cgroup namespaces and a cgroup mount: the case where the spec lets a
    runtime hand the container its cgroup (read-write mount) or not (ro)."""
    b = h.bundle(["sleep", "30"])
    b.linux["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    b.config["mounts"].append({**CGROUP_MOUNT, "options": CGROUP_MOUNT["options"] +
                               ["rw" if rw else "ro"]})
    return b


def _owned_by_container(d: Path) -> set[str]:
    """Names in `d` (and "." for `d` itself) whose owner is the container's root."""
    out = {"."} if d.stat().st_uid == HOST_ID else set()
    return out | {f.name for f in d.iterdir() if f.stat().st_uid == HOST_ID}


def _delegate_list() -> set[str]:
    return set(Path("/sys/kernel/cgroup/delegate").read_text().split())


@pytest.mark.req("config-linux.unified.1")
def test_unified_enables_the_controllers_it_needs(h):
    parent = _parent(h)
    assert (parent / "cgroup.subtree_control").read_text().split() == []
    b = h.bundle(["sleep", "30"])
    b.linux["cgroupsPath"] = f"/{parent.name}/c"
    b.linux["resources"] = {"unified": {"pids.max": "7", "memory.high": "67108864"}}
    h.create(b)
    on = (parent / "cgroup.subtree_control").read_text().split()
    assert {"pids", "memory"} <= set(on)
    assert (_cgdir(b) / "pids.max").read_text().strip() == "7"
    assert (_cgdir(b) / "memory.high").read_text().strip() == "67108864"


@pytest.mark.req("config-linux.unified.2")
def test_unified_keys_outside_the_spec_are_written(h):
    # neither key has a field in linux.resources: only `unified` can set them
    b = h.bundle(["sleep", "30"])
    b.linux["resources"] = {"unified": {"memory.oom.group": "1",
                                        "memory.swap.high": "33554432"}}
    h.create(b)
    assert (_cgdir(b) / "memory.oom.group").read_text().strip() == "1"
    assert (_cgdir(b) / "memory.swap.high").read_text().strip() == "33554432"


@pytest.mark.req("config-linux.example.1")
def test_v1_only_resource_is_an_error_on_v2(h):
    # cgroup v2 has no real-time cpu bandwidth control: nothing to convert to
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.linux.update(
        resources={"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 100000}}))


@pytest.mark.req("config-linux.cgroup-ownership.3")
def test_rw_cgroup_mount_with_cgroupns_hands_the_cgroup_over(h):
    b = _delegating(h, rw=True)
    cid, _ = h.create(b)
    d = _cgdir(b)
    assert (d.stat().st_uid, d.stat().st_gid) == (HOST_ID, HOST_ID)
    # and the container's root can use it: make a child cgroup from inside
    h.rt("start", cid)
    proc = subprocess.run(["nsenter", "-t", str(h.pid(cid)), "-U", "-m", "-C",
                           "mkdir", "/sys/fs/cgroup/inner"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (d / "inner").is_dir()


@pytest.mark.req("config-linux.cgroup-ownership.3", "config-linux.cgroup-ownership.4")
def test_ro_cgroup_mount_keeps_the_cgroup_root_owned(h):
    b = _delegating(h, rw=False)
    h.create(b)
    assert _owned_by_container(_cgdir(b)) == set()


def _create_with_delegate(h: Harness, b: Bundle, listed: set[str] | None) -> str:
    """`create` run in a private mount namespace where /sys/kernel/cgroup/delegate lists
    `listed` (None: the file does not exist). The container gets no sysfs mount: over-
    mounting part of sysfs would make the kernel refuse a fresh sysfs in its user ns."""
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/sys"]
    (b.rootfs / "sys/fs/cgroup").mkdir(parents=True)  # container root cannot mkdir in /sys
    b.write()
    fake = h.tmp / "kernel-cgroup"
    fake.mkdir()
    if listed is not None:
        (fake / "delegate").write_text("".join(f"{n}\n" for n in sorted(listed)))
    cid = h.new_id()
    err = h.tmp / "create.err"  # a file, not a pipe: the container keeps its stderr open
    with open(err, "w") as fe:
        rc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount --bind "$0" /sys/kernel/cgroup && exec "$@"', str(fake),
             h.runtime, "--root", str(h.root), "create", "--bundle", str(b.path), cid],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fe,
            timeout=60).returncode
    assert rc == 0, err.read_text()
    assert Path("/sys/kernel/cgroup/delegate").exists()  # the host's view is untouched
    return cid


@pytest.mark.req("config-linux.cgroup-ownership.5", "config-linux.cgroup-ownership.6")
def test_delegation_touches_only_listed_files_and_tolerates_missing_ones(h):
    # the kernel's list plus a name no cgroup has: "not all files listed necessarily exist"
    listed = _delegate_list() | {"conformance.absent"}
    b = _delegating(h, rw=True)
    _create_with_delegate(h, b, listed)  # .6: create must not fail over the missing file
    d = _cgdir(b)
    owned = _owned_by_container(d)
    # .5 is conditional ("a runtime that changes the ownership"): either nothing or
    # exactly the directory and the listed files that exist
    assert owned in (set(), {"."} | (listed & {f.name for f in d.iterdir()})), sorted(owned)


@pytest.mark.req("config-linux.cgroup-ownership.7")
def test_without_the_delegate_file_the_fallback_list_is_used(h):
    b = _delegating(h, rw=True)
    _create_with_delegate(h, b, None)
    owned = _owned_by_container(_cgdir(b))
    # conditional like .5: a runtime that hands the cgroup over uses exactly this list
    assert owned in (set(), {"."} | FALLBACK), sorted(owned)
