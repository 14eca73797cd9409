"""podman + conmon with a private containers.conf whose `pyrunc` runtime is the runtime
under test (listed in runtime_supports_json, so conmon passes --log/--log-format=json)."""
from __future__ import annotations

import json
import resource
from pathlib import Path

from engine_drivers import Podman
from engine_helpers import (CAP_CHOWN, CAP_SYS_ADMIN, CGROUP_ROOT, IMAGE, cap_eff, pid_alive, run,
                            run_in_pty, wait_for)

Pod = tuple[Podman, str]


def prun(engine: Podman, name: str, *flags: str, command: tuple[str, ...],
         input: str | None = None):
    # No --rm: the `pod` fixture removes the container once its id is known for leak checks.
    return run(engine.run_cmd(name, *flags, command=command), env=engine.env, input=input)


def start_detached(engine: Podman, name: str, *flags: str,
                   command: tuple[str, ...] = ("sleep", "1000")) -> tuple[str, int]:
    proc = run(engine.run_cmd(name, "--detach", *flags, command=command), env=engine.env)
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip()
    assert engine.inspect(name, "{{.State.Status}}") == "running"
    return cid, int(engine.inspect(name, "{{.State.Pid}}"))


def test_run_output_and_exit_code(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, command=("sh", "-c", "echo out; echo err >&2; exit 7"))
    assert proc.returncode == 7, proc.stderr
    assert (proc.stdout, proc.stderr) == ("out\n", "err\n")
    callers = {c.subcommand: c.caller for c in engine.calls.for_container(
        engine.container_id(name))}
    assert callers["create"] == "conmon" and callers["start"] == "podman", callers


def test_stdin(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, "--interactive",
                command=("sh", "-c", "read first; echo got:$first; wc -l"), input="hello\nb\nc\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["got:hello", "2"]


def test_tty(pod: Pod) -> None:
    engine, name = pod
    rc, out = run_in_pty(engine.run_cmd(name, "--tty", command=(
        "sh", "-c", "tty; [ -t 1 ] && echo TTY1; exit 4")), env=engine.env)
    assert rc == 4, out
    assert "/dev/pts/0" in out and "TTY1" in out, out


def test_missing_executable_exits_127(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, command=("/nonexistent",))
    assert proc.returncode == 127, proc.stderr
    failed = [c for c in engine.calls.for_container(engine.container_id(name)) if c.rc]
    assert failed and failed[0].error, failed
    assert failed[0].error in proc.stderr, proc.stderr


def test_failing_create_shows_runtime_one_line_error(pod: Pod) -> None:
    engine, name = pod
    # Above fs.nr_open no process may set RLIMIT_NOFILE, and without CAP_SYS_RESOURCE not
    # above its own hard limit either: the runtime's setrlimit fails during create.
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    limit = max(nr_open, resource.getrlimit(resource.RLIMIT_NOFILE)[1]) + 1
    proc = prun(engine, name, "--ulimit", f"nofile={limit}:{limit}", command=("true",))
    assert proc.returncode != 0
    failed = [c for c in engine.calls.for_container(engine.container_id(name)) if c.rc]
    assert failed and failed[0].subcommand == "create", failed
    error = failed[0].error
    assert error and "\n" not in error
    assert error in proc.stderr, proc.stderr


def test_user(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, "--user", "1000:1000", "--group-add", "65534",
                command=("id",))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("uid=1000(app) gid=1000(app) groups="), proc.stdout
    assert "65534" in proc.stdout


def test_read_only_root(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, "--read-only",
                command=("sh", "-c", "touch /x 2>&1; echo rc=$?; touch /tmp/ok && echo tmp-ok"))
    assert "Read-only file system" in proc.stdout and "rc=1" in proc.stdout, proc.stdout
    assert "tmp-ok" in proc.stdout  # podman adds a tmpfs /tmp to read-only containers


def test_tmpfs_mount(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, "--tmpfs", "/scratch:size=1m",
                command=("sh", "-c", "grep ' /scratch ' /proc/mounts"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[2] == "tmpfs" and "size=1024k" in proc.stdout, proc.stdout


def test_bind_mount(pod: Pod, host_dir: Path) -> None:
    engine, name = pod
    proc = prun(engine, name, "--volume", f"{host_dir}:/data:ro",
                command=("sh", "-c", "cat /data/hello; touch /data/new 2>&1; echo rc=$?"))
    assert proc.stdout.splitlines()[0] == "from the host", proc.stdout
    assert "Read-only file system" in proc.stdout and "rc=1" in proc.stdout
    assert not (host_dir / "new").exists()


def test_env_hostname_workdir(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, "--env", "FOO=bar baz", "--hostname", "box1", "--workdir", "/tmp",
                command=("sh", "-c", 'echo "$FOO"; hostname; pwd'))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["bar baz", "box1", "/tmp"]


def test_cap_drop(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, "--cap-drop", "CHOWN",
                command=("sh", "-c", "cat /proc/self/status; chown 1 /tmp 2>&1; echo rc=$?"))
    caps = cap_eff(proc.stdout)
    assert not caps & (1 << CAP_CHOWN), hex(caps)
    assert caps & (1 << 5), hex(caps)  # CAP_KILL, from the default set, is still there
    assert "rc=1" in proc.stdout


def test_privileged(pod: Pod) -> None:
    engine, name = pod
    proc = prun(engine, name, "--privileged",
                command=("sh", "-c", "cat /proc/self/status; ls /dev; readlink /dev/ptmx"))
    assert proc.returncode == 0, proc.stderr
    assert cap_eff(proc.stdout) & (1 << CAP_SYS_ADMIN)
    assert "kmsg" in proc.stdout.split()
    # podman lists the host's /dev/ptmx among the devices: it stays the container's pts/ptmx, as runc leaves it
    assert proc.stdout.splitlines()[-1] == "pts/ptmx"


def test_detached_then_exec(pod: Pod) -> None:
    engine, name = pod
    cid, _ = start_detached(engine, name)
    proc = engine("exec", name, "sh", "-c", "exit 5")
    assert proc.returncode == 5, proc.stderr
    proc = engine("exec", "--user", "1000", "--env", "FOO=bar", "--workdir", "/tmp", name,
                  "sh", "-c", 'id -u; echo "$FOO"; pwd')
    assert proc.stdout.splitlines() == ["1000", "bar", "/tmp"], proc.stderr
    rc, out = run_in_pty(engine.cmd("exec", "--tty", name, "sh", "-c", "tty; exit 3"),
                         env=engine.env)
    assert rc == 3 and "/dev/pts/" in out, out
    execs = [c for c in engine.calls.for_container(cid) if c.subcommand == "exec"]
    assert len(execs) == 3 and all("--process" in c.argv for c in execs), execs
    assert "--console-socket" in execs[2].argv and execs[2].caller == "conmon"


def test_top_and_stats(pod: Pod) -> None:
    engine, name = pod
    start_detached(engine, name, "--memory", "64m")
    proc = engine("top", name, "pid", "args")
    assert proc.returncode == 0, proc.stderr
    assert "sleep 1000" in proc.stdout, proc.stdout
    proc = engine("stats", "--no-stream", "--format", "json", name)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats[0]["name"] == name, stats
    assert stats[0]["mem_usage"].endswith(" / 67.11MB"), stats  # the 64 MiB limit


def test_pause_unpause(pod: Pod) -> None:
    engine, name = pod
    cid, _ = start_detached(engine, name)
    freezer = CGROUP_ROOT / "freezer" / engine.cgroup(cid).strip("/") / "freezer.state"
    assert engine("pause", name).returncode == 0
    assert engine.inspect(name, "{{.State.Status}}") == "paused"
    assert freezer.read_text().strip() == "FROZEN"
    assert engine("unpause", name).returncode == 0
    assert engine.inspect(name, "{{.State.Status}}") == "running"
    assert freezer.read_text().strip() == "THAWED"
    subs = engine.calls.subcommands(cid)
    assert "pause" in subs and "resume" in subs, subs


def test_update_resources(pod: Pod) -> None:
    engine, name = pod
    cid, _ = start_detached(engine, name, "--memory", "64m")
    rel = engine.cgroup(cid).strip("/")
    proc = engine("update", "--memory", "96m", "--cpus", "1", name)
    assert proc.returncode == 0, proc.stderr
    assert (CGROUP_ROOT / "memory" / rel / "memory.limit_in_bytes").read_text().strip() == str(
        96 << 20)
    assert (CGROUP_ROOT / "cpu" / rel / "cpu.cfs_quota_us").read_text().strip() == "100000"
    updates = [c for c in engine.calls.for_container(cid) if c.subcommand == "update"]
    assert updates and any(a.startswith("--resources") for a in updates[0].argv), updates


def test_kill_with_signal(pod: Pod) -> None:
    engine, name = pod
    cid, _ = start_detached(engine, name, command=(
        "sh", "-c", 'trap "exit 42" USR1; while :; do sleep 0.1; done'))
    assert engine("kill", "--signal", "USR1", name).returncode == 0
    proc = engine("wait", name)
    assert proc.stdout.strip() == "42", proc
    kills = [c.argv[-2:] for c in engine.calls.for_container(cid) if c.subcommand == "kill"]
    assert [cid, "10"] in kills, kills


def test_stop_escalates_to_sigkill(pod: Pod) -> None:
    engine, name = pod
    cid, pid = start_detached(engine, name, command=(
        "sh", "-c", 'trap "" TERM; while :; do sleep 0.1; done'))
    proc = engine("stop", "--time", "1", name)
    assert proc.returncode == 0, proc.stderr
    assert engine.inspect(name, "{{.State.ExitCode}}") == "137"
    assert not pid_alive(pid)
    kills = [c.argv[-1] for c in engine.calls.for_container(cid) if c.subcommand == "kill"]
    assert kills[:2] == ["15", "9"], kills


def test_rm_force_running(pod: Pod) -> None:
    engine, name = pod
    cid, pid = start_detached(engine, name)
    proc = engine("rm", "--force", "--time", "0", name)
    assert proc.returncode == 0, proc.stderr
    assert wait_for(lambda: not pid_alive(pid))
    assert engine.leftovers(name, cid) == []


def test_resource_limits_in_host_cgroups(pod: Pod) -> None:
    engine, name = pod
    cid, pid = start_detached(engine, name, "--memory", "48m", "--cpus", "0.5",
                              "--cpu-shares", "512", "--pids-limit", "50")
    rel = engine.cgroup(cid).strip("/")
    read = lambda ctrl, f: (CGROUP_ROOT / ctrl / rel / f).read_text().strip()  # noqa: E731
    assert read("memory", "memory.limit_in_bytes") == str(48 << 20)
    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "cpu.shares") == "512"
    assert read("pids", "pids.max") == "50"
    for ctrl in ("memory", "cpu", "pids", "freezer"):
        assert str(pid) in read(ctrl, "cgroup.procs").split(), ctrl


def test_nothing_left_after_lifecycle(pod: Pod) -> None:
    engine, name = pod
    cid, pid = start_detached(engine, name, "--memory", "32m")
    assert engine("exec", name, "true").returncode == 0
    assert engine("stop", "--time", "0", name).returncode == 0
    assert engine("rm", name).returncode == 0
    assert not pid_alive(pid)
    assert engine.leftovers(name, cid) == []


def test_runtime_by_path_without_json_logs(pod: Pod) -> None:
    # `--runtime /path` to a runtime podman does not know: conmon passes no --log, so the
    # runtime's error must come out on its stderr to reach podman's message.
    engine, name = pod
    flags = ("--name", name, "--network", "none", "--cgroup-parent", engine.cgroup_parent)
    proc = engine("--runtime", str(engine.wrapper), "run", *flags, IMAGE, "/nonexistent")
    assert proc.returncode == 127, proc.stderr
    assert "/nonexistent" in proc.stderr, proc.stderr
    create = [c for c in engine.calls.for_container(engine.container_id(name))
              if c.subcommand == "create"]
    assert create and "--log" not in create[0].argv and create[0].rc, create
    proc = engine("--runtime", str(engine.wrapper), "run", "--rm", *flags[2:], IMAGE, "echo", "hi")
    assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr


def test_init_runs_catatonit_as_pid1(pod: Pod) -> None:
    # --init bind-mounts the host's catatonit (Debian's package) into the container and
    # runs it as pid 1 with the command as its child.
    engine, name = pod
    catatonit = Path("/usr/libexec/podman/catatonit")
    assert catatonit.exists(), "catatonit not installed: run hack/engines-setup.sh"
    cid, pid = start_detached(engine, name, "--init", command=("sleep", "1000"))
    exe, host = Path(f"/proc/{pid}/exe").stat(), catatonit.stat()
    assert (exe.st_dev, exe.st_ino) == (host.st_dev, host.st_ino), "pid 1 is not catatonit"
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    cmdlines = [Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0")[:2] for c in children]
    assert cmdlines == [[b"sleep", b"1000"]], cmdlines
    proc = engine("exec", name, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert proc.stdout.startswith("/run/podman-init -- sleep 1000"), proc
    # catatonit forwards the stop signal to its child and exits with the child's status.
    assert engine("stop", "--time", "5", name).returncode == 0
    assert engine.inspect(name, "{{.State.ExitCode}}") == str(128 + 15)
    assert not pid_alive(pid)
    create = [c for c in engine.calls.for_container(cid) if c.subcommand == "create"]
    assert create and create[0].rc == 0, create


def test_init_then_rm(pod: Pod) -> None:
    # `podman init` has the runtime create the container and stops there; `podman rm`
    # of that never-started container must remove it (issue 27), as with runc and crun.
    engine, name = pod
    proc = engine("create", "--name", name, "--network", "none", "--cgroup-parent", engine.cgroup_parent,
                  IMAGE, "sleep", "1000")
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip()
    assert engine("init", name).returncode == 0
    assert engine.inspect(name, "{{.State.Status}}") == "initialized"
    pid = int(engine.inspect(name, "{{.State.Pid}}"))
    assert pid_alive(pid)
    subs = engine.calls.subcommands(cid)
    assert "create" in subs and "start" not in subs, subs
    proc = engine("rm", name)
    assert proc.returncode == 0, proc.stderr
    assert wait_for(lambda: not pid_alive(pid))
    assert "delete" in engine.calls.subcommands(cid)
    assert engine.leftovers(name, cid) == []
