"""Engine lane fixtures: a private containerd and a private podman, both driving the
runtime under test (ENGINE_RUNTIME; default .venv/bin/pyrunc if installed, else runc)
through a wrapper that records every runtime call.

Run as root: python3 -m pytest tests/engines -q   (hack/engines-setup.sh installs the engines)
"""
from __future__ import annotations

import glob
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri_client import report as cri_report
from engine_drivers import TOKEN, Containerd, CriContainerd, CriPod, Podman
from engine_helpers import (IMAGE, REPO, Call, CallLog, normalize, require, run,
                            remove_cgroups, runtime_under_test, unmount_under, write_wrapper)

# Directories the engines create outside their configured roots; removed again at the
# end of the session when this session created them and they are empty.
STRAY_DIRS = [Path("/run/containerd/s"), Path("/run/containerd"),
              Path("/run/containers/networks"), Path("/run/containers"),
              Path("/var/lib/cni/results"), Path("/var/lib/cni")]
# Sockets/dirs the shim and conmon make for consoles, exec specs and the shim's own
# socket; they stay behind when the runtime fails or a shim has to be killed. Those this
# session created are removed at the end.
STRAY_FILES = ["/tmp/conmon-term.*", "/tmp/pty[0-9]*", "/tmp/runc-process[0-9]*",
               "/run/containerd/s/*"]
# engine -> (its recorded runtime calls, path/id replacements for the report); filled
# when the engine fixture ends, before the session dir holding the logs is removed.
_RECORDED: dict[str, tuple[list[Call], dict[str, str]]] = {}
_CRI_REPORT: list[str] = []  # the CRI calls made and what each returned


@pytest.fixture(scope="session")
def runtime() -> str:
    path = require(runtime_under_test())
    proc = run([path, "--version"])
    if proc.returncode != 0:
        pytest.fail(f"{path} --version failed: {proc.stderr.strip()}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path_factory: that one keeps old runs around.
    stray = [d for d in STRAY_DIRS if not d.exists()]
    files_before = _stray_files()
    path = Path(tempfile.mkdtemp(prefix="pyrunc-engines-"))
    path.chmod(0o755)  # container processes running as non-root must reach bind sources
    yield path
    unmount_under(str(path))
    shutil.rmtree(path, ignore_errors=True)
    # The engines are stopped by now (they depend on this fixture).
    for p in _stray_files() - files_before:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    for d in stray:
        try:
            d.rmdir()
        except OSError:
            pass


def _stray_files() -> set[Path]:
    return {Path(p) for pattern in STRAY_FILES for p in glob.glob(pattern)}


@pytest.fixture(scope="session")
def images(session_dir: Path) -> Path:
    if os.environ.get("ENGINE_IMAGES"):  # built beforehand (hack/test-systemd.sh: not under emulation)
        return Path(os.environ["ENGINE_IMAGES"])
    out = session_dir / "image"
    proc = run(["sh", str(REPO / "hack" / "mkimage.sh"), str(out)])
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def unpacked_rootfs(session_dir: Path, images: Path) -> Path:
    """The busybox rootfs as a host directory, for specs that name their root directly."""
    root = session_dir / "rootfs"
    root.mkdir()
    proc = run(["tar", "-xf", str(images / "busybox-rootfs.tar"), "-C", str(root)])
    assert proc.returncode == 0, proc.stderr
    return root


def _wrapper(session_dir: Path, runtime: str, engine: str) -> tuple[Path, CallLog]:
    log = session_dir / f"{engine}-runtime-calls.log"
    wrapper = session_dir / f"{engine}-runtime"
    write_wrapper(wrapper, runtime, log)
    return wrapper, CallLog(log)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host directory with a file in it, to bind-mount into containers."""
    path = Path(tempfile.mkdtemp(prefix="pyrunc-engines-bind-"))
    path.chmod(0o755)
    (path / "hello").write_text("from the host\n")
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="session")
def containerd(session_dir: Path, runtime: str, images: Path) -> Iterator[Containerd]:
    require("ctr")
    require("containerd-shim-runc-v2")
    base = session_dir / "containerd"
    base.mkdir()
    wrapper, calls = _wrapper(session_dir, runtime, "containerd")
    engine = Containerd(base, runtime, wrapper, calls)
    try:
        engine.start()
        proc = engine.ctr("image", "import", str(images / "busybox-oci.tar"))
        assert proc.returncode == 0, proc.stderr
        yield engine
    finally:
        left = engine.stop()
        _RECORDED["containerd"] = (calls.calls(), {str(base): "<containerd>",
                                                   engine.namespace: "<ns>"})
    assert not left, f"containerd session left behind: {left}"


@pytest.fixture
def ctd(containerd: Containerd) -> Iterator[tuple[Containerd, str]]:
    """A fresh container id; afterwards the container is force-removed and checked gone."""
    cid = f"t{secrets.token_hex(5)}"
    yield containerd, cid
    containerd.remove(cid)
    left = containerd.leftovers(cid)
    assert not left, f"leftovers after {cid}: {left}"


@pytest.fixture(scope="session")
def cri(session_dir: Path, runtime: str, images: Path) -> Iterator[CriContainerd]:
    """containerd with its CRI plugin, a `pyrunc` runtime handler and CNI pod networks."""
    yield from _cri_engine(session_dir, runtime, images, "cri", systemd=False)


@pytest.fixture(scope="session")
def cri_systemd(session_dir: Path, runtime: str, images: Path) -> Iterator[CriContainerd]:
    """The same with SystemdCgroup = true (needs systemd as PID 1)."""
    yield from _cri_engine(session_dir, runtime, images, "cri-systemd", systemd=True)


def _cri_engine(session_dir: Path, runtime: str, images: Path, name: str, *,
                systemd: bool) -> Iterator[CriContainerd]:
    require("containerd-shim-runc-v2")
    for plugin in ("bridge", "host-local", "loopback"):
        require(f"/usr/lib/cni/{plugin}")
    base = session_dir / name
    base.mkdir()
    wrapper, calls = _wrapper(session_dir, runtime, name)
    engine = CriContainerd(base, runtime, wrapper, calls, session_dir / f"{name}-stubs", systemd=systemd)
    try:
        engine.start()
        engine.import_images(images)
        yield engine
    finally:
        left = engine.stop()
        net = engine.subnet.rsplit(".", 1)[0] + "."  # 10.a.b. of the pods' addresses
        replacements = {str(base): f"<{name}>", engine.cgroup_root: "<parent>", net: "<net>.",
                        TOKEN: "<token>"}
        _RECORDED[f"containerd CRI{' (systemd)' if systemd else ''}"] = (calls.calls(), replacements)
        if engine.client is not None and not systemd:
            _CRI_REPORT[:] = cri_report(engine.client.calls, replacements)
    assert not left, f"containerd CRI session left behind: {left}"


@pytest.fixture
def cri_pods(cri: CriContainerd) -> Iterator[list[CriPod]]:
    """Pods a test runs (append them); afterwards each is removed and checked gone."""
    pods: list[CriPod] = []
    yield pods
    left: list[str] = []
    for pod in pods:
        try:
            cri.remove_pod(pod.id)
        except Exception as exc:  # noqa: BLE001 - still check and clean the others
            left.append(f"removing {pod.id}: {exc}")
        left += cri.pod_leftovers(pod)
        remove_cgroups(pod.cgroup_parent)  # the pod's cgroup, as the kubelet removes it
    assert not left, f"leftovers after the test's pods: {left}"


@pytest.fixture(scope="session")
def podman(session_dir: Path, runtime: str, images: Path) -> Iterator[Podman]:
    yield from _podman_engine(session_dir, runtime, images, "podman", driver="vfs")


@pytest.fixture(scope="session")
def podman_overlay(session_dir: Path, runtime: str, images: Path) -> Iterator[Podman]:
    """podman on native overlay storage (its default as root), for image builds."""
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read().split():
            pytest.skip("the kernel has no overlay filesystem (modprobe overlay)")
    yield from _podman_engine(session_dir, runtime, images, "podman-overlay", driver="overlay")


def _podman_engine(session_dir: Path, runtime: str, images: Path, name: str, *,
                   driver: str) -> Iterator[Podman]:
    require("podman")
    require("conmon")
    base = session_dir / name
    base.mkdir()
    wrapper, calls = _wrapper(session_dir, runtime, name)
    engine = Podman(base, runtime, wrapper, calls, driver=driver)
    try:
        proc = engine("import", str(images / "busybox-rootfs.tar"), IMAGE)
        assert proc.returncode == 0, proc.stderr
        yield engine
    finally:
        left = engine.stop()
        _RECORDED[name] = (calls.calls(), {str(base): f"<{name}>",
                                           engine.cgroup_parent: "<parent>"})
    assert not left, f"{name} session left behind: {left}"


@pytest.fixture
def pod(podman: Podman) -> Iterator[tuple[Podman, str]]:
    """A fresh container name; afterwards the container is force-removed and checked gone."""
    name = f"t{secrets.token_hex(5)}"
    yield podman, name
    cid = podman.container_id(name)
    podman("rm", "--force", "--time", "0", name)
    left = podman.leftovers(name, cid)
    assert not left, f"leftovers after {name}: {left}"


# ---------------------------------------------------------------- report

def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    """List the distinct runtime calls each engine made (ENGINE_CALLS_REPORT: also to a file)."""
    if not _RECORDED:
        return
    lines = [f"runtime under test: {runtime_under_test()}"]
    for engine, (calls, replacements) in _RECORDED.items():
        seen: list[str] = []
        for call in calls:
            line = normalize(f"{call.caller} {' '.join(call.argv)}", replacements)
            if call.rc:
                line += f"  => exit {call.rc}"
            if line not in seen:
                seen.append(line)
        lines.append(f"--- {engine}: {len(calls)} calls, {len(seen)} distinct")
        lines += seen
    if _CRI_REPORT:
        lines.append("--- CRI calls made (runtime.v1) and what each returned")
        lines += _CRI_REPORT
    terminalreporter.write_sep("-", "runtime calls recorded by the engine lane")
    for line in lines:
        terminalreporter.write_line(line)
    out = os.environ.get("ENGINE_CALLS_REPORT")
    if out:
        Path(out).write_text("\n".join(lines) + "\n")
