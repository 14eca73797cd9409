"""LSM labels (issue 4) and the verified procfs their writes go through.

This host has neither AppArmor nor SELinux enabled: a requested label must
fail `create` with the field named and nothing left (runc fails too; see
pyrunc/linux/lsm.py), rather than run the container unconfined.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyrunc.linux import lsm


def test_host_has_no_lsm():
    # The tests below exercise the "requested but not enabled" path; on a host with
    # an LSM they would need a loaded profile instead.
    assert not lsm.apparmor_enabled() and not lsm.selinux_enabled()


@pytest.mark.parametrize("section,field,value", [
    ("process", "apparmorProfile", "pyrunc-test-profile"),
    ("process", "selinuxLabel", "system_u:system_r:container_t:s0:c1,c2"),
    ("linux", "mountLabel", "system_u:object_r:container_file_t:s0:c1,c2"),
])
def test_label_without_its_lsm_is_refused(pyrunc, bundle, cid, section, field, value):
    bundle.config[section][field] = value
    bundle.write()
    proc = pyrunc("create", "--bundle", str(bundle.path), cid, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"{section}.{field}: " in proc.stderr and "is not enabled on this host" in proc.stderr
    assert not (pyrunc.root / cid).exists()


def test_empty_labels_are_no_request(pyrunc, bundle, cid):
    bundle.config["process"]["apparmorProfile"] = ""
    bundle.config["process"]["selinuxLabel"] = ""
    bundle.sh("echo ok")
    assert pyrunc("run", "--bundle", str(bundle.path), cid).stdout == "ok\n"


def test_mount_label_goes_on_filesystem_mounts_only():
    from pyrunc.spec.mountopts import parse
    from pyrunc.spec.plan import MountOp

    ops = [MountOp(0, "tmpfs", "/dev", "tmpfs", parse(["mode=755"])), MountOp(1, "proc", "/proc", "proc", parse([])),
           MountOp(2, "/src", "/data", None, parse(["rbind"]))]
    lsm.label_mounts(ops, "system_u:object_r:container_file_t:s0")
    assert [op.opts.data for op in ops] == [["mode=755", 'context="system_u:object_r:container_file_t:s0"'], [], []]
    lsm.label_mounts(ops, None)
    assert ops[1].opts.data == []


# procfs.write is run in a private mount namespace (unshare -m), where the test can
# play the hostile image of CVE-2019-16884 without touching the host's mounts.
def in_private_mount_ns(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=30)


def test_procfs_write_is_not_fooled_by_a_mount_over_attr():
    proc = in_private_mount_ns(
        "import os\n"
        "from pyrunc.syscalls import calls as sc\n"
        "from pyrunc.linux import procfs\n"
        "attr = f'/proc/{os.getpid()}/attr'\n"
        "sc.mount('tmpfs', attr, 'tmpfs')\n"
        "open(attr + '/exec', 'w').close()\n"
        "for where in (None, '/proc'):\n"
        "    try:\n"
        "        procfs.write('self/attr/exec', b'exec unconfined', proc=where)\n"
        "    except OSError as exc:\n"
        "        print(where, exc.errno)\n"
        "print('decoy:', repr(open(attr + '/exec').read()))\n")
    assert proc.returncode == 0, proc.stderr
    # Our own procfs reaches the real attr/exec (EINVAL: no LSM takes the label here);
    # through the mounted /proc the decoy mount is refused (EXDEV); the decoy stays empty.
    assert proc.stdout.split("\n")[:3] == ["None 22", "/proc 18", "decoy: ''"], proc.stdout


def test_procfs_write_refuses_a_fake_proc(tmp_path):
    fake = tmp_path / "proc"
    (fake / "self" / "attr").mkdir(parents=True)
    (fake / "self" / "attr" / "exec").write_text("")
    from pyrunc.linux import procfs

    with pytest.raises(procfs.ProcfsError, match="not on a procfs"):
        procfs.write("self/attr/exec", b"x", proc=str(fake))
    with pytest.raises(procfs.ProcfsError, match="not the root of a procfs"):
        procfs.write("kernel/osrelease", b"x", proc="/proc/sys")  # procfs, not its root (and read-only)
    assert (fake / "self" / "attr" / "exec").read_text() == ""


def test_procfs_open_on_the_real_proc():
    from pyrunc.linux import procfs

    fd = procfs.open_proc("self/status", os.O_RDONLY)
    try:
        assert os.read(fd, 5) == b"Name:"
    finally:
        os.close(fd)
