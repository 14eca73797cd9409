"""Rootless pyrunc (issue 9): an unprivileged user made by the test runs containers.

The venv's interpreter lives under /root (not searchable by other users), so
the user runs pyrunc with the system python3.11 on the same sources and
site-packages (the C extensions are abi3).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, wait_for

SYSTEM_PYTHON = "/usr/bin/python3.11"
SUBID_FILES = ("/etc/subuid", "/etc/subgid")


def _pids_of(uid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    out.append(int(entry))
            except FileNotFoundError:
                pass
    return out


@contextlib.contextmanager
def _subid_lock() -> Iterator[None]:
    """Other test runs may edit /etc/sub[ug]id at the same time: take turns."""
    with open("/run/lock/pyrunc-tests-subid.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _drop_lines(name: str) -> None:
    for p in SUBID_FILES:
        lines = Path(p).read_bytes().splitlines(keepends=True)
        Path(p).write_bytes(b"".join(ln for ln in lines if not ln.startswith(f"{name}:".encode())))


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    """A temporary user, with no subordinate ids unless a test gives it some."""
    name = f"pyrt{uuid.uuid4().hex[:6]}"
    with _subid_lock():
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                        "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        uid = pwd.getpwnam(name).pw_uid
        for pid in _pids_of(uid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not _pids_of(uid), what="the test user's processes to exit")
        with _subid_lock():
            subprocess.run(["userdel", name], check=True)
            _drop_lines(name)


@pytest.fixture
def subids(user) -> Iterator[int]:
    """65536 subordinate ids at 300000 for one test; the files are restored byte for byte."""
    line = f"{user.pw_name}:300000:65536\n".encode()
    with _subid_lock():
        saved = {p: Path(p).read_bytes() for p in SUBID_FILES}
        for p, data in saved.items():
            Path(p).write_bytes(data + (b"\n" if data and not data.endswith(b"\n") else b"") + line)
    try:
        yield 300000
    finally:
        with _subid_lock():
            for p, data in saved.items():
                now = Path(p).read_bytes()
                if now.endswith(line) and now[:-len(line)].rstrip(b"\n") == data.rstrip(b"\n"):
                    Path(p).write_bytes(data)
            _drop_lines(user.pw_name)  # someone else edited the file meanwhile: take out only ours


class AsUser:
    """Runs our pyrunc as the test user, with its own XDG_RUNTIME_DIR and a bundle it owns."""

    def __init__(self, pw: pwd.struct_passwd, top: Path, busybox_rootfs: Path) -> None:
        self.pw, self.top = pw, top
        self.xdg, self.bundle = top / "xdg", top / "bundle"
        self.xdg.mkdir(mode=0o700)
        self.bundle.mkdir()
        shutil.copytree(busybox_rootfs, self.bundle / "rootfs", symlinks=True)  # a copy: we chown it
        self.exe = top / "pyrunc"
        site = sysconfig.get_paths()["purelib"]
        self.exe.write_text(f"#!{SYSTEM_PYTHON} -IS\nimport sys\n"
                            f"sys.path[:0] = [{str(REPO / 'runtime')!r}, {site!r}]\n"
                            "from pyrunc.cli import main\nsys.exit(main())\n")
        self.exe.chmod(0o755)
        for dirpath, dirnames, filenames in os.walk(top):
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), pw.pw_uid, pw.pw_gid)
        os.chown(top, pw.pw_uid, pw.pw_gid)
        self.ids: set[str] = set()

    @property
    def root(self) -> Path:
        return self.xdg / "pyrunc"  # the default --root of an unprivileged user

    def __call__(self, *args: str, check: bool = True, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess:
        if args and args[0] in ("create", "run"):
            self.ids.add(args[-1])
        env = {"PATH": path, "XDG_RUNTIME_DIR": str(self.xdg), "HOME": str(self.top)}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run([str(self.exe), *args], cwd=self.bundle, env=env, user=self.pw.pw_uid,
                                  group=self.pw.pw_gid, extra_groups=[], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, text=True, timeout=60)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read(), err.read()
        if check and proc.returncode:
            raise AssertionError(f"pyrunc {' '.join(args)} as {self.pw.pw_name} exited {proc.returncode}: "
                                 f"{proc.stderr.strip()}")
        return proc

    def config(self) -> dict:
        return json.loads((self.bundle / "config.json").read_text())

    def write(self, config: dict) -> None:
        (self.bundle / "config.json").write_text(json.dumps(config))

    def spec(self, *args: str) -> dict:
        """`spec --rootless`, with only the process changed: no terminal in tests."""
        self("spec", "--rootless")
        config = self.config()
        config["process"].update(terminal=False, args=list(args))
        self.write(config)
        return config


@pytest.fixture
def rl(user, busybox_rootfs) -> Iterator[AsUser]:
    top = Path(tempfile.mkdtemp(prefix="pyrunc-rootless-"))
    os.chmod(top, 0o755)
    try:
        u = AsUser(user, top, busybox_rootfs)
        yield u
        for cid in u.ids:
            u("delete", "--force", cid, check=False)
        wait_for(lambda: not _pids_of(user.pw_uid), what="the user's processes to exit")
        assert not u.root.exists() or os.listdir(u.root) == [], os.listdir(u.root)
    finally:
        shutil.rmtree(top)


def _cid() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_spec_rootless_then_lifecycle(rl):
    uid = rl.pw.pw_uid
    rl.spec("sleep", "1000")
    cid = _cid()
    rl("create", cid)
    state = json.loads(rl("state", cid).stdout)
    assert state["status"] == "created"
    assert (rl.root / cid / "state.json").stat().st_uid == uid
    pid = state["pid"]
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", str(uid), "1"]
    assert Path(f"/proc/{pid}/gid_map").read_text().split() == ["0", str(rl.pw.pw_gid), "1"]
    assert Path(f"/proc/{pid}/setgroups").read_text().strip() == "deny"
    status = dict(ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines())
    assert status["Uid"].split() == [str(uid)] * 4
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")  # spec --rootless: no netns

    rl("start", cid)
    assert json.loads(rl("state", cid).stdout)["status"] == "running"
    out = rl("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert out.stdout.split() == ["0", "0", str(uid), "1"]
    rl("kill", cid, "KILL")
    wait_for(lambda: json.loads(rl("state", cid).stdout)["status"] == "stopped", what="stopped")
    rl("delete", cid)
    assert not (rl.root / cid).exists()
    assert rl("state", cid, check=False).returncode != 0


def test_rootless_run_foreground(rl):
    rl.spec("sh", "-c", "id -u; cat /proc/self/uid_map; hostname; test -d /sys/kernel")
    out = rl("run", _cid())
    lines = out.stdout.split("\n")
    assert lines[0] == "0" and lines[1].split() == ["0", str(rl.pw.pw_uid), "1"] and lines[2] == "pyrunc"


def test_rootless_ranges_through_newuidmap(rl, subids):
    config = rl.spec("sh", "-c", "cat /proc/self/uid_map /proc/self/setgroups; chown 1000:1000 /tmp/f")
    for key, own in (("uidMappings", rl.pw.pw_uid), ("gidMappings", rl.pw.pw_gid)):
        config["linux"][key] = [{"containerID": 0, "hostID": own, "size": 1},
                                {"containerID": 1, "hostID": subids, "size": 65536}]
    config["root"]["readonly"] = False
    for caps in config["process"]["capabilities"].values():
        caps.append("CAP_CHOWN")
    rl.write(config)
    f = rl.bundle / "rootfs" / "tmp" / "f"
    f.touch()
    os.chown(f, rl.pw.pw_uid, rl.pw.pw_gid)
    out = rl("run", _cid()).stdout.split()
    assert out == ["0", str(rl.pw.pw_uid), "1", "1", str(subids), "65536", "allow"]
    assert (f.stat().st_uid, f.stat().st_gid) == (subids + 999, subids + 999)


def test_rootless_uses_only_delegated_cgroups(rl):
    """A pids cgroup delegated to the user (chowned) carries the limit; the rest is skipped, said with --debug."""
    deleg = Path("/sys/fs/cgroup/pids") / f"pyrunc-deleg-{uuid.uuid4().hex[:8]}"
    deleg.mkdir()
    cid = _cid()
    try:
        for p in [deleg, *deleg.iterdir()]:
            os.chown(p, rl.pw.pw_uid, rl.pw.pw_gid)
        config = rl.spec("sh", "-c", "exec sleep 1000")
        config["linux"]["cgroupsPath"] = f"/{deleg.name}/ctr"
        config["linux"]["resources"] = {"pids": {"limit": 10}}
        rl.write(config)
        out = rl("--debug", "run", "-d", cid)
        assert "cgroups not delegated, not used: /sys/fs/cgroup/cpu/" in out.stderr
        pid = json.loads(rl("state", cid).stdout)["pid"]
        mine = [ln.split(":", 2) for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
        assert [path for _, ctrls, path in mine if ctrls == "pids"] == [f"/{deleg.name}/ctr"]
        assert [path for _, ctrls, path in mine if ctrls == "memory"] != [f"/{deleg.name}/ctr"]
        assert (deleg / "ctr" / "pids.max").read_text().strip() == "10"
        rl("delete", "--force", cid)
        assert not (deleg / "ctr").exists()
    finally:
        rl("delete", "--force", cid, check=False)  # first: a cgroup with processes cannot go
        if (deleg / "ctr").exists():
            (deleg / "ctr").rmdir()
        deleg.rmdir()


def test_rootless_leaves_a_foreign_cgroup_alone(rl):
    """A root-owned cgroup that happens to have the container's name is neither joined nor removed."""
    cid = _cid()
    foreign = Path("/sys/fs/cgroup/freezer") / cid
    foreign.mkdir()
    try:
        rl.spec("sh", "-c", "exec sleep 1000")
        rl("run", "-d", cid)
        pid = json.loads(rl("state", cid).stdout)["pid"]
        assert f"freezer:/{cid}" not in Path(f"/proc/{pid}/cgroup").read_text()
        assert json.loads(rl("state", cid).stdout)["status"] == "running"
        rl("delete", "--force", cid)
        assert foreign.is_dir()
    finally:
        rl("delete", "--force", cid, check=False)
        foreign.rmdir()


def _refused(rl, path: str = "/usr/bin:/bin") -> str:
    cid = _cid()
    out = rl("run", cid, check=False, path=path)
    assert out.returncode != 0
    assert not (rl.root / cid).exists()
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _ranges(rl) -> None:
    config = rl.config()
    for key in ("uidMappings", "gidMappings"):
        config["linux"][key] = [{"containerID": 0, "hostID": 400000, "size": 65536}]
    rl.write(config)


def test_preflight_no_subuid_range(rl):
    rl.spec("true")
    _ranges(rl)
    err = _refused(rl)
    assert "linux.uidMappings[0]" in err and f"not delegated to {rl.pw.pw_name} in /etc/subuid" in err, err
    assert "usermod --add-subuids" in err


def test_preflight_newuidmap_missing(rl):
    rl.spec("true")
    _ranges(rl)
    err = _refused(rl, path="/nonexistent")
    assert "newuidmap, which is not installed" in err and "uidmap package" in err, err


def test_preflight_limits_without_delegated_cgroup(rl):
    config = rl.spec("true")
    config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    rl.write(config)
    err = _refused(rl)
    assert "linux.resources.memory" in err and "not delegated" in err, err


def test_preflight_needs_a_user_namespace(rl):
    config = rl.spec("true")
    linux = config["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "user"]
    del linux["uidMappings"], linux["gidMappings"]
    rl.write(config)
    assert "needs a user namespace" in _refused(rl)


def test_preflight_idmap_needs_root(rl):
    config = rl.spec("true")
    i = len(config["mounts"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]})
    rl.write(config)
    assert f"mounts[{i}]: an idmapped mount needs root" in _refused(rl)


def test_rootless_flag():
    from pyrunc import rootless

    assert os.geteuid() == 0 and rootless.wanted("auto") is False  # the tests run as root in the host's userns
    assert rootless.wanted("true") is True and rootless.wanted("false") is False


def _with_userns_disabled(pyrunc, *args: str) -> subprocess.CompletedProcess:
    """pyrunc in a user namespace whose user.max_user_namespaces is 0 (the sysctl is per namespace)."""
    script = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'
    return subprocess.run(["unshare", "-Ur", "sh", "-c", script, "sh", *pyrunc.cmd(*args)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def test_preflight_userns_disabled(pyrunc, bundle, cid):
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    one = [{"containerID": 0, "hostID": 0, "size": 1}]
    bundle.config["linux"]["uidMappings"], bundle.config["linux"]["gidMappings"] = one, one
    bundle.write()
    out = _with_userns_disabled(pyrunc, "create", "--bundle", str(bundle.path), cid)
    assert out.returncode != 0
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0)" in err
    assert "sysctl -w user.max_user_namespaces=" in err
    assert pyrunc.list_ids() == []


def test_preflight_idmap_without_userns_support(pyrunc, bundle, cid):
    i = len(bundle.config["mounts"])
    one = [{"containerID": 0, "hostID": 1000, "size": 1}]
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": "/tmp",
                                    "options": ["bind", "idmap"], "uidMappings": one, "gidMappings": one})
    bundle.write()
    out = _with_userns_disabled(pyrunc, "create", "--bundle", str(bundle.path), cid)
    assert out.returncode != 0
    assert f"mounts[{i}]: user namespaces are disabled" in out.stderr and len(out.stderr.splitlines()) == 1
    assert pyrunc.list_ids() == []


def test_features_without_userns_has_no_idmap(pyrunc):
    out = _with_userns_disabled(pyrunc, "features")
    assert json.loads(out.stdout)["linux"]["mountExtensions"]["idmap"]["enabled"] is False


def test_bad_rootless_flag(rl):
    out = rl("--rootless", "maybe", "state", "x", check=False)
    assert out.returncode != 0 and "invalid --rootless 'maybe'" in out.stderr


def test_only_commands_with_state_need_a_state_root(rl):
    """Without XDG_RUNTIME_DIR an unprivileged user still gets `features`; `state` says what is missing."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(rl.top)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(rl.exe), *args], cwd=rl.bundle, env=env, user=rl.pw.pw_uid,
                              group=rl.pw.pw_gid, extra_groups=[], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)

    feats = run("features")
    assert feats.returncode == 0 and json.loads(feats.stdout)["ociVersionMax"] == "1.3.0", feats.stderr
    state = run("state", "nosuch")
    assert state.returncode != 0 and state.stderr.count("\n") == 1 and "XDG_RUNTIME_DIR" in state.stderr
