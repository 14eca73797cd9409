"""Fixtures for the cgroup tests: real cgroups, real processes, all cleaned up.

Every cgroup is named pyrunc-test-cg-<random>; on failure the fixture still
kills its processes and removes its directories bottom-up.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail("cgroup tests need root")


class Procs:
    """Processes a test starts; held ones wait for release() before running code,
    so they can be moved into a cgroup first."""

    def __init__(self) -> None:
        self.all: list[subprocess.Popen] = []

    def sleep(self) -> subprocess.Popen:
        p = subprocess.Popen(["sleep", "1000"])
        self.all.append(p)
        return p

    def held(self, code: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.readline()\n" + code],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.all.append(p)
        return p

    @staticmethod
    def release(p: subprocess.Popen, timeout: float = 600) -> str:
        """Let it run; its stdout once it exits."""
        out, _ = p.communicate("go\n", timeout=timeout)
        return out

    def cleanup(self) -> None:
        for p in self.all:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout):
                if f:
                    f.close()


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.cleanup()


@pytest.fixture
def cg_name() -> str:
    return f"pyrunc-test-cg-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def managers(procs):
    """open(path, id) -> manager; every manager opened is destroyed afterwards."""
    from pyrunc.cgroups import open_manager
    opened = []

    def open_(path, cid="pyrunc-test-cg-id", **kw):
        m = open_manager(path, cid, **kw)
        opened.append(m)
        return m
    yield open_
    procs.cleanup()
    for m in opened:
        try:
            m.destroy()
        finally:
            for d in list(m.dirs.values()) + sorted(m.created, key=len, reverse=True):
                _force_rmtree(d)


def _force_rmtree(d: str) -> None:
    if not os.path.isdir(d):
        return
    for root, dirs, _ in os.walk(d, topdown=False):
        for n in dirs:
            os.rmdir(os.path.join(root, n))
    os.rmdir(d)


@pytest.fixture
def mgr(managers, cg_name):
    """A created cgroup at the default (relative) path for container id cg_name."""
    m = managers(None, cg_name)
    m.create()
    return m
