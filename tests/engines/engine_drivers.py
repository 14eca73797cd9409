"""The two engines as the lane runs them: a private containerd driven through ctr, and
podman with private configuration and storage. Both run the runtime under test through
the recording wrapper (engine_helpers.WRAPPER)."""
from __future__ import annotations

import os
import resource
import secrets
import signal
import subprocess
import time
from pathlib import Path

from engine_helpers import (IMAGE, TIMEOUT, CallLog, cgroup_dirs, cgroup_pids, kill_pid,
                            mounts_containing, mounts_under, pids_with_cmdline, remove_cgroups,
                            require, run, runtime_list, unmount_under, wait_for)

TOKEN = secrets.token_hex(4)  # names this session's cgroup parents and containerd namespace


# ---------------------------------------------------------------- containerd

class Containerd:
    """A containerd on a private socket/root/state, no TCP, no metrics, no CRI."""

    def __init__(self, base: Path, runtime: str, wrapper: Path, calls: CallLog) -> None:
        self.base = base
        self.runtime = runtime
        self.wrapper = wrapper
        self.calls = calls
        self.sock = str(base / "containerd.sock")
        self.namespace = f"pyrunc-e2e-{TOKEN}"
        self.runc_root = base / "runc-root"
        self.fifo_dir = base / "fifo"
        self.config = base / "config.toml"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        b = self.base
        # The CRI plugin would open a TCP streaming listener and is not needed by ctr; the
        # opt plugin would create /opt/containerd. Snapshotters that cannot work here are
        # disabled to keep the daemon from probing (modprobe) for them.
        self.config.write_text(f"""version = 2
root = "{b}/root"
state = "{b}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{self.sock}"
  tcp_address = ""

[ttrpc]
  address = "{self.sock}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
""")

    def start(self) -> None:
        self.runc_root.mkdir()
        self.fifo_dir.mkdir()
        self.write_config()
        log = open(self.base / "containerd.log", "wb")
        self.proc = subprocess.Popen([require("containerd"), "--config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        if not wait_for(lambda: self.ctr("version").returncode == 0, timeout=30):
            raise RuntimeError("containerd did not come up: "
                               + (self.base / "containerd.log").read_text()[-2000:])

    def ctr(self, *args: str, input: str | None = None,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run(self.ctr_cmd(*args), input=input, timeout=timeout)

    def ctr_cmd(self, *args: str) -> list[str]:
        return ["ctr", "--address", self.sock, "--namespace", self.namespace, *args]

    def run_cmd(self, cid: str, *flags: str, command: tuple[str, ...] = ()) -> list[str]:
        """`ctr run` with the runtime under test as the runc v2 shim's binary."""
        return self.ctr_cmd("run", "--runc-binary", str(self.wrapper), "--runc-root",
                            str(self.runc_root), "--fifo-dir", str(self.fifo_dir),
                            *flags, IMAGE, cid, *command)

    def exec_cmd(self, cid: str, exec_id: str, *flags: str,
                 command: tuple[str, ...] = ()) -> list[str]:
        return self.ctr_cmd("task", "exec", "--fifo-dir", str(self.fifo_dir),
                            "--exec-id", exec_id, *flags, cid, *command)

    def cgroup(self, cid: str) -> str:
        return f"/{self.namespace}/{cid}"  # ctr's default cgroupsPath

    def task_pid(self, cid: str) -> int:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise AssertionError(f"task {cid} not listed")

    def task_status(self, cid: str) -> str:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[2]
        return ""

    def remove(self, cid: str) -> None:
        """Force-remove a container and its task, whatever state it is in."""
        if self.task_status(cid):
            self.ctr("task", "kill", "--all", "--signal", "SIGKILL", cid)
            wait_for(lambda: self.task_status(cid) in ("STOPPED", ""), timeout=10)
            self.ctr("task", "delete", "--force", cid)
        if cid in self.ctr("container", "ls", "-q").stdout.split():
            self.ctr("container", "delete", cid)

    def leftovers(self, cid: str) -> list[str]:
        found = []
        if self.task_status(cid):
            found.append(f"task {cid} still listed")
        if cid in self.ctr("container", "ls", "-q").stdout.split():
            found.append(f"container {cid} still listed")
        found += [f"mount {m}" for m in mounts_containing(f"/{cid}/")]
        found += [f"cgroup {d}" for d in cgroup_dirs(self.cgroup(cid))]
        # The shim exits on its own once its last task is deleted: give it a moment.
        deadline = time.monotonic() + 10
        while (shims := pids_with_cmdline(f"-id {cid} -address {self.sock}")) and time.monotonic() < deadline:
            time.sleep(0.05)
        found += [f"shim pid {p}" for p in shims]
        if cid in runtime_list(self.runtime, str(self.runc_root / self.namespace)):
            found.append(f"runtime still lists {cid}")
        return found

    def stop(self) -> list[str]:
        """Stop the daemon by its pid and clear what is left; return what had been left
        (shims, container processes, mounts), which the tests should never leave."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Shims outlive the daemon by design; end ours, then whatever they left.
        shims = pids_with_cmdline(f"-address {self.sock}")
        for pid in shims:
            kill_pid(pid)
        left = [f"shim pid {p}" for p in shims]
        left += [f"pid {p} in cgroup" for p in cgroup_pids(f"/{self.namespace}")]
        left += [f"mount {m}" for m in mounts_under(str(self.base / "state"))]
        remove_cgroups(f"/{self.namespace}")
        unmount_under(str(self.base))
        return left


# ---------------------------------------------------------------- podman

class Podman:
    """podman with private containers.conf/storage.conf naming a `pyrunc` runtime."""

    def __init__(self, base: Path, runtime: str, wrapper: Path, calls: CallLog) -> None:
        self.base = base
        self.runtime = runtime
        self.wrapper = wrapper
        self.calls = calls
        self.cgroup_parent = f"/pyrunc-e2e-{TOKEN}"
        conf = base / "containers.conf"
        storage = base / "storage.conf"
        # No CAP_SYS_RESOURCE here: podman's default rlimits for root (nofile 1048576 and
        # a high nproc) are above the host's hard limits and the runtime cannot set them.
        hard_nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
        hard_nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
        conf.write_text(f"""[containers]
default_ulimits = ["nofile={hard_nofile}:{hard_nofile}", "nproc={hard_nproc}:{hard_nproc}"]
netns = "none"

[network]
network_config_dir = "{base}/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
lock_type = "file"
runtime = "pyrunc"
runtime_supports_json = ["pyrunc"]
static_dir = "{base}/root/libpod"
tmp_dir = "{base}/tmp"
volume_path = "{base}/root/volumes"

[engine.runtimes]
pyrunc = ["{wrapper}"]
""")
        storage.write_text(f"""[storage]
driver = "vfs"
graphroot = "{base}/root"
runroot = "{base}/runroot"
""")
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf),
                    "CONTAINERS_STORAGE_CONF": str(storage), "TMPDIR": str(base / "tmpdir")}
        (base / "tmpdir").mkdir()

    def __call__(self, *args: str, input: str | None = None,
                 timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run(self.cmd(*args), env=self.env, input=input, timeout=timeout)

    def cmd(self, *args: str) -> list[str]:
        return ["podman", *args]

    def run_cmd(self, name: str, *flags: str, command: tuple[str, ...] = ()) -> list[str]:
        return self.cmd("run", "--name", name, "--network", "none",
                        "--cgroup-parent", self.cgroup_parent, *flags, IMAGE, *command)

    def container_id(self, name: str) -> str:
        proc = self("container", "inspect", "--format", "{{.Id}}", name)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def cgroup(self, cid: str) -> str:
        return f"{self.cgroup_parent}/libpod-{cid}"

    def inspect(self, name: str, fmt: str) -> str:
        proc = self("container", "inspect", "--format", fmt, name)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def leftovers(self, name: str, cid: str) -> list[str]:
        found = []
        if self("container", "exists", name).returncode == 0:
            found.append(f"container {name} still exists")
        if cid:
            found += [f"mount {m}" for m in mounts_containing(cid)]
            found += [f"cgroup {d}" for d in cgroup_dirs(self.cgroup(cid))]
            found += [f"conmon pid {p}" for p in pids_with_cmdline(f"--cid {cid}")]
            if cid in runtime_list(self.runtime, None):
                found.append(f"runtime still lists {cid}")
        return found

    def stop(self) -> list[str]:
        """Remove every container and clear what is left; return what had been left."""
        left = [f"container {c}" for c in self("ps", "--all", "--quiet").stdout.split()]
        self("rm", "--all", "--force", "--time", "0")
        conmons = pids_with_cmdline(str(self.base))  # conmon names its bundle under base
        for pid in conmons:
            kill_pid(pid)
        left += [f"conmon pid {p}" for p in conmons]
        left += [f"pid {p} in cgroup" for p in cgroup_pids(self.cgroup_parent)]
        # podman keeps the image's vfs layer; container mounts are all that may be left.
        left += [f"mount {m}" for m in mounts_under(str(self.base))]
        remove_cgroups(self.cgroup_parent)
        unmount_under(str(self.base))
        return left
