"""pause/resume, update, events, ps and kill --all on real containers (issue 5),
checked in the host's cgroup files and in `state`.

Layout-aware: on this v1/hybrid host they read the v1 controller files; the
same tests run in a pure cgroup v2 guest (hack/test-v2.sh) and read the v2 ones.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers import wait_for

V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")   # a pure cgroup2 mount at the top
# v1 swap limits need swap accounting (CONFIG_MEMCG_SWAP, not off on the kernel's command line)
swap_accounting = pytest.mark.skipif(
    not V2 and not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
    reason="the kernel does no swap accounting (no memory.memsw.limit_in_bytes)")
MiB = 1 << 20
# what each check reads: controller, v1 file, v2 file
FILES = {
    "memory": ("memory", "memory.limit_in_bytes", "memory.max"),
    "reservation": ("memory", "memory.soft_limit_in_bytes", "memory.low"),
    "pids": ("pids", "pids.max", "pids.max"),
    "cpus": ("cpuset", "cpuset.cpus", "cpuset.cpus"),
    "shares": ("cpu", "cpu.shares", "cpu.weight"),
    "quota": ("cpu", "cpu.cfs_quota_us", "cpu.max"),
    "procs": ("pids", "cgroup.procs", "cgroup.procs"),
}


def _v1_mounts() -> dict[str, Path]:
    """controller -> mountpoint of its v1 hierarchy, from mountinfo."""
    out: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _src, opts = post.split()[:3]
        if fstype == "cgroup":
            for o in opts.split(","):
                out[o] = Path(pre.split()[4])
    return out


class Cgroup:
    """The cgroup directories of a container's init, found from /proc/<pid>/cgroup
    (not from pyrunc's state), kept so they can be checked after the init is gone."""

    def __init__(self, pid: int) -> None:
        mounts = _v1_mounts()
        self.dirs: dict[str, Path] = {}
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            hid, ctrls, path = line.split(":", 2)
            if V2 and hid == "0":
                self.dirs[""] = Path("/sys/fs/cgroup") / path.lstrip("/")
            for c in ctrls.split(","):
                if c in mounts:
                    self.dirs[c] = mounts[c] / path.lstrip("/")

    def dir(self, ctrl: str) -> Path:
        return self.dirs[""] if V2 else self.dirs[ctrl]

    def file(self, key: str) -> Path:
        ctrl, v1, v2 = FILES[key]
        return self.dir(ctrl) / (v2 if V2 else v1)

    def read(self, key: str) -> str:
        return self.file(key).read_text().strip()

    def snapshot(self) -> dict[str, str]:
        return {k: self.read(k) for k in FILES if k != "procs"}

    def procs(self) -> list[int]:
        return sorted(int(p) for p in self.read("procs").split())

    def frozen(self) -> bool:
        if V2:
            events = dict(ln.split() for ln in (self.dirs[""] / "cgroup.events").read_text().splitlines())
            assert (self.dirs[""] / "cgroup.freeze").read_text().strip() == events["frozen"]
            return events["frozen"] == "1"
        state = (self.dirs["freezer"] / "freezer.state").read_text().strip()
        assert state in ("FROZEN", "THAWED"), state
        return state == "FROZEN"

    def keyed(self, ctrl: str, name: str) -> dict[str, int]:
        text = (self.dir(ctrl) / name).read_text()
        return {k: int(v) for k, v in (ln.split() for ln in text.splitlines())}


def start(pyrunc, bundle, cid: str, script: str = "exec sleep 1000", resources: dict | None = None):
    """A detached container running ``script``; (init pid, its cgroup)."""
    bundle.config["linux"]["resources"].update(resources or {})
    bundle.sh(script)
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    pid = pyrunc.state(cid)["pid"]
    return pid, Cgroup(pid)


def status(pyrunc, cid: str) -> str:
    return pyrunc.state(cid)["status"]


def refused(pyrunc, *args: str, match: str, input: str | None = None) -> str:
    """Run a pyrunc command that must fail with one line of error naming ``match``."""
    p = pyrunc(*args, check=False, input=input)
    err = p.stderr.strip()
    assert p.returncode != 0, f"{args} succeeded: {p.stdout}"
    assert len(err.splitlines()) == 1 and match in err, err
    return err


def test_pause_resume_seen_in_freezer_and_state(pyrunc, bundle, cid):
    pid, cg = start(pyrunc, bundle, cid)
    assert status(pyrunc, cid) == "running" and not cg.frozen()
    pyrunc("pause", cid)
    assert status(pyrunc, cid) == "paused" and cg.frozen()
    refused(pyrunc, "pause", cid, match="it is paused")
    assert status(pyrunc, cid) == "paused" and cg.frozen()
    pyrunc("resume", cid)
    assert status(pyrunc, cid) == "running" and not cg.frozen()
    refused(pyrunc, "resume", cid, match="it is running")
    assert status(pyrunc, cid) == "running" and not cg.frozen()
    assert pyrunc.state(cid)["pid"] == pid
    pyrunc("delete", "--force", cid)
    assert not any(d.exists() for d in cg.dirs.values()), "cgroup left after delete"


def test_paused_processes_do_not_run(pyrunc, bundle, cid):
    start(pyrunc, bundle, cid, "while :; do date +%s%N > /tmp/tick; sleep 0.05; done")
    tick = bundle.rootfs / "tmp" / "tick"
    wait_for(tick.exists, what="first tick")
    pyrunc("pause", cid)
    before = tick.read_text()
    time.sleep(1)
    assert tick.read_text() == before
    pyrunc("resume", cid)
    wait_for(lambda: tick.read_text() != before, what="ticks after resume")


def test_delete_force_of_a_paused_container(pyrunc, bundle, cid):
    """A frozen init dies only once thawed: delete -f kills it anyway, and leaves no
    process, cgroup or state."""
    pid, cg = start(pyrunc, bundle, cid)
    pyrunc("pause", cid)
    assert cg.frozen()
    pyrunc("delete", "--force", cid)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert not any(d.exists() for d in cg.dirs.values()), "cgroup left after delete"
    assert not (Path(pyrunc.root) / cid).exists()


def _expected_after_flags() -> dict[str, str]:
    if V2:
        return {"memory": str(64 * MiB), "reservation": str(32 * MiB), "pids": "30", "cpus": "0",
                "shares": str(1 + (512 - 2) * 9999 // 262142), "quota": "50000 100000"}
    return {"memory": str(64 * MiB), "reservation": str(32 * MiB), "pids": "30", "cpus": "0",
            "shares": "512", "quota": "50000"}


def test_update_flags_visible_in_cgroup_files(pyrunc, bundle, cid):
    _, cg = start(pyrunc, bundle, cid)
    pyrunc("update", "--memory", "64m", "--memory-reservation", "32m", "--pids-limit", "30",
           "--cpuset-cpus", "0", "--cpu-shares", "512", "--cpu-period", "100000", "--cpu-quota", "50000", cid)
    assert cg.snapshot() == _expected_after_flags()
    if not V2:
        assert (cg.dir("cpu") / "cpu.cfs_period_us").read_text().strip() == "100000"
    # a later update changes only what it names
    pyrunc("update", "--pids-limit", "40", cid)
    assert cg.snapshot() == {**_expected_after_flags(), "pids": "40"}


UNLIMITED = ("max", str((1 << 63) - 4096))   # v2, v1 (PAGE_COUNTER_MAX in bytes)


def _seen(pyrunc, cid: str, cg: Cgroup, ctrl: str, name: str) -> str:
    """A cgroup file read from the host, checked to read the same inside the container
    (its cgroup namespace shows its own cgroup at /sys/fs/cgroup[/<ctrl>])."""
    host = (cg.dir(ctrl) / name).read_text().strip()
    inner = f"/sys/fs/cgroup/{name}" if V2 else f"/sys/fs/cgroup/{ctrl}/{name}"
    assert pyrunc("exec", cid, "cat", inner).stdout.strip() == host, inner
    return host


@swap_accounting
def test_update_memory_and_swap_like_runc(pyrunc, bundle, cid):
    """Only what the request names is written (runc's update): --memory alone leaves the
    swap limit as it is, and --memory -1 after a --memory-swap means both unlimited
    (it failed with EINVAL when the saved swap was applied again)."""
    _, cg = start(pyrunc, bundle, cid)
    swap = "memory.swap.max" if V2 else "memory.memsw.limit_in_bytes"
    limit = FILES["memory"][2 if V2 else 1]
    pyrunc("update", "--memory", "64m", "--memory-swap", "128m", cid)
    assert _seen(pyrunc, cid, cg, "memory", limit) == str(64 * MiB)
    assert _seen(pyrunc, cid, cg, "memory", swap) == str((64 if V2 else 128) * MiB)
    pyrunc("update", "--memory", "96m", cid)
    assert _seen(pyrunc, cid, cg, "memory", limit) == str(96 * MiB)
    assert _seen(pyrunc, cid, cg, "memory", swap) == str((64 if V2 else 128) * MiB)
    pyrunc("update", "--memory", "-1", cid)
    assert _seen(pyrunc, cid, cg, "memory", limit) in UNLIMITED
    assert _seen(pyrunc, cid, cg, "memory", swap) in UNLIMITED
    pyrunc("update", "--memory", "32m", "--memory-swap", "-1", cid)
    assert _seen(pyrunc, cid, cg, "memory", limit) == str(32 * MiB)
    assert _seen(pyrunc, cid, cg, "memory", swap) in UNLIMITED
    pyrunc("update", "--memory", "0", "--memory-swap", "0", cid)   # runc: 0 is not given
    assert _seen(pyrunc, cid, cg, "memory", limit) == str(32 * MiB)
    assert _seen(pyrunc, cid, cg, "memory", swap) in UNLIMITED


def test_update_cpu_quota_and_period_each_alone(pyrunc, bundle, cid):
    """Of quota and period, the one a request leaves out (or gives as 0, as runc reads it)
    keeps its current value (v2 writes both in cpu.max); -1 is no quota."""
    _, cg = start(pyrunc, bundle, cid)

    def cpu() -> tuple[str, str]:
        if V2:
            return tuple(_seen(pyrunc, cid, cg, "cpu", "cpu.max").split())
        return (_seen(pyrunc, cid, cg, "cpu", "cpu.cfs_quota_us"), _seen(pyrunc, cid, cg, "cpu", "cpu.cfs_period_us"))

    pyrunc("update", "--cpu-period", "100000", "--cpu-quota", "50000", cid)
    assert cpu() == ("50000", "100000")
    pyrunc("update", "--cpu-period", "200000", cid)
    assert cpu() == ("50000", "200000")
    pyrunc("update", "--cpu-quota", "-1", cid)
    assert cpu() == ("max" if V2 else "-1", "200000")
    pyrunc("update", "--cpu-quota", "30000", cid)
    assert cpu() == ("30000", "200000")
    pyrunc("update", "--cpu-quota", "0", "--cpu-period", "100000", cid)   # runc: 0 is not given
    assert cpu() == ("30000", "100000")


def test_update_resources_file_and_stdin(pyrunc, bundle, cid, tmp_path):
    _, cg = start(pyrunc, bundle, cid)
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"memory": {"limit": 80 * MiB}, "pids": {"limit": 25}}))
    pyrunc("update", f"--resources={f}", cid)   # podman's form
    assert cg.read("memory") == str(80 * MiB) and cg.read("pids") == "25"
    pyrunc("update", "--resources=-", cid, input=json.dumps({"pids": {"limit": 26}}))   # containerd's
    assert cg.read("memory") == str(80 * MiB) and cg.read("pids") == "26"
    pyrunc("update", "-r", "-", cid, input=json.dumps({"memory": {"limit": -1}}))
    assert cg.read("memory") in ("max", str((1 << 63) - 4096)) and cg.read("pids") == "26"


def _bad_updates() -> list:
    cases = [
        (["--pids-limit", "-7"], "linux.resources.pids.limit"),
        (["--memory", "-5"], "--memory"),
        (["--cpu-shares", "99999999"], "linux.resources.cpu.shares"),
        (["--cpu-period", "10"], "linux.resources.cpu.period"),
        (["--cpuset-cpus", f"0-{os.cpu_count() + 8}"], "cpuset.cpus"),
        (["-r", "-", '{"memory": {"limit": 1180591620717411303424}}'], "linux.resources.memory.limit"),
        (["-r", "-", '{"pids": {"limit": "many"}}'], "linux.resources.pids.limit"),
        (["-r", "-", "[1, 2]"], "--resources stdin"),
        (["-r", "-", "{not json"], "invalid JSON"),
        (["--no-such-flag", "1"], "--no-such-flag"),
    ]
    if not V2:
        cases.append((["-r", "-", '{"unified": {"memory.max": "1000000"}}'], "linux.resources.unified"))
    return cases


@pytest.mark.parametrize("args,match", _bad_updates(), ids=lambda v: str(v)[:30])
def test_bad_update_changes_nothing(pyrunc, bundle, cid, args, match):
    _, cg = start(pyrunc, bundle, cid, resources={"memory": {"limit": 48 * MiB}, "pids": {"limit": 50}})
    before = cg.snapshot()
    args, stdin = (args[:-1], args[-1]) if args[:2] == ["-r", "-"] else (args, None)
    refused(pyrunc, "update", *args, cid, match=match, input=stdin)
    assert cg.snapshot() == before
    assert status(pyrunc, cid) == "running"


def test_stopped_container_refuses_update_pause_resume_events(pyrunc, bundle, cid):
    _, cg = start(pyrunc, bundle, cid, "while [ ! -e /tmp/go ]; do sleep 0.1; done",
                  resources={"pids": {"limit": 50}})
    (bundle.rootfs / "tmp" / "go").touch()
    wait_for(lambda: status(pyrunc, cid) == "stopped", what="the container to stop")
    refused(pyrunc, "update", "--pids-limit", "10", cid, match="it is stopped")
    assert cg.read("pids") == "50"
    refused(pyrunc, "pause", cid, match="it is stopped")
    refused(pyrunc, "resume", cid, match="it is stopped")
    refused(pyrunc, "events", "--stats", cid, match="it is stopped")
    assert json.loads(pyrunc("ps", "--format", "json", cid).stdout) == []
    assert status(pyrunc, cid) == "stopped"


def test_ps_json_and_table_match_the_cgroup(pyrunc, bundle, cid):
    _, cg = start(pyrunc, bundle, cid, "sleep 1000 & sleep 1001 & wait")
    wait_for(lambda: len(cg.procs()) == 3, what="3 processes")
    out = pyrunc("ps", "--format", "json", cid).stdout   # containerd's call
    assert sorted(json.loads(out)) == cg.procs()
    table = pyrunc("ps", cid).stdout.splitlines()
    assert table[0].split()[:2] == ["UID", "PID"]
    assert sorted(int(row.split()[1]) for row in table[1:]) == cg.procs()
    custom = pyrunc("ps", cid, "-o", "pid,args").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert sorted(r.split(None, 1)[1] for r in custom[1:]) == [
        "sh -c sleep 1000 & sleep 1001 & wait", "sleep 1000", "sleep 1001"]
    refused(pyrunc, "ps", cid, "-o", "comm", match="no PID column")
    refused(pyrunc, "ps", "--format", "yaml", cid, match="--format")


def test_kill_all_reaches_every_process_even_paused(pyrunc, bundle, cid):
    pid, cg = start(pyrunc, bundle, cid, "sleep 1000 & sleep 1001 & wait")
    wait_for(lambda: len(cg.procs()) == 3, what="3 processes")
    pyrunc("pause", cid)
    pyrunc("kill", "--all", cid, "KILL")
    wait_for(lambda: cg.procs() == [], what="every process gone")
    wait_for(lambda: status(pyrunc, cid) == "stopped", what="stopped")
    pyrunc("delete", cid)
    assert not any(d.exists() for d in cg.dirs.values()), "cgroup left after delete"


def test_kill_all_of_a_stopped_container_ends_what_its_cgroup_still_holds(pyrunc, bundle, cid):
    # containerd's shim sends `kill --all ID KILL` to every exited task it deletes; runc
    # takes it. Without a pid namespace of its own, the init's children outlive it.
    bundle.config["linux"]["namespaces"] = [
        ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "pid"]
    _, cg = start(pyrunc, bundle, cid, "sleep 1000 & echo $! > /tmp/child; "
                  "until [ -e /tmp/go ]; do sleep 0.05; done")
    wait_for(lambda: (bundle.rootfs / "tmp" / "child").exists(), what="the child")
    child = int((bundle.rootfs / "tmp" / "child").read_text())
    (bundle.rootfs / "tmp" / "go").touch()
    wait_for(lambda: status(pyrunc, cid) == "stopped", what="the init to exit")
    assert cg.procs() == [child], cg.procs()
    refused(pyrunc, "kill", cid, "KILL", match="it is stopped")
    assert cg.procs() == [child]
    pyrunc("kill", "--all", cid, "KILL")
    wait_for(lambda: cg.procs() == [], what="the child killed")
    pyrunc("kill", "--all", cid, "KILL")  # nothing left: still not an error
    pyrunc("delete", cid)
    assert not any(d.exists() for d in cg.dirs.values()), "cgroup left after delete"


def test_pids_limit_holds_a_fork_bomb(pyrunc, bundle, cid):
    # The bomb in a child shell: ash forks each element of a background pipeline from the shell
    # that runs it, and exits when a fork fails, which the init must not do.
    _, cg = start(pyrunc, bundle, cid, "sh -c 'b() { b | b & }; b' & exec sleep 1000",
                  resources={"pids": {"limit": 20}})
    wait_for(lambda: cg.keyed("pids", "pids.events").get("max", 0) > 0, timeout=60,
             what="the pids limit to refuse a fork")
    for _ in range(20):
        assert int((cg.dir("pids") / "pids.current").read_text()) <= 20
        time.sleep(0.05)
    pyrunc("kill", "--all", cid, "KILL")
    wait_for(lambda: cg.procs() == [], timeout=30, what="the bomb killed")
    pyrunc("delete", "--force", cid)


class Events:
    """A running `pyrunc events` whose stdout lines are read as JSON."""

    def __init__(self, pyrunc, *args: str) -> None:
        self.p = subprocess.Popen(pyrunc.cmd("events", *args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)

    def next(self) -> dict:
        line = self.p.stdout.readline()
        assert line, f"events ended: {self.p.stderr.read()}"
        return json.loads(line)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


def test_memory_hog_oom_killed_and_reported_by_events(pyrunc, bundle, cid):
    hog = "dd if=/dev/zero of=/dev/null bs=64M count=1"
    script = f"while [ ! -e /tmp/go ]; do sleep 0.1; done; {hog}; echo $? > /tmp/hog; exec sleep 1000"
    has_memsw = os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    if not V2 and not has_memsw and len(Path("/proc/swaps").read_text().splitlines()) > 1:
        pytest.skip("swap is on but not accounted (no memory.memsw.limit_in_bytes): the hog would swap")
    swap = {"swap": 16 * MiB} if not V2 and has_memsw else {}   # memory+swap on v1; no swap in the v2 guest
    _, cg = start(pyrunc, bundle, cid, script, resources={"memory": {"limit": 16 * MiB, **swap}})
    ev = Events(pyrunc, "--interval", "1s", cid)
    try:
        first = ev.next()   # stats after one interval: the OOM watch is armed by now
        assert first["type"] == "stats" and first["id"] == cid
        assert first["data"]["memory"]["usage"]["limit"] == 16 * MiB
        (bundle.rootfs / "tmp" / "go").touch()
        seen = [ev.next()]
        while seen[-1]["type"] != "oom" and len(seen) < 60:
            assert seen[-1]["type"] == "stats", seen[-1]
            seen.append(ev.next())
        assert seen[-1] == {"type": "oom", "id": cid}
        hog_status = bundle.rootfs / "tmp" / "hog"  # the shell creates it before echo writes
        wait_for(lambda: hog_status.exists() and hog_status.read_text().strip() != "",
                 what="the hog's exit status")
        assert hog_status.read_text().strip() == "137"   # SIGKILL
        assert cg.keyed("memory", "memory.events" if V2 else "memory.oom_control")["oom_kill"] >= 1
        pyrunc("kill", cid, "KILL")
        ev.p.wait(timeout=30)   # the stream ends with the container
        assert ev.p.returncode == 0, ev.p.stderr.read()
    finally:
        ev.close()


def test_events_stats_shape(pyrunc, bundle, cid):
    _, cg = start(pyrunc, bundle, cid, "sleep 1000 & exec sleep 1001",
                  resources={"memory": {"limit": 40 * MiB}, "pids": {"limit": 33}})
    wait_for(lambda: len(cg.procs()) == 2, what="2 processes")
    out = pyrunc("events", "--stats", cid).stdout
    assert len(out.splitlines()) == 1
    ev = json.loads(out)
    assert ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert data["pids"] == {"current": 2, "limit": 33}
    assert data["memory"]["usage"]["limit"] == 40 * MiB and data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    refused(pyrunc, "events", "--interval", "0s", cid, match="--interval")
    refused(pyrunc, "events", "--interval", "5 parsecs", cid, match="--interval")


def _bad_creates() -> list:
    cases = [
        ({"linux": {"cgroupsPath": "../../pyrunc-escape"}}, "cgroupsPath"),
        ({"linux": {"resources": {"pids": {"limit": -3}}}}, "linux.resources.pids.limit"),
        ({"linux": {"resources": {"memory": {"limit": -(1 << 40)}}}}, "linux.resources.memory.limit"),
        ({"linux": {"resources": {"cpu": {"cpus": f"0-{os.cpu_count() + 8}"}}}}, "cpuset.cpus"),
    ]
    if not V2:
        cases.append(({"linux": {"resources": {"unified": {"pids.max": "5"}}}}, "linux.resources.unified"))
    return cases


@pytest.mark.parametrize("patch,match", _bad_creates(), ids=lambda v: str(v)[:40])
def test_bad_cgroup_config_leaves_nothing(pyrunc, bundle, cid, patch, match):
    lin = patch["linux"]
    if "cgroupsPath" in lin:
        bundle.config["linux"]["cgroupsPath"] = lin["cgroupsPath"]
    bundle.config["linux"]["resources"].update(lin.get("resources", {}))
    bundle.args("sleep", "1000")
    refused(pyrunc, "run", "-d", "--bundle", str(bundle.path), cid, match=match)
    assert pyrunc.list_ids() == []
    top = "/sys/fs/cgroup" if V2 else "/sys/fs/cgroup/pids"
    assert not [d for d, _, _ in os.walk(top) if d.endswith(("/pyrunc-escape", f"/{cid}"))]


def _block_device() -> tuple[str, str]:
    """major, minor of an idle block device (a loop device where there is one)."""
    names = sorted(os.listdir("/sys/block"), key=lambda n: (not n.startswith("loop"), n))
    maj, mnr = Path(f"/sys/block/{names[0]}/dev").read_text().split(":")
    return maj, mnr.strip()


def test_update_devices_rewrites_the_allowlist(pyrunc, bundle, cid):
    """v1: devices.allow/deny; v2: a new eBPF program replaces the old one (bpf(2))."""
    maj, mnr = _block_device()
    for kind in ("bounding", "effective", "permitted"):
        bundle.config["process"]["capabilities"][kind].append("CAP_MKNOD")
    probe = bundle.rootfs / "tmp" / "probe"
    start(pyrunc, bundle, cid, f"mknod /tmp/blk b {maj} {mnr} || exit 1; while :; do "
          "if (: < /tmp/blk) 2>/dev/null; then r=read; else r=denied; fi; "
          "echo x > /dev/null && echo $r > /tmp/probe.new && mv /tmp/probe.new /tmp/probe; sleep 0.1; done")
    wait_for(probe.exists, what="the first probe")
    assert probe.read_text().strip() == "denied"
    rule = {"allow": True, "type": "b", "major": int(maj), "minor": int(mnr), "access": "r"}
    pyrunc("update", "-r", "-", cid, input=json.dumps({"devices": [rule]}))
    wait_for(lambda: probe.read_text().strip() == "read", what="the device allowed")
    pyrunc("update", "-r", "-", cid, input=json.dumps({"devices": [{**rule, "allow": False}]}))
    wait_for(lambda: probe.read_text().strip() == "denied", what="the device denied again")


def test_device_access_letters_as_runc(pyrunc, bundle, cid):
    """Issue 27: access letters other than r, w and m are ignored with a warning, as runc
    ignores them, not refused; the entry keeps its r, w and m."""
    bundle.config["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rza"}]
    bundle.args("sleep", "1000")
    r = pyrunc("run", "-d", "-b", str(bundle.path), cid)
    warning = [line for line in r.stderr.splitlines() if "linux.resources.devices[1].access" in line]
    assert len(warning) == 1 and "'az'" in warning[0], r.stderr
    own = {line.split(":")[1]: line.split(":", 2)[2] for line in
           Path(f"/proc/{pyrunc.state(cid)['pid']}/cgroup").read_text().splitlines()}
    if "devices" in own:  # v1: the kernel's list; on v2 the rule is in an eBPF program
        listed = (Path("/sys/fs/cgroup/devices") / own["devices"].lstrip("/") / "devices.list").read_text()
        assert "c 1:11 r\n" in listed, listed
