"""Capabilities and noNewPrivileges (issue 4): the five sets, read from the host's /proc/<pid>/status."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import wait_for

BITS = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21}


def mask(*names: str) -> int:
    return sum(1 << BITS[n] for n in set(names))


def status(pid: int | str) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def caps_of(st: dict[str, str]) -> dict[str, int]:
    return {k: int(st[k], 16) for k in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb")}


def dump_status_then_wait(bundle) -> None:
    """The program copies its own status to /tmp/status.txt, then idles until killed."""
    (bundle.rootfs / "tmp").mkdir(exist_ok=True)
    (bundle.rootfs / "tmp").chmod(0o1777)  # writable for a non-root user too
    bundle.sh("cat /proc/self/status > /tmp/status.tmp; mv /tmp/status.tmp /tmp/status.txt; exec sleep 1000")


def program_status(bundle) -> dict[str, str]:
    path = bundle.rootfs / "tmp" / "status.txt"
    wait_for(path.exists, what="the program's status dump")
    return dict(line.split(":\t", 1) for line in path.read_text().splitlines() if ":\t" in line)


def test_five_sets_for_a_non_root_user(pyrunc, bundle, cid):
    proc = bundle.config["process"]
    proc["user"] = {"uid": 1000, "gid": 1000}
    proc["noNewPrivileges"] = True
    proc["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "effective": ["CAP_KILL", "CAP_CHOWN"],
        "permitted": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
        "inheritable": ["CAP_NET_RAW", "CAP_CHOWN"],
        "ambient": ["CAP_NET_RAW"],
    }
    dump_status_then_wait(bundle)
    pyrunc("create", "--bundle", str(bundle.path), cid)
    pid = pyrunc.state(cid)["pid"]
    # Waiting on exec.fifo the init already holds exactly the configured sets.
    st = status(pid)
    assert caps_of(st) == {
        "CapBnd": mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"),
        "CapEff": mask("CAP_KILL", "CAP_CHOWN"),
        "CapPrm": mask("CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"),
        "CapInh": mask("CAP_NET_RAW", "CAP_CHOWN"),
        "CapAmb": mask("CAP_NET_RAW"),
    }
    assert st["NoNewPrivs"] == "1"
    assert st["Uid"].split() == ["1000"] * 4
    pyrunc("start", cid)
    # After execve of a plain (no file caps) binary, a non-root user keeps only the ambient set.
    after = caps_of(program_status(bundle))
    assert after == {"CapBnd": mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"),
                     "CapEff": mask("CAP_NET_RAW"), "CapPrm": mask("CAP_NET_RAW"),
                     "CapInh": mask("CAP_NET_RAW", "CAP_CHOWN"), "CapAmb": mask("CAP_NET_RAW")}
    assert caps_of(status(pid)) == after  # the same seen from the host


def test_root_gets_its_bounding_set_and_no_implicit_inheritable(pyrunc, bundle, cid):
    proc = bundle.config["process"]
    proc["noNewPrivileges"] = False
    proc["capabilities"] = {n: ["CAP_KILL", "CAP_NET_BIND_SERVICE"] for n in ("bounding", "effective", "permitted")}
    dump_status_then_wait(bundle)
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    st = program_status(bundle)
    assert caps_of(st) == {"CapBnd": mask("CAP_KILL", "CAP_NET_BIND_SERVICE"),
                           "CapEff": mask("CAP_KILL", "CAP_NET_BIND_SERVICE"),
                           "CapPrm": mask("CAP_KILL", "CAP_NET_BIND_SERVICE"), "CapInh": 0, "CapAmb": 0}
    assert st["NoNewPrivs"].strip() == "0"


def test_no_capabilities_object_means_none(pyrunc, bundle, cid):
    del bundle.config["process"]["capabilities"]
    dump_status_then_wait(bundle)
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    assert set(caps_of(program_status(bundle)).values()) == {0}


def test_unknown_capability_warns_and_runs(pyrunc, bundle, cid):
    caps = bundle.config["process"]["capabilities"]
    caps["bounding"].append("CAP_FROM_THE_FUTURE")
    caps["effective"].append("CAP_FROM_THE_FUTURE")
    bundle.sh("echo ran")
    proc = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert proc.stdout == "ran\n"
    assert "CAP_FROM_THE_FUTURE" in proc.stderr and "warning" in proc.stderr


@pytest.mark.parametrize("set_name,entry,path", [
    ("permitted", "cap_kill", "process.capabilities.permitted[3]"),  # after the three defaults
    ("effective", 5, "process.capabilities.effective[3]"),
])
def test_malformed_capability_is_a_config_error(pyrunc, bundle, cid, set_name, entry, path):
    bundle.config["process"]["capabilities"][set_name].append(entry)
    bundle.write()
    proc = pyrunc("create", "--bundle", str(bundle.path), cid, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and path in proc.stderr, proc.stderr
    assert not (pyrunc.root / cid).exists()


def test_ambient_outside_inheritable_warns_and_is_not_raised(pyrunc, bundle, cid):
    caps = bundle.config["process"]["capabilities"]
    caps["ambient"] = ["CAP_KILL"]  # not inheritable: the kernel refuses to raise it
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.sh("grep CapAmb /proc/self/status")
    proc = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert proc.stdout.split() == ["CapAmb:", "0000000000000000"]
    assert "cannot raise CAP_KILL" in proc.stderr


def test_capability_the_runtime_lacks_warns_and_runs(pyrunc, bundle, cid):
    """config.md: a capability that cannot be granted MUST be logged as a warning, and the
    runtime SHOULD NOT fail. The runtime runs without CAP_SYS_RESOURCE (capsh drops it from
    its bounding set), the config asks for it in all five sets, with CAP_KILL."""
    caps = {k: ["CAP_KILL", "CAP_SYS_RESOURCE"] for k in ("bounding", "effective", "permitted", "inheritable",
                                                         "ambient")}
    bundle.config["process"]["capabilities"] = caps
    bundle.sh("grep ^Cap /proc/self/status")
    bundle.write()
    proc = subprocess.run(["capsh", "--drop=cap_sys_resource", "--", "-c", 'exec "$@"', "sh",
                           *pyrunc.cmd("run", "--bundle", str(bundle.path), cid)],
                          capture_output=True, text=True, start_new_session=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = {k: int(v, 16) for k, v in (line.split(":") for line in proc.stdout.split("\n") if line)}
    assert got == {"CapBnd": mask("CAP_KILL"), "CapEff": mask("CAP_KILL"), "CapPrm": mask("CAP_KILL"),
                   "CapInh": mask("CAP_KILL"), "CapAmb": mask("CAP_KILL")}
    for set_name in ("bounding", "effective", "permitted", "inheritable"):
        assert f"process.capabilities.{set_name}: cannot grant CAP_SYS_RESOURCE" in proc.stderr, proc.stderr
