"""Building the container's world from a real image's rootfs as runc does (issue 26 item 1):
dangling symlinks at mount destinations, special files there, read-only /dev and tmpfs,
tmpfs modes, listable masked directories, createContainer hooks' working directory.
Each test looks from inside the container and from the host (the rootfs, /proc/<pid>/root)."""
from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from helpers import wait_for
from test_hostile_rootfs import UP, host_snapshot
from test_mounts import mounts


def created(pyrunc, bundle, cid) -> int:
    pyrunc("create", "-b", str(bundle.path), cid)
    return pyrunc.state(cid)["pid"]


def test_dangling_symlinks_at_destinations_are_made_inside(pyrunc, bundle, cid, tmp_path):
    r = bundle.rootfs
    (r / "var").mkdir(exist_ok=True)
    (r / "etc" / "resolv.conf").symlink_to("../run/systemd/resolve/stub-resolv.conf")
    (r / "var" / "run").symlink_to("/run")
    outside = tmp_path / "outside"  # a relative link climbing out, and an absolute one at the host path
    (r / "climb").symlink_to(UP + str(outside).lstrip("/") + "/dir")
    (r / "abs").symlink_to(str(outside) + "/file")
    hostfile = tmp_path / "resolv"
    hostfile.write_text("nameserver 192.0.2.1\n")
    bundle.config["mounts"] += [
        {"destination": "/etc/resolv.conf", "type": "bind", "source": str(hostfile), "options": ["rbind", "ro"]},
        {"destination": "/var/run/lock/deeper", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/climb", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/abs", "type": "bind", "source": str(hostfile), "options": ["bind"]},
    ]
    before = host_snapshot(tmp_path)
    bundle.sh("cat /etc/resolv.conf /abs; cat /proc/self/mountinfo")
    out = pyrunc("run", "-b", str(bundle.path), cid).stdout
    assert out.startswith("nameserver 192.0.2.1\n" * 2)
    got = mounts(out)
    inner = "/" + str(outside).lstrip("/")
    for point in ("/run/systemd/resolve/stub-resolv.conf", "/run/lock/deeper", f"{inner}/dir", f"{inner}/file"):
        assert point in got, point
    assert got["/run/lock/deeper"].fstype == "tmpfs"
    # From the host: the targets were made in the rootfs (an empty file for the file bind), never outside it.
    made = r / "run" / "systemd" / "resolve" / "stub-resolv.conf"
    assert stat.S_ISREG(made.lstat().st_mode) and made.stat().st_size == 0
    assert (r / "run" / "lock" / "deeper").is_dir()
    assert (r / inner.lstrip("/") / "dir").is_dir() and (r / inner.lstrip("/") / "file").is_file()
    assert not outside.exists()
    assert host_snapshot(tmp_path) == before


def test_image_dev_with_dangling_links(pyrunc, bundle, cid):
    """No /dev tmpfs: the image's /dev is used, its shm, pts and mqueue links lead nowhere yet."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev"]
    dev = bundle.rootfs / "dev"
    dev.mkdir(exist_ok=True)
    (dev / "shm").symlink_to("/run/shm")
    (dev / "pts").symlink_to("../run/pts")
    (dev / "mqueue").symlink_to("/run/mq")
    bundle.sh("cat /proc/self/mountinfo")
    got = mounts(pyrunc("run", "-b", str(bundle.path), cid).stdout)
    assert (got["/run/shm"].fstype, got["/run/pts"].fstype, got["/run/mq"].fstype) == ("tmpfs", "devpts", "mqueue")
    assert all((bundle.rootfs / "run" / d).is_dir() for d in ("shm", "pts", "mq"))


def _special_files(rootfs: Path) -> None:
    os.mkfifo(rootfs / "fifo")
    os.mkfifo(rootfs / "fifodir")
    os.mknod(rootfs / "node", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(rootfs / "sock"))


def test_special_files_at_destinations_never_block(pyrunc, bundle, cid, tmp_path):
    _special_files(bundle.rootfs)
    src = tmp_path / "src"
    src.write_text("bound\n")
    bundle.config["mounts"] += [{"destination": f"/{n}", "type": "bind", "source": str(src), "options": ["bind"]}
                                for n in ("fifo", "node", "sock")]
    bundle.sh("cat /fifo /node /sock")
    assert pyrunc("run", "-b", str(bundle.path), cid, timeout=30).stdout == "bound\n" * 3
    assert stat.S_ISFIFO((bundle.rootfs / "fifo").lstat().st_mode)  # the host's view: untouched
    # A directory mount on a FIFO: refused at once (mount's ENOTDIR), not a hang.
    bundle.config["mounts"].append({"destination": "/fifodir", "type": "tmpfs", "source": "tmpfs"})
    bundle.write()
    proc = pyrunc("run", "-b", str(bundle.path), cid, check=False, timeout=30)
    err = proc.stderr.strip()
    assert proc.returncode != 0 and "\n" not in err and "/fifodir" in err and "ENOTDIR" in err, err


def test_read_only_dev_and_tmpfs_are_filled_first(pyrunc, bundle, cid):
    for m in bundle.config["mounts"]:
        if m["destination"] == "/dev":
            m["options"].append("ro")
    bundle.config["mounts"] += [{"destination": "/ro", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]},
                                {"destination": "/ro/sub", "type": "tmpfs", "source": "tmpfs"}]
    bundle.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    bundle.sh("sleep 5")
    pid = created(pyrunc, bundle, cid)
    got = mounts(Path(f"/proc/{pid}/mountinfo").read_text())
    for point in ("/dev", "/ro"):
        assert "ro" in got[point].opts and "ro" in got[point].super, point
    assert "rw" in got["/dev/pts"].opts and "rw" in got["/ro/sub"].opts
    root = Path(f"/proc/{pid}/root")
    assert stat.S_ISCHR((root / "dev" / "fuse").stat().st_mode) and (root / "dev" / "ptmx").is_symlink()
    pyrunc("delete", "-f", cid)
    bundle.sh("touch /dev/x || echo dev-ro; touch /ro/x || echo ro-ro; touch /ro/sub/x && ls /dev/pts")
    out = pyrunc("run", "-b", str(bundle.path), cid).stdout.split()
    assert out == ["dev-ro", "ro-ro", "ptmx"], out


@pytest.mark.parametrize("existing,opts,want", [(0o700, [], 0o700), (0o1777, [], 0o1777), (0o750, ["mode=711"], 0o711),
                                                (None, [], 0o1777)])
def test_tmpfs_over_a_directory_takes_its_mode(pyrunc, bundle, cid, existing, opts, want):
    if existing is not None:
        (bundle.rootfs / "data").mkdir()
        os.chmod(bundle.rootfs / "data", existing)
    bundle.config["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": opts})
    bundle.sh("stat -c %a /data > /seen")
    pid = created(pyrunc, bundle, cid)
    assert stat.S_IMODE(os.stat(f"/proc/{pid}/root/data").st_mode) == want
    pyrunc("start", cid)
    seen = bundle.rootfs / "seen"
    wait_for(lambda: seen.exists() and seen.read_text().endswith("\n"), what="the program's stat")
    assert seen.read_text() == f"{want:o}\n"


def test_masked_directory_is_listable_without_dac_override(pyrunc, bundle, cid):
    (bundle.rootfs / "opt" / "d1").mkdir(parents=True)
    (bundle.rootfs / "opt" / "d1" / "secret").write_text("secret")
    bundle.config["linux"]["maskedPaths"] = ["/opt/d1", "/proc/acpi"]
    caps = bundle.config["process"]["capabilities"]
    assert "CAP_DAC_OVERRIDE" not in caps["effective"]  # the default set, as engines give
    bundle.sh("sleep 5")
    pid = created(pyrunc, bundle, cid)
    st = os.stat(f"/proc/{pid}/root/opt/d1")
    assert os.listdir(f"/proc/{pid}/root/opt/d1") == [] and st.st_uid == 0 and st.st_mode & 0o005 == 0o005
    pyrunc("delete", "-f", cid)
    bundle.sh("ls -A /opt/d1 /proc/acpi && echo listed; touch /opt/d1/x || echo read-only")
    assert pyrunc("run", "-b", str(bundle.path), cid).stdout.split() == ["/opt/d1:", "/proc/acpi:", "listed",
                                                                          "read-only"]


def test_create_container_hook_runs_at_the_root_after_the_mounts(pyrunc, bundle, cid, tmp_path):
    # Relative paths: the hook's working directory is the container's root to be (runc's order).
    script = f"pwd > {tmp_path}/hook-cwd; [ -c dev/null ] && [ -e dev/pts/ptmx ] && " \
             "grep -q \" $(pwd)/ro \" /proc/self/mountinfo && echo mounts-done > hook-was-here"
    bundle.config["mounts"].append({"destination": "/ro", "type": "tmpfs", "source": "tmpfs"})
    bundle.config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    bundle.sh("cat /hook-was-here")
    assert pyrunc("run", "-b", str(bundle.path), cid).stdout == "mounts-done\n"
    assert (tmp_path / "hook-cwd").read_text() == os.path.realpath(bundle.rootfs) + "\n"
