"""Process attributes (issue 3 item 5): rlimits, oomScoreAdj, scheduler, ioPriority,
execCPUAffinity, personality, memoryPolicy, user umask/additionalGids/HOME.

Each is checked from the host on the container's init (/proc/<pid>/...) and
from inside with busybox.
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pytest

from helpers import wait_for
from probe import create_fails, create_waiting, run_inside


def limits(text: str, name: str) -> list[str]:
    """The soft and hard columns of one row of /proc/<pid>/limits."""
    row = next(line for line in text.splitlines() if line.startswith(name))
    return row[len(name):].split()[:2]


RLIMITS = [{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
           {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
           {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
           {"type": "RLIMIT_LOCKS", "soft": 50, "hard": 60},
           {"type": "RLIMIT_FSIZE", "soft": 1 << 30, "hard": 2**64 - 1}]  # 2**64 - 1 is RLIM_INFINITY


def test_rlimits_inside(pyrunc, bundle, cid):
    bundle.config["process"]["rlimits"] = RLIMITS
    out = run_inside(pyrunc, bundle, cid, "cat /proc/self/limits; echo nofile=$(ulimit -n)")
    assert limits(out, "Max open files") == ["1000", "2000"]
    assert limits(out, "Max core file size") == ["4096", "8192"]
    assert limits(out, "Max processes") == ["300", "400"]
    assert limits(out, "Max file locks") == ["50", "60"]
    assert limits(out, "Max file size") == [str(1 << 30), "unlimited"]
    assert "nofile=1000" in out


def test_rlimits_from_host(pyrunc, bundle, cid):
    bundle.config["process"]["rlimits"] = RLIMITS
    pid = create_waiting(pyrunc, bundle, cid)
    text = Path(f"/proc/{pid}/limits").read_text()
    assert limits(text, "Max open files") == ["1000", "2000"]
    assert limits(text, "Max processes") == ["300", "400"]
    pyrunc("delete", "--force", cid)


def test_rlimit_hard_above_current_is_refused(pyrunc, bundle, cid):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                           {"type": "RLIMIT_NOFILE", "soft": 10, "hard": hard + 1}]
    err = create_fails(pyrunc, bundle, cid)
    assert "process.rlimits[1] RLIMIT_NOFILE" in err and "CAP_SYS_RESOURCE" in err, err


@pytest.mark.parametrize("rlimits, path", [
    ([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}], "process.rlimits[0].type"),
    ([{"type": "RLIMIT_CORE", "soft": 1, "hard": 1}, {"type": "RLIMIT_CORE", "soft": 2, "hard": 2}],
     "process.rlimits[1].type"),
    ([{"type": "RLIMIT_CORE", "soft": 9, "hard": 1}], "process.rlimits[0]"),
])
def test_rlimit_config_errors(pyrunc, bundle, cid, rlimits, path):
    bundle.config["process"]["rlimits"] = rlimits
    assert path + ":" in create_fails(pyrunc, bundle, cid)


@pytest.mark.parametrize("adj", [500, 0])
def test_oom_score_adj(pyrunc, bundle, cid, adj):
    bundle.config["process"]["oomScoreAdj"] = adj
    pid = create_waiting(pyrunc, bundle, cid)
    assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == str(adj)
    pyrunc("delete", "--force", cid)
    assert run_inside(pyrunc, bundle, cid, "cat /proc/self/oom_score_adj").strip() == str(adj)


def test_oom_score_adj_lowering_needs_cap_sys_resource(pyrunc, bundle, cid):
    """This machine's root lacks CAP_SYS_RESOURCE: a score below the runtime's own is refused."""
    mine = int(Path("/proc/self/oom_score_adj").read_text())
    bundle.config["process"]["oomScoreAdj"] = mine - 100
    err = create_fails(pyrunc, bundle, cid)
    assert "process.oomScoreAdj: write /proc/self/oom_score_adj: EACCES" in err and "CAP_SYS_RESOURCE" in err


def test_oom_score_adj_unset_is_inherited(pyrunc, bundle, cid):
    bundle.config["process"].pop("oomScoreAdj", None)
    pid = create_waiting(pyrunc, bundle, cid)
    mine = Path("/proc/self/oom_score_adj").read_text()
    assert Path(f"/proc/{pid}/oom_score_adj").read_text() == mine
    pyrunc("delete", "--force", cid)


def nice_of(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2:].split()[16])  # field 19: nice


@pytest.mark.parametrize("policy, const", [("SCHED_BATCH", os.SCHED_BATCH), ("SCHED_OTHER", os.SCHED_OTHER)])
def test_scheduler_policy_and_nice(pyrunc, bundle, cid, policy, const):
    bundle.config["process"]["scheduler"] = {"policy": policy, "nice": 7}
    pid = create_waiting(pyrunc, bundle, cid)
    assert os.sched_getscheduler(pid) == const
    assert nice_of(pid) == 7
    pyrunc("delete", "--force", cid)
    out = run_inside(pyrunc, bundle, cid, "grep '^policy' /proc/self/sched; cut -d' ' -f19 /proc/self/stat")
    assert out.split()[-2:] == [str(const), "7"]


def test_scheduler_idle(pyrunc, bundle, cid):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_IDLE"}
    pid = create_waiting(pyrunc, bundle, cid)
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    pyrunc("delete", "--force", cid)


def test_scheduler_deadline(pyrunc, bundle, cid):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_DEADLINE", "runtime": 10_000_000,
                                             "deadline": 30_000_000, "period": 100_000_000}
    pid = create_waiting(pyrunc, bundle, cid)
    assert os.sched_getscheduler(pid) == 6  # SCHED_DEADLINE (os has no name for it)
    pyrunc("delete", "--force", cid)


def test_scheduler_reset_on_fork_flag(pyrunc, bundle, cid):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 3,
                                             "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    pid = create_waiting(pyrunc, bundle, cid)
    assert os.sched_getscheduler(pid) == os.SCHED_BATCH | os.SCHED_RESET_ON_FORK
    pyrunc("delete", "--force", cid)


# RT group scheduling (CONFIG_RT_GROUP_SCHED, v1's cpu.rt_runtime_us): distribution kernels
# often leave it out, and then realtime tasks need no budget in their cgroup.
rt_group_sched = pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"),
                                    reason="the kernel has no RT group scheduling (CONFIG_RT_GROUP_SCHED)")


@rt_group_sched
@pytest.mark.parametrize("policy, const", [("SCHED_FIFO", os.SCHED_FIFO), ("SCHED_RR", os.SCHED_RR)])
def test_scheduler_realtime_with_a_cgroup_budget(pyrunc, bundle, cid, policy, const):
    """This host has RT group scheduling: a realtime task needs cpu.rt_runtime_us in its cgroup."""
    bundle.config["linux"]["resources"]["cpu"] = {"realtimeRuntime": 10000, "realtimePeriod": 1000000}
    bundle.config["process"]["scheduler"] = {"policy": policy, "priority": 10}
    pid = create_waiting(pyrunc, bundle, cid)
    assert os.sched_getscheduler(pid) == const
    assert os.sched_getparam(pid).sched_priority == 10
    pyrunc("delete", "--force", cid)


@rt_group_sched
def test_scheduler_realtime_refused_by_kernel_names_field(pyrunc, bundle, cid):
    """The container's cpu cgroup has no realtime budget (cpu.rt_runtime_us 0), so the kernel says EPERM."""
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    err = create_fails(pyrunc, bundle, cid)
    assert "process.scheduler: sched_setattr: EPERM" in err and "linux.resources.cpu.realtimeRuntime" in err, err


@pytest.mark.parametrize("sched, path", [
    ({"policy": "SCHED_OTHER", "priority": 5}, "process.scheduler.priority"),
    ({"policy": "SCHED_RR", "priority": 0}, "process.scheduler.priority"),
    ({"policy": "SCHED_OTHER", "nice": 20}, "process.scheduler.nice"),
    ({"policy": "SCHED_BATCH", "runtime": 100}, "process.scheduler"),
    ({"policy": "SCHED_DEADLINE", "runtime": 200, "deadline": 100, "period": 300}, "process.scheduler"),
])
def test_scheduler_config_errors(pyrunc, bundle, cid, sched, path):
    bundle.config["process"]["scheduler"] = sched
    assert path + ":" in create_fails(pyrunc, bundle, cid)


@pytest.mark.parametrize("cls, prio, shown", [("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
                                              ("IOPRIO_CLASS_RT", 2, "realtime: prio 2"),
                                              ("IOPRIO_CLASS_IDLE", 0, "idle")])
def test_io_priority(pyrunc, bundle, cid, cls, prio, shown):
    bundle.config["process"]["ioPriority"] = {"class": cls, "priority": prio}
    pid = create_waiting(pyrunc, bundle, cid)
    host = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True, check=True).stdout
    assert host.strip() == shown
    pyrunc("delete", "--force", cid)
    assert run_inside(pyrunc, bundle, cid, "ionice").strip() == shown


def test_io_priority_bad_priority(pyrunc, bundle, cid):
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 8}
    assert "process.ioPriority.priority:" in create_fails(pyrunc, bundle, cid)


def test_exec_cpu_affinity_does_not_apply_to_the_init(pyrunc, bundle, cid):
    """runtime-spec: "not applicable to the container's init process" (runc applies it in exec only)."""
    mine = os.sched_getaffinity(0)
    assert {0, 1} <= mine, "needs CPUs 0 and 1"
    bundle.config["process"]["execCPUAffinity"] = {"initial": "0", "final": "1"}
    bundle.sh("echo go > /tmp/ready; exec sleep 1000")
    pyrunc("create", "--bundle", str(bundle.path), cid)
    pid = pyrunc.state(cid)["pid"]
    assert os.sched_getaffinity(pid) == mine
    pyrunc("start", cid)
    wait_for(lambda: (bundle.rootfs / "tmp" / "ready").exists(), what="the program to run")
    assert os.sched_getaffinity(pid) == mine
    pyrunc("delete", "--force", cid)


def test_cpu_list_syntax():
    from pyrunc.spec.procattrs import parse_list

    assert parse_list("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_list("5,1-2,2") == [1, 2, 5]
    for bad in ("", "1-", "a", "3-1", "1,,2", "0-100000000"):
        with pytest.raises(ValueError):
            parse_list(bad)


@pytest.mark.parametrize("aff", [{"final": "1-0"}, {"initial": "0,x"}])
def test_exec_cpu_affinity_syntax_errors(pyrunc, bundle, cid, aff):
    bundle.config["process"]["execCPUAffinity"] = aff
    assert "process.execCPUAffinity." in create_fails(pyrunc, bundle, cid)


def test_personality_linux32(pyrunc, bundle, cid):
    assert platform.machine() == "x86_64", "LINUX32 shows i686 only on x86_64"
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    pid = create_waiting(pyrunc, bundle, cid)
    assert Path(f"/proc/{pid}/personality").read_text().strip() == "00000008"
    pyrunc("delete", "--force", cid)
    assert run_inside(pyrunc, bundle, cid, "uname -m").strip() == "i686"


def test_personality_linux_and_flags(pyrunc, bundle, cid):
    bundle.config["linux"]["personality"] = {"domain": "LINUX"}
    assert run_inside(pyrunc, bundle, cid, "uname -m").strip() == platform.machine()
    bundle.config["linux"]["personality"] = {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}
    assert "linux.personality.flags:" in create_fails(pyrunc, bundle, cid)


def test_memory_policy_bind(pyrunc, bundle, cid):
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0",
                                              "flags": ["MPOL_F_STATIC_NODES"]}
    bundle.sh("echo go > /tmp/ready; exec sleep 1000")
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    pid = pyrunc.state(cid)["pid"]
    wait_for(lambda: (bundle.rootfs / "tmp" / "ready").exists(), what="the program to run")
    # VMAs without a policy of their own show the task's policy.
    assert "bind=static:0" in Path(f"/proc/{pid}/numa_maps").read_text().split()
    pyrunc("delete", "--force", cid)


@pytest.mark.parametrize("policy, path", [
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_BOGUS"]}, "linux.memoryPolicy.flags[0]"),
    ({"mode": "MPOL_BIND", "nodes": "0-x"}, "linux.memoryPolicy.nodes"),
])
def test_memory_policy_config_errors(pyrunc, bundle, cid, policy, path):
    bundle.config["linux"]["memoryPolicy"] = policy
    assert path + ":" in create_fails(pyrunc, bundle, cid)


def test_memory_policy_node_the_kernel_refuses(pyrunc, bundle, cid):
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "63"}
    assert "linux.memoryPolicy: set_mempolicy: EINVAL" in create_fails(pyrunc, bundle, cid)


def test_user_umask_groups_and_home(pyrunc, bundle, cid):
    with open(bundle.rootfs / "etc" / "passwd", "a") as f:
        f.write("pyrt:x:1234:1234:test:/home/pyrt:/bin/sh\n")
    bundle.config["process"]["user"] = {"uid": 1234, "gid": 1234, "additionalGids": [10, 20], "umask": 0o027}
    bundle.config["process"]["env"] = [e for e in bundle.config["process"]["env"] if not e.startswith("HOME=")]
    out = run_inside(pyrunc, bundle, cid, "id -u; id -g; id -G; umask; echo $HOME; grep Groups /proc/self/status")
    lines = out.splitlines()
    assert lines[:5] == ["1234", "1234", "1234 10 20", "0027", "/home/pyrt"], out
    assert lines[5].split()[1:] == ["10", "20"]


def test_home_from_env_wins(pyrunc, bundle, cid):
    bundle.config["process"]["env"] = ["PATH=/bin", "HOME=/somewhere"]
    bundle.config["process"]["user"] = {"uid": 0, "gid": 0}
    assert run_inside(pyrunc, bundle, cid, "echo $HOME").strip() == "/somewhere"
