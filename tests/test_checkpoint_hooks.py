"""Hooks across a checkpoint (issue 28), as runc 1.1 runs them: restore runs prestart and then
createRuntime once criu has made the restored tree's namespaces, with the restored init's pid
in the state, and none of the other kinds; a failing one fails the restore and leaves
nothing. poststop runs when the restored container is deleted, or the restore fails."""
from __future__ import annotations

import pytest

from criuhelp import continued, need_criu, stopped
from test_checkpoint import counting, detached, finish, one_line, restored
from test_hooks import KINDS, Hooks

pytestmark = pytest.mark.usefixtures("criu")


@pytest.fixture(scope="module")
def criu() -> None:
    need_criu()


def test_restore_runs_prestart_and_create_runtime(pyrunc, bundle, cid, tmp_path):
    hooks = Hooks(tmp_path, bundle)
    for kind in KINDS:
        hooks.add(kind)
    env = tmp_path / "env"  # a hook without "env" gets the runtime's environment, as on create
    bundle.config["hooks"]["createRuntime"].append({"path": "/bin/sh", "args": ["sh", "-c", f"env > {env}"]})
    data = tmp_path / "data"
    counting(pyrunc, bundle, cid, data)
    images = tmp_path / "images"
    pyrunc("checkpoint", "--image-path", str(images), cid)
    assert hooks.names()[-1] == "poststop", "checkpoint deletes the container, and its poststop runs"
    last = stopped(data)[-1]
    hooks.log.write_text("")
    env.unlink()
    detached(pyrunc, "restore", "-d", "-b", str(bundle.path), "--image-path", str(images), cid)
    pid = restored(pyrunc, cid)
    assert [(name, status, int(got), var) for name, _mnt, _pidns, status, got, var in hooks.lines()] == [
        ("prestart", "creating", pid, "prestart-env"), ("createRuntime", "creating", pid, "createRuntime-env")]
    names = {line.split("=", 1)[0] for line in env.read_text().splitlines()}
    assert not [n for n in names if n.startswith(("CRTOOLS_", "PYRUNC_PYTHON", "PYRUNC_PATH", "PYRUNC_STATE"))], names
    continued(data, last)
    finish(pyrunc, cid)
    assert hooks.names() == ["prestart", "createRuntime", "poststop"]


@pytest.mark.parametrize("kind", ["prestart", "createRuntime"])
def test_failing_restore_hook_leaves_nothing(pyrunc, bundle, cid, tmp_path, kind):
    """A hook added to the bundle after the checkpoint fails: restore exits 1 with the hook's
    own line (not criu's), and its container is gone: no state, cgroup, process or mount
    (the fixture checks). As after a failed create (and as runc does), poststop runs."""
    hooks = Hooks(tmp_path, bundle)  # its log's bind mount is in the image
    counting(pyrunc, bundle, cid, tmp_path / "data")
    images = tmp_path / "images"
    pyrunc("checkpoint", "--image-path", str(images), cid)
    hooks.add(kind, fail=f"boom-{kind}")
    hooks.add("poststop")
    res = pyrunc("restore", "-d", "-b", str(bundle.path), "--image-path", str(images), cid, check=False)
    one_line(res, f"pyrunc: restore {cid}: hooks.{kind}[0] {hooks.script}: exit status 1: boom-{kind}")
    assert pyrunc.list_ids() == [] and hooks.names() == [kind, "poststop"]
