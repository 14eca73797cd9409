"""containerd driven through ctr: the runc v2 shim with the runtime under test as its
binary (`ctr run --runc-binary` sets the shim's BinaryName option).

ctr 1.6 has no --user/--hostname flags (a full spec via --config covers them) and no
`task update`, so resource updates are covered by the podman tests only."""
from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from engine_drivers import Containerd
from engine_helpers import (CAP_CHOWN, CAP_SYS_ADMIN, CGROUP_ROOT, TIMEOUT, cap_eff, pid_alive,
                            run, run_in_pty, unmounted_v1_hierarchies, wait_for)

Ctd = tuple[Containerd, str]


def ctr_run(engine: Containerd, cid: str, *flags: str, command: tuple[str, ...],
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    return run(engine.run_cmd(cid, "--rm", *flags, command=command), input=input)


def start_detached(engine: Containerd, cid: str, *flags: str,
                   command: tuple[str, ...] = ("sleep", "1000")) -> int:
    proc = run(engine.run_cmd(cid, "--detach", *flags, command=command))
    assert proc.returncode == 0, proc.stderr
    assert wait_for(lambda: engine.task_status(cid) == "RUNNING"), engine.task_status(cid)
    return engine.task_pid(cid)


def test_run_output_and_exit_code(ctd: Ctd) -> None:
    engine, cid = ctd
    proc = ctr_run(engine, cid, command=("sh", "-c", "echo out; echo err >&2; exit 7"))
    assert proc.returncode == 7, proc.stderr
    assert (proc.stdout, proc.stderr) == ("out\n", "err\n")
    subs = engine.calls.subcommands(cid)
    assert subs[:2] == ["create", "start"] and "delete" in subs, subs


def test_stdin(ctd: Ctd) -> None:
    engine, cid = ctd
    # ctr does not forward EOF on a non-tty stdin, so read a known number of lines.
    proc = ctr_run(engine, cid, command=("sh", "-c", 'read a; read b; echo "got:$a,$b"'),
                   input="hello\nworld\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "got:hello,world\n"


def test_tty(ctd: Ctd) -> None:
    engine, cid = ctd
    rc, out = run_in_pty(engine.run_cmd(cid, "--rm", "--tty",
                                        command=("sh", "-c", "tty; [ -t 1 ] && echo TTY1; exit 4")))
    assert rc == 4, out
    assert "/dev/pts/" in out and "TTY1" in out, out
    create = [c for c in engine.calls.for_container(cid) if c.subcommand == "create"]
    assert "--console-socket" in create[0].argv


def test_missing_executable_reports_runtime_error(ctd: Ctd) -> None:
    engine, cid = ctd
    proc = ctr_run(engine, cid, command=("/nonexistent",))
    assert proc.returncode != 0
    failed = [c for c in engine.calls.for_container(cid) if c.rc]
    assert failed and failed[0].subcommand in ("create", "start"), failed
    assert failed[0].error and "\n" not in failed[0].error
    assert failed[0].error in proc.stderr, proc.stderr
    assert "/nonexistent" in proc.stderr


def test_failing_create_shows_runtime_one_line_error(ctd: Ctd) -> None:
    engine, cid = ctd
    # tmpfs over a regular file cannot be mounted: the runtime fails during create.
    proc = ctr_run(engine, cid, "--mount", "type=tmpfs,src=tmpfs,dst=/etc/passwd",
                   command=("true",))
    assert proc.returncode != 0
    failed = [c for c in engine.calls.for_container(cid) if c.rc]
    assert failed and failed[0].subcommand == "create", failed
    assert failed[0].error and "\n" not in failed[0].error
    assert failed[0].error in proc.stderr, proc.stderr
    assert "unable to retrieve OCI runtime error" not in proc.stderr


def test_user_and_hostname_via_spec(ctd: Ctd, session_dir: Path, unpacked_rootfs: Path) -> None:
    engine, cid = ctd
    # With --config ctr takes the whole spec and no image: the root is a host directory.
    spec = json.loads(run(engine.ctr_cmd("oci", "spec")).stdout)
    spec["root"] = {"path": str(unpacked_rootfs), "readonly": True}
    spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [65534]}
    spec["process"]["args"] = ["sh", "-c", "id; hostname"]
    spec["process"]["env"] = ["PATH=/bin"]
    spec["hostname"] = "box1"
    spec["linux"]["cgroupsPath"] = engine.cgroup(cid)
    path = session_dir / f"{cid}.json"
    path.write_text(json.dumps(spec))
    proc = run(engine.ctr_cmd("run", "--rm", "--runc-binary", str(engine.wrapper), "--runc-root",
                              str(engine.runc_root), "--fifo-dir", str(engine.fifo_dir),
                              "--config", str(path), cid))
    assert proc.returncode == 0, proc.stderr
    ident, host = proc.stdout.splitlines()
    assert ident.startswith("uid=1000(app) gid=1000(app) groups=") and "65534" in ident, ident
    assert host == "box1"


def test_read_only_root(ctd: Ctd) -> None:
    engine, cid = ctd
    proc = ctr_run(engine, cid, "--read-only",
                   command=("sh", "-c", "touch /x 2>&1; echo rc=$?; grep ' / ' /proc/mounts"))
    assert "Read-only file system" in proc.stdout and "rc=1" in proc.stdout, proc.stdout
    assert proc.stdout.splitlines()[-1].split()[3].split(",")[0] == "ro"


def test_tmpfs_mount(ctd: Ctd) -> None:
    engine, cid = ctd
    proc = ctr_run(engine, cid, "--read-only",
                   "--mount", "type=tmpfs,src=tmpfs,dst=/scratch,options=size=1m:mode=1777",
                   command=("sh", "-c", "grep ' /scratch ' /proc/mounts; echo x > /scratch/f && "
                            "cat /scratch/f"))
    assert proc.returncode == 0, proc.stderr
    mount_line, content = proc.stdout.splitlines()
    assert mount_line.split()[2] == "tmpfs" and "size=1024k" in mount_line, mount_line
    assert content == "x"


def test_bind_mount(ctd: Ctd, host_dir: Path) -> None:
    engine, cid = ctd
    proc = ctr_run(engine, cid, "--mount", f"type=bind,src={host_dir},dst=/data,options=rbind:ro",
                   command=("sh", "-c", "cat /data/hello; touch /data/new 2>&1; echo rc=$?"))
    assert proc.stdout.splitlines()[0] == "from the host", proc.stdout
    assert "Read-only file system" in proc.stdout and "rc=1" in proc.stdout
    assert not (host_dir / "new").exists()


def test_env_and_workdir(ctd: Ctd) -> None:
    engine, cid = ctd
    proc = ctr_run(engine, cid, "--env", "FOO=bar baz", "--cwd", "/tmp",
                   command=("sh", "-c", 'echo "$FOO"; pwd'))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["bar baz", "/tmp"]


def test_cap_drop(ctd: Ctd) -> None:
    engine, cid = ctd
    proc = ctr_run(engine, cid, "--cap-drop", "CAP_CHOWN",
                   command=("sh", "-c", "cat /proc/self/status; chown 1 /tmp 2>&1; echo rc=$?"))
    caps = cap_eff(proc.stdout)
    assert not caps & (1 << CAP_CHOWN), hex(caps)
    assert caps & (1 << 5), hex(caps)  # CAP_KILL, from the default set, is still there
    assert "rc=1" in proc.stdout


def test_privileged(ctd: Ctd) -> None:
    engine, cid = ctd
    proc = ctr_run(engine, cid, "--privileged",
                   command=("sh", "-c", "cat /proc/self/status; ls /dev"))
    assert proc.returncode == 0, proc.stderr
    assert cap_eff(proc.stdout) & (1 << CAP_SYS_ADMIN)
    assert "kmsg" in proc.stdout.split()  # host devices are passed in


def test_detached_then_exec(ctd: Ctd) -> None:
    engine, cid = ctd
    start_detached(engine, cid)
    proc = run(engine.exec_cmd(cid, "e1", command=("sh", "-c", "exit 5")))
    assert proc.returncode == 5, proc.stderr
    proc = run(engine.exec_cmd(cid, "e2", "--user", "1000", "--cwd", "/tmp",
                               command=("sh", "-c", "id -u; pwd")))
    assert proc.stdout.splitlines() == ["1000", "/tmp"], proc.stderr
    rc, out = run_in_pty(engine.exec_cmd(cid, "e3", "--tty",
                                         command=("sh", "-c", "tty; exit 3")))
    assert rc == 3 and "/dev/pts/" in out, out
    execs = [c for c in engine.calls.for_container(cid) if c.subcommand == "exec"]
    assert len(execs) == 3 and all("--process" in c.argv and "--detach" in c.argv for c in execs)
    assert "--console-socket" in execs[2].argv


def test_ps_and_metrics(ctd: Ctd) -> None:
    engine, cid = ctd
    pid = start_detached(engine, cid, "--memory-limit", str(64 << 20))
    proc = engine.ctr("task", "ps", cid)
    assert proc.returncode == 0, proc.stderr
    assert str(pid) in proc.stdout.split(), proc.stdout
    assert "ps" in engine.calls.subcommands(cid)
    lingering = unmounted_v1_hierarchies()
    assert not lingering, (f"v1 hierarchies {lingering} are active but mounted nowhere (left by "
                           "something that mounted and unmounted them); containerd's shim then "
                           "cannot load any container's cgroups and serves no metrics")
    # Metrics come from the shim reading the container's cgroups, not from the runtime.
    proc = engine.ctr("task", "metrics", "--format", "json", cid)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["memory"]["usage"]["limit"] == 64 << 20, metrics["memory"]
    assert metrics["pids"]["current"] >= 1


def test_pause_resume(ctd: Ctd) -> None:
    engine, cid = ctd
    start_detached(engine, cid)
    freezer = CGROUP_ROOT / "freezer" / engine.cgroup(cid).strip("/") / "freezer.state"
    assert engine.ctr("task", "pause", cid).returncode == 0
    assert engine.task_status(cid) == "PAUSED"
    assert freezer.read_text().strip() == "FROZEN"
    assert engine.ctr("task", "resume", cid).returncode == 0
    assert engine.task_status(cid) == "RUNNING"
    assert freezer.read_text().strip() == "THAWED"
    assert [s for s in engine.calls.subcommands(cid) if s in ("pause", "resume")] == [
        "pause", "resume"]


def test_kill_with_signal(ctd: Ctd) -> None:
    engine, cid = ctd
    script = 'trap "exit 42" USR1; echo ready; while :; do sleep 0.1; done'
    fg = subprocess.Popen(engine.run_cmd(cid, "--rm", command=("sh", "-c", script)),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert fg.stdout is not None and fg.stdout.readline() == "ready\n"
        assert engine.ctr("task", "kill", "--signal", "SIGUSR1", cid).returncode == 0
        assert fg.wait(timeout=TIMEOUT) == 42
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.wait()
    kills = [c.argv[-2:] for c in engine.calls.for_container(cid) if c.subcommand == "kill"]
    assert kills == [[cid, "10"]], kills


def test_stop_escalates_to_sigkill(ctd: Ctd) -> None:
    engine, cid = ctd
    pid = start_detached(engine, cid, command=(
        "sh", "-c", 'trap "" TERM; while :; do sleep 0.1; done'))
    assert engine.ctr("task", "kill", "--signal", "SIGTERM", cid).returncode == 0
    assert not wait_for(lambda: not pid_alive(pid), timeout=1.5), "SIGTERM should be ignored"
    assert engine.ctr("task", "kill", "--signal", "SIGKILL", cid).returncode == 0
    assert wait_for(lambda: engine.task_status(cid) == "STOPPED")
    assert not pid_alive(pid)
    proc = engine.ctr("task", "delete", cid)
    assert "137" in proc.stdout + proc.stderr, proc
    kills = [c.argv[-1] for c in engine.calls.for_container(cid) if c.subcommand == "kill"]
    assert kills == ["15", "9"], kills


def test_rm_force_running(ctd: Ctd) -> None:
    engine, cid = ctd
    pid = start_detached(engine, cid)
    proc = engine.ctr("task", "delete", "--force", cid)
    assert proc.returncode == 0, proc.stderr
    assert wait_for(lambda: not pid_alive(pid))
    assert engine.task_status(cid) == ""
    assert engine.ctr("container", "delete", cid).returncode == 0
    assert engine.leftovers(cid) == []


def test_resource_limits_in_host_cgroups(ctd: Ctd) -> None:
    engine, cid = ctd
    pid = start_detached(engine, cid, "--memory-limit", str(48 << 20), "--cpu-quota", "50000",
                         "--cpu-period", "100000", "--cpu-shares", "512")
    rel = engine.cgroup(cid).strip("/")
    read = lambda ctrl, name: (CGROUP_ROOT / ctrl / rel / name).read_text().strip()  # noqa: E731
    assert read("memory", "memory.limit_in_bytes") == str(48 << 20)
    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("cpu", "cpu.shares") == "512"
    for ctrl in ("memory", "cpu", "pids", "freezer"):
        assert str(pid) in read(ctrl, "cgroup.procs").split(), ctrl


def test_nothing_left_after_lifecycle(ctd: Ctd) -> None:
    engine, cid = ctd
    pid = start_detached(engine, cid, "--memory-limit", str(32 << 20))
    assert run(engine.exec_cmd(cid, "e1", command=("true",))).returncode == 0
    assert engine.ctr("task", "kill", "--signal", "SIGKILL", cid).returncode == 0
    assert wait_for(lambda: engine.task_status(cid) == "STOPPED")
    assert engine.ctr("task", "delete", cid).returncode == 0
    assert engine.ctr("container", "delete", cid).returncode == 0
    assert not pid_alive(pid)
    assert engine.leftovers(cid) == []


def test_cri_runtime_config_with_binary_name(runtime: str, session_dir: Path) -> None:
    # Kubernetes reaches the runtime through the CRI plugin's runtimes table (see
    # docs/engines.md); ctr ignores that table. test_cri.py runs pods through it; this checks
    # that containerd resolves that page's variant (pyrunc as the default handler) as written.
    config = session_dir / "cri-config.toml"
    config.write_text(f"""version = 2
root = "{session_dir}/cri-root"
state = "{session_dir}/cri-state"
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "pyrunc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc.options]
    BinaryName = "{runtime}"
    SystemdCgroup = false
""")
    proc = run(["containerd", "--config", str(config), "config", "dump"])
    assert proc.returncode == 0, proc.stderr
    cri = tomllib.loads(proc.stdout)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert cri["default_runtime_name"] == "pyrunc"
    assert cri["runtimes"]["pyrunc"]["runtime_type"] == "io.containerd.runc.v2"
    assert cri["runtimes"]["pyrunc"]["options"]["BinaryName"] == runtime
    assert not (session_dir / "cri-root").exists()  # only parsed, nothing started


def _field(num: int, data: bytes) -> bytes:
    """One length-delimited protobuf field (every field these requests need is one)."""
    size, n = b"", len(data)
    while True:
        size += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return bytes([num << 3 | 2]) + size + data


def test_created_task_deleted_without_force(ctd: Ctd, session_dir: Path, unpacked_rootfs: Path) -> None:
    # containerd's shim deletes a created, never-started task with the runtime's plain
    # `delete` (process/init.go), e.g. when a client creates a task and drops it. ctr 1.6 has
    # no `task create`, so the Tasks service is called over gRPC as containerd's client
    # does: Create, then Delete. The messages are encoded by hand (one string field each).
    grpc = pytest.importorskip("grpc")
    engine, cid = ctd
    spec = json.loads(run(engine.ctr_cmd("oci", "spec")).stdout)
    spec["root"] = {"path": str(unpacked_rootfs), "readonly": True}
    spec["process"].update(args=["sleep", "1000"], env=["PATH=/bin"], terminal=False)
    spec["linux"]["cgroupsPath"] = engine.cgroup(cid)
    path = session_dir / f"{cid}.json"
    path.write_text(json.dumps(spec))
    assert engine.ctr("container", "create", "--config", str(path), cid).returncode == 0
    # containerd.runc.v1.Options: binary_name (6) and root (7), as `ctr run --runc-binary` sets them
    options = _field(6, str(engine.wrapper).encode()) + _field(7, str(engine.runc_root).encode())
    options_any = _field(1, b"containerd.runc.v1.Options") + _field(2, options)
    meta = [("containerd-namespace", engine.namespace)]
    with grpc.insecure_channel(f"unix://{engine.sock}") as channel:
        def call(method: str, request: bytes) -> bytes:
            rpc = channel.unary_unary(f"/containerd.services.tasks.v1.Tasks/{method}")
            return rpc(request, metadata=meta, timeout=TIMEOUT)

        call("Create", _field(1, cid.encode()) + _field(9, options_any))
        assert engine.task_status(cid) == "CREATED"
        pid = engine.task_pid(cid)
        assert pid_alive(pid)
        call("Delete", _field(1, cid.encode()))
    deletes = [c for c in engine.calls.for_container(cid) if c.subcommand == "delete"]
    assert deletes and "--force" not in deletes[0].argv and deletes[0].rc == 0, deletes
    assert wait_for(lambda: not pid_alive(pid))
    assert engine.task_status(cid) == ""
    assert engine.ctr("container", "delete", cid).returncode == 0
    assert engine.leftovers(cid) == []
