"""Real pyrunc containers on a pure cgroup v2 host: what only v2 has (issue 5).

The layout-independent checks (pause, update, events, ps, kill --all, pids,
OOM, devices) are in test_cgroup_commands.py; hack/test-v2.sh runs both files
in one guest boot. This host is hybrid, so here the module is skipped.
"""
from __future__ import annotations

import json

import pytest

from helpers import wait_for
from test_cgroup_commands import V2, MiB, refused, start, status

pytestmark = pytest.mark.skipif(not V2, reason="needs a pure cgroup v2 host: run hack/test-v2.sh")


def test_v2_conversions_after_update(pyrunc, bundle, cid):
    _, cg = start(pyrunc, bundle, cid)
    d = cg.dirs[""]
    pyrunc("update", "--cpu-shares", "1024", "--cpu-quota", "25000", "--cpu-period", "50000",
           "--cpu-burst", "1000", "--blkio-weight", "500", cid)
    assert (d / "cpu.weight").read_text().strip() == str(1 + (1024 - 2) * 9999 // 262142)   # 39
    assert (d / "cpu.max").read_text().strip() == "25000 50000"
    assert (d / "cpu.max.burst").read_text().strip() == "1000"
    if (d / "io.bfq.weight").exists():
        assert (d / "io.bfq.weight").read_text().split("\n")[0] == "default 500"
    else:
        assert (d / "io.weight").read_text().split("\n")[0] == f"default {1 + (500 - 10) * 9999 // 990}"
    # a quota alone keeps the period set before
    pyrunc("update", "--cpu-quota", "-1", cid)
    assert (d / "cpu.max").read_text().strip() == "max 50000"
    pyrunc("update", "--cpu-idle", "1", cid)   # an idle group reads weight 0 from now on
    assert (d / "cpu.idle").read_text().strip() == "1"


def test_v2_unified_keys_kept_across_updates(pyrunc, bundle, cid):
    _, cg = start(pyrunc, bundle, cid, resources={"unified": {"memory.high": str(60 * MiB)}})
    d = cg.dirs[""]
    assert (d / "memory.high").read_text().strip() == str(60 * MiB)
    pyrunc("update", "-r", "-", cid, input=json.dumps({"unified": {"pids.max": "12"}}))
    assert (d / "pids.max").read_text().strip() == "12"
    assert (d / "memory.high").read_text().strip() == str(60 * MiB)


def test_v2_refuses_what_v2_lacks_and_changes_nothing(pyrunc, bundle, cid):
    _, cg = start(pyrunc, bundle, cid, resources={"pids": {"limit": 44}})
    before = cg.snapshot()
    refused(pyrunc, "update", "--cpu-rt-runtime", "1000", "--pids-limit", "5", cid,
            match="linux.resources.cpu.realtimeRuntime")
    refused(pyrunc, "update", "-r", "-", cid, match="linux.resources.unified['no.such']",
            input=json.dumps({"unified": {"no.such": "1"}}))
    assert cg.snapshot() == before
    assert status(pyrunc, cid) == "running"


def test_v2_pause_uses_cgroup_freeze(pyrunc, bundle, cid):
    _, cg = start(pyrunc, bundle, cid, "sleep 1000 & exec sleep 1001")
    d = cg.dirs[""]
    pyrunc("pause", cid)
    assert (d / "cgroup.freeze").read_text().strip() == "1"
    assert "frozen 1" in (d / "cgroup.events").read_text().splitlines()
    pyrunc("kill", "--all", cid, "KILL")   # cgroup.kill reaches frozen tasks too
    wait_for(lambda: cg.procs() == [], what="every process gone")
    wait_for(lambda: status(pyrunc, cid) == "stopped", what="stopped")
    pyrunc("delete", "--force", cid)
    assert not d.exists()
