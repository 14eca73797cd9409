"""The six OCI hooks (issue 6): order, namespace, state on stdin, env/args/timeout, failure rules."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ns_inode, wait_for

# Appends one line per call: name, its mount and pid namespaces, the state's status and pid,
# and $HOOKVAR (env given in the config) -- so a test can prove order, namespace and state.
HOOK = r"""#!/bin/sh
st=$(cat)
status=$(echo "$st" | sed 's/.*"status":"\([a-z]*\)".*/\1/')
pid=$(echo "$st" | sed 's/.*"pid":\([0-9]*\).*/\1/')
echo "$1 $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/pid) $status $pid ${HOOKVAR:-unset}" >> "$2"
[ -z "$3" ] || { echo "$3" >&2; exit 1; }
"""
KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class Hooks:
    """A host hook script, the same script in the rootfs (for startContainer), and their log."""

    def __init__(self, tmp_path: Path, bundle) -> None:
        self.bundle = bundle
        logdir = tmp_path / "hooklogs"
        logdir.mkdir()
        self.log = logdir / "log"
        self.script = tmp_path / "hook.sh"
        self.script.write_text(HOOK)
        self.script.chmod(0o755)
        (bundle.rootfs / "hook.sh").write_text(HOOK)
        (bundle.rootfs / "hook.sh").chmod(0o755)
        # startContainer runs after pivot_root: it logs through a bind mount of the same dir
        bundle.config["mounts"].append({"destination": "/hooklogs", "type": "bind", "source": str(logdir),
                                        "options": ["rbind", "rw"]})
        bundle.config["hooks"] = {}

    def add(self, kind: str, fail: str = "", **extra) -> None:
        inside = kind == "startContainer"
        path = "/hook.sh" if inside else str(self.script)
        log = "/hooklogs/log" if inside else str(self.log)
        hook = {"path": path, "args": ["hook.sh", kind, log] + ([fail] if fail else []),
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"HOOKVAR={kind}-env"], **extra}
        self.bundle.config["hooks"].setdefault(kind, []).append(hook)
        self.bundle.write()

    def lines(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split() for line in self.log.read_text().splitlines()]

    def names(self) -> list[str]:
        return [fields[0] for fields in self.lines()]


@pytest.fixture
def hooks(tmp_path, bundle) -> Hooks:
    bundle.config["root"]["readonly"] = False
    return Hooks(tmp_path, bundle)


def test_order_namespaces_state_env(pyrunc, bundle, hooks, cid):
    bundle.sh("exec sleep 1000")
    for kind in KINDS:
        hooks.add(kind)
    pyrunc("create", "-b", str(bundle.path), cid)
    init = pyrunc.state(cid)["pid"]
    assert hooks.names() == ["prestart", "createRuntime", "createContainer"]
    pyrunc("start", cid)
    assert hooks.names() == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"]
    pyrunc("kill", cid, "KILL")
    deadline = time.monotonic() + 10
    while pyrunc.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    pyrunc("delete", cid)
    host = (ns_inode("self", "mnt"), ns_inode("self", "pid"))
    lines = {f[0]: f for f in hooks.lines()}
    assert list(lines) == list(KINDS)
    expected_status = {"prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
                       "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    for kind, (name, mnt, pidns, status, pid, var) in lines.items():
        assert status == expected_status[kind], kind
        assert var == f"{kind}-env", kind
        if kind in ("createContainer", "startContainer"):
            # in the container's namespaces; the pid as the container sees it
            assert (mnt, pidns) != host, kind
            assert pid == "1", kind
        else:
            assert (mnt, pidns) == host, kind
            assert pid == str(init), kind
    # the two container-side hooks ran in the same (the init's) namespaces
    assert lines["createContainer"][1:3] == lines["startContainer"][1:3]


def test_container_namespaces_are_the_inits(pyrunc, bundle, hooks, cid):
    bundle.sh("exec sleep 1000")
    hooks.add("createContainer")
    hooks.add("startContainer")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    init = pyrunc.state(cid)["pid"]
    for name, mnt, pidns, *_ in hooks.lines():
        assert (mnt, pidns) == (ns_inode(init, "mnt"), ns_inode(init, "pid")), name


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(pyrunc, bundle, hooks, cid, kind):
    bundle.sh("exec sleep 1000")
    hooks.add(kind, fail=f"boom-{kind}")
    hooks.add("poststop")
    r = pyrunc("create", "-b", str(bundle.path), cid, check=False)
    assert r.returncode == 1
    msg = r.stderr.strip()
    assert "\n" not in msg and f"hooks.{kind}[0]" in msg and f"boom-{kind}" in msg, msg
    assert not (pyrunc.root / cid).exists()
    # the lifecycle continued at "destroy", then poststop (runtime.md step 12, 13)
    assert hooks.names() == [kind, "poststop"]


def test_failing_startcontainer_stops_the_container(pyrunc, bundle, hooks, cid):
    bundle.sh("echo ran > /tmp/ran; exec sleep 1000")
    hooks.add("startContainer", fail="boom-start")
    hooks.add("poststart")
    hooks.add("poststop")
    pyrunc("create", "-b", str(bundle.path), cid)
    r = pyrunc("start", cid, check=False)
    assert r.returncode == 1 and "hooks.startContainer[0]" in r.stderr and "boom-start" in r.stderr
    # runtime.md lifecycle step 7: stop it and go on at step 12 (destroy), then poststop
    assert not (pyrunc.root / cid).exists()
    assert not (bundle.rootfs / "tmp" / "ran").exists()  # the program never ran
    assert hooks.names() == ["startContainer", "poststop"]  # no poststart
    pyrunc("delete", "--force", cid)  # what engines do next: nothing left to do


def test_failing_startcontainer_in_run_leaves_nothing(pyrunc, bundle, hooks, cid):
    bundle.sh("exec sleep 1000")
    hooks.add("startContainer", fail="boom-start")
    r = pyrunc("run", "-d", "-b", str(bundle.path), cid, check=False)
    assert r.returncode == 1 and "boom-start" in r.stderr
    assert not (pyrunc.root / cid).exists()


def dead(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever inherited it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_failing_poststart_stops_the_container(pyrunc, bundle, hooks, cid):
    bundle.sh("exec sleep 1000")
    hooks.add("poststart", fail="boom-poststart")
    pyrunc("create", "-b", str(bundle.path), cid)
    init = pyrunc.state(cid)["pid"]
    r = pyrunc("start", cid, check=False)
    assert r.returncode == 1 and "hooks.poststart[0]" in r.stderr and "boom-poststart" in r.stderr
    assert not (pyrunc.root / cid).exists()  # stopped and destroyed (lifecycle step 9 -> 12)
    assert dead(init)


def test_failing_poststop_is_a_warning(pyrunc, bundle, hooks, cid):
    hooks.add("poststop", fail="boom-poststop")
    hooks.add("poststop")
    pyrunc("run", "-b", str(bundle.path), "--keep", cid)
    r = pyrunc("delete", cid)
    assert r.returncode == 0
    assert "hooks.poststop[0]" in r.stderr and "boom-poststop" in r.stderr and "warning" in r.stderr
    assert not (pyrunc.root / cid).exists()
    assert hooks.names() == ["poststop", "poststop"]  # the second one still ran


def test_hook_timeout_kills_the_hook(pyrunc, bundle, cid, tmp_path):
    pidfile = tmp_path / "hook.pid"
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
        "sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], "timeout": 1}]}
    bundle.write()
    t0 = time.monotonic()
    r = pyrunc("create", "-b", str(bundle.path), cid, check=False)
    assert time.monotonic() - t0 < 15
    assert r.returncode == 1 and "timed out after 1s" in r.stderr and "\n" not in r.stderr.strip()
    wait_for(lambda: dead(int(pidfile.read_text())), timeout=5, what="the hook's own child to be killed too")
    assert not (pyrunc.root / cid).exists()


@pytest.mark.parametrize("path,expect", [("hook.sh", "is not an absolute path"),
                                          ("/nonexistent/hook", "No such file or directory")])
def test_bad_hook_path(pyrunc, bundle, cid, path, expect):
    bundle.config["hooks"] = {"prestart": [{"path": path}]}
    bundle.write()
    r = pyrunc("create", "-b", str(bundle.path), cid, check=False)
    msg = r.stderr.strip()
    assert r.returncode == 1 and "hooks.prestart[0]" in msg and expect in msg and "\n" not in msg, msg
    assert not (pyrunc.root / cid).exists()


def test_state_on_stdin_is_valid_json(pyrunc, bundle, cid, tmp_path):
    out = tmp_path / "state.json"
    bundle.config["annotations"] = {"org.example/k": "v"}
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]}
    bundle.write()
    pyrunc("create", "-b", str(bundle.path), cid)
    st = json.loads(out.read_text())
    assert st["id"] == cid and st["status"] == "creating" and st["bundle"] == str(bundle.path)
    assert st["pid"] == pyrunc.state(cid)["pid"] and st["annotations"] == {"org.example/k": "v"}
    assert st["ociVersion"] == "1.3.0"


def test_features_lists_the_hooks(pyrunc):
    assert json.loads(pyrunc("features").stdout)["hooks"] == list(KINDS)


def test_hooks_get_only_stdio(pyrunc, bundle, cid, tmp_path):
    """Every hook starts with fds 0, 1 and 2 alone: nothing of the runtime's (its state dir,
    channel, the init's exec.fifo, the container's preserved fds) leaks into it."""
    logdir = tmp_path / "fds"
    logdir.mkdir()
    bundle.config["mounts"].append({"destination": "/fds", "type": "bind", "source": str(logdir),
                                    "options": ["rbind", "rw"]})
    bundle.config["hooks"] = {}
    for kind in KINDS:
        where = "/fds" if kind == "startContainer" else str(logdir)
        # the hook's fds as ls sees them: the shell becomes ls, which adds its directory (3)
        bundle.config["hooks"][kind] = [{"path": "/bin/sh", "args": [
            "sh", "-c", f"cat >/dev/null; exec ls /proc/self/fd >{where}/{kind}"]}]
    bundle.args("true").write()
    # fd 3 is the container's (--preserve-fds), not the hooks'
    cmd = " ".join(pyrunc.cmd("run", "--preserve-fds", "1", "--bundle", str(bundle.path), cid))
    pyrunc.ids.add(cid)
    subprocess.run(["sh", "-c", f"exec 3</dev/null; exec {cmd}"], check=True, timeout=60, start_new_session=True)
    seen = {kind: (logdir / kind).read_text().split() for kind in KINDS}
    assert seen == {kind: ["0", "1", "2", "3"] for kind in KINDS}
