"""The container's process as runc makes it (issue 26 item 2): process.cwd entered with the
runtime's privileges and made when missing, the pty's owner, a session of its own for every
process. Checked from inside and from the host's /proc and rootfs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import wait_for
from usernshelp import HOST_ROOT, base, make_bundle  # noqa: F401 (fixtures)


def stat_fields(pid: int) -> tuple[int, int]:
    """(process group, session) of a host pid."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[2]), int(fields[3])


SESSION = "echo $$; cut -d' ' -f5,6 /proc/self/stat"  # the shell's pid, then its child's pgrp and session


@pytest.fixture
def private_dir(bundle) -> Path:
    """/secret (0700, root's) holding /secret/work, which uid 1000 owns: only root can reach it."""
    secret = bundle.rootfs / "secret"
    (secret / "work").mkdir(parents=True)
    os.chown(secret / "work", 1000, 1000)
    secret.chmod(0o700)
    return secret / "work"


def test_cwd_the_user_cannot_search_to_run(pyrunc, bundle, cid, private_dir):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["cwd"] = "/secret/work"
    bundle.sh("pwd; id -u; touch made; ls /secret 2>/dev/null || echo cannot-list-parent")
    assert pyrunc("run", "-b", str(bundle.path), cid).stdout.split() == ["/secret/work", "1000",
                                                                         "cannot-list-parent"]
    assert (private_dir / "made").stat().st_uid == 1000  # from the host: written there, by the user


def test_cwd_the_user_cannot_search_to_exec(pyrunc, bundle, cid, private_dir):
    bundle.args("sleep", "30")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    out = pyrunc("exec", "--user", "1000:1000", "--cwd", "/secret/work", cid, "sh", "-c", "pwd; touch made").stdout
    assert out == "/secret/work\n" and (private_dir / "made").stat().st_uid == 1000


def test_cwd_only_the_user_can_enter(pyrunc, make_bundle, cid):
    """Root of a user namespace has no DAC override on a directory whose group it does not map:
    the first attempt (as root) is refused, the one after the user switch succeeds."""
    b = make_bundle()
    mine = b.rootfs / "mine"
    mine.mkdir()
    os.chown(mine, HOST_ROOT + 1000, 5)  # the container's uid 1000; host gid 5 is not mapped
    mine.chmod(0o700)
    b.config["process"]["cwd"] = "/mine"
    b.sh("pwd; touch made")
    proc = pyrunc("run", "-b", str(b.path), cid, check=False)  # as root: refused both times
    err = proc.stderr.strip()
    assert proc.returncode != 0 and "\n" not in err and "process.cwd /mine" in err and "EACCES" in err, err
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.write()
    assert pyrunc("run", "-b", str(b.path), cid).stdout == "/mine\n"
    assert (mine / "made").stat().st_uid == HOST_ROOT + 1000  # from the host


def test_missing_cwd_is_made_in_a_read_only_rootfs(pyrunc, bundle, cid):
    (bundle.rootfs / "link").symlink_to("/made/by")  # leading nowhere yet: followed inside the rootfs
    bundle.config["root"]["readonly"] = True
    bundle.config["process"]["cwd"] = "/link/deep"
    bundle.sh("pwd; touch /x 2>/dev/null || echo read-only")
    assert pyrunc("run", "-b", str(bundle.path), cid).stdout.split() == ["/made/by/deep", "read-only"]
    for d in ("made", "made/by", "made/by/deep"):
        assert (bundle.rootfs / d).stat().st_mode & 0o7777 == 0o755, d


def test_missing_cwd_of_exec_is_refused(pyrunc, bundle, cid):
    """As runc: exec does not make its --cwd."""
    bundle.args("sleep", "30")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    proc = pyrunc("exec", "--cwd", "/nonexistent", cid, "true", check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 255 and "\n" not in err and "process.cwd /nonexistent" in err and "ENOENT" in err
    assert not (bundle.rootfs / "nonexistent").exists()


@pytest.mark.parametrize("pidns", [True, False])
def test_every_process_leads_a_session(pyrunc, bundle, cid, tmp_path, pidns):
    if not pidns:
        bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                                if n["type"] != "pid"]
    bundle.sh(SESSION)
    pid, pgrp, sid = pyrunc("run", "-b", str(bundle.path), cid).stdout.split()
    assert pgrp == sid == pid and (pid == "1") == pidns
    bundle.args("sleep", "30")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    init = pyrunc.state(cid)["pid"]
    assert stat_fields(init) == (init, init)  # from the host
    pid, pgrp, sid = pyrunc("exec", cid, "sh", "-c", SESSION).stdout.split()
    assert pgrp == sid == pid != "0"
    pid_file = tmp_path / "exec.pid"
    pyrunc("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "30")
    wait_for(pid_file.exists, what="the pid file")
    p = int(pid_file.read_text())
    assert stat_fields(p) == (p, p)


def test_exec_terminal_group_is_tty_and_a_session(pyrunc, bundle, cid):
    bundle.args("sleep", "30")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    out = pyrunc("exec", "-t", "--user", "1000:1001", cid, "sh", "-c", "stat -c %u:%g $(tty); " + SESSION).stdout
    owner, pid, pgrp, sid = out.split()
    assert owner == "1000:5" and pgrp == sid == pid
