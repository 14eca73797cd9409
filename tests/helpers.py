"""Test helpers: run the pyrunc binary, build bundles, find leaks. Imported by conftest and tests."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pyrunc_binary() -> str:
    """The installed console script next to the interpreter running the tests."""
    cand = Path(sys.executable).parent / "pyrunc"
    if cand.exists():
        return str(cand)
    found = shutil.which("pyrunc")
    if not found:
        raise RuntimeError("pyrunc is not installed: run hack/test.sh (it installs it into .venv)")
    return found


class Runtime:
    """Runs ``pyrunc --root <state> ARGS``; returns CompletedProcess with text output."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary, self.root = binary, root
        self.ids: set[str] = set()  # every id given to create/run, for the leak check

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def __call__(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60,
                 **kw) -> subprocess.CompletedProcess:
        """Output goes through files, not pipes: a created or detached container keeps
        its stdio open long after pyrunc exits, and a pipe would never reach EOF.
        A session of its own: a runtime that signals its caller's process group (the
        bug of issue 13) then hits only itself, never the test runner."""
        kw.setdefault("stdin", None if input is not None else subprocess.DEVNULL)
        # A test runner started by a Type=notify unit must not make every start wait for READY=1.
        kw.setdefault("env", {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"})
        kw.setdefault("start_new_session", True)
        if args and args[0] in ("create", "run"):
            self.ids.add(args[-1])
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(self.cmd(*args), stdout=out, stderr=err, text=True, input=input,
                                  timeout=timeout, **kw)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read(), err.read()
        if check and proc.returncode != 0:
            raise AssertionError(f"pyrunc {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)

    def list_ids(self) -> list[str]:
        try:
            return sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []


class Bundle:
    """An OCI bundle with a busybox rootfs; edit ``config`` then call ``write()``."""

    def __init__(self, path: Path, config: dict) -> None:
        self.path, self.config = path, config

    @classmethod
    def make(cls, path: Path, busybox_rootfs: Path) -> Bundle:
        rootfs = path / "rootfs"
        _copy_rootfs(busybox_rootfs, rootfs)
        from pyrunc.cli.spec import default_config

        config = copy.deepcopy(default_config(rootless=False))
        config["process"]["terminal"] = False
        config["process"]["args"] = ["true"]
        config["root"]["readonly"] = False  # tests write marker files into the rootfs
        b = cls(path, config)
        b.write()
        return b

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def args(self, *argv: str) -> Bundle:
        self.config["process"]["args"] = list(argv)
        return self.write()

    def sh(self, script: str) -> Bundle:
        return self.args("sh", "-c", script)

    def write(self) -> Bundle:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=1))
        return self


def _copy_rootfs(src: Path, dst: Path) -> None:
    """Copy the tree, hard-linking regular files (the 2 MB busybox binary)."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(dst / rel, os.stat(dirpath).st_mode & 0o7777)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            s, d = Path(dirpath) / name, dst / rel / name
            if s.is_symlink():
                os.symlink(os.readlink(s), d)
            else:
                shutil.copy2(s, d) if s.name in ("passwd", "group") else os.link(s, d)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def each_process(read: Callable[[str], object]) -> Iterator[tuple[int, object]]:
    """(pid, read("/proc/<pid>")) for every process, skipping those gone meanwhile."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                yield int(entry), read(f"/proc/{entry}")
            except OSError:
                continue


def processes_rooted_under(path: Path) -> list[int]:
    return [pid for pid, root in each_process(lambda d: os.readlink(f"{d}/root")) if root.startswith(str(path))]


def cgroups_named(names: set[str]) -> list[str]:
    """Cgroup directories with one of these names, on any hierarchy."""
    found = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(dirpath, d) for d in dirnames if d in names]
    return found


def leaks(rt: Runtime, tmp_path: Path) -> list[str]:
    found = [f"state {p}" for p in rt.list_ids()]
    found += [f"mount {m}" for m in mounts_under(tmp_path)]
    found += [f"process {p}" for p in processes_rooted_under(tmp_path)]
    found += [f"cgroup {d}" for d in cgroups_named(rt.ids)]
    return found


def wait_for(cond: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def ns_inode(pid: int | str, ns: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{ns}")


def census(root: Path) -> dict[str, set]:
    """Mounts; cgroup directories at each hierarchy's top and below the test's own cgroup
    (where a default container cgroup goes: others come and go on a live host); the
    state root; processes running pyrunc."""
    with open("/proc/self/mountinfo") as f:
        mounts = {" ".join(line.split()[:5]) for line in f}
    own = [line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()]
    cgroups = set()
    for top in Path("/sys/fs/cgroup").iterdir():
        cgroups |= {str(d) for d in top.iterdir() if d.is_dir()}
        for rel in own:
            below = top / rel.lstrip("/")
            if rel != "/" and below.is_dir():
                cgroups |= {d for d, _, _ in os.walk(below)}
    procs = {pid for pid, cmd in each_process(lambda d: Path(f"{d}/cmdline").read_bytes()) if b"pyrunc" in cmd}
    return {"mounts": mounts, "cgroups": cgroups, "processes": procs,
            "state": set(os.listdir(root)) if root.exists() else set()}
