"""Fixtures for tests that drive the real pyrunc binary as root with real containers.

Every test gets its own state root and bundle; teardown force-deletes what the
test left and then fails the test if anything leaked: a state directory, a
mount under the test's directory, a cgroup directory or a process of ours.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers import Bundle, Runtime, leaks, pyrunc_binary

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("pyrunc's tests create real containers: run them as root")


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One busybox-static rootfs per session; bundles hard-link its binary."""
    base = tmp_path_factory.mktemp("busybox")
    subprocess.run([str(REPO / "hack" / "mkbundle.sh"), str(base)], check=True,
                   env={**os.environ, "PYRUNC_PYTHON": sys.executable})
    return base / "rootfs"


@pytest.fixture
def bundle(tmp_path: Path, busybox_rootfs: Path) -> Bundle:
    return Bundle.make(tmp_path / "bundle", busybox_rootfs)


@pytest.fixture
def cid() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pyrunc(tmp_path: Path):
    rt = Runtime(pyrunc_binary(), tmp_path / "state")
    yield rt
    for left in rt.list_ids():
        rt("delete", "--force", left, check=False)
    found = leaks(rt, tmp_path)
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
    assert not found, f"left behind: {found}"


def read_json(text: str) -> dict:
    return json.loads(text)
