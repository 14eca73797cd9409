"""pyrunc check (issue 16): the host's facts, and the requests of a bundle this host cannot meet,
told before create fails on them. It only reads: a census of the host must not change."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from helpers import census

CAP_DROP = ["capsh", "--drop=cap_sys_resource", "--", "-c", 'exec "$@"', "sh"]  # a runtime without it


def facts(out: str, section: str) -> dict[str, str]:
    """subject -> mark, for the lines of one section ("host", "bundle ...")."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(section))
    found = {}
    for line in lines[start + 1:]:
        if not line.startswith("  ") or line[2] not in "✓✗!" or line[3] != " ":
            break
        subject, _, _meaning = line[4:].partition(": ")
        found[subject] = line[2]
    return found


def cgroup_mode() -> tuple[str, set[str]]:
    """("v1" | "v2" | "hybrid", the v1 controllers), read from mountinfo here, not by pyrunc."""
    v1, v2 = set(), False
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fstype, _, opts = line.split(" - ")[1].split(" ")[:3]
        if fstype == "cgroup2":
            v2 = True
        elif fstype == "cgroup":
            v1 |= set(opts.split(",")) - {"rw", "ro", "nosuid", "nodev", "noexec", "relatime"}
    v1 = {c for c in v1 if not c.startswith("name=")}
    return ("hybrid" if v1 and v2 else "v1" if v1 else "v2"), v1


def test_host_facts_change_nothing(pyrunc):
    before = census(pyrunc.root)
    proc = pyrunc("check")
    assert census(pyrunc.root) == before
    got = facts(proc.stdout, "host")
    mode, _ = cgroup_mode()
    assert got[f"cgroups {mode}"] == "✓"
    assert got["seccomp"] == ("✓" if Path("/proc/sys/kernel/seccomp/actions_avail").exists() else "✗")
    assert got["user namespaces"] == ("✓" if int(Path("/proc/sys/user/max_user_namespaces").read_text()) else "✗")
    assert got["pidfd"] == got["clone3"] == got["openat2"] == "✓"  # Linux >= 5.6 here
    assert got["overlayfs"] == ("✓" if "overlay" in Path("/proc/filesystems").read_text().split() else "✗")
    bus = Path("/run/dbus/system_bus_socket").exists()
    assert got["systemd"] == (("✓" if bus else "!") if Path("/run/systemd/system").is_dir() else "✗")
    criu = shutil.which("criu", path="/usr/local/sbin:" + os.environ["PATH"])
    works = criu is not None and subprocess.run([criu, "check"], capture_output=True, timeout=60).returncode == 0
    assert got["criu"] == ("✓" if works else "✗")
    assert got["SELinux"] == ("✓" if Path("/sys/fs/selinux/enforce").exists() else "✗")
    apparmor = Path("/sys/module/apparmor/parameters/enabled")
    assert got["AppArmor"] == ("✓" if apparmor.exists() and apparmor.read_text().startswith("Y") else "✗")


def test_criu_that_cannot_be_used_is_named_with_its_reason(pyrunc):
    """--criu names the binary; one missing, or older than 4 (Debian 12's 3.17 fails here), is ✗."""
    got = pyrunc("--criu", "/nonexistent/criu", "check").stdout
    assert "✗ criu: criu /nonexistent/criu: not an executable file (--criu): checkpoint and restore fail" in got
    if Path("/usr/sbin/criu").exists() and b"Version: 3." in subprocess.run(
            ["/usr/sbin/criu", "--version"], capture_output=True, timeout=30).stdout:
        got = pyrunc("--criu", "/usr/sbin/criu", "check").stdout
        assert "✗ criu: criu /usr/sbin/criu: version 3." in got and "older than 4.0" in got


def test_a_bundle_this_host_can_run(pyrunc, bundle):
    proc = pyrunc("check", "-b", str(bundle.path))
    assert facts(proc.stdout, "bundle") == {"config.json": "✓"}
    assert proc.stdout.rstrip().endswith("this host can run it")


def test_requests_this_host_cannot_meet(pyrunc, bundle, cid):
    """Each one named by its JSON path, before create refuses the first; the runtime runs
    without CAP_SYS_RESOURCE (capsh), so a raised hard limit cannot be had."""
    _, v1 = cgroup_mode()
    hard = int(Path("/proc/self/limits").read_text().split("Max processes")[1].split()[1]) + 1
    c = bundle.config
    c["process"]["rlimits"] = [{"type": "RLIMIT_NPROC", "soft": 10, "hard": hard}]
    c["process"]["capabilities"]["bounding"].append("CAP_SYS_RESOURCE")
    c["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 2097152}]
    c["hooks"] = {"prestart": [{"path": "/nonexistent/hook"}]}
    c["linux"]["netDevices"] = {"pyrunc-none0": {}}
    bundle.write()
    proc = subprocess.run([*CAP_DROP, *pyrunc.cmd("check", "-b", str(bundle.path))], capture_output=True, text=True,
                          start_new_session=True, timeout=60)
    got = facts(proc.stdout, "bundle")
    want = {"config.json": "✓", "process.rlimits[0] RLIMIT_NPROC": "✗", "process.capabilities": "!",
            "hooks.prestart[0].path": "✗", "linux.netDevices['pyrunc-none0']": "✗"}
    if cgroup_mode()[0] != "v2" and "hugetlb" not in v1:
        want["linux.resources.hugepageLimits"] = "✗"
    assert got == want, proc.stdout
    missing = sum(mark == "✗" for mark in want.values())
    assert proc.returncode == 1 and proc.stdout.rstrip().endswith(f"{missing} request(s) this host cannot meet")
    create = subprocess.run([*CAP_DROP, *pyrunc.cmd("create", "-b", str(bundle.path), cid)], capture_output=True,
                            text=True, start_new_session=True, timeout=60)
    assert create.returncode == 1 and create.stderr.count("\n") == 1, create.stderr
    named = create.stderr.split(": ")[2]
    assert got.get(named) == "✗" or named.startswith("linux.resources"), create.stderr  # a request check names
    assert not (pyrunc.root / cid).exists()


def test_an_invalid_config_gets_creates_error(pyrunc, bundle, cid):
    (bundle.path / "config.json").write_text(json.dumps({**bundle.config, "ociVersion": 13}))
    check = pyrunc("check", "-b", str(bundle.path), check=False)
    create = pyrunc("create", "-b", str(bundle.path), cid, check=False)
    assert check.returncode == create.returncode == 1
    assert check.stderr.replace("pyrunc: check: ", "") == create.stderr.replace(f"pyrunc: create {cid}: ", "")
    assert check.stderr.count("\n") == 1 and "ociVersion" in check.stderr
