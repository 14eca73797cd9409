"""The systemd cgroup driver (issue 14) against a real systemd: run by hack/test-systemd.sh
in a guest where systemd is PID 1 with a D-Bus system bus (this host has neither, so here
the module is skipped). Each container's scope is checked from systemd's side (`systemctl
show`) and from the cgroup files, and nothing may be left: no unit, no cgroup, no state.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import wait_for

SYSTEMD = Path("/run/systemd/system").is_dir() and Path("/run/dbus/system_bus_socket").exists()
pytestmark = pytest.mark.skipif(not SYSTEMD, reason="needs systemd as PID 1 and its bus: run hack/test-systemd.sh")
V2 = not any(Path("/sys/fs/cgroup").glob("memory"))
ROOT = Path("/sys/fs/cgroup") if V2 else Path("/sys/fs/cgroup/unified")


def show(unit: str, *props: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *[f"-p{p}" for p in props]], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def gone(unit: str, cgroup: str) -> bool:
    return show(unit, "LoadState")["LoadState"] == "not-found" and not (ROOT / cgroup.lstrip("/")).exists()


def sd(pyrunc, *args: str, check: bool = True):
    if args[0] in ("create", "run"):
        pyrunc.ids.add(args[-1])
    return pyrunc("--systemd-cgroup", *args, check=check)


def setup(bundle, path: str, resources: dict | None = None, script: str = "exec sleep 1000"):
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["linux"]["resources"] = resources or {}
    bundle.sh(script)


def init_pid(pyrunc, cid: str) -> int:
    return pyrunc.state(cid)["pid"]


def test_scope_in_a_nested_slice_with_limits(pyrunc, bundle, cid):
    pod = f"kubepods-besteffort-pod{cid}.slice"
    unit = f"cri-containerd-{cid}.scope"
    cgroup = f"/kubepods.slice/kubepods-besteffort.slice/{pod}/{unit}"
    setup(bundle, f"{pod}:cri-containerd:{cid}", {"memory": {"limit": 64 << 20}, "pids": {"limit": 32},
                                                  "cpu": {"shares": 512, "quota": 20000, "period": 100000}})
    sd(pyrunc, "run", "-d", "--bundle", str(bundle.path), cid)
    props = show(unit, "ControlGroup", "ActiveState", "Delegate", "Slice", "MemoryMax", "MemoryLimit", "TasksMax",
                 "CPUQuotaPerSecUSec", "Description")
    assert props["ControlGroup"] == cgroup and props["ActiveState"] == "active" and props["Delegate"] == "yes"
    assert props["Slice"] == pod and props["TasksMax"] == "32" and props["CPUQuotaPerSecUSec"] == "200ms"
    assert props["Description"] == f"pyrunc container {cid}"
    assert props["MemoryMax" if V2 else "MemoryLimit"] == str(64 << 20)
    pid = init_pid(pyrunc, cid)
    own = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert f"0::{cgroup}" in own
    if V2:
        d = ROOT / cgroup.lstrip("/")
        assert (d / "memory.max").read_text().strip() == str(64 << 20)
        assert (d / "pids.max").read_text().strip() == "32"
        assert (d / "cpu.max").read_text().strip() == "20000 100000"
    else:  # hybrid/v1: systemd's hierarchies and pyrunc's own (freezer) both hold the init
        assert any(line.endswith(f":{cgroup}") and "memory" in line for line in own)
        assert any(line.endswith(f":{cgroup}") and "freezer" in line for line in own)
        assert (Path("/sys/fs/cgroup/memory") / cgroup.lstrip("/") / "memory.limit_in_bytes").read_text().strip() \
            == str(64 << 20)
    sd(pyrunc, "delete", "--force", cid)
    assert gone(unit, cgroup), show(unit, "LoadState", "ActiveState")


def test_update_pause_resume_delete(pyrunc, bundle, cid):
    unit = f"pyrunc-{cid}.scope"
    setup(bundle, f"system.slice:pyrunc:{cid}", {"memory": {"limit": 64 << 20}})
    sd(pyrunc, "run", "-d", "--bundle", str(bundle.path), cid)
    # an exec'd process joins the scope on every hierarchy, systemd's v1 ones included
    pidfile = pyrunc.root.parent / "exec.pid"
    sd(pyrunc, "exec", "-d", "--pid-file", str(pidfile), cid, "sleep", "1000")
    seen = Path(f"/proc/{pidfile.read_text().strip()}/cgroup").read_text().splitlines()
    assert f"0::/system.slice/{unit}" in seen, seen
    if not V2:
        mine = [line for line in seen if "memory" in line or "pids" in line or "freezer" in line]
        assert len(mine) == 3 and all(line.endswith(f":/system.slice/{unit}") for line in mine), seen
    sd(pyrunc, "update", "--memory", "128m", "--pids-limit", "50", cid)
    props = show(unit, "MemoryMax", "MemoryLimit", "TasksMax")
    assert props["MemoryMax" if V2 else "MemoryLimit"] == str(128 << 20) and props["TasksMax"] == "50"
    if V2:
        assert (ROOT / "system.slice" / unit / "memory.max").read_text().strip() == str(128 << 20)
    sd(pyrunc, "pause", cid)
    assert pyrunc.state(cid)["status"] == "paused"
    sd(pyrunc, "resume", cid)
    assert pyrunc.state(cid)["status"] == "running"
    sd(pyrunc, "kill", cid, "KILL")
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="the container to stop")
    sd(pyrunc, "delete", cid)
    assert gone(unit, f"/system.slice/{unit}")


def test_default_path_is_pyruncs_scope_in_system_slice(pyrunc, bundle, cid):
    bundle.sh("exec sleep 1000")
    sd(pyrunc, "run", "-d", "--bundle", str(bundle.path), cid)
    assert show(f"pyrunc-{cid}.scope", "ControlGroup")["ControlGroup"] == f"/system.slice/pyrunc-{cid}.scope"
    sd(pyrunc, "delete", "--force", cid)
    assert gone(f"pyrunc-{cid}.scope", f"/system.slice/pyrunc-{cid}.scope")


def test_failed_create_leaves_no_unit(pyrunc, bundle, cid):
    """The mount fails in the container's init, after the scope was started."""
    unit = f"pyrunc-{cid}.scope"
    setup(bundle, f"system.slice:pyrunc:{cid}")
    bundle.config["mounts"].append({"destination": "/x", "type": "bind", "source": "/no/such/source",
                                    "options": ["bind"]})
    bundle.write()
    proc = sd(pyrunc, "create", "--bundle", str(bundle.path), cid, check=False)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1 and "/no/such/source" in proc.stderr
    assert gone(unit, f"/system.slice/{unit}") and not pyrunc.list_ids()


def test_unit_that_exists_is_an_error_and_stays(pyrunc, bundle, cid):
    """A second container with the first one's cgroupsPath: one line naming the unit and
    systemd's error; the first container, its unit and its processes are untouched."""
    unit = f"pyrunc-{cid}.scope"
    setup(bundle, f"system.slice:pyrunc:{cid}")
    sd(pyrunc, "run", "-d", "--bundle", str(bundle.path), cid)
    pid = init_pid(pyrunc, cid)
    proc = sd(pyrunc, "create", "--bundle", str(bundle.path), cid + "b", check=False)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    assert unit in proc.stderr and "org.freedesktop.systemd1.UnitExists" in proc.stderr, proc.stderr
    assert pyrunc.list_ids() == [cid] and show(unit, "ActiveState")["ActiveState"] == "active"
    assert os.path.exists(f"/proc/{pid}") and pyrunc.state(cid)["status"] == "running"
    sd(pyrunc, "delete", "--force", cid)
    assert gone(unit, f"/system.slice/{unit}")


def test_killed_create_then_delete_force_leaves_nothing(pyrunc, bundle, cid):
    """The runtime dies once the scope exists (its init with it, so systemd may collect the
    empty scope itself): `delete -f` leaves no unit, no cgroup of pyrunc's, no state."""
    unit = f"pyrunc-{cid}.scope"
    setup(bundle, f"system.slice:pyrunc:{cid}")
    pyrunc.ids.add(cid)
    proc = pyrunc("--systemd-cgroup", "create", "--bundle", str(bundle.path), cid, check=False,
                  env={**os.environ, "PYRUNC_CRASH_AT": "create:resources"})
    assert proc.returncode != 0 and pyrunc.list_ids() == [cid]
    sd(pyrunc, "delete", "--force", cid)
    wait_for(lambda: gone(unit, f"/system.slice/{unit}"), what=f"{unit} to go")
    assert not pyrunc.list_ids()


def test_path_not_in_systemd_form_names_the_field(pyrunc, bundle, cid):
    setup(bundle, "/not/systemd/form")
    proc = sd(pyrunc, "create", "--bundle", str(bundle.path), cid, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"pyrunc: create {cid}: linux.cgroupsPath: ") and "slice:prefix:name" in proc.stderr
    assert not pyrunc.list_ids()


def test_explain_shows_the_scope_and_then_finds_it(pyrunc, bundle, cid):
    import json

    unit = f"pyrunc-{cid}.scope"
    setup(bundle, f"system.slice:pyrunc:{cid}", {"memory": {"limit": 64 << 20}})
    bundle.args("sleep", "1000")  # no shell: explain compares the program's argv and env
    plan = json.loads(sd(pyrunc, "explain", "--format", "json", "-b", str(bundle.path), cid).stdout)
    assert plan["cgroup"]["driver"] == "systemd" and unit in plan["steps"][0]["text"]
    assert show(unit, "LoadState")["LoadState"] == "not-found"  # explain made nothing
    sd(pyrunc, "run", "-d", "--bundle", str(bundle.path), cid)
    live = sd(pyrunc, "explain", cid, check=False)
    assert live.returncode == 0 and "no difference from the plan" in live.stdout, live.stdout
    sd(pyrunc, "delete", "--force", cid)


USER = os.environ.get("SYSTEMD_TEST_USER")  # SYSTEMD_ROOTLESS=1 hack/test-systemd.sh makes one


@pytest.mark.skipif(not USER, reason="needs a user to run rootless: SYSTEMD_ROOTLESS=1 hack/test-systemd.sh")
def test_rootless_scope_in_the_users_manager(cid):
    """Rootless, the scope is the user manager's (its bus at $XDG_RUNTIME_DIR/bus), below
    user@UID.service, as `systemd-run --user --scope` would put it."""
    import json
    import pwd
    import shutil
    import tempfile

    from helpers import pyrunc_binary

    uid = pwd.getpwnam(USER).pw_uid
    # user@UID.service boots sysinit.target, whose tmpfiles setup empties the guest's /tmp:
    # hack/test-systemd.sh runs this test only on request, from a checkout outside /tmp.
    subprocess.run(["systemctl", "start", f"user@{uid}.service"], check=True, timeout=300)
    env = ["env", f"XDG_RUNTIME_DIR=/run/user/{uid}"]

    def as_user(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        # output through a file: a detached container keeps its stdio open (as helpers.Runtime)
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.run(["runuser", "-u", USER, "--", *env, *args], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, text=True, timeout=120)
            out.seek(0)
            proc.stdout = out.read()
        assert not check or proc.returncode == 0, proc.stdout
        return proc

    path = Path(tempfile.mkdtemp(prefix="pyrunc-sd-user-"))
    try:
        path.chmod(0o755)
        from pyrunc.cli.spec import default_config

        b = path / "b"
        subprocess.run([str(Path(__file__).parents[1] / "hack/mkbundle.sh"), str(b), "sleep", "1000"], check=True,
                       capture_output=True)
        config = default_config(rootless=True)  # `pyrunc spec --rootless`, for this user's ids
        for key in ("uidMappings", "gidMappings"):
            config["linux"][key] = [{"containerID": 0, "hostID": uid, "size": 1}]
        config["process"].update(args=["sleep", "1000"], terminal=False)
        # a cgroup2 mount of its own needs a cgroup namespace the user manager did not delegate
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
        (b / "config.json").write_text(json.dumps(config))
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(path)], check=True)
        unit = f"pyrunc-{cid}.scope"
        as_user(pyrunc_binary(), "--systemd-cgroup", "run", "-d", "--bundle", str(b), cid)
        try:
            shown = as_user("systemctl", "--user", "show", unit, "-pControlGroup", "-pActiveState").stdout
            cgroup = f"/user.slice/user-{uid}.slice/user@{uid}.service/user.slice/{unit}"
            assert shown.split() == [f"ControlGroup={cgroup}", "ActiveState=active"], shown
            pid = json.loads(as_user(pyrunc_binary(), "state", cid).stdout)["pid"]
            assert f"0::{cgroup}" in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        finally:
            as_user(pyrunc_binary(), "delete", "--force", cid)
        shown = as_user("systemctl", "--user", "show", unit, "-pLoadState").stdout
        assert shown.strip() == "LoadState=not-found"
    finally:
        shutil.rmtree(path)
