"""create in a cgroup that exists before it (issue 26, item 4): a frozen one is refused
at once with its path, as runc refuses it, instead of a create that hangs for ever; one
that holds processes gets runc's warning and is used. A failed create removes only the
directories it made and kills only its own processes. A setup that never answers (its
cgroup frozen behind its back) is given up after PYRUNC_SETUP_TIMEOUT, leaving nothing.

Layout-aware like test_cgroup_commands.py: the v1 freezer and the hybrid cgroup2 here,
cgroup.freeze in the pure v2 guest (hack/test-v2.sh tests/test_cgroup_existing.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers import wait_for
from test_cgroup_commands import V2

TOP = Path("/sys/fs/cgroup")


def _tops() -> dict[str, Path]:
    """Each hierarchy's mountpoint, keyed "" for cgroup2, "freezer" and "cpuset" for those
    v1 controllers' hierarchies (what the tests treat apart), else its mountpoint's name."""
    if V2:
        return {"": TOP}
    tops: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _src, opts = post.split()[:3]
        point = Path(pre.split()[4])
        if fstype == "cgroup2" and (point / "cgroup.procs").exists():
            tops[""] = point
        elif fstype == "cgroup":
            tops[next((c for c in ("freezer", "cpuset") if c in opts.split(",")), point.name)] = point
    return tops


def _freezers() -> list[str]:
    """The freezers a user can freeze a cgroup with here: "freezer" (v1), "" (cgroup2:
    cgroup.freeze, from Linux 5.2 on)."""
    out = [k for k in ("freezer",) if k in _tops()]
    if "" in _tops() and tuple(int(x) for x in os.uname().release.split(".")[:2]) >= (5, 2):
        out.append("")
    return out


def _freeze(d: Path, kind: str, on: bool) -> None:
    if kind == "":
        (d / "cgroup.freeze").write_text("1" if on else "0")
    else:
        (d / "freezer.state").write_text("FROZEN" if on else "THAWED")


def _frozen(d: Path, kind: str) -> bool:
    if kind == "":
        return "frozen 1" in (d / "cgroup.events").read_text().splitlines()
    return (d / "freezer.state").read_text().strip() == "FROZEN"


class UserCgroup:
    """``/<name>`` made by hand on every hierarchy, as a user or a pod manager would, and
    removed (thawed, emptied) at the end: what create must leave as it found it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dirs = {k: top / name for k, top in _tops().items()}
        for kind, d in self.dirs.items():
            _mkdir(kind, d)
        self.procs: list[subprocess.Popen] = []

    def add_process(self, dirs: list[Path] | None = None) -> subprocess.Popen:
        """A process in ``dirs`` (default: the cgroup on every hierarchy)."""
        p = subprocess.Popen(["sleep", "1000"])
        self.procs.append(p)
        for d in self.dirs.values() if dirs is None else dirs:
            (d / "cgroup.procs").write_text(str(p.pid))
        return p

    def remove(self) -> None:
        for kind in ("freezer", ""):
            if kind in self.dirs and self.dirs[kind].exists():
                _freeze(self.dirs[kind], kind, False)
        for p in self.procs:
            p.kill()
            p.wait()
        for d in self.dirs.values():
            for sub in sorted((x for x, _, _ in os.walk(d)), key=len, reverse=True):
                wait_for(lambda: not (Path(sub) / "cgroup.procs").read_text().split(), what=f"{sub} empty")
                os.rmdir(sub)


def _mkdir(kind: str, d: Path) -> None:
    d.mkdir()
    if kind == "cpuset":  # a v1 cpuset takes tasks once filled in
        for f in ("cpuset.cpus", "cpuset.mems"):
            (d / f).write_text((d.parent / f).read_text())


def _members(d: Path) -> list[int]:
    return [int(x) for x in (d / "cgroup.procs").read_text().split()]


@pytest.fixture
def user_cgroup(pyrunc, cid):
    """After ``pyrunc``: removed before its teardown looks for cgroups named ``cid``."""
    cg = UserCgroup(cid)
    yield cg
    cg.remove()


def _set_path(bundle, path: str) -> None:
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["process"]["args"] = ["sleep", "1000"]
    bundle.write()


def _one_line_error(p: subprocess.CompletedProcess, *parts: str) -> str:
    err = p.stderr.strip()
    assert p.returncode != 0, p.stdout
    assert len(err.splitlines()) == 1 and all(s in err for s in parts), err
    return err


@pytest.mark.parametrize("kind", _freezers(), ids=lambda k: k or "cgroup2")
@pytest.mark.parametrize("where", ["own", "parent"])
def test_frozen_cgroup_refused_and_left_as_it_was(pyrunc, bundle, cid, user_cgroup, kind, where):
    """Frozen itself, or below a frozen parent: one line naming the directory, at once;
    the user's cgroup still there and still frozen; what create made is gone."""
    frozen = user_cgroup.dirs[kind]
    _freeze(frozen, kind, True)
    path = f"/{cid}" if where == "own" else f"/{cid}/c"
    _set_path(bundle, path)
    t0 = time.monotonic()
    p = pyrunc("create", "--bundle", str(bundle.path), cid, check=False, timeout=30)
    assert time.monotonic() - t0 < 10
    mine = frozen if where == "own" else frozen / "c"
    _one_line_error(p, f"cgroup {mine}:", "container's cgroup unexpectedly frozen")
    assert _frozen(frozen, kind)
    assert all(d.is_dir() for d in user_cgroup.dirs.values())
    assert not [d for d in user_cgroup.dirs.values() if (d / "c").exists()], "a cgroup create made is left"
    assert pyrunc.list_ids() == []


def test_cgroup_with_processes_warned_and_used(pyrunc, bundle, cid, user_cgroup):
    """runc's warning with the count; the container runs there beside the process."""
    other = user_cgroup.add_process()
    _set_path(bundle, f"/{cid}")
    p = pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    assert "container's cgroup is not empty: 1 process(es) found" in p.stderr, p.stderr
    assert f"cgroup {TOP}" in p.stderr and f"/{cid}:" in p.stderr, p.stderr
    init = pyrunc.state(cid)["pid"]
    for d in user_cgroup.dirs.values():
        assert {other.pid, init} <= set(_members(d)), d
    inside = pyrunc("exec", cid, "cat", "/proc/1/cmdline").stdout
    assert inside.split("\0")[:2] == ["sleep", "1000"]
    pyrunc("kill", cid, "KILL")
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="the container to stop")


def test_failed_create_spares_what_it_found(pyrunc, bundle, cid, user_cgroup):
    """A create that fails after its init joined (a createRuntime hook fails) kills its
    own processes only and removes only the cgroups it made: /<cid>/c is the user's, with
    a process in it, on every hierarchy but the last (on pure v2, the only one)."""
    *found, made = [(k, d / "c") for k, d in user_cgroup.dirs.items()]
    if not found:
        found, made = [made], None
    for kind, d in found:
        _mkdir(kind, d)
    other = user_cgroup.add_process([d for _, d in found])
    _set_path(bundle, f"/{cid}/c")
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    bundle.write()
    p = pyrunc("create", "--bundle", str(bundle.path), cid, check=False)
    warning, error = p.stderr.strip().splitlines()
    assert "container's cgroup is not empty: 1 process(es) found" in warning
    assert p.returncode != 0 and "hooks.createRuntime[0]" in error, error
    assert other.poll() is None, "the process found in the cgroup was killed"
    assert all(_members(d) == [other.pid] for _, d in found)
    assert made is None or not made[1].exists(), "a cgroup create made is left"
    assert pyrunc.list_ids() == []


@pytest.mark.parametrize("kind", _freezers()[:1], ids=lambda k: k or "cgroup2")
def test_setup_frozen_behind_its_back_times_out(pyrunc, bundle, cid, kind):
    """The init's cgroup frozen after the check (a createRuntime hook does it): create
    gives up after PYRUNC_SETUP_TIMEOUT with one line, leaving no process, cgroup or state."""
    d = _tops()[kind] / cid
    _set_path(bundle, f"/{cid}")
    value, name = ("1", "cgroup.freeze") if kind == "" else ("FROZEN", "freezer.state")
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {value} > {d}/{name}"]}]}
    bundle.write()
    env = {**os.environ, "PYRUNC_SETUP_TIMEOUT": "2"}
    env.pop("NOTIFY_SOCKET", None)
    t0 = time.monotonic()
    p = pyrunc("create", "--bundle", str(bundle.path), cid, check=False, timeout=30, env=env)
    assert time.monotonic() - t0 < 15
    _one_line_error(p, "sent no ready within 2 s")
    assert not [top / cid for top in _tops().values() if (top / cid).exists()]
    assert pyrunc.list_ids() == []


def test_exec_into_a_paused_container_times_out(pyrunc, bundle, cid):
    """exec --ignore-paused: the new process stops as it joins the frozen cgroup; exec gives
    up after PYRUNC_SETUP_TIMEOUT (runc waits for a resume) and the process, killed, is
    gone once the container resumes."""
    bundle.sh("exec sleep 1000")
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    init = pyrunc.state(cid)["pid"]
    pyrunc("pause", cid)
    env = {**os.environ, "PYRUNC_SETUP_TIMEOUT": "2"}
    env.pop("NOTIFY_SOCKET", None)
    t0 = time.monotonic()
    p = pyrunc("exec", "--ignore-paused", cid, "echo", "hi", check=False, timeout=30, env=env)
    assert time.monotonic() - t0 < 15
    _one_line_error(p, "sent no", "within 2 s")
    pyrunc("resume", cid)
    wait_for(lambda: json.loads(pyrunc("ps", "-f", "json", cid).stdout) == [init],
             what="only the init left in the container")
    assert pyrunc("exec", cid, "cat", "/proc/1/cmdline").stdout.split("\0")[:2] == ["sleep", "1000"]
