"""The lifecycle end to end (issue 2): create, start, state, kill, delete, run — real containers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import REPO, ns_inode, wait_for

SHARED_SCHEMAS = REPO.parent / "shared" / "reference" / "oci-runtime-spec-v1.3.0" / "schema"


def host_cgroup_dir(controller: str, pid: int) -> Path:
    """The host directory of ``pid``'s cgroup on a v1 controller (this host is hybrid)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    raise AssertionError(f"{controller} not in /proc/{pid}/cgroup")


def test_create_start_kill_delete(pyrunc, bundle, cid, tmp_path):
    bundle.config["linux"]["resources"].update({"memory": {"limit": 64 << 20}, "pids": {"limit": 32}})
    bundle.sh("echo started > /tmp/ran; exec sleep 1000")
    pid_file = tmp_path / "init.pid"
    pyrunc("create", "--bundle", str(bundle.path), "--pid-file", str(pid_file), cid)

    st = pyrunc.state(cid)
    assert st["status"] == "created"
    pid = st["pid"]
    assert int(pid_file.read_text()) == pid
    assert st["bundle"] == str(bundle.path) and st["id"] == cid
    # The init is in its own namespaces and cgroup, and the user's program has not run.
    for ns in ("pid", "net", "ipc", "uts", "mnt", "cgroup"):
        assert ns_inode(pid, ns) != ns_inode("self", ns), ns
    assert not (bundle.rootfs / "tmp" / "ran").exists()
    mem = host_cgroup_dir("memory", pid)
    assert mem.name == cid
    assert int((mem / "memory.limit_in_bytes").read_text()) == 64 << 20
    pids_dir = host_cgroup_dir("pids", pid)
    assert (pids_dir / "pids.max").read_text().strip() == "32"
    assert str(pid) in (pids_dir / "cgroup.procs").read_text().split()

    pyrunc("start", cid)
    wait_for(lambda: (bundle.rootfs / "tmp" / "ran").exists(), what="the program to run")
    assert pyrunc.state(cid)["status"] == "running"

    pyrunc("kill", cid, "KILL")
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="stopped")
    assert pyrunc.state(cid)["pid"] == 0
    pyrunc("delete", cid)
    assert not (pyrunc.root / cid).exists()
    assert not mem.exists() and not pids_dir.exists()
    assert pyrunc("state", cid, check=False).returncode != 0


# A pid-namespace init ignores signals it has no handler for (except SIGKILL from outside),
# so the script traps the ones the test sends.
TRAPPING_INIT = "trap 'exit 0' TERM USR1; while :; do sleep 0.1; done"


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9", "term", "SIGUSR1", "10"])
def test_kill_signal_forms(pyrunc, bundle, cid, sig):
    bundle.sh(TRAPPING_INIT)
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    time.sleep(0.2)  # let the shell install its traps
    pyrunc("kill", cid, sig)
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="stopped")
    pyrunc("delete", cid)


def test_run_foreground_exit_status_and_stdio(pyrunc, bundle, cid):
    bundle.sh("read line; echo \"got $line\"; echo err >&2; exit 3")
    proc = pyrunc("run", "-b", str(bundle.path), cid, input="hello\n", check=False)
    assert proc.returncode == 3
    assert proc.stdout == "got hello\n"
    assert proc.stderr == "err\n"
    assert not (pyrunc.root / cid).exists()


def _running(pyrunc, cid: str) -> bool:
    proc = pyrunc("state", cid, check=False)
    return proc.returncode == 0 and json.loads(proc.stdout)["status"] == "running"


def test_run_forwards_signals_and_reports_death_by_signal(pyrunc, bundle, cid):
    bundle.sh("trap 'exit 42' USR1; while :; do sleep 0.1; done")
    proc = subprocess.Popen(pyrunc.cmd("run", "-b", str(bundle.path), cid), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _running(pyrunc, cid), what="running")
    time.sleep(0.2)
    proc.send_signal(signal.SIGUSR1)  # forwarded to the container's init, which traps it
    assert proc.wait(timeout=20) == 42

    bundle.args("sleep", "1000")
    proc = subprocess.Popen(pyrunc.cmd("run", "-b", str(bundle.path), cid), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _running(pyrunc, cid), what="running")
    pyrunc("kill", cid, "KILL")
    assert proc.wait(timeout=20) == 128 + signal.SIGKILL


def test_run_keep_leaves_stopped_container(pyrunc, bundle, cid):
    bundle.args("true")
    pyrunc("run", "--keep", "-b", str(bundle.path), cid)
    assert pyrunc.state(cid)["status"] == "stopped"
    pyrunc("delete", cid)


def test_inside_view(pyrunc, bundle, cid):
    bundle.config["hostname"] = "box"
    bundle.config["domainname"] = "example.org"
    bundle.config["process"]["env"].append("FOO=bar baz")
    bundle.config["process"]["cwd"] = "/tmp"
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 0o027}
    bundle.sh("hostname; domainname 2>/dev/null || cat /proc/sys/kernel/domainname; echo $FOO; pwd; id -u; "
              "id -g; id -G; umask; echo $HOME; echo $$; cat /sys/class/net/lo/operstate; ls /sys/class/net")
    out = pyrunc("run", "-b", str(bundle.path), cid).stdout.split("\n")
    assert out[:9] == ["box", "example.org", "bar baz", "/tmp", "1000", "1001", "1001 5 7", "0027", "/"]
    assert out[9] == "1"  # pid 1 in its pid namespace
    assert out[10] in ("unknown", "up") and out[11] == "lo"


def test_home_from_passwd(pyrunc, bundle, cid):
    bundle.sh("echo $HOME")
    assert pyrunc("run", "-b", str(bundle.path), cid).stdout == "/root\n"


def test_join_namespace_by_path(pyrunc, bundle, busybox_rootfs, cid, tmp_path):
    from helpers import Bundle

    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    first = pyrunc.state(cid)["pid"]
    other = Bundle.make(tmp_path / "b2", busybox_rootfs)
    for ns in other.config["linux"]["namespaces"]:
        if ns["type"] in ("network", "ipc"):
            ns["path"] = f"/proc/{first}/ns/{'net' if ns['type'] == 'network' else 'ipc'}"
    other.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(other.path), cid + "b")
    second = pyrunc.state(cid + "b")["pid"]
    assert ns_inode(second, "net") == ns_inode(first, "net")
    assert ns_inode(second, "ipc") == ns_inode(first, "ipc")
    assert ns_inode(second, "pid") != ns_inode(first, "pid")
    pyrunc("delete", "-f", cid + "b")
    pyrunc("delete", "-f", cid)


def test_time_namespace_offsets(pyrunc, bundle, cid):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365}, "monotonic": {"secs": 1000}}
    bundle.sh("cut -d. -f1 /proc/uptime")
    uptime = int(pyrunc("run", "-b", str(bundle.path), cid).stdout)
    assert uptime >= 86400 * 365


def test_readonly_root_and_no_pivot(pyrunc, bundle, cid):
    bundle.config["root"]["readonly"] = True
    bundle.sh("touch /x 2>/dev/null && echo writable || echo readonly; touch /tmp/ok && echo tmp-ok")
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    bundle.write()
    assert pyrunc("run", "-b", str(bundle.path), cid).stdout == "readonly\ntmp-ok\n"
    bundle.config["root"]["readonly"] = False
    bundle.write()
    assert pyrunc("run", "--no-pivot", "-b", str(bundle.path), cid).stdout == "writable\ntmp-ok\n"


def test_mount_propagation_from_host(pyrunc, bundle, cid, tmp_path):
    """rootfsPropagation rslave (the default): host mounts made later reach the container."""
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        bundle.config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(shared),
                                        "options": ["rbind", "rslave"]})
        bundle.args("sleep", "1000")
        pyrunc("run", "-d", "-b", str(bundle.path), cid)
        pid = pyrunc.state(cid)["pid"]
        sub = shared / "sub"
        sub.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sub)], check=True)
        try:
            mi = Path(f"/proc/{pid}/mountinfo").read_text()
            assert " /mnt/sub " in mi
        finally:
            subprocess.run(["umount", str(sub)], check=True)
        pyrunc("delete", "-f", cid)
    finally:
        subprocess.run(["umount", "-l", str(shared)], check=True)


def test_preserve_fds(pyrunc, bundle, cid, tmp_path):
    out = tmp_path / "fd3.txt"
    bundle.sh("echo through-fd3 >&3; ls /proc/self/fd | sort -n | tr '\\n' ' '")
    # the shell opens fd 3 on the file, then becomes pyrunc
    proc = subprocess.run(["sh", "-c", 'exec 3>"$0"; exec "$@"', str(out),
                           *pyrunc.cmd("run", "--preserve-fds", "1", "-b", str(bundle.path), cid)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "through-fd3\n"
    assert proc.stdout.split() == ["0", "1", "2", "3", "4"]  # 4: the directory ls reads


def test_stray_fds_not_inherited(pyrunc, bundle, cid, tmp_path):
    bundle.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '")
    r, w = os.pipe()
    os.set_inheritable(r, True)
    try:
        proc = subprocess.run(pyrunc.cmd("run", "-b", str(bundle.path), cid), close_fds=False,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
    finally:
        os.close(r)
        os.close(w)
    assert proc.stdout.split() == ["0", "1", "2", "3"]  # 3: the directory ls reads


def test_list_formats(pyrunc, bundle, cid):
    bundle.args("sleep", "1000")
    pyrunc("create", "-b", str(bundle.path), cid)
    assert pyrunc("list", "-q").stdout == f"{cid}\n"
    rows = json.loads(pyrunc("list", "--format", "json").stdout)
    assert [(r["id"], r["status"]) for r in rows] == [(cid, "created")]
    table = pyrunc("list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"] and table[1].split()[:3] == [cid, str(rows[0]["pid"]),
                                                                                      "created"]
    pyrunc("delete", "--force", cid)


def test_plain_delete_of_created_container(pyrunc, bundle, cid):
    """As runc and crun, for containerd's shim and podman (issue 27): a plain delete of a
    created container kills its waiting init and removes it, where runtime.md says it MUST
    fail (a deviation: docs/commands.md). A running one is still refused."""
    bundle.args("sleep", "1000")
    pyrunc("create", "-b", str(bundle.path), cid)
    pid = pyrunc.state(cid)["pid"]
    pyrunc("delete", cid)
    assert not pyrunc.list_ids()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    r = pyrunc("delete", cid, check=False)
    assert r.returncode != 0 and "running" in r.stderr
    assert pyrunc.state(cid)["status"] == "running"
    pyrunc("delete", "--force", cid)


def test_state_validates_against_upstream_schema(pyrunc, bundle, cid):
    jsonschema = pytest.importorskip("jsonschema")
    from pyrunc.spec.schema import validate

    bundle.args("sleep", "1000")
    pyrunc("create", "-b", str(bundle.path), cid)
    states = [pyrunc.state(cid)]
    pyrunc("start", cid)
    states.append(pyrunc.state(cid))
    pyrunc("kill", cid, "9")
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped")
    states.append(pyrunc.state(cid))
    assert [s["status"] for s in states] == ["created", "running", "stopped"]
    for s in states:
        assert validate("state", s) == []
        if SHARED_SCHEMAS.exists():
            schema = json.loads((SHARED_SCHEMAS / "state-schema.json").read_text())
            jsonschema.validate(s, schema, resolver=_resolver(jsonschema, schema))
    pyrunc("delete", cid)


def test_features_and_spec(pyrunc, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from pyrunc.spec.schema import validate

    feats = json.loads(pyrunc("features").stdout)
    assert validate("features", feats) == []
    if SHARED_SCHEMAS.exists():
        schema = json.loads((SHARED_SCHEMAS / "features-schema.json").read_text())
        jsonschema.validate(feats, schema, resolver=_resolver(jsonschema, schema))
    pyrunc("spec", "-b", str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert validate("config", config) == []
    again = pyrunc("spec", "-b", str(tmp_path), check=False)
    assert again.returncode != 0 and "exists" in again.stderr
    pyrunc("spec", "--rootless", "-b", str(tmp_path / "r"), check=False)  # missing dir: error, no traceback


def _resolver(jsonschema, schema):
    return jsonschema.RefResolver(base_uri=SHARED_SCHEMAS.as_uri() + "/", referrer=schema)


def test_version_and_help(pyrunc):
    out = pyrunc("--version").stdout.splitlines()
    assert out[0].startswith("pyrunc version ") and "spec: 1.3.0" in out
    assert "create" in pyrunc("--help").stdout


def test_concurrent_deletes_do_not_corrupt(pyrunc, bundle, cid):
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    procs = [subprocess.Popen(pyrunc.cmd("delete", "-f", cid), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    results = [(p.wait(timeout=30), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results)[0] == 0
    assert sum(rc == 0 for rc, _ in results) >= 1
    for rc, err in results:
        assert rc == 0 or "does not exist" in err, err
    assert not (pyrunc.root / cid).exists()
