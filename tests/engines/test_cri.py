"""A Kubernetes node's view: containerd's CRI plugin with the runtime under test as the
runtime handler `pyrunc` (runc v2 shim, BinaryName = the recording wrapper, SystemdCgroup
= false), driven through the CRI gRPC API the way the kubelet drives it, and checked from
the host: namespaces in /proc/<pid>/ns, limits in the cgroup files, nothing left after.

SystemdCgroup = true needs systemd as PID 1: test_systemd_engines.py, in the guest of
hack/test-systemd.sh. Not covered: the streaming calls (Exec, Attach, PortForward: they go
to containerd's own HTTP server, not to the runtime)."""
from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import pytest

from cri_client import CriError
from engine_drivers import PAUSE_IMAGE, CriContainerd, CriPod
from engine_helpers import CGROUP_ROOT, IMAGE, pid_alive, wait_for

MiB = 1 << 20
# A container that starts, says so in its log, and exits 0 on SIGTERM (the kubelet's
# stop signal) without waiting for its sleep.
SERVER = ["sh", "-c", 'trap "exit 0" TERM; echo started; sleep 1000 & wait']


def ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def cgroup_file(parent: str, cid: str, ctrl: str, name: str) -> str:
    return (CGROUP_ROOT / ctrl / parent.strip("/") / cid / name).read_text().strip()


def started(cri: CriContainerd, pod: CriPod, name: str, command: list[str], **kw) -> tuple[str, int]:
    """CreateContainer + StartContainer: (container id, its init's host pid)."""
    cid = cri.create_container(pod, name, command, **kw)
    cri.cri("StartContainer", container_id=cid)
    status, info = cri.container_status(cid)
    assert status.state == cri.cri.pb.CONTAINER_RUNNING, status
    return cid, info["pid"]


def runtime_subcommands(cri: CriContainerd, cid: str) -> list[str]:
    return cri.calls.subcommands(cid)


def test_runtime_ready_with_local_images(cri: CriContainerd) -> None:
    version = cri.cri("Version", version="v1")
    assert version.runtime_name == "containerd" and version.runtime_api_version == "v1", version
    conditions = {c.type: c.status for c in cri.cri("Status").status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    for ref in (IMAGE, PAUSE_IMAGE):
        assert ref in cri.cri("ImageStatus", image={"image": ref}).image.repo_tags


def test_pod_lifecycle(cri: CriContainerd, cri_pods: list[CriPod]) -> None:
    pod = cri.run_pod("web")
    cri_pods.append(pod)
    status = cri.cri("PodSandboxStatus", pod_sandbox_id=pod.id).status
    assert status.state == cri.cri.pb.SANDBOX_READY and status.runtime_handler == "pyrunc"
    assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network(cri.subnet), pod.ip
    # The pause container ran through the handler's binary, not the default runc.
    assert runtime_subcommands(cri, pod.id)[:2] == ["create", "start"]

    limits = {"memory_limit_in_bytes": 64 * MiB, "cpu_period": 100000, "cpu_quota": 50000,
              "cpu_shares": 512}
    cid, pid = started(cri, pod, "app", SERVER, resources=limits)
    assert runtime_subcommands(cri, cid)[:2] == ["create", "start"]

    # Namespaces: net, ipc and uts are the sandbox's; pid is the container's own.
    for kind in ("net", "ipc", "uts"):
        assert ns(pid, kind) == ns(pod.pid, kind), kind
    assert ns(pid, "pid") != ns(pod.pid, "pid")
    assert ns(pid, "net") != ns(os.getpid(), "net")
    assert os.stat(pod.netns).st_ino == os.stat(f"/proc/{pod.pid}/ns/net").st_ino

    # Limits from the CRI request, in the cgroup files the kubelet's parent names.
    assert f"{pod.cgroup_parent}/{cid}" in Path(f"/proc/{pid}/cgroup").read_text()
    assert cgroup_file(pod.cgroup_parent, cid, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert cgroup_file(pod.cgroup_parent, cid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cgroup_file(pod.cgroup_parent, cid, "cpu", "cpu.cfs_period_us") == "100000"
    assert cgroup_file(pod.cgroup_parent, cid, "cpu", "cpu.shares") == "512"
    assert str(pid) in cgroup_file(pod.cgroup_parent, cid, "memory", "cgroup.procs").split()

    # ExecSync: output, exit code, and what the container sees of the pod.
    r = cri.cri("ExecSync", container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"],
                timeout=30)
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3)
    r = cri.cri("ExecSync", container_id=cid, cmd=["sh", "-c", "hostname; ip -4 -o addr show eth0"])
    hostname, addr = r.stdout.decode().splitlines()
    assert r.exit_code == 0 and hostname == "web" and f"inet {pod.ip}/" in addr, r
    with pytest.raises(CriError) as err:
        cri.cri("ExecSync", container_id=cid, cmd=["/nonexistent"])
    assert "/nonexistent" in err.value.details, err.value
    execs = [c for c in cri.calls.for_container(cid) if c.subcommand == "exec"]
    assert len(execs) == 3 and execs[-1].rc and "/nonexistent" in execs[-1].error, execs

    # ContainerStats: the shim reads the container's cgroups (the path from pyrunc's state).
    stats = cri.cri("ContainerStats", container_id=cid).stats
    assert stats.attributes.id == cid
    assert 0 < stats.memory.working_set_bytes.value <= 64 * MiB, stats.memory
    assert stats.cpu.usage_core_nano_seconds.value > 0, stats.cpu

    # UpdateContainerResources: the shim runs `update --resources`; the files change.
    cri.cri("UpdateContainerResources", container_id=cid,
            linux={"memory_limit_in_bytes": 96 * MiB, "cpu_period": 100000, "cpu_quota": 20000,
                   "cpu_shares": 256})
    assert cgroup_file(pod.cgroup_parent, cid, "memory", "memory.limit_in_bytes") == str(96 * MiB)
    assert cgroup_file(pod.cgroup_parent, cid, "cpu", "cpu.cfs_quota_us") == "20000"
    assert cgroup_file(pod.cgroup_parent, cid, "cpu", "cpu.shares") == "256"
    assert "update" in runtime_subcommands(cri, cid)

    # The container's stdout reached its CRI log file (what `kubectl logs` reads).
    status, _ = cri.container_status(cid)
    assert wait_for(lambda: " stdout F started" in Path(status.log_path).read_text())

    # StopContainer: SIGTERM, and the trap makes it a clean exit well within the timeout.
    t0 = time.monotonic()
    cri.cri("StopContainer", container_id=cid, timeout=10)
    assert time.monotonic() - t0 < 8
    status = cri.wait_exited(cid)
    assert (status.exit_code, status.reason) == (0, "Completed"), status
    assert not pid_alive(pid)
    kills = [c.argv[-1] for c in cri.calls.for_container(cid) if c.subcommand == "kill"]
    assert kills and kills[0] == "15", kills

    cri.cri("RemoveContainer", container_id=cid)
    assert not cri.cri("ListContainers", filter={"pod_sandbox_id": pod.id}).containers
    cri.cri("StopPodSandbox", pod_sandbox_id=pod.id)
    status = cri.cri("PodSandboxStatus", pod_sandbox_id=pod.id).status
    assert status.state == cri.cri.pb.SANDBOX_NOTREADY
    assert not pid_alive(pod.pid) and not os.path.exists(pod.netns)
    cri.cri("RemovePodSandbox", pod_sandbox_id=pod.id)
    assert cri.pod_leftovers(pod) == []
    assert "delete" in runtime_subcommands(cri, pod.id) and "delete" in runtime_subcommands(cri, cid)


def test_pod_pid_namespace_shared(cri: CriContainerd, cri_pods: list[CriPod]) -> None:
    # shareProcessNamespace: the kubelet asks for pid = POD for the sandbox and containers.
    pod = cri.run_pod("shared", pid="POD")
    cri_pods.append(pod)
    a, pid_a = started(cri, pod, "a", SERVER, pid="POD")
    b, pid_b = started(cri, pod, "b", SERVER, pid="POD")
    assert ns(pid_a, "pid") == ns(pid_b, "pid") == ns(pod.pid, "pid")
    for kind in ("net", "ipc", "uts"):
        assert ns(pid_a, kind) == ns(pid_b, kind) == ns(pod.pid, kind), kind
    # Inside, pid 1 is the pause process and both containers' processes are visible.
    r = cri.cri("ExecSync", container_id=b, cmd=["sh", "-c", "cat /proc/1/cmdline; echo; ps -o args"])
    assert r.exit_code == 0, r
    out = r.stdout.decode()
    assert out.splitlines()[0].replace("\0", " ").startswith("/bin/sh -c trap"), out
    assert out.splitlines().count("sleep 1000") == 2, out  # one from each container


def test_start_failure_bad_command(cri: CriContainerd, cri_pods: list[CriPod]) -> None:
    pod = cri.run_pod("badcmd")
    cri_pods.append(pod)
    cid = cri.create_container(pod, "bad", ["/nonexistent", "arg"])
    with pytest.raises(CriError) as err:
        cri.cri("StartContainer", container_id=cid)
    assert "/nonexistent" in err.value.details, err.value
    failed = [c for c in cri.calls.for_container(cid) if c.rc]
    assert failed and failed[0].subcommand == "create", failed
    # The runtime's own one-line error is what the node reports.
    assert failed[0].error and failed[0].error in err.value.details, (failed[0].error, err.value)
    status, _ = cri.container_status(cid)
    assert status.state == cri.cri.pb.CONTAINER_EXITED
    assert (status.reason, status.exit_code) == ("StartError", 128), status
    assert failed[0].error in status.message, status.message
    # The pod itself is unharmed.
    assert cri.cri("PodSandboxStatus", pod_sandbox_id=pod.id).status.state == cri.cri.pb.SANDBOX_READY
    assert pid_alive(pod.pid)


@pytest.mark.parametrize("handler", ["pyrunc", "runc"])
def test_oom_killed(cri: CriContainerd, cri_pods: list[CriPod], handler: str) -> None:
    # Debian's runc as the handler too: the same containerd's verdict on the reference.
    # `tail` keeps the current line, and /dev/zero has no newline: it grows to the limit.
    pod = cri.run_pod(f"oom-{handler}", handler=handler)
    cri_pods.append(pod)
    cid, pid = started(cri, pod, "hog", ["sh", "-c", "head -c 256m /dev/zero | tail"],
                       resources={"memory_limit_in_bytes": 32 * MiB})
    status = cri.wait_exited(cid)
    assert status.reason == "OOMKilled", status
    assert status.exit_code == 137, status


def test_stop_timeout_escalates_to_sigkill(cri: CriContainerd, cri_pods: list[CriPod]) -> None:
    pod = cri.run_pod("stubborn")
    cri_pods.append(pod)
    cid, pid = started(cri, pod, "deaf", ["sh", "-c", 'trap "" TERM; sleep 1000 & wait'])
    t0 = time.monotonic()
    cri.cri("StopContainer", container_id=cid, timeout=2)
    took = time.monotonic() - t0
    assert 2 <= took < 15, took
    status = cri.wait_exited(cid)
    assert (status.exit_code, status.reason) == (137, "Error"), status
    assert not pid_alive(pid)
    kills = [c.argv[-1] for c in cri.calls.for_container(cid) if c.subcommand == "kill"]
    assert kills[:2] == ["15", "9"], kills
