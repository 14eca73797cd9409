"""Harness for the runtime-agnostic conformance suite.

Every test gets a `Harness` (fixture `h`) that owns a temp dir, a private
`--root` state dir for the runtime under test, and a cleanup stack run even
when the test fails: containers are force-deleted, leftover mounts under the
temp dir are lazily unmounted, our cgroup dirs are removed, helper processes
are killed.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest

BUSYBOX = "/usr/bin/busybox"
CGROUP_ROOT = Path("/sys/fs/cgroup")
HOOK = Path(__file__).with_name("hookrec.py")
SPEC_DIR = Path("/work/shared/reference/oci-runtime-spec-v1.3.0")
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runtime", default="runc", help="runtime binary under test (runc CLI)")
    parser.addoption("--req-report", default=None,
                     help="write {test id: {reqs, outcome}} as JSON to this file")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "req(*ids): requirement ids from requirements.json covered")
    config._req_results = {}  # type: ignore[attr-defined]


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:  # after -k/-m deselection
        reqs = sorted({r for m in item.iter_markers("req") for r in m.args})
        session.config._req_results[item.nodeid] = {"reqs": reqs,  # type: ignore
                                                     "outcome": None}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    results = _CONFIG[0]._req_results if _CONFIG else {}  # type: ignore[attr-defined]
    rec = results.get(report.nodeid)
    if rec is None:
        return
    if report.when == "call" or report.failed or report.skipped:
        if rec["outcome"] in (None, "passed"):
            rec["outcome"] = "error" if report.failed and report.when != "call" else report.outcome
            if report.skipped and isinstance(report.longrepr, tuple):
                rec["reason"] = report.longrepr[2].removeprefix("Skipped: ")


_CONFIG: list[pytest.Config] = []


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG[:] = [session.config]


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--req-report")
    if path:
        Path(path).write_text(json.dumps(session.config._req_results, indent=1))  # type: ignore


@pytest.fixture(scope="session")
def runtime_bin(pytestconfig: pytest.Config) -> str:
    binary = pytestconfig.getoption("--runtime")
    found = shutil.which(binary)
    if found is None:
        pytest.exit(f"runtime binary not found: {binary}", returncode=2)
    return found


@pytest.fixture(scope="session")
def applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def base_config(args: list[str], cgroup: str) -> dict[str, Any]:
    """A minimal Linux config, written here rather than taken from `runc spec`."""
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "conf",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin:/sbin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in
                             ("bounding", "effective", "permitted", "inheritable", "ambient")},
            "noNewPrivileges": False,
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "cgroupsPath": cgroup,
            "maskedPaths": [],
            "readonlyPaths": [],
        },
    }


class Bundle:
    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.rootfs = path / "rootfs"
        self.config = config

    @property
    def process(self) -> dict[str, Any]:
        return self.config["process"]

    @property
    def linux(self) -> dict[str, Any]:
        return self.config["linux"]

    def ns(self, kind: str) -> dict[str, Any] | None:
        return next((n for n in self.linux["namespaces"] if n["type"] == kind), None)

    def drop_ns(self, kind: str) -> None:
        self.linux["namespaces"] = [n for n in self.linux["namespaces"] if n["type"] != kind]

    def add_hook(self, stage: str, hook: dict[str, Any]) -> None:
        self.config.setdefault("hooks", {}).setdefault(stage, []).append(hook)

    def write(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=1))


class Harness:
    def __init__(self, runtime: str, applets: list[str]) -> None:
        self.runtime = runtime
        self.applets = applets
        self.tmp = Path(tempfile.mkdtemp(prefix="conf-"))
        self.tmp.chmod(0o755)  # user-namespaced container roots must traverse it
        self.root = self.tmp / "state"
        self.root.mkdir()
        self.ids: list[str] = []
        self.cgroups: list[str] = []
        self.cleanups: list[Callable[[], None]] = []
        self.counter = 0

    # -- naming ----------------------------------------------------------
    def new_id(self) -> str:
        cid = f"conf-{secrets.token_hex(6)}"
        self.ids.append(cid)
        return cid

    def new_cgroup(self) -> str:
        path = f"/conf-{secrets.token_hex(6)}"
        self.cgroups.append(path)
        return path

    # -- bundles ---------------------------------------------------------
    def bundle(self, args: list[str] | None = None) -> Bundle:
        self.counter += 1
        path = self.tmp / f"bundle{self.counter}"
        rootfs = path / "rootfs"
        for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "root", "mnt"):
            (rootfs / d).mkdir(parents=True)
        (rootfs / "tmp").chmod(0o1777)
        try:
            os.link(BUSYBOX, rootfs / "bin/busybox")
        except OSError:
            shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
        for name in self.applets:
            if name != "busybox":
                (rootfs / "bin" / name).symlink_to("busybox")
        (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                           "user:x:1000:1000::/tmp:/bin/sh\n")
        (rootfs / "etc/group").write_text("root:x:0:\nuser:x:1000:\nextra:x:2000:user\n")
        return Bundle(path, base_config(args or ["true"], self.new_cgroup()))

    # -- runtime CLI -----------------------------------------------------
    def rt(self, *args: str, check: bool = True, timeout: float = 30,
           **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run a runtime command whose stdio is not inherited by a container."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.run([self.runtime, "--root", str(self.root), *args],
                              capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.runtime} {' '.join(args)} failed rc={proc.returncode}: "
                                 f"{proc.stderr.strip()}")
        return proc

    def create(self, b: Bundle, cid: str | None = None, check: bool = True,
               extra: tuple[str, ...] = ()) -> tuple[str, subprocess.CompletedProcess[str]]:
        """`create`; the container's stdio goes to files so the call does not block."""
        cid = cid or self.new_id()
        b.write()
        tag = secrets.token_hex(4)  # ids under test may contain '/'
        out, err = self.tmp / f"create-{tag}.out", self.tmp / f"create-{tag}.err"
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.run([self.runtime, "--root", str(self.root), "create",
                                   "--bundle", str(b.path), *extra, cid],
                                  stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, timeout=30)
        proc = subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(),
                                           err.read_text())
        if check and proc.returncode != 0:
            raise AssertionError(f"create {cid} failed rc={proc.returncode}: {proc.stderr.strip()}")
        return cid, proc

    def expect_rejected(self, b: Bundle, mutate: Callable[[Bundle], None]) -> None:
        """Negative test with a positive control: `b` must create fine, and fail to create
        (leaving no container behind) once `mutate` has broken it."""
        cid, proc = self.create(b, check=False)
        assert proc.returncode == 0, f"control create failed: {proc.stderr.strip()}"
        self.rt("delete", "--force", cid)
        mutate(b)
        cid, proc = self.create(b, check=False)
        assert proc.returncode != 0, "create accepted the invalid configuration"
        assert not self.exists(cid)

    def run(self, b: Bundle, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Foreground `run`; returns the container process's output and exit code."""
        cid = self.new_id()
        b.write()
        proc = subprocess.run([self.runtime, "--root", str(self.root), "run",
                               "--bundle", str(b.path), cid],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"run failed rc={proc.returncode}: "
                                 f"out={proc.stdout!r} err={proc.stderr.strip()!r}")
        return proc

    def sh(self, b: Bundle, script: str, check: bool = True) -> str:
        """Run `sh -c script` as the container process and return its stdout."""
        b.process["args"] = ["sh", "-c", script]
        return self.run(b, check=check).stdout

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self.rt("state", cid).stdout)

    def pid(self, cid: str) -> int:
        return int(self.state(cid)["pid"])

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == status or time.monotonic() > deadline:
                assert st["status"] == status, f"{cid} stuck in {st['status']}, wanted {status}"
                return st
            time.sleep(0.02)

    def exists(self, cid: str) -> bool:
        return self.rt("state", cid, check=False).returncode == 0

    # -- host-side helpers -------------------------------------------------
    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """A helper process on the host, killed at cleanup."""
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.cleanups.append(lambda: (p.kill(), p.wait()))
        return p

    def ns_holder(self, *kinds: str) -> subprocess.Popen[bytes]:
        """A host process sitting in fresh namespaces of `kinds` (proc names: net, uts, ipc)."""
        flag = {"net": "--net", "uts": "--uts", "ipc": "--ipc"}
        p = self.spawn(["unshare", *(flag[k] for k in kinds), "sleep", "60"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if all(ns_inode(p.pid, k) != ns_inode("self", k) for k in kinds) and \
                        os.readlink(f"/proc/{p.pid}/exe").endswith("sleep"):
                    return p
            except OSError:
                pass
            time.sleep(0.01)
        raise AssertionError("namespace holder did not start")

    def hook(self, name: str, log: Path, rc: int = 0, sleep: float = 0) -> dict[str, Any]:
        """A host hook (python) recording its state/namespaces as one JSON line in `log`."""
        return {"path": shutil.which("python3") or "/usr/bin/python3",
                "args": ["python3", str(HOOK), name, str(log), str(rc), str(sleep)]}

    def later(self, fn: Callable[[], None]) -> None:
        self.cleanups.append(fn)

    # -- cleanup -----------------------------------------------------------
    def cleanup(self) -> None:
        for cid in reversed(self.ids):
            with contextlib.suppress(Exception):
                self.rt("delete", "--force", cid, check=False, timeout=20)
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        self._umount_under(self.tmp)
        for path in self.cgroups:
            remove_cgroup(path)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _umount_under(top: Path) -> None:
        prefix = str(top) + "/"
        points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)


def cgroup_dirs(path: str) -> list[Path]:
    """Every existing directory for cgroup `path` in each mounted hierarchy."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # pure v2: one hierarchy, at the top
        d = CGROUP_ROOT / path.lstrip("/")
        return [d] if d.is_dir() else []
    seen, out = set(), []
    for hier in sorted(CGROUP_ROOT.iterdir()):
        real = hier.resolve()
        if real in seen or not hier.is_dir() or hier.is_symlink():
            continue
        seen.add(real)
        d = hier / path.lstrip("/")
        if d.is_dir():
            out.append(d)
    return out


def remove_cgroup(path: str) -> None:
    for d in cgroup_dirs(path):
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                          reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()


def ns_inode(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def status_field(pid: int | str, field: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(field)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and status_field(pid, "State")[0] != "Z"


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.fixture
def h(runtime_bin: str, applets: list[str]) -> Any:
    harness = Harness(runtime_bin, applets)
    try:
        yield harness
    finally:
        harness.cleanup()


def mountinfo_entry(text: str, point: str) -> dict[str, Any] | None:
    """Parse the last mountinfo line for mount point `point` (top of the stack)."""
    found = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == point:
            sep = fields.index("-")
            found = {"opts": set(fields[5].split(",")), "optional": fields[6:sep],
                     "fstype": fields[sep + 1], "super": set(fields[sep + 3].split(","))}
    return found
