"""A rootfs with hostile symlinks (issue 3 items 1-4): everything resolves inside the rootfs or is
refused, and the host is unchanged — its files (temp targets standing in for host paths) and its
mount table, compared before and after."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from test_terminal import ConsoleReceiver, read_until_eof

UP = "../" * 12  # more ".." than the rootfs is deep: a relative symlink trying to climb out


def host_snapshot(tmp_path: Path, *trees: Path) -> tuple:
    """Host mounts at /etc, /dev or under tmp_path, and every file below ``trees`` with its content.

    (Not a listing of the host's /etc: apt may change it meanwhile; the symlink test checks its own name.)"""
    with open("/proc/self/mountinfo") as f:
        points = sorted(line.split()[4] for line in f
                        if line.split()[4] in ("/etc", "/dev") or line.split()[4].startswith(str(tmp_path)))
    files = []
    for tree in trees:
        for dirpath, dirnames, filenames in os.walk(tree):
            for name in sorted(dirnames + filenames):
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                body = Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(p) if \
                    stat.S_ISLNK(st.st_mode) else b""
                files.append((p, st.st_mode, st.st_rdev, body))
    return points, files


def host_dir(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "sentinel").write_text("host data")
    return d


def inside(bundle, host_path: Path) -> Path:
    """The rootfs path a resolution of ``host_path`` inside the container lands on."""
    return bundle.rootfs / str(host_path).lstrip("/")


def without_dev_tmpfs(bundle) -> None:
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev"]


@pytest.mark.parametrize("dev_tmpfs", [True, False])
@pytest.mark.parametrize("contained", [True, False])
def test_dev_symlink_to_host_dir(pyrunc, bundle, cid, tmp_path, dev_tmpfs, contained):
    hostdev = host_dir(tmp_path, "hostdev")
    os.rmdir(bundle.rootfs / "dev") if (bundle.rootfs / "dev").exists() else None
    os.symlink(str(hostdev), bundle.rootfs / "dev")
    if contained:
        inside(bundle, hostdev).mkdir(parents=True)
    if not dev_tmpfs:
        without_dev_tmpfs(bundle)
    bundle.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    before = host_snapshot(tmp_path, hostdev)
    bundle.sh("stat -c '%t:%T' /dev/null /dev/fuse; readlink /dev/ptmx")
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False)
    # Whether the link's target exists inside the rootfs or not (then it is made there, as runc does).
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1:3", "a:e5", "pts/ptmx"]
    assert inside(bundle, hostdev).is_dir()
    if not dev_tmpfs:  # the nodes went into the rootfs copy of the path, not the host's
        assert stat.S_ISCHR(os.lstat(inside(bundle, hostdev) / "fuse").st_mode)
    assert host_snapshot(tmp_path, hostdev) == before
    assert sorted(os.listdir(hostdev)) == ["sentinel"]


def test_mount_targets_symlinked_out_of_the_rootfs(pyrunc, bundle, cid, tmp_path):
    hostetc = host_dir(tmp_path, "hostetc")
    src = host_dir(tmp_path, "src")
    os.symlink("/etc", bundle.rootfs / "etc_link")  # absolute: the host's real /etc, as text
    os.symlink(UP + str(hostetc).lstrip("/"), bundle.rootfs / "rel_link")  # climbing out with ".."
    inside(bundle, hostetc).mkdir(parents=True)
    unique = f"pyrunc-{cid}"
    assert not os.path.exists(f"/etc/{unique}")
    bundle.config["mounts"] += [
        {"destination": "/etc_link", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/etc_link/{unique}/deeper", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/rel_link", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
    ]
    before = host_snapshot(tmp_path, hostetc, src)
    bundle.sh("cat /rel_link/sentinel; echo; cat /proc/self/mountinfo")
    out = pyrunc("run", "-b", str(bundle.path), cid).stdout
    assert out.startswith("host data\n")
    points = {line.split()[4]: line.split() for line in out.splitlines() if " - " in line}
    assert points["/etc"][-3] == "tmpfs" and f"/etc/{unique}/deeper" in points
    assert str(hostetc) in points and points[str(hostetc)][3] == str(src)  # the bind, inside the rootfs
    assert host_snapshot(tmp_path, hostetc, src) == before
    assert not os.path.exists(f"/etc/{unique}")


@pytest.mark.parametrize("copy_in_rootfs", [True, False])
def test_dev_null_symlinked_to_a_host_file_before_masking(pyrunc, bundle, cid, tmp_path, copy_in_rootfs):
    secret = tmp_path / "hostsecret"
    secret.write_text("SECRET")
    devsrc = host_dir(tmp_path, "devsrc")
    os.symlink(str(secret), devsrc / "null")
    if copy_in_rootfs:  # the symlink then resolves to a regular file inside the rootfs
        inside(bundle, secret).parent.mkdir(parents=True)
        inside(bundle, secret).write_text("rootfs copy")
    for m in bundle.config["mounts"]:
        if m["destination"] == "/dev":
            m.update(type="bind", source=str(devsrc), options=["rbind"])
    bundle.config["linux"].update(maskedPaths=["/etc/passwd"], readonlyPaths=[])
    before = host_snapshot(tmp_path, secret.parent / "hostsecret")
    bundle.args("true")
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "\n" not in err and "linux.maskedPaths[0] /etc/passwd" in err, err
    assert ("not the null device" if copy_in_rootfs else "ENOENT") in err, err
    assert secret.read_text() == "SECRET" and host_snapshot(tmp_path, secret.parent / "hostsecret") == before


def run_with_console(pyrunc, bundle, cid, tmp_path, while_created=lambda pid: None) -> list[str]:
    """create with a console socket, call ``while_created(pid)``, start; the pty's output lines."""
    bundle.config["process"]["terminal"] = True
    bundle.write()
    receiver = ConsoleReceiver(str(tmp_path / "console.sock"))
    try:
        pyrunc("create", "-b", str(bundle.path), "--console-socket", receiver.path, cid)
        master = receiver.master()
        while_created(pyrunc.state(cid)["pid"])
        pyrunc("start", cid)
        return read_until_eof(master).split("\n")
    finally:
        receiver.close()


def test_dev_console_symlinked_to_a_host_file(pyrunc, bundle, cid, tmp_path):
    hostconsole = tmp_path / "hostconsole"
    hostconsole.write_text("HOST")
    without_dev_tmpfs(bundle)
    (bundle.rootfs / "dev").mkdir(exist_ok=True)
    os.symlink(str(hostconsole), bundle.rootfs / "dev" / "console")
    bundle.sh("stat -c '%F %t' /dev/console; grep ' /dev/console ' /proc/self/mountinfo | cut -d' ' -f4,9")
    before = host_snapshot(tmp_path, hostconsole)
    out = run_with_console(pyrunc, bundle, cid, tmp_path)
    assert out[:2] == ["character special file 88", "/0 devpts"], out
    assert hostconsole.read_text() == "HOST" and host_snapshot(tmp_path, hostconsole) == before
    # the symlink was replaced by a plain file inside the rootfs (the bind target)
    assert stat.S_ISREG(os.lstat(bundle.rootfs / "dev" / "console").st_mode)


def test_dev_pts_symlink_climbing_out(pyrunc, bundle, cid, tmp_path):
    hostpts = host_dir(tmp_path, "hostpts")
    without_dev_tmpfs(bundle)
    (bundle.rootfs / "dev").mkdir(exist_ok=True)
    os.symlink(UP + str(hostpts).lstrip("/"), bundle.rootfs / "dev" / "pts")
    inside(bundle, hostpts).mkdir(parents=True)
    bundle.sh("tty; grep devpts /proc/self/mountinfo | cut -d' ' -f5")
    before = host_snapshot(tmp_path, hostpts)

    def devpts_inside(pid: int) -> None:  # the init's pty is on the devpts mounted inside the rootfs
        devpts = [line.split() for line in open(f"/proc/{pid}/mountinfo") if " - devpts " in line]
        assert [d[4] for d in devpts if d[3] == "/"] == [str(hostpts)]

    out = run_with_console(pyrunc, bundle, cid, tmp_path, devpts_inside)
    assert out[0] == f"{hostpts}/0" and out[1] == str(hostpts), out
    assert host_snapshot(tmp_path, hostpts) == before
    assert sorted(os.listdir(hostpts)) == ["sentinel"]
