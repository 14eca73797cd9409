"""Three ways to look at a container from a test: its output, its waiting init, its refusal."""
from __future__ import annotations


def run_inside(pyrunc, bundle, cid, script: str) -> str:
    """`run` in the foreground: the output of ``script``; run deletes the container when it exits."""
    bundle.sh(script)
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def create_waiting(pyrunc, bundle, cid) -> int:
    """A created container whose init waits on exec.fifo; returns its host pid."""
    bundle.sh("exec sleep 1000")
    pyrunc("create", "--bundle", str(bundle.path), cid)
    return pyrunc.state(cid)["pid"]


def create_fails(pyrunc, bundle, cid) -> str:
    """The one-line error of a refused create, after checking that nothing is left."""
    bundle.write()
    proc = pyrunc("create", "--bundle", str(bundle.path), cid, check=False)
    assert proc.returncode != 0 and pyrunc.list_ids() == []
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    return err
