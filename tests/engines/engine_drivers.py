"""The engines as the lane runs them: a private containerd driven through ctr, another
with its CRI plugin driven through the kubelet's gRPC API, and podman with private
configuration and storage. All run the runtime under test through the recording wrapper
(engine_helpers.WRAPPER)."""
from __future__ import annotations

import ipaddress
import json
import os
import resource
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cri_client import CriClient, CriError
from engine_helpers import (CAP_SYS_RESOURCE, CGROUP_ROOT, IMAGE, TIMEOUT, CallLog, cap_eff,
                            cgroup_dirs, cgroup_pids, kill_pid, mounts_containing, mounts_under,
                            pid_alive, pids_with_cmdline, remove_cgroups, require, run,
                            runtime_list, unmount_under, wait_for)

if TYPE_CHECKING:
    from google.protobuf.message import Message

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
        self.cgroup_root = f"/{self.namespace}"  # every container's cgroup is below it
        self.runc_root = base / "runc-root"
        self.fifo_dir = base / "fifo"
        self.config = base / "config.toml"
        self.proc: subprocess.Popen[bytes] | None = None

    # The CRI plugin would open a TCP streaming listener and is not needed by ctr; the
    # opt plugin would create /opt/containerd. Snapshotters that cannot work here are
    # disabled to keep the daemon from probing (modprobe) for them.
    DISABLED_PLUGINS = [
        "io.containerd.grpc.v1.cri",
        "io.containerd.internal.v1.opt",
        "io.containerd.internal.v1.tracing",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.zfs",
    ]

    def plugin_config(self) -> str:
        """Extra config sections (plugins' tables)."""
        return ""

    def write_config(self) -> None:
        b = self.base
        disabled = "".join(f'  "{p}",\n' for p in self.DISABLED_PLUGINS)
        self.config.write_text(f"""version = 2
root = "{b}/root"
state = "{b}/state"
disabled_plugins = [
{disabled}]

[grpc]
  address = "{self.sock}"
  tcp_address = ""

[ttrpc]
  address = "{self.sock}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
{self.plugin_config()}""")

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
        left += [f"pid {p} in cgroup" for p in cgroup_pids(self.cgroup_root)]
        left += [f"mount {m}" for m in mounts_under(str(self.base / "state"))]
        remove_cgroups(self.cgroup_root)
        unmount_under(str(self.base))
        return left


# ---------------------------------------------------------------- containerd's CRI

CNI_BIN = "/usr/lib/cni"  # Debian's containernetworking-plugins
CNI_RESULTS = Path("/var/lib/cni/results")  # libcni's cache: containerd 1.6 cannot move it
PAUSE_IMAGE = "localhost/pause:busybox"  # hack/mkimage.sh's pause-oci.tar


@dataclass
class CriPod:
    id: str
    config: dict           # the PodSandboxConfig, passed again to CreateContainer
    cgroup_parent: str
    pid: int               # the pause process
    netns: str             # the pod's network namespace file (under our state dir)
    ip: str
    containers: list[str] = field(default_factory=list)


class CriContainerd(Containerd):
    """containerd with its CRI plugin on, as a Kubernetes node runs it: the kubelet's gRPC
    API on the private socket, a runtime handler `pyrunc` (runc v2 shim, BinaryName = the
    recording wrapper, SystemdCgroup = false), the pause image built from busybox, and pod
    networks from Debian's CNI plugins (bridge + host-local + loopback) with a private conf
    dir, bridge and subnet. The default handler stays `runc` (Debian's, to compare with):
    pods ask for `pyrunc` by name, as a RuntimeClass makes the kubelet do. The CRI's
    streaming server (unused: ExecSync needs none) listens on 127.0.0.1 only; no TCP CRI
    service, no sysctl or iptables change."""

    DISABLED_PLUGINS = [p for p in Containerd.DISABLED_PLUGINS if p != "io.containerd.grpc.v1.cri"]

    def __init__(self, base: Path, runtime: str, wrapper: Path, calls: CallLog,
                 stubs: Path, *, systemd: bool = False) -> None:
        super().__init__(base, runtime, wrapper, calls)
        self.stubs = stubs  # where the CRI client's generated stubs go
        # SystemdCgroup = true: pods' parents are slices, each container a scope systemd makes
        # (tests/engines/test_systemd_engines.py, in hack/test-systemd.sh's guest)
        self.systemd = systemd
        self.namespace = "k8s.io"  # the CRI plugin's, inside our private containerd root
        self.cgroup_root = f"/pyrunc-cri-{TOKEN}"  # pods' cgroup parents go below it
        self.network = f"pyrunc-cri-{TOKEN}"
        self.bridge = f"prc{TOKEN}"
        self.subnet = free_subnet()
        self.cni_conf = base / "cni-conf"
        self.client: CriClient | None = None
        self.pod_ids: list[str] = []  # every sandbox this engine ran, for the cleanup

    def plugin_config(self) -> str:
        cri = '[plugins."io.containerd.grpc.v1.cri"'
        # Each handler: the runc v2 shim exec'ing BinaryName, its state under Root.
        handlers = "".join(f"""{cri}.containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
{cri}.containerd.runtimes.{name}.options]
  BinaryName = "{binary}"
  Root = "{root}"
  SystemdCgroup = {str(self.systemd).lower()}
""" for name, binary, root in (("pyrunc", self.wrapper, self.runc_root),
                               ("runc", "/usr/sbin/runc", self.base / "runc-root-runc")))
        return f"""
{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = {str(not may_lower_oom_score()).lower()}
{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{self.cni_conf}"
{cri}.containerd]
  snapshotter = "{os.environ.get("ENGINE_SNAPSHOTTER", "overlayfs")}"
  default_runtime_name = "runc"
{handlers}"""

    def start(self) -> None:
        self.cni_conf.mkdir()
        (self.cni_conf / "10-pyrunc-cri.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0",
            "name": self.network,
            "plugins": [{
                # No gateway on the bridge: the host gets no address or route into the pod
                # subnet and so can send nothing there; no masquerading (no iptables).
                "type": "bridge", "bridge": self.bridge, "isGateway": False, "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                         "dataDir": str(self.base / "cni-ipam")},
            }],
        }))
        super().start()
        self.client = CriClient(self.sock, self.stubs)

        def ready() -> bool:
            try:
                conditions = self.client("Status").status.conditions
            except CriError as err:
                if err.code == "UNIMPLEMENTED":  # the CRI plugin did not load
                    log = (self.base / "containerd.log").read_text().splitlines()
                    raise RuntimeError(" / ".join(line for line in log if "cri" in line)[-2000:])
                return False
            return {c.type: c.status for c in conditions} == {"RuntimeReady": True,
                                                                "NetworkReady": True}
        if not wait_for(ready, timeout=30):
            log = (self.base / "containerd.log").read_text()
            raise RuntimeError(f"CRI not ready: {log[-2000:]}")

    def import_images(self, images: Path) -> None:
        for tar, ref in (("busybox-oci.tar", IMAGE), ("pause-oci.tar", PAUSE_IMAGE)):
            proc = self.ctr("image", "import", str(images / tar))
            assert proc.returncode == 0, proc.stderr
            # The CRI learns of images from containerd's events: wait until it has it.
            assert wait_for(lambda: self.cri("ImageStatus", image={"image": ref}).HasField(
                "image")), ref

    @property
    def cri(self) -> CriClient:
        assert self.client is not None, "CRI client not started"
        return self.client

    # --- pods and containers, as the kubelet asks for them

    def run_pod(self, name: str, *, handler: str = "pyrunc", pid: str = "CONTAINER") -> CriPod:
        uid = secrets.token_hex(8)
        if self.systemd:  # as the kubelet's systemd driver names them; systemd makes slices
            parent = f"pyruncri{TOKEN}-pod{uid}.slice"
        else:
            parent = f"{self.cgroup_root}/pod{uid}"
            # The kubelet makes the pod's cgroup in every hierarchy before it runs the pod, and
            # removes it after; the runtime makes each container's below it.
            for top in CGROUP_ROOT.iterdir():
                if (top / "cgroup.procs").exists() and not top.is_symlink():
                    (top / parent.strip("/")).mkdir(parents=True, exist_ok=True)
        logs = self.base / "pods" / uid
        logs.mkdir(parents=True)
        config = {
            "metadata": {"name": name, "uid": uid, "namespace": "pyrunc-e2e"},
            "hostname": name,
            "log_directory": str(logs),
            "labels": {"pyrunc-e2e": TOKEN},
            "linux": {"cgroup_parent": parent, "security_context": {
                "namespace_options": {"network": "POD", "pid": pid, "ipc": "POD"}}},
        }
        pod_id = self.cri("RunPodSandbox", config=config, runtime_handler=handler).pod_sandbox_id
        self.pod_ids.append(pod_id)
        status = self.cri("PodSandboxStatus", pod_sandbox_id=pod_id, verbose=True)
        info = json.loads(status.info["info"])
        netns = next(ns.get("path", "") for ns in info["runtimeSpec"]["linux"]["namespaces"]
                     if ns["type"] == "network")
        return CriPod(pod_id, config, parent, info["pid"], netns, status.status.network.ip)

    def create_container(self, pod: CriPod, name: str, command: list[str], *,
                         resources: dict | None = None, pid: str = "CONTAINER") -> str:
        config = {
            "metadata": {"name": name},
            "image": {"image": IMAGE},
            "command": command,
            "log_path": f"{name}.log",
            "linux": {"resources": resources or {}, "security_context": {
                "namespace_options": {"network": "POD", "pid": pid, "ipc": "POD"}}},
        }
        cid = self.cri("CreateContainer", pod_sandbox_id=pod.id, config=config,
                       sandbox_config=pod.config).container_id
        pod.containers.append(cid)
        return cid

    def container_status(self, cid: str) -> tuple[Message, dict]:
        """ContainerStatus (verbose): the status and the runtime's info (pid, spec)."""
        resp = self.cri("ContainerStatus", container_id=cid, verbose=True)
        return resp.status, json.loads(resp.info.get("info", "{}"))

    def wait_exited(self, cid: str, timeout: float = 30) -> Message:
        state = self.cri.pb.CONTAINER_EXITED
        assert wait_for(lambda: self.container_status(cid)[0].state == state, timeout=timeout), \
            self.container_status(cid)[0]
        return self.container_status(cid)[0]

    def remove_pod(self, pod_id: str) -> None:
        """Stop and remove a pod and its containers, whatever state they are in (idempotent:
        the CRI's stop and remove calls must accept what is already gone)."""
        if not self.cri("ListPodSandbox", filter={"id": pod_id}).items:
            return  # removed already (by the test)
        try:
            listed = self.cri("ListContainers", filter={"pod_sandbox_id": pod_id}).containers
            for c in listed:
                self.cri("StopContainer", container_id=c.id, timeout=0)
                self.cri("RemoveContainer", container_id=c.id)
            self.cri("StopPodSandbox", pod_sandbox_id=pod_id)
            self.cri("RemovePodSandbox", pod_sandbox_id=pod_id)
        except CriError as err:
            if err.code != "NOT_FOUND":
                raise

    def pod_leftovers(self, pod: CriPod) -> list[str]:
        found = []
        if any(p.id == pod.id for p in self.cri("ListPodSandbox").items):
            found.append(f"sandbox {pod.id} still listed")
        found += [f"container {c.id} still listed" for c in self.cri(
            "ListContainers", filter={"pod_sandbox_id": pod.id}).containers]
        for cid in [pod.id, *pod.containers]:
            found += [f"mount {m}" for m in mounts_containing(cid)]
            found += [f"cgroup {d}" for d in cgroup_dirs(f"{pod.cgroup_parent}/{cid}")]
        if pid_alive(pod.pid):
            found.append(f"pause pid {pod.pid} alive")
        if pod.netns and os.path.exists(pod.netns):
            found.append(f"netns {pod.netns}")
        ports = run(["ip", "-o", "link", "show", "master", self.bridge]).stdout.strip()
        if ports:
            found.append(f"bridge ports left: {ports}")
        found += [f"CNI result {p}" for p in CNI_RESULTS.glob(f"*-{pod.id}-*")]
        # One shim per pod, named by the sandbox id; it exits once the pod is removed.
        shim = f"-id {pod.id} -address {self.sock}"
        wait_for(lambda: not pids_with_cmdline(shim), timeout=10, interval=0.05)
        found += [f"shim pid {p}" for p in pids_with_cmdline(shim)]
        known = runtime_list(self.runtime, str(self.runc_root / self.namespace))
        found += [f"runtime still lists {c}" for c in [pod.id, *pod.containers] if c in known]
        return found

    def stop(self) -> list[str]:
        left = []
        if self.client is not None and self.proc is not None and self.proc.poll() is None:
            try:
                pods = self.cri("ListPodSandbox").items
            except CriError:
                pods = []
            left += [f"pod {p.id}" for p in pods]
            for p in pods:
                try:
                    self.remove_pod(p.id)
                except CriError:
                    pass
            self.client.close()
        left += super().stop()
        # The bridge plugin makes the bridge on the first pod and never removes it.
        if run(["ip", "link", "show", self.bridge]).returncode == 0:
            run(["ip", "link", "delete", self.bridge])
        for pod_id in self.pod_ids:
            for p in CNI_RESULTS.glob(f"*-{pod_id}-*"):
                left.append(f"CNI result {p}")
                p.unlink()
        return left


def may_lower_oom_score() -> bool:
    """The kubelet gives pause and guaranteed pods negative oom_score_adj values; lowering
    one needs CAP_SYS_RESOURCE, which some sandboxed hosts (this lane's VM) withhold even
    from root, and then every runtime fails the create. restrict_oom_score_adj makes the
    CRI clamp them to containerd's own score instead, as on such nodes."""
    return bool(cap_eff(Path("/proc/self/status").read_text()) & (1 << CAP_SYS_RESOURCE))


def free_subnet() -> str:
    """A /24 in 10.200.0.0-10.249.255.0 that no address or route of the host overlaps."""
    used = []
    for cmd in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        for word in run(cmd).stdout.split():
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                pass
    while True:
        a, b = 200 + secrets.randbelow(50), secrets.randbelow(256)
        net = ipaddress.ip_network(f"10.{a}.{b}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return str(net)


# ---------------------------------------------------------------- podman

class Podman:
    """podman with private containers.conf/storage.conf naming a `pyrunc` runtime; its
    storage driver is vfs (any host) unless told (overlay: podman's default, as root)."""

    def __init__(self, base: Path, runtime: str, wrapper: Path, calls: CallLog, *,
                 driver: str = "vfs") -> None:
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
driver = "{driver}"
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
        # podman keeps the image's layers; container mounts are all that may be left.
        left += [f"mount {m}" for m in mounts_under(str(self.base))]
        remove_cgroups(self.cgroup_parent)
        unmount_under(str(self.base))
        return left
