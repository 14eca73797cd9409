"""runc's command line as engines, scripts and people use it (issue 27 item 2): help on every
command, --version, kill 0, update's flags, spec's default for this host, list's keys,
exec --cgroup's forms and runc's key phrases in refusals."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO
from test_bad_input import fails
from test_exec import one_line_error, running  # noqa: F401 (fixture)

COMMANDS = ("create", "start", "run", "state", "kill", "delete", "list", "spec", "features", "check",
            "explain", "exec", "pause", "resume", "update", "events", "ps")


def runc_help(cmd: str) -> str | None:
    if shutil.which("runc") is None:
        return None
    return subprocess.run(["runc", cmd, "--help"], capture_output=True, text=True).stdout


def flag_names(help_text: str) -> set[str]:
    """Every --flag an OPTIONS section lists."""
    opts = help_text.partition("OPTIONS:")[2]
    return {w.rstrip(",") for line in opts.splitlines() if line.startswith("   --")
            for w in line.split() if w.startswith("--")}


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_on_every_command(pyrunc, cmd):
    by_flag = pyrunc(cmd, "--help")
    assert by_flag.stdout == pyrunc(cmd, "-h").stdout == pyrunc("help", cmd).stdout
    text = by_flag.stdout
    assert text.startswith(f"NAME:\n   pyrunc {cmd} - ")
    for section in ("USAGE:", "DESCRIPTION:"):
        assert f"\n{section}\n" in text, text
    runc = runc_help(cmd)
    if runc is not None:  # every flag runc's command has (runc's own debugging flags aside)
        assert flag_names(runc) <= flag_names(text), flag_names(runc) - flag_names(text)


def test_help_lists_commands_and_unknown_topic(pyrunc):
    top = pyrunc("--help").stdout
    assert "COMMANDS:" in top and "GLOBAL OPTIONS:" in top and "help, h" in top
    assert pyrunc("help").stdout == top
    for argv in (["foo", "-h"], ["help", "foo"], ["foo"]):
        r = pyrunc(*argv, check=False)
        assert r.returncode == 3 and r.stdout == ""
        fails(r, "No help topic for 'foo'")


def test_help_is_not_a_flag_of_the_program_exec_runs(pyrunc, running, cid):  # noqa: F811
    assert pyrunc("exec", cid, "echo", "-h").stdout == "-h\n"


def test_version(pyrunc):
    lines = pyrunc("--version").stdout.splitlines()
    assert lines[0].startswith("pyrunc version ")
    assert lines[1].startswith("commit: ") and lines[1] != "commit: "
    assert lines[2] == "spec: 1.3.0"
    assert lines[3].startswith("python: 3.") and lines[4].startswith("libseccomp: 2.")
    assert pyrunc("-v").stdout.splitlines() == lines


def test_kill_signal_0_probes(pyrunc, running, cid):  # noqa: F811
    pyrunc("kill", cid, "0")
    assert pyrunc.state(cid)["status"] == "running"
    fails(pyrunc("kill", cid, "65", check=False), "invalid signal", "0 to 64")
    pyrunc("kill", cid, "KILL")
    pyrunc("delete", cid)


def test_update_takes_runcs_spellings(pyrunc, running, cid):  # noqa: F811
    text = pyrunc("update", "--help").stdout
    for flag in ("--cpu-share", "--cpu-shares", "--l3-cache-schema", "--mem-bw-schema"):
        assert f"   {flag} value" in text or f", {flag} value" in text, flag
    own = {line.split(":")[1]: line.split(":", 2)[2] for line in
           Path(f"/proc/{running}/cgroup").read_text().splitlines()}
    cpu = [k for k in own if "cpu" in k.split(",")]
    shares = (Path("/sys/fs/cgroup", cpu[0]) / own[cpu[0]].lstrip("/") / "cpu.shares" if cpu
              else Path("/sys/fs/cgroup") / own[""].lstrip("/") / "cpu.weight")
    pyrunc("update", "--cpu-share", "512", cid)
    first = shares.read_text()
    pyrunc("update", "--cpu-shares", "1024", cid)  # the old spelling still works
    assert shares.read_text() != first
    for flag in ("--l3-cache-schema", "--mem-bw-schema"):
        err = fails(pyrunc("update", flag, "L3:0=f", cid, check=False), flag, "Intel RDT")
        if not Path("/sys/fs/resctrl/info").is_dir():
            assert "resctrl" in err


def test_spec_cgroup_namespace_as_runc(tmp_path):
    from pyrunc.cgroups.layout import detect

    pure_v2 = detect().mode == "v2"
    for extra in ([], ["--rootless"]):
        d = tmp_path / ("r" if extra else "p")
        d.mkdir()
        subprocess.run([str(REPO / ".venv/bin/pyrunc"), "spec", *extra, "-b", str(d)], check=True)
        types = [ns["type"] for ns in json.loads((d / "config.json").read_text())["linux"]["namespaces"]]
        assert ("cgroup" in types) == pure_v2, types
        if shutil.which("runc"):
            (d / "runc").mkdir()
            subprocess.run(["runc", "spec", *extra, "-b", str(d / "runc")], check=True)
            theirs = json.loads((d / "runc" / "config.json").read_text())["linux"]["namespaces"]
            assert types == [ns["type"] for ns in theirs]


def test_list_and_state_keys_in_runcs_order(pyrunc, running, cid):  # noqa: F811
    keys = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
    row = json.loads(pyrunc("list", "--format", "json").stdout)[0]
    assert list(row) == keys and row["owner"] == "root"  # runc's list names the user
    state = pyrunc.state(cid)
    assert list(state) == keys and state["owner"] == ""  # runc's state does not


def test_exec_cgroup_forms(pyrunc, running, cid):  # noqa: F811
    own = {line.split(":")[1]: line.split(":", 2)[2] for line in
           Path(f"/proc/{running}/cgroup").read_text().splitlines()}
    if "memory" not in own or "pids" not in own:
        pytest.skip("no cgroup v1 memory and pids hierarchies on this host")
    subs = [Path("/sys/fs/cgroup", ctrl) / own[ctrl].lstrip("/") / "sub" for ctrl in ("memory", "pids")]
    for d in subs:
        d.mkdir()

    def memory_cgroup(spec: str) -> str:
        out = pyrunc("exec", "--cgroup", spec, cid, "cat", "/proc/self/cgroup").stdout
        return [line for line in out.splitlines() if ":memory:" in line][0].split(":", 2)[2]

    at_top = memory_cgroup("/")
    assert memory_cgroup("memory:sub") == memory_cgroup("memory,pids:sub") == at_top.rstrip("/") + "/sub"
    assert memory_cgroup("memory:/") == at_top
    msg = one_line_error(pyrunc("exec", "--cgroup", "memory:../x", cid, "true", check=False))
    assert "is not a sub cgroup path" in msg and "memory" in msg and "../x" in msg
    msg = one_line_error(pyrunc("exec", "--cgroup", "nosuch:sub", cid, "true", check=False))
    assert "controller nosuch" in msg
    msg = one_line_error(pyrunc("exec", "--cgroup", "sub", cid, "true", check=False))  # not in every hierarchy
    assert "does not exist" in msg and "/sub" in msg
    for bad in ("a:b:c", "memory:", "memory,memory:sub"):
        one_line_error(pyrunc("exec", "--cgroup", bad, cid, "true", check=False))
    for d in subs:
        d.rmdir()


def test_runcs_phrase_for_exec_in_paused(pyrunc, running, cid):  # noqa: F811
    pyrunc("pause", cid)
    msg = one_line_error(pyrunc("exec", cid, "true", check=False))
    assert "cannot exec in a paused container" in msg and "--ignore-paused" in msg
    pyrunc("resume", cid)


@pytest.mark.parametrize("how", ["symlink", "file"])
def test_proc_on_non_directory_refused_with_runcs_phrase(pyrunc, bundle, cid, how):
    proc = bundle.rootfs / "proc"
    if proc.exists():
        proc.rmdir()
    if how == "symlink":
        (bundle.rootfs / "elsewhere").mkdir()
        os.symlink("/elsewhere", proc)
    else:
        proc.write_text("")
    bundle.args("true")
    err = fails(pyrunc("run", "-b", str(bundle.path), cid, check=False),
                "must be mounted on ordinary directory", "/proc")
    assert ("symlink" in err) == (how == "symlink")
    assert not pyrunc.list_ids()


def test_seccomp_agent_phrase(pyrunc, bundle, cid, tmp_path):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "no-agent.sock"),
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]}
    bundle.args("true")
    fails(pyrunc("run", "-b", str(bundle.path), cid, check=False), "failed to connect with seccomp agent",
          "no-agent.sock")
