"""Crash safety (issue 13): a runtime killed at any step leaves nothing behind that
`delete -f` does not remove, and signals nothing but its container's own processes.

Each case kills the runtime at one named step (PYRUNC_CRASH_AT, runtime/pyrunc/crash.py),
or at a seeded random moment, from crash_caller.py: a stand-in for a shim, in a session
of its own, with a sleeper in the runtime's process group. A census of the host taken
before and after (processes, mounts, cgroup directories on every hierarchy, state
directories, the test's own fds) must come out the same.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from criuhelp import counter_bundle, need_criu, stopped, wait_count
from helpers import each_process, processes_rooted_under, wait_for
from pyrunc import crash
from usernshelp import base, make_bundle  # noqa: F401 (fixtures)

CALLER = Path(__file__).with_name("crash_caller.py")
SEED = int(os.environ.get("PYRUNC_CRASH_SEED", "1313"))
# how the runtime dies at a step: SIGKILL, or _exit (hack/test-v2.sh keeps to SIGKILL)
MODES = os.environ.get("PYRUNC_CRASH_MODES", "kill,exit").split(",")


def census(root: Path, cid: str) -> dict[str, set[str]]:
    """Mounts, our fds and the state root, whole; cgroup directories on every hierarchy named
    for the container (the default cgroupsPath is its id): others come and go on a live host."""
    with open("/proc/self/mountinfo") as f:
        mounts = {" ".join(line.split()[:5]) for line in f}
    return {
        "mounts": mounts,
        "cgroups": {d for d, _, _ in os.walk("/sys/fs/cgroup") if cid in d},
        "state": set(os.listdir(root)) if root.exists() else set(),
        "fds": set(os.listdir("/proc/self/fd")),
    }


def session_processes(sid: int) -> list[int]:
    """Live processes in session ``sid``: what the caller's runtime and containers left."""
    def fields(d: str) -> list[bytes]:
        raw = Path(f"{d}/stat").read_bytes()
        return raw[raw.rindex(b")") + 2:].split()
    return [pid for pid, f in each_process(fields) if int(f[3]) == sid and f[0] not in (b"Z", b"X")]


def cgroup_processes(cid: str) -> list[int]:
    """Live processes whose cgroup, on any hierarchy, is the container's."""
    return [pid for pid, text in each_process(lambda d: Path(f"{d}/cgroup").read_text())
            if any(line.endswith(f"/{cid}") for line in text.splitlines())]


class Caller:
    """Runs crash_caller.py; fails the test if the caller or its sleeper was signalled."""

    def __init__(self) -> None:
        self.sessions: list[int] = []

    def __call__(self, *steps: dict) -> list[dict]:
        p = subprocess.Popen([sys.executable, str(CALLER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.sessions.append(p.pid)
        out, err = p.communicate(json.dumps(list(steps)), timeout=180)
        assert p.returncode == 0, f"the caller was killed ({p.returncode}): the runtime signalled its process group"
        report = json.loads(out)
        assert report["sleeper_alive"], "the runtime signalled a process of its caller's process group"
        return report["results"]


@pytest.fixture
def caller() -> Caller:
    return Caller()


@pytest.fixture
def host(pyrunc, tmp_path, caller, cid):
    """The census before the test; after it, the same census is required, and no process
    left in any session the caller ran in nor rooted in the test's directory."""
    pyrunc.ids.add(cid)  # for the pyrunc fixture's own leak check
    before = census(pyrunc.root, cid)
    yield
    for sid in caller.sessions:
        wait_for(lambda: not session_processes(sid), what=f"the processes of session {sid} to exit")
    assert not processes_rooted_under(tmp_path)
    after = census(pyrunc.root, cid)
    for kind in before:
        assert after[kind] == before[kind], (f"{kind}: left {sorted(after[kind] - before[kind])}, "
                                             f"lost {sorted(before[kind] - after[kind])}")


def crash_env(op: str, step: str, mode: str) -> dict:
    return {"PYRUNC_CRASH_AT": f"{op}:{step}" + (":exit" if mode == "exit" else "")}


def assert_crashed(res: dict, mode: str) -> None:
    """-9 (or crash.EXIT_STATUS): the runtime reached the step and died there, not earlier."""
    want = -9 if mode == "kill" else crash.EXIT_STATUS
    assert res["rc"] == want, f"exit {res['rc']}, not a crash at the step: {res['stderr']}"


def status_after(pyrunc, caller, cid: str) -> str | None:
    """state and list as a caller sees them after the crash (None: no such container), then
    `delete -f`, which must succeed silently."""
    state, lst, delete = caller({"argv": pyrunc.cmd("state", cid)}, {"argv": pyrunc.cmd("list", "-f", "json")},
                                {"argv": pyrunc.cmd("delete", "-f", cid)})
    assert lst["rc"] == 0, lst["stderr"]
    assert delete["rc"] == 0 and delete["stderr"] == "", delete
    if state["rc"] != 0:
        assert state["stderr"].strip().endswith("does not exist") and state["stderr"].count("\n") == 1, state
        assert cid not in {c["id"] for c in json.loads(lst["stdout"])}
        return None
    status = json.loads(state["stdout"])["status"]
    assert {c["id"]: c["status"] for c in json.loads(lst["stdout"])}.get(cid) == status
    return status


# ---- killed at each named step -------------------------------------------------------------------

CREATE_STATUS = {"detached": "created"}  # before it the init died with create: "stopped"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", crash.STEPS["create"])
def test_create_killed_at_each_step(pyrunc, bundle, cid, tmp_path, host, caller, step, mode):
    bundle.args("sleep", "1000")
    pid_file = tmp_path / "pid"
    (res,) = caller({"argv": pyrunc.cmd("create", "--pid-file", str(pid_file), "-b", str(bundle.path), cid),
                     "env": crash_env("create", step, mode)})
    assert_crashed(res, mode)
    if step != "detached":  # the init and every child died with their creator
        wait_for(lambda: not session_processes(caller.sessions[-1]), what="create's children to die with it")
    assert status_after(pyrunc, caller, cid) == CREATE_STATUS.get(step, "stopped")
    pid_file.unlink(missing_ok=True)


@pytest.mark.parametrize("step", crash.STEPS["create"])
def test_create_with_user_namespace_killed_at_each_step(pyrunc, make_bundle, cid, tmp_path, host, caller, step):
    """A user namespace takes the other birth: unshare, then the init forked (CLONE_PARENT)."""
    b = make_bundle()
    b.args("sleep", "1000")
    pid_file = tmp_path / "pid"
    (res,) = caller({"argv": pyrunc.cmd("create", "--pid-file", str(pid_file), "-b", str(b.path), cid),
                     "env": crash_env("create", step, "kill")})
    assert_crashed(res, "kill")
    if step != "detached":
        wait_for(lambda: not session_processes(caller.sessions[-1]), what="create's children to die with it")
    assert status_after(pyrunc, caller, cid) == CREATE_STATUS.get(step, "stopped")
    pid_file.unlink(missing_ok=True)


START_STATUS = {"loaded": {"created"}, "fifo-opened": {"created"},
                "fifo-written": {"created", "running"},  # the init may not have called execve yet
                "fifo-removed": {"running"}}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", crash.STEPS["start"])
def test_start_killed_at_each_step(pyrunc, bundle, cid, host, caller, step, mode):
    bundle.args("sleep", "1000")
    pyrunc("create", "-b", str(bundle.path), cid)
    (res,) = caller({"argv": pyrunc.cmd("start", cid), "env": crash_env("start", step, mode)})
    assert_crashed(res, mode)
    assert status_after(pyrunc, caller, cid) in START_STATUS[step]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", crash.STEPS["exec"])
def test_exec_killed_at_each_step(pyrunc, bundle, cid, tmp_path, host, caller, step, mode):
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    pid_file = tmp_path / "exec.pid"
    (res,) = caller({"argv": pyrunc.cmd("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "999"),
                     "env": crash_env("exec", step, mode)})
    assert_crashed(res, mode)
    # Before execve the exec child dies with `exec`; after it, the process is the container's.
    # At "placed" the child has its "go": it may call execve before `exec` dies, or die first.
    want = {2} if step in ("exec-done", "pid-file") else {1, 2} if step == "placed" else {1}
    wait_for(lambda: len(cgroup_processes(cid)) in want, what=f"{want} processes in the container")
    if want == {1}:
        wait_for(lambda: not session_processes(caller.sessions[-1]), what="the exec child to die with exec")
    assert status_after(pyrunc, caller, cid) == "running"
    pid_file.unlink(missing_ok=True)


DELETE_STATUS = {"loaded": "running"}  # from init-killed on, the container is stopped


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", crash.STEPS["delete"])
def test_delete_killed_at_each_step(pyrunc, bundle, cid, host, caller, step, mode):
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    (res,) = caller({"argv": pyrunc.cmd("delete", "-f", cid), "env": crash_env("delete", step, mode)})
    assert_crashed(res, mode)
    if step != "loaded":
        wait_for(lambda: not cgroup_processes(cid), what="the container's processes to be gone")
    assert status_after(pyrunc, caller, cid) == DELETE_STATUS.get(step, "stopped")


CHECKPOINT_STATUS = {"dumped": "stopped"}  # criu has ended the container's processes


def _counter(pyrunc, bundle, cid: str, tmp_path: Path) -> None:
    """A running counter with its stdio on /dev/null (criuhelp: what the tests restore)."""
    need_criu()
    counter_bundle(bundle, tmp_path / "data")
    subprocess.run(pyrunc.cmd("run", "-d", "-b", str(bundle.path), cid), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
    wait_count(tmp_path / "data", 2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", crash.STEPS["checkpoint"])
def test_checkpoint_killed_at_each_step(pyrunc, bundle, cid, tmp_path, host, caller, step, mode):
    _counter(pyrunc, bundle, cid, tmp_path)
    (res,) = caller({"argv": pyrunc.cmd("checkpoint", "--image-path", str(tmp_path / "images"), cid),
                     "env": crash_env("checkpoint", step, mode)})
    assert_crashed(res, mode)
    if step == "dumped":
        wait_for(lambda: not cgroup_processes(cid), what="criu to have ended the container's processes")
    assert status_after(pyrunc, caller, cid) == CHECKPOINT_STATUS.get(step, "running")
    assert not cgroup_processes(cid)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", crash.STEPS["restore"])
def test_restore_killed_at_each_step(pyrunc, bundle, cid, tmp_path, host, caller, step, mode):
    """Killed while restoring: whatever criu had restored runs in the container's cgroup,
    where `delete -f` finds it even before its pid is in the state."""
    _counter(pyrunc, bundle, cid, tmp_path)
    images = str(tmp_path / "images")
    pyrunc("checkpoint", "--image-path", images, cid)
    (res,) = caller({"argv": pyrunc.cmd("restore", "-d", "-b", str(bundle.path), "--image-path", images, cid),
                     "env": crash_env("restore", step, mode)})
    assert_crashed(res, mode)
    assert status_after(pyrunc, caller, cid) == ("running" if step == "state-written" else "stopped")
    assert not cgroup_processes(cid)
    stopped(tmp_path / "data")


def test_every_step_is_a_known_one():
    """The crash points in the code are exactly the ones listed (and so tested above)."""
    src = Path(crash.__file__).parent
    used: set[tuple[str, str]] = set()
    for path in src.rglob("*.py"):
        text = path.read_text()
        for kind in ("crash.point(", ".crash_point("):
            for chunk in text.split(kind)[1:]:
                op, step = (part.strip().strip('"') for part in chunk.split(")")[0].split(",")[:2])
                used.add((op, step))
    listed = {(op, step) for op, steps in crash.STEPS.items() for step in steps}
    assert used == listed


# ---- killed at random moments ----------------------------------------------------------------------

def test_killed_at_random_moments(pyrunc, bundle, cid, host, caller):
    """50 runs, seeded (PYRUNC_CRASH_SEED): `run -d` SIGKILLed at a random moment of its
    ~25 ms, then, where a container came of it, `delete -f` killed at a random moment too;
    every time one more `delete -f` leaves nothing."""
    bundle.args("sleep", "1000")
    rng = random.Random(SEED)
    for i in range(50):
        name = f"{cid}-{i}"
        pyrunc.ids.add(name)
        before = census(pyrunc.root, name)
        run_at, delete_at = rng.uniform(0, 0.05), rng.uniform(0, 0.02)
        caller({"argv": pyrunc.cmd("run", "-d", "-b", str(bundle.path), name), "kill_after": run_at},
               {"argv": pyrunc.cmd("delete", "-f", name), "kill_after": delete_at})
        status_after(pyrunc, caller, name)
        for sid in caller.sessions[-2:]:
            wait_for(lambda: not session_processes(sid), what=f"run {i} (seed {SEED}): session {sid} empty")
        assert census(pyrunc.root, name) == before, f"run {i} (seed {SEED}, kills at {run_at:.4f}s, {delete_at:.4f}s)"


# ---- states that do not name a live init never lead to a signal -------------------------------------

def test_incomplete_state_signals_nobody(pyrunc, cid, host, caller):
    """The issue's case: a state with pid 0 (an old, half-written one). `delete -f` used to
    kill(0, SIGKILL): its caller's whole process group."""
    d = pyrunc.root / cid
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"id": cid, "pid": 0, "bundle": "/nonexistent",
                                              "rootfs": "/nonexistent", "created": "", "owner": ""}))
    state, delete = caller({"argv": pyrunc.cmd("state", cid)}, {"argv": pyrunc.cmd("delete", "-f", cid)})
    assert json.loads(state["stdout"])["status"] == "stopped"  # no creator alive
    assert delete["rc"] == 0, delete
    assert not d.exists()


def test_reused_pid_is_never_signalled(pyrunc, bundle, cid, host):
    """The init's pid, recorded with its start time, now names another process: kill and
    delete -f refuse to signal it; delete -f still removes the container (by its cgroup)."""
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        path = pyrunc.root / cid / "state.json"
        data = json.loads(path.read_text())
        data["pid"] = stranger.pid  # as if the init had exited and its pid been reused
        path.write_text(json.dumps(data))
        assert pyrunc.state(cid)["status"] == "stopped"
        res = pyrunc("kill", cid, "KILL", check=False)
        assert res.returncode == 1 and "it is stopped" in res.stderr
        pyrunc("delete", "-f", cid)
        assert stranger.poll() is None, "delete -f signalled a process that is not the container's"
        assert not cgroup_processes(cid)
    finally:
        stranger.kill()
        stranger.wait()


def test_leftover_directory_without_state(pyrunc, cid, host):
    """A directory whose creator died before writing state.json (or whose deleter died after
    removing it) is no container: state says so, list skips it, delete -f removes it."""
    d = pyrunc.root / cid
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    res = pyrunc("state", cid, check=False)
    assert res.returncode == 1 and res.stderr.strip().endswith("does not exist")
    assert pyrunc("list", "-q").stdout == ""
    pyrunc("delete", "-f", cid)
    assert not d.exists()
