"""pyrunc.cgroups against the real kernel: on this host (v1/hybrid) and, through
hack/test-v2.sh, in a cgroup-v2 guest. Values are read back from cgroup files."""
from __future__ import annotations

import json
import os
import signal

import pytest

from pyrunc.cgroups import layout as cg_layout
from pyrunc.cgroups import load_manager, open_manager
from pyrunc.errors import PyruncError

MODE = cg_layout.detect().mode
v1_only = pytest.mark.skipif(MODE == "v2", reason="cgroup v1 files; this host is v2")
v2_only = pytest.mark.skipif(MODE != "v2", reason="cgroup v2 files; see hack/test-v2.sh")
MiB = 1 << 20
RUNTIME = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime")


def rd(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def keyed(d: str, name: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in rd(d, name).splitlines())


def vda() -> tuple[int, int]:
    """major:minor of a whole disk of this machine (vda here and in the v2 guest; sda or
    nvme0n1 elsewhere): the first block device that is not a loop, ram or zram device."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")) and rd(f"/sys/block/{name}", "size") != "0":
            major, minor = rd(f"/sys/block/{name}", "dev").split(":")
            return int(major), int(minor)
    pytest.skip("this machine has no disk block device in /sys/block")


def openable_block_device() -> str:
    """A block device this (unconfined) test process may open read-write; the
    host's sandbox forbids opening its root disk, the v2 guest has no loop."""
    names = sorted(os.listdir("/sys/block"), key=lambda n: not n.startswith("loop"))
    for dev in (f"/dev/{name}" for name in names):
        try:
            os.close(os.open(dev, os.O_RDWR))
            return dev
        except OSError:
            continue
    pytest.skip("no block device in /sys/block that this process may open read-write")


@pytest.fixture
def bfq_loop():
    """An idle loop device switched to the BFQ scheduler (v1 per-device weights
    need it), switched back afterwards."""
    for name in sorted(os.listdir("/sys/block"), reverse=True):
        sched = f"/sys/block/{name}/queue/scheduler"
        if not name.startswith("loop") or not os.path.exists(sched):
            continue
        if rd(f"/sys/block/{name}", "size") != "0":
            continue   # attached to a file: in use
        old = rd(f"/sys/block/{name}/queue", "scheduler")
        if "bfq" not in old.replace("[", " ").replace("]", " ").split():
            continue
        old = old.split("[")[1].split("]")[0]
        with open(sched, "w") as f:
            f.write("bfq")
        st = os.stat(f"/dev/{name}")
        try:
            yield os.major(st.st_rdev), os.minor(st.st_rdev)
        finally:
            with open(sched, "w") as f:
                f.write(old)
        return
    pytest.skip("the kernel offers no BFQ I/O scheduler (CONFIG_IOSCHED_BFQ) on an idle loop device: "
                "v1's blkio.bfq.weight files need it")


def all_dirs_gone(m) -> bool:
    return not any(os.path.exists(d) for d in list(m.dirs.values()) + m.created)


# -- layout and paths ---------------------------------------------------------

def test_layout_matches_the_mounts():
    # independent of the parser: a v2-only host has cgroup.controllers at the top
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        expected = "v2"
    elif os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        expected = "hybrid"
    else:
        expected = "v1"
    assert MODE == expected
    lay = cg_layout.detect()
    if MODE != "v2":
        for ctrl in ("memory", "pids", "freezer", "devices", "cpuset"):
            assert any(ctrl in key.split(",") for key in lay.v1), ctrl


def test_default_relative_and_absolute_paths(managers, cg_name):
    own = cg_layout.own_cgroups()
    m = managers(None, cg_name)
    a = managers(f"/{cg_name}/abs", cg_name)
    if MODE == "v2":
        parent = os.path.dirname(own[""].rstrip("/")) or "/"
        assert m.unified == os.path.normpath(f"/sys/fs/cgroup/{parent}/{cg_name}")
        assert a.unified == f"/sys/fs/cgroup/{cg_name}/abs"
        return
    mem_mount = cg_layout.detect().v1["memory"][0]
    assert m.dir_of("memory") == os.path.normpath(f"{mem_mount}/{own['memory']}/{cg_name}")
    assert a.dir_of("memory") == f"{mem_mount}/{cg_name}/abs"
    if MODE == "hybrid":
        assert a.unified.endswith(f"/{cg_name}/abs")


@pytest.mark.parametrize("bad", ["../escape", "/a/../../escape", "x/../../y", "/", "."])
def test_cgroups_path_escaping_is_refused(bad):
    with pytest.raises(PyruncError) as e:
        open_manager(bad, "pyrunc-test-cg-bad")
    msg = str(e.value)
    assert msg.startswith("linux.cgroupsPath: ") and "\n" not in msg


def test_systemd_driver_refused_without_systemd():
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here: the refusal message differs")
    with pytest.raises(PyruncError, match="systemd is not running on this host"):
        open_manager("system.slice:pyrunc:pyrunc-test-cg-sd", "x", systemd=True)
    with pytest.raises(PyruncError, match="slice:prefix:name"):
        open_manager("not-a-triple", "x", systemd=True)


# -- lifecycle ------------------------------------------------------------------

def test_create_apply_state_roundtrip_destroy(managers, procs, cg_name):
    m = managers(f"{cg_name}/nested/leaf", cg_name)
    m.create()
    p = procs.sleep()
    m.apply(p.pid)
    with open(f"/proc/{p.pid}/cgroup") as f:
        lines = f.read().splitlines()
    want = 1 if MODE == "v2" else len(m.dirs)
    placed = [ln for ln in lines if ln.endswith(f"/{cg_name}/nested/leaf")]
    assert len(placed) == want, lines
    if MODE == "hybrid":
        assert any(ln.startswith("0::") for ln in placed)   # also in the v2 tree, like runc
    again = load_manager(json.loads(json.dumps(m.to_state())))
    assert again.pids() == [p.pid]
    # the kernel's own hierarchy needs nested cgroups removed too
    os.mkdir(os.path.join(again.dir_of("memory") or again.unified, "child"))
    again.destroy()
    assert p.wait(timeout=60) == -signal.SIGKILL
    assert all_dirs_gone(m)     # including the parents it created
    again.destroy()             # idempotent


def test_destroy_keeps_parents_it_did_not_create(managers, cg_name):
    outer = managers(cg_name, cg_name)
    outer.create()
    inner = managers(f"{cg_name}/inner", cg_name)
    inner.create()
    inner.destroy()
    assert all(os.path.isdir(d) for d in outer.dirs.values())
    assert not any(os.path.exists(d) for d in inner.dirs.values())


@v1_only
def test_v1_cpuset_parent_made_by_mkdir_is_filled_in(managers, procs, cg_name):
    # A parent cpuset someone made with a plain mkdir has no cpus or mems, and the kernel
    # refuses tasks below it (ENOSPC); runc fills it from its own parent, and so must we.
    top = cg_layout.detect().v1
    mount = next(m[0] for key, m in top.items() if "cpuset" in key.split(","))
    parent = os.path.join(mount, cg_name)
    os.mkdir(parent)
    m = managers(f"/{cg_name}/leaf", cg_name)
    try:
        assert rd(parent, "cpuset.cpus") == ""
        m.create()
        p = procs.sleep()
        m.apply(p.pid)
        for name in ("cpuset.cpus", "cpuset.mems"):
            assert rd(parent, name) == rd(mount, name) == rd(m.dir_of("cpuset"), name), name
        m.destroy()
        assert p.wait(timeout=60) == -signal.SIGKILL
        assert os.path.isdir(parent)  # not ours: kept
    finally:
        procs.cleanup()
        m.destroy()
        os.rmdir(parent)


def test_freeze_and_thaw(mgr, procs):
    p = procs.sleep()
    mgr.apply(p.pid)
    mgr.freeze()
    assert mgr.is_frozen()
    if MODE == "v2":
        assert rd(mgr.unified, "cgroup.freeze") == "1"
        assert keyed(mgr.unified, "cgroup.events")["frozen"] == "1"
    else:
        assert rd(mgr.dir_of("freezer"), "freezer.state") == "FROZEN"
    mgr.kill_all(signal.SIGTERM)     # a pause stays a pause
    if MODE == "v2":
        # v2 lets a fatal signal through the freezer; the request stays set
        assert p.wait(timeout=60) == -signal.SIGTERM
        assert rd(mgr.unified, "cgroup.freeze") == "1"
    else:
        assert mgr.is_frozen() and p.poll() is None
    mgr.thaw()
    assert not mgr.is_frozen()
    if MODE == "v2":
        assert keyed(mgr.unified, "cgroup.events")["frozen"] == "0"
    else:
        assert rd(mgr.dir_of("freezer"), "freezer.state") == "THAWED"
    assert p.wait(timeout=60) == -signal.SIGTERM


def test_destroy_of_a_frozen_cgroup_with_processes(managers, procs, cg_name):
    m = managers(None, cg_name)
    m.create()
    ps = [procs.sleep() for _ in range(2)]
    for p in ps:
        m.apply(p.pid)
    m.freeze()
    m.destroy()
    assert [p.wait(timeout=60) for p in ps] == [-signal.SIGKILL] * 2
    assert all_dirs_gone(m)


@pytest.mark.parametrize("ns_flags", [0, 0x20000000], ids=["plain", "CLONE_NEWPID"])
def test_fork_into_and_join(mgr, ns_flags):
    """The child is born in the cgroup2 directory (clone3), with CLONE_NEWPID as pid 1 of a
    namespace of its own, and joins v1 itself via tasks."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid, placed, born = mgr.fork_into(ns_flags)
    if pid == 0:
        try:
            mgr.join(v1=True)
            os.write(ready_w, str(os.getpid()).encode())
            os.read(done_r, 1)
        finally:
            os._exit(0)
    try:
        inner_pid = int(os.read(ready_r, 16))
        assert born == ns_flags
        if not placed:
            mgr.join(v1=False, pid=pid)
        for d in mgr.dirs.values():
            assert str(pid) in open(os.path.join(d, "cgroup.procs")).read().split(), d
        own_ns = os.stat(f"/proc/{pid}/ns/pid").st_ino != os.stat("/proc/self/ns/pid").st_ino
        assert (inner_pid, own_ns) == ((1, True) if ns_flags else (pid, False))
    finally:
        os.write(done_w, b"y")
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, done_r, done_w):
            os.close(fd)


def test_pids_and_kill_all(mgr, procs):
    ps = [procs.sleep() for _ in range(3)]
    for p in ps:
        mgr.apply(p.pid)
    assert sorted(mgr.pids()) == sorted(p.pid for p in ps)
    mgr.kill_all(signal.SIGKILL)
    assert [p.wait(timeout=60) for p in ps] == [-signal.SIGKILL] * 3
    if MODE == "v2":
        assert os.path.exists(os.path.join(mgr.unified, "cgroup.kill"))


# -- resources --------------------------------------------------------------------

def _common_resources() -> dict:
    maj, mnr = vda()
    return {
        "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 16 * MiB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000,
                "cpus": "1" if os.cpu_count() > 1 else "0", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {"weight": 500, "weightDevice": [{"major": maj, "minor": mnr, "weight": 300}],
                    "throttleReadBpsDevice": [{"major": maj, "minor": mnr, "rate": MiB}],
                    "throttleWriteBpsDevice": [{"major": maj, "minor": mnr, "rate": 2 * MiB}],
                    "throttleReadIOPSDevice": [{"major": maj, "minor": mnr, "rate": 100}],
                    "throttleWriteIOPSDevice": [{"major": maj, "minor": mnr, "rate": 200}]},
    }


@v1_only
def test_v1_every_resource_read_back(mgr, procs):
    p = procs.sleep()
    mgr.apply(p.pid)
    mem, cpu, cpuset = mgr.dir_of("memory"), mgr.dir_of("cpu"), mgr.dir_of("cpuset")
    # What a kernel may be built without: each field goes in only where its file is
    # (swap accounting, CONFIG_RT_GROUP_SCHED, kmem tcp, cpu.idle 5.15, cfs burst 5.14).
    has = {f: os.path.exists(os.path.join(d, f)) for d, f in (
        (mem, "memory.memsw.limit_in_bytes"), (mem, "memory.kmem.tcp.limit_in_bytes"),
        (cpu, "cpu.rt_period_us"), (cpu, "cpu.idle"), (cpu, "cpu.cfs_burst_us"))}
    res = _common_resources()
    del res["blockIO"]["weight"], res["blockIO"]["weightDevice"]  # BFQ's: test_v1_bfq_weights
    res["memory"].update(swappiness=10, disableOOMKiller=True, useHierarchy=True, kernel=32 * MiB)
    optional = {"memory.memsw.limit_in_bytes": ("memory", "swap", 96 * MiB),
                "memory.kmem.tcp.limit_in_bytes": ("memory", "kernelTCP", 32 * MiB),
                "cpu.idle": ("cpu", "idle", 0), "cpu.cfs_burst_us": ("cpu", "burst", 1000)}
    for f, (group, field, value) in optional.items():
        res[group].pop(field, None)
        if has[f]:
            res[group][field] = value
    if has["cpu.rt_period_us"]:
        res["cpu"].update(realtimePeriod=500000, realtimeRuntime=0)
    mgr.set_resources(res)
    assert rd(mem, "memory.limit_in_bytes") == str(64 * MiB)
    for f, (group, field, value) in optional.items():
        if has[f]:
            assert rd(mem if group == "memory" else cpu, f) == str(value), f  # memsw: memory+swap on v1
    assert rd(mem, "memory.soft_limit_in_bytes") == str(16 * MiB)
    assert rd(mem, "memory.swappiness") == "10"
    assert keyed(mem, "memory.oom_control")["oom_kill_disable"] == "1"
    assert rd(mem, "memory.use_hierarchy") == "1"
    assert rd(cpu, "cpu.shares") == "512"
    assert rd(cpu, "cpu.cfs_quota_us") == "50000"
    assert rd(cpu, "cpu.cfs_period_us") == "100000"
    if has["cpu.rt_period_us"]:
        assert rd(cpu, "cpu.rt_period_us") == "500000"
        assert rd(cpu, "cpu.rt_runtime_us") == "0"
    assert rd(cpuset, "cpuset.cpus") == res["cpu"]["cpus"]
    assert rd(cpuset, "cpuset.mems") == "0"
    assert rd(mgr.dir_of("pids"), "pids.max") == "20"
    blk, (maj, mnr) = mgr.dir_of("blkio"), vda()
    assert rd(blk, "blkio.throttle.read_bps_device") == f"{maj}:{mnr} {MiB}"
    assert rd(blk, "blkio.throttle.write_bps_device") == f"{maj}:{mnr} {2 * MiB}"
    assert rd(blk, "blkio.throttle.read_iops_device") == f"{maj}:{mnr} 100"
    assert rd(blk, "blkio.throttle.write_iops_device") == f"{maj}:{mnr} 200"
    # the allowlist: deny-all base, the spec's rules, then runc's defaults
    assert set(rd(mgr.dir_of("devices"), "devices.list").splitlines()) == {
        "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm",
        "c 1:9 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"}
    # update: raising the limit above the old memsw needs swap first
    update = {"memory": {"limit": 200 * MiB}, "pids": {"limit": -1}}
    if has["memory.memsw.limit_in_bytes"]:
        update["memory"]["swap"] = 300 * MiB
    mgr.set_resources(update, update=True)
    assert rd(mem, "memory.limit_in_bytes") == str(200 * MiB)
    if has["memory.memsw.limit_in_bytes"]:
        assert rd(mem, "memory.memsw.limit_in_bytes") == str(300 * MiB)
    assert rd(mgr.dir_of("pids"), "pids.max") == "max"
    assert len(rd(mgr.dir_of("devices"), "devices.list").splitlines()) == 11   # untouched


@v1_only
def test_v1_bfq_weights(mgr, procs, bfq_loop):
    p = procs.sleep()
    mgr.apply(p.pid)
    mgr.set_resources({"blockIO": {"weight": 500, "weightDevice": [
        {"major": bfq_loop[0], "minor": bfq_loop[1], "weight": 300}]}})
    blk = mgr.dir_of("blkio")
    assert rd(blk, "blkio.bfq.weight").split()[-1] == "500"
    assert f"{bfq_loop[0]}:{bfq_loop[1]} 300" in rd(blk, "blkio.bfq.weight_device")


@v1_only
def test_v1_weight_without_a_weight_file_is_refused(mgr, procs):
    """No CFQ (gone since 5.0) and no BFQ: the weight cannot be set, and the error names the
    field, as runc fails on the missing file. Only where the kernel really lacks both."""
    p = procs.sleep()
    mgr.apply(p.pid)
    blk = mgr.dir_of("blkio")
    if any(os.path.exists(os.path.join(blk, f)) for f in ("blkio.weight", "blkio.bfq.weight")):
        pytest.skip("this kernel has a blkio weight file (CFQ or BFQ): nothing to refuse")
    with pytest.raises(PyruncError, match=r"linux\.resources\.blockIO\.weight"):
        mgr.set_resources({"blockIO": {"weight": 500}})


@pytest.fixture
def iocost_vda():
    """Per-device io.weight needs the iocost controller enabled for the device
    (at the root; the guest is thrown away, still switched back)."""
    maj, mnr = vda()
    qos = "/sys/fs/cgroup/io.cost.qos"
    with open(qos, "w") as f:
        f.write(f"{maj}:{mnr} enable=1")
    try:
        yield
    finally:
        with open(qos, "w") as f:
            f.write(f"{maj}:{mnr} enable=0")


@v2_only
def test_v2_every_resource_read_back(mgr, procs, iocost_vda):
    from pyrunc.cgroups.v2 import blkio_to_io_weight, shares_to_weight
    p = procs.sleep()
    mgr.apply(p.pid)
    res = _common_resources()
    res["cpu"]["idle"] = 0
    res["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 * MiB}]
    res["unified"] = {"memory.high": str(60 * MiB), "pids.max": "33"}
    res["pids"] = {"limit": 0}       # spec 1.3: 0 is a real limit; unified then overrides
    mgr.set_resources(res)
    d, (maj, mnr) = mgr.unified, vda()
    assert rd(d, "memory.max") == str(64 * MiB)
    assert rd(d, "memory.swap.max") == str(32 * MiB)     # v2: swap alone = 96 - 64
    assert rd(d, "memory.low") == str(16 * MiB)
    assert rd(d, "memory.high") == str(60 * MiB)
    assert rd(d, "cpu.weight") == str(shares_to_weight(512)) == "20"
    assert rd(d, "cpu.max") == "50000 100000"
    assert rd(d, "cpu.max.burst") == "1000"
    assert rd(d, "cpu.idle") == "0"
    assert rd(d, "cpuset.cpus") == res["cpu"]["cpus"]
    assert rd(d, "cpuset.mems") == "0"
    assert rd(d, "pids.max") == "33"
    assert rd(d, "hugetlb.2MB.max") == str(4 * MiB)
    if os.path.exists(os.path.join(d, "io.bfq.weight")):
        assert rd(d, "io.bfq.weight").split()[-1] == "500"
    else:
        assert keyed(d, "io.weight")["default"] == str(blkio_to_io_weight(500))
        assert keyed(d, "io.weight")[f"{maj}:{mnr}"] == str(blkio_to_io_weight(300))
    assert rd(d, "io.max") == f"{maj}:{mnr} rbps={MiB} wbps={2 * MiB} riops=100 wiops=200"
    # update: only what is given changes; period alone keeps the quota
    mgr.set_resources({"memory": {"limit": -1}, "cpu": {"period": 200000}, "pids": {"limit": 7}},
                      update=True)
    assert rd(d, "memory.max") == "max"
    assert rd(d, "memory.swap.max") == "max"   # unlimited memory means unlimited swap
    assert rd(d, "cpu.max") == "50000 200000"
    assert rd(d, "pids.max") == "7"
    # no such controller: error names the unified key
    with pytest.raises(PyruncError, match=r"^linux\.resources\.unified\['nosuch\.max'\]: "):
        mgr.set_resources({"unified": {"nosuch.max": "1"}}, update=True)
    with pytest.raises(PyruncError, match=r"realtime"):
        mgr.set_resources({"cpu": {"realtimeRuntime": 1000}}, update=True)
    # rdma: the guest has no RDMA device, so the kernel refuses; the error says where
    with pytest.raises(PyruncError, match=r"^linux\.resources\.rdma\['mlx5_1'\]: write rdma\.max: E"):
        mgr.set_resources({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 100}}}, update=True)


_DEVICE_PROBE = r"""
import errno, json, os, tempfile
out = {}
for path, flags in (("/dev/null", os.O_RDWR), ("/dev/kmsg", os.O_RDONLY),
                    ("/dev/kmsg", os.O_WRONLY), ("/dev/kmsg", os.O_RDWR),
                    (BLK, os.O_RDONLY), (BLK, os.O_RDWR)):
    try:
        os.close(os.open(path, flags))
        r = "ok"
    except OSError as e:
        r = errno.errorcode[e.errno]
    out[f"{path.replace(BLK, 'blk')} {flags & 3}"] = r
with tempfile.TemporaryDirectory() as t:
    try:
        os.mknod(t + "/n", 0o600 | 0o020000, os.makedev(1, 11))
        out["mknod"] = "ok"
    except OSError as e:
        out["mknod"] = errno.errorcode[e.errno]
print(json.dumps(out))
"""


def test_device_allowlist_is_enforced(mgr, procs):
    """deny all; kmsg (c 1:11) allowed then write denied again (last match wins);
    a block device read-only; /dev/null from the defaults; mknod of anything from the defaults."""
    blk = openable_block_device()
    st = os.stat(blk)
    maj, mnr = os.major(st.st_rdev), os.minor(st.st_rdev)
    probe = f"BLK = {blk!r}\n" + _DEVICE_PROBE
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
             {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "w"},
             {"allow": True, "type": "b", "major": maj, "minor": mnr, "access": "r"}]
    mgr.set_resources({"devices": rules})
    p = procs.held(probe)
    mgr.apply(p.pid)
    got = json.loads(procs.release(p))
    assert got == {"/dev/null 2": "ok", "/dev/kmsg 0": "ok", "/dev/kmsg 1": "EPERM",
                   "/dev/kmsg 2": "EPERM",    # r allowed, w denied: the request fails
                   "blk 0": "ok", "blk 2": "EPERM", "mknod": "ok"}
    # an update replaces the policy (v2: the old program is detached)
    mgr.set_resources({"devices": [{"allow": True, "access": "rwm"}]}, update=True)
    p = procs.held(probe)
    mgr.apply(p.pid)
    assert set(json.loads(procs.release(p)).values()) == {"ok"}
    if MODE == "v2":
        from pyrunc.cgroups import bpf
        fd = os.open(mgr.unified, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(bpf.attached(fd)) == 1
        finally:
            os.close(fd)


_FORK_BOMB = r"""
import os, time
ok = fail = 0
kids = []
for _ in range(40):
    try:
        pid = os.fork()
    except OSError:
        fail += 1
        continue
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    ok += 1
    kids.append(pid)
print(ok, fail, flush=True)
for k in kids:
    os.kill(k, 9)
    os.waitpid(k, 0)
"""


def test_pids_limit_holds_a_fork_bomb(mgr, procs):
    mgr.set_resources({"pids": {"limit": 8}})
    pids_dir = mgr.dir_of("pids")
    assert rd(pids_dir, "pids.max") == "8"
    p = procs.held(_FORK_BOMB)
    mgr.apply(p.pid)
    ok, fail = map(int, procs.release(p).split())
    assert ok == 7 and fail == 33      # the parent is the 8th task
    events = keyed(pids_dir, "pids.events")
    assert int(events["max"]) >= 33


def test_pids_limit_zero_is_a_limit(mgr):
    # runtime-spec 1.3: 0 is a valid limit (not "unset"); -1 is "max"
    mgr.set_resources({"pids": {"limit": 0}})
    assert rd(mgr.dir_of("pids"), "pids.max") == "0"
    mgr.set_resources({"pids": {"limit": -1}}, update=True)
    assert rd(mgr.dir_of("pids"), "pids.max") == "max"


_HOG = r"""
b = []
for _ in range(64):
    b.append(bytearray(8 << 20))   # 512 MiB in all, zero-filled so really touched
print("survived")
"""


def test_memory_hog_is_oom_killed_and_counted(mgr, procs):
    mgr.set_resources({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    watch = mgr.oom_watcher()
    try:
        before = mgr.oom_kill_count()
        assert not watch.wait(0) and watch.check() == 0     # nothing yet
        p = procs.held(_HOG)
        mgr.apply(p.pid)
        assert procs.release(p) == ""
        assert p.returncode == -signal.SIGKILL
        assert watch.wait(60)
        assert watch.check() >= 1
        assert mgr.oom_kill_count() == before + 1
        stats = mgr.stats()
        assert stats["memory"]["usage"]["limit"] == 32 * MiB
        # the peak reached the limit (failcnt is not kept by every kernel)
        assert 31 * MiB <= stats["memory"]["usage"]["max"] <= 32 * MiB
    finally:
        watch.close()


_HOLD_MEMORY = r"""
b = bytearray(24 << 20)
print("held", flush=True)
sys.stdin.readline()
"""


def test_check_before_update_refuses_limit_below_usage(mgr, procs):
    p = procs.held(_HOLD_MEMORY)
    mgr.apply(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "held"
    limit_file = "memory.max" if MODE == "v2" else "memory.limit_in_bytes"
    before = rd(mgr.dir_of("memory"), limit_file)
    with pytest.raises(PyruncError, match=r"^linux\.resources\.memory\.limit: .* below the current usage"):
        mgr.set_resources({"memory": {"limit": 4 * MiB, "checkBeforeUpdate": True}}, update=True)
    assert rd(mgr.dir_of("memory"), limit_file) == before
    assert p.poll() is None


def test_stats_shape(mgr, procs):
    mgr.set_resources({"memory": {"limit": 128 * MiB}, "pids": {"limit": 50}})
    p = procs.held("sum(range(10**6)); x = bytearray(8 << 20); print('x', flush=True); sys.stdin.readline()")
    mgr.apply(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "x"
    s = json.loads(json.dumps(mgr.stats()))
    assert s["pids"] == {"current": 1, "limit": 50}
    assert s["memory"]["usage"]["limit"] == 128 * MiB
    assert s["memory"]["usage"]["usage"] >= 8 * MiB
    assert s["cpu"]["usage"]["total"] > 0
    assert set(s["cpu"]["usage"]) >= {"kernel", "user", "total"}
    assert isinstance(s["memory"]["raw"], dict) and s["memory"]["raw"]


# -- bad input: one line, nothing written, nothing left -----------------------------

BAD = [
    ({"memory": {"limit": -5}}, r"^linux\.resources\.memory\.limit: -5 is negative"),
    ({"memory": {"limit": MiB, "swap": -7}}, r"^linux\.resources\.memory\.swap: "),
    ({"memory": {"limit": 1 << 70}}, r"^linux\.resources\.memory\.limit: .*out of range"),
    ({"cpu": {"shares": 10**9}}, r"^linux\.resources\.cpu\.shares: .*out of range"),
    ({"cpu": {"cpus": "0-4095"}}, r"^linux\.resources\.cpu\.cpus: write cpuset\.cpus: E[A-Z]+ \("),
    ({"pids": {"limit": -3}}, r"^linux\.resources\.pids\.limit: "),
    ({"devices": [{"allow": True, "type": "x"}]}, r"^linux\.resources\.devices\[0\]\.type: unknown"),
    ({"memory": {"swappiness": 101}}, r"^linux\.resources\.memory\.swappiness: "),
]


@pytest.mark.parametrize("res,pattern", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_resources(managers, cg_name, res, pattern):
    m = managers(None, cg_name)
    m.create()
    limit_file = "memory.max" if MODE == "v2" else "memory.limit_in_bytes"
    before = rd(m.dir_of("memory"), limit_file)
    with pytest.raises(PyruncError, match=pattern) as e:
        m.set_resources(res)
    assert "\n" not in str(e.value)
    assert rd(m.dir_of("memory"), limit_file) == before    # validation precedes writes
    m.destroy()
    assert all_dirs_gone(m)


_EXTRA_V1 = r"""
import json, os, subprocess, sys, tempfile, time
from pyrunc.cgroups import open_manager
base = tempfile.mkdtemp(prefix="pyrunc-test-cg-mnt-")
mounted, out = [], {}
try:
    for ctrl in ("net_cls,net_prio", "hugetlb"):
        d = os.path.join(base, ctrl)
        os.mkdir(d)
        subprocess.run(["mount", "-t", "cgroup", "-o", ctrl, "pyrunc-test", d], check=True)
        mounted.append(d)
    m = open_manager(None, "pyrunc-test-cg-extra")
    m.create()
    try:
        m.set_resources({"network": {"classID": 0x100001,
                                     "priorities": [{"name": "lo", "priority": 5}]},
                         "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
        for ctrl, f in (("net_cls", "net_cls.classid"), ("net_prio", "net_prio.ifpriomap"),
                        ("hugetlb", "hugetlb.2MB.limit_in_bytes"),
                        ("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes")):
            with open(os.path.join(m.dir_of(ctrl), f)) as fh:
                out[f] = fh.read().split()
    finally:
        m.destroy()
        out["left"] = [d for d in m.dirs.values() if os.path.exists(d)]
finally:
    for d in mounted:
        subprocess.run(["umount", d], check=True)

    def active(ctrl):
        with open("/proc/cgroups") as fh:
            return any(l.split()[0] == ctrl and l.split()[1] != "0" for l in fh if not l.startswith("#"))

    # The kernel drops a v1 hierarchy at umount only if its root has no children,
    # and a removed child lingers a moment as "dying": mount and unmount again until
    # the hierarchy is gone, or it stays active but mounted nowhere (which breaks
    # containerd's cgroup loading for the rest of the machine's life).
    for d in mounted:
        ctrl = os.path.basename(d).split(",")[0]
        for _ in range(10):
            deadline = time.monotonic() + 1  # a killed root is released asynchronously
            while active(ctrl) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not active(ctrl):
                break
            subprocess.run(["mount", "-t", "cgroup", "-o", os.path.basename(d), "pyrunc-test", d], check=True)
            subprocess.run(["umount", d], check=True)
        out.setdefault("lingering", []).extend([ctrl] if active(ctrl) else [])
    for d in os.listdir(base):
        os.rmdir(os.path.join(base, d))
    os.rmdir(base)
print(json.dumps(out))
"""


@v1_only
def test_v1_net_and_hugetlb_in_a_private_mount_namespace():
    """This host leaves net_cls, net_prio and hugetlb unmounted: mount them in a
    throwaway mount namespace (never under /sys/fs/cgroup) and check there."""
    import subprocess
    import sys
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c",
                        _EXTRA_V1], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": RUNTIME})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["net_cls.classid"] == [str(0x100001)]
    assert "lo" in got["net_prio.ifpriomap"]
    assert got["net_prio.ifpriomap"][got["net_prio.ifpriomap"].index("lo") + 1] == "5"
    assert got["hugetlb.2MB.limit_in_bytes"] == [str(4 << 20)]
    assert got["hugetlb.2MB.rsvd.limit_in_bytes"] == [str(4 << 20)]
    assert got["left"] == []
    assert got["lingering"] == []


@v1_only
def test_unified_on_v1_is_an_error(mgr):
    with pytest.raises(PyruncError, match=r"^linux\.resources\.unified: .*cgroup v1"):
        mgr.set_resources({"unified": {"memory.max": "1"}})


@v1_only
def test_kernel_refusal_names_field_and_file(mgr, procs):
    """v1's kernel refuses a hard limit it cannot reclaim down to (no swap)."""
    p = procs.held(_HOLD_MEMORY)
    mgr.apply(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(PyruncError) as e:
        mgr.set_resources({"memory": {"limit": 4 * MiB}}, update=True)
    assert str(e.value) == ("linux.resources.memory.limit: write memory.limit_in_bytes: "
                            "EBUSY (Device or resource busy)")
