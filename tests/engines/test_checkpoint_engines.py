"""Checkpoint and restore through the engines (issue 28): podman's `container checkpoint`
and `restore` (in place, and --export/--import), containerd's `ctr task checkpoint` and a
restore from it, all through the runtime under test and criu. A counter appending to a
bind-mounted host file stops at the checkpoint and goes on after the restore."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from engine_drivers import Containerd, Podman
from engine_helpers import run, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from criuhelp import usable_criu  # noqa: E402

COUNTER = ("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i >> /data/count; echo $i; sleep 0.1; done")


@pytest.fixture(scope="module", autouse=True)
def criu() -> None:
    why = usable_criu()
    if why is not None:
        pytest.skip(why)


def counts(host_dir: Path) -> list[int]:
    try:
        return [int(x) for x in (host_dir / "count").read_text().split()]
    except FileNotFoundError:
        return []


def grows(host_dir: Path, by: int = 3) -> None:
    n = len(counts(host_dir))
    assert wait_for(lambda: len(counts(host_dir)) >= n + by, timeout=20), f"the counter stays at {n}"


def stays(host_dir: Path) -> int:
    before = counts(host_dir)
    time.sleep(0.5)
    assert counts(host_dir) == before, "the counter moved after the checkpoint"
    return before[-1]


def continues(host_dir: Path, last: int) -> None:
    """The restored program counts on from ``last``, one by one (not a new program from 1)."""
    grows(host_dir, 5)
    got = counts(host_dir)
    assert got == list(range(1, len(got) + 1)) and got[-1] > last + 3, got[max(0, last - 3):last + 8]


# ---------------------------------------------------------------- podman

def test_podman_checkpoint_and_restore(pod: tuple[Podman, str], host_dir: Path) -> None:
    engine, name = pod
    proc = run(engine.run_cmd(name, "--detach", "--volume", f"{host_dir}:/data", command=COUNTER), env=engine.env)
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip()
    grows(host_dir)
    proc = engine("container", "checkpoint", name)
    assert proc.returncode == 0, proc.stderr
    assert engine.inspect(name, "{{.State.Status}}") == "exited"
    last = stays(host_dir)
    proc = engine("container", "restore", name)
    assert proc.returncode == 0, proc.stderr
    assert engine.inspect(name, "{{.State.Status}}") == "running"
    continues(host_dir, last)
    subs = engine.calls.subcommands(cid)
    assert "checkpoint" in subs and "restore" in subs, subs
    logs = engine("logs", name).stdout.split()  # stdout went on through conmon's new pipes
    assert logs and int(logs[-1]) > last, logs[-5:]


def test_podman_export_and_import(pod: tuple[Podman, str], host_dir: Path, tmp_path: Path) -> None:
    engine, name = pod
    proc = run(engine.run_cmd(name, "--detach", "--volume", f"{host_dir}:/data", command=COUNTER), env=engine.env)
    assert proc.returncode == 0, proc.stderr
    grows(host_dir)
    archive = tmp_path / "checkpoint.tar.gz"
    proc = engine("container", "checkpoint", "--export", str(archive), name)
    assert proc.returncode == 0, proc.stderr
    last = stays(host_dir)
    assert engine("rm", "--force", name).returncode == 0
    proc = engine("container", "restore", "--import", str(archive))
    assert proc.returncode == 0, proc.stderr
    assert engine.inspect(name, "{{.State.Status}}") == "running"
    continues(host_dir, last)


# ---------------------------------------------------------------- containerd

def _ctr_counter(engine: Containerd, cid: str, host_dir: Path) -> None:
    proc = run(engine.run_cmd(cid, "--detach", "--mount", f"type=bind,src={host_dir},dst=/data,options=rbind:rw",
                              command=COUNTER))
    assert proc.returncode == 0, proc.stderr
    grows(host_dir)


def test_ctr_task_checkpoint_exit(ctd: tuple[Containerd, str], host_dir: Path) -> None:
    """`ctr task checkpoint --exit`: the shim pauses the task, has the runtime dump it (not
    leaving it running), and the task is stopped; the image is in containerd's store."""
    engine, cid = ctd
    _ctr_counter(engine, cid, host_dir)
    proc = engine.ctr("task", "checkpoint", "--exit", cid)
    assert proc.returncode == 0, proc.stderr
    ref = proc.stdout.strip()
    try:
        assert wait_for(lambda: engine.task_status(cid) == "STOPPED", timeout=10), engine.task_status(cid)
        stays(host_dir)
        assert ref in engine.ctr("image", "ls", "-q").stdout.split()
        dumps = [c.argv for c in engine.calls.for_container(cid) if c.subcommand == "checkpoint"]
        assert len(dumps) == 1 and "--leave-running" not in dumps[0] and "--image-path" in dumps[0], dumps
    finally:
        engine.ctr("image", "rm", ref)


def test_ctr_checkpoint_and_restore(ctd: tuple[Containerd, str], host_dir: Path) -> None:
    """A checkpoint made through the shim's task checkpoint (with the image's name, which
    `ctr container restore` needs), the task killed, then restored as a new container: the
    shim has the runtime restore it, and the counter goes on."""
    engine, cid = ctd
    _ctr_counter(engine, cid, host_dir)
    ref = f"checkpoint/{cid}:1"
    proc = engine.ctr("container", "checkpoint", "--task", "--image", cid, ref)  # the task runs on
    assert proc.returncode == 0, proc.stderr
    engine.remove(cid)
    stays(host_dir)
    before = counts(host_dir)
    restored = cid + "r"
    try:
        proc = engine.ctr("container", "restore", "--live", restored, ref)
        assert proc.returncode == 0, proc.stderr
        assert wait_for(lambda: engine.task_status(restored) == "RUNNING", timeout=10), engine.task_status(restored)
        grows(host_dir, 5)
        # from where the image has it (the task counted on after its checkpoint): one by one
        new = counts(host_dir)[len(before):]
        assert 3 < new[0] <= before[-1] + 1 and new == list(range(new[0], new[0] + len(new))), (before[-3:], new)
        subs = engine.calls.subcommands(restored)
        assert "restore" in subs and "create" not in subs, subs
    finally:
        engine.remove(restored)
        engine.ctr("image", "rm", ref)
        left = engine.leftovers(restored)
    assert not left, left
