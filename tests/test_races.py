"""Commands racing each other on one container (issue 13): each race ends with one outcome,
a one-line message for the loser, and nothing leaked (the pyrunc fixture's teardown)."""
from __future__ import annotations

import json
import subprocess
import tempfile

from helpers import wait_for


class Cmd:
    """A pyrunc command running in the background. stderr goes to a file: a detached
    container keeps it open, and a pipe would never reach EOF."""

    def __init__(self, pyrunc, *args: str) -> None:
        self.err = tempfile.TemporaryFile("w+")
        self.p = subprocess.Popen(pyrunc.cmd(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=self.err, text=True, start_new_session=True)

    def outcome(self) -> tuple[int, str]:
        rc = self.p.wait(timeout=60)
        self.err.seek(0)
        with self.err:
            return rc, self.err.read()


def outcomes(cmds: list[Cmd]) -> list[tuple[int, str]]:
    return [c.outcome() for c in cmds]


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("pyrunc: "), err
    return err


def test_two_force_deletes_on_one_id(pyrunc, bundle, cid):
    bundle.args("sleep", "1000")
    for i in range(5):
        name = f"{cid}-{i}"
        pyrunc("run", "-d", "-b", str(bundle.path), name)
        results = outcomes([Cmd(pyrunc, "delete", "-f", name) for _ in range(2)])
        # As runc: delete -f of an id that is already gone succeeds, silently.
        assert results == [(0, ""), (0, "")]
        assert name not in pyrunc.list_ids()


def test_two_deletes_of_a_stopped_container(pyrunc, bundle, cid):
    bundle.args("true")
    for i in range(5):
        name = f"{cid}-{i}"
        pyrunc("run", "-d", "-b", str(bundle.path), name)
        wait_for(lambda: pyrunc.state(name)["status"] == "stopped", what="the container to exit")
        results = sorted(outcomes([Cmd(pyrunc, "delete", name) for _ in range(2)]))
        assert results[0] == (0, "")
        assert results[1][0] == 1 and one_line(results[1][1]).endswith(f"container {name!r} does not exist\n")


def test_force_delete_racing_start(pyrunc, bundle, cid):
    bundle.args("sleep", "1000")
    seen = set()
    for i in range(10):
        name = f"{cid}-{i}"
        pyrunc("create", "-b", str(bundle.path), name)
        (src, serr), (drc, derr) = outcomes([Cmd(pyrunc, "start", name), Cmd(pyrunc, "delete", "-f", name)])
        assert (drc, derr) == (0, "")
        if src == 0:
            seen.add("started, then deleted")
        else:
            assert one_line(serr).endswith(f"container {name!r} does not exist\n"), serr
            seen.add("deleted before start")
        assert name not in pyrunc.list_ids()
    assert seen  # either order is fine; each run had exactly one


def test_kill_racing_the_containers_own_exit(pyrunc, bundle, cid):
    bundle.args("true")
    for i in range(20):
        name = f"{cid}-{i}"
        pyrunc("create", "-b", str(bundle.path), name)
        (src, serr), (krc, kerr) = outcomes([Cmd(pyrunc, "start", name), Cmd(pyrunc, "kill", name, "KILL")])
        if krc != 0:  # the init was gone when kill looked: stopped, never a stray signal
            assert one_line(kerr).endswith("it is stopped\n"), kerr
        if src != 0:  # killed while still waiting on exec.fifo
            assert "not waiting" in one_line(serr) or "it is stopped" in serr, serr
        wait_for(lambda: pyrunc.state(name)["status"] == "stopped", what="the container to exit")
        pyrunc("delete", name)


def test_a_hundred_parallel_runs(pyrunc, bundle, cid):
    bundle.args("sleep", "1000")
    names = [f"{cid}-{i}" for i in range(100)]
    pyrunc.ids.update(names)
    results = outcomes([Cmd(pyrunc, "run", "-d", "-b", str(bundle.path), n) for n in names])
    assert results == [(0, "")] * 100
    states = {s["id"]: s["status"] for s in json.loads(pyrunc("list", "-f", "json").stdout)}
    assert states == {n: "running" for n in names}
    results = outcomes([Cmd(pyrunc, "delete", "-f", n) for n in names])
    assert results == [(0, "")] * 100


def test_eight_runs_racing_for_one_id(pyrunc, bundle, cid):
    bundle.args("sleep", "1000")
    pyrunc.ids.add(cid)
    results = outcomes([Cmd(pyrunc, "run", "-d", "-b", str(bundle.path), cid) for _ in range(8)])
    winners = [r for r in results if r[0] == 0]
    assert len(winners) == 1, results
    for rc, err in results:
        if rc:
            assert one_line(err).endswith(f"container {cid!r} already exists\n"), err
    assert pyrunc.state(cid)["status"] == "running"
    pyrunc("delete", "-f", cid)
