"""Bad input (issue 2): one line on stderr naming what was wrong, non-zero exit, nothing left.

The ``pyrunc`` fixture's teardown fails the test if any state dir, mount,
process or cgroup of the test survived.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest


def fails(proc, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr
    assert err.count("\n") == 1 and err.startswith("pyrunc: "), err
    for n in needles:
        assert n in err, err
    return err


def create(pyrunc, bundle, cid, *extra: str):
    return pyrunc("create", *extra, "--bundle", str(bundle.path), cid, check=False)


def test_invalid_json_names_line_and_column(pyrunc, bundle, cid):
    (bundle.path / "config.json").write_text('{\n  "ociVersion": "1.3.0",\n  "root": {,\n}')
    fails(create(pyrunc, bundle, cid), "config.json:3:12", "invalid JSON")
    assert not (pyrunc.root / cid).exists()


def test_every_schema_violation_is_reported(pyrunc, bundle, cid):
    bundle.config["process"]["args"] = "sh"
    del bundle.config["root"]["path"]
    bundle.config["linux"]["namespaces"].append({"type": "bogus"})
    bundle.write()
    fails(create(pyrunc, bundle, cid), "process.args: expected array, got string",
          "root: missing required property 'path'", "linux.namespaces[6].type")


@pytest.mark.parametrize(("field", "where"), [
    (lambda c: c["mounts"].append({"destination": "/tmp/a\0b", "type": "tmpfs", "source": "tmpfs"}),
     "mounts[7].destination"),
    (lambda c: c["process"].__setitem__("cwd", "/\0"), "process.cwd"),
    (lambda c: c["process"]["env"].append("A=\0"), "process.env[2]"),
    (lambda c: c["linux"].__setitem__("sysctl", {"kernel.\0": "1"}), "linux.sysctl['kernel.\\x00']"),
    (lambda c: c.__setitem__("hostname", "h\0"), "hostname"),
])
def test_nul_byte_in_a_string(pyrunc, bundle, cid, field, where):
    """A NUL ends a C string: runc refuses one in a mount's fields; pyrunc in any string the
    kernel or a program gets, naming it, before anything is made."""
    field(bundle.config)
    bundle.write()
    fails(create(pyrunc, bundle, cid), f"config.json: {where}: contains a NUL byte")
    assert not (pyrunc.root / cid).exists()


def test_nul_byte_in_an_annotation_is_data(pyrunc, bundle, cid):
    bundle.config["annotations"] = {"note": "a\0b"}
    bundle.args("true")
    pyrunc("run", "--bundle", str(bundle.path), cid)


@pytest.mark.parametrize("what", ["bundle", "config", "rootfs"])
def test_missing_bundle_parts(pyrunc, bundle, cid, what):
    if what == "bundle":
        proc = pyrunc("create", "--bundle", str(bundle.path / "nope"), cid, check=False)
        fails(proc, "nope")
    elif what == "config":
        (bundle.path / "config.json").unlink()
        fails(create(pyrunc, bundle, cid), "config.json", "no such file")
    else:
        bundle.config["root"]["path"] = "missing-rootfs"
        bundle.write()
        fails(create(pyrunc, bundle, cid), "root.path", "missing-rootfs")


def test_relative_mount_destination_is_relative_to_root(pyrunc, bundle, cid):
    """config.md: deprecated, but MUST be taken relative to "/" (a warning, not an error)."""
    bundle.config["mounts"].append({"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"})
    bundle.sh("grep -c ' /relative/dir ' /proc/self/mountinfo")
    proc = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert proc.stdout == "1\n"
    assert "mounts[7].destination 'relative/dir' is relative (deprecated)" in proc.stderr


def test_duplicate_namespace(pyrunc, bundle, cid):
    bundle.config["linux"]["namespaces"].append({"type": "pid"})
    bundle.write()
    fails(create(pyrunc, bundle, cid), "linux.namespaces[6].type", "more than once")


def test_duplicate_id(pyrunc, bundle, cid):
    bundle.args("sleep", "100")
    pyrunc("create", "--bundle", str(bundle.path), cid)
    fails(create(pyrunc, bundle, cid), cid, "already exists")
    pyrunc("delete", "--force", cid)


@pytest.mark.parametrize("bad", ["../x", "a/b", "x" * 300, ".", ".."])
def test_invalid_ids(pyrunc, bundle, bad):
    fails(pyrunc("create", "--bundle", str(bundle.path), bad, check=False), "invalid container id")
    assert pyrunc.list_ids() == []


def test_empty_id(pyrunc, bundle):
    fails(pyrunc("create", "--bundle", str(bundle.path), "", check=False), "id cannot be empty")


@pytest.mark.parametrize("cmd", [["state"], ["start"], ["kill"], ["delete"], ["kill", "--all"]])
def test_unknown_id(pyrunc, cmd):
    fails(pyrunc(*cmd, "nosuchcontainer", check=False), "nosuchcontainer", "does not exist")


def test_force_delete_of_unknown_id_succeeds_as_in_runc(pyrunc):
    proc = pyrunc("delete", "--force", "nosuchcontainer", check=False)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_start_running_and_delete_running(pyrunc, bundle, cid):
    bundle.args("sleep", "100")
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    fails(pyrunc("start", cid, check=False), "cannot start", "running")
    fails(pyrunc("delete", cid, check=False), "cannot delete", "running")
    assert pyrunc.state(cid)["status"] == "running"
    pyrunc("delete", "--force", cid)


def test_bad_signal(pyrunc, bundle, cid):
    bundle.args("sleep", "100")
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    fails(pyrunc("kill", cid, "SIGNOPE", check=False), "invalid signal")
    fails(pyrunc("kill", cid, "99", check=False), "invalid signal")
    assert pyrunc.state(cid)["status"] == "running"
    pyrunc("delete", "--force", cid)


def test_pid_file_in_missing_directory(pyrunc, bundle, cid, tmp_path):
    fails(create(pyrunc, bundle, cid, "--pid-file", str(tmp_path / "nodir" / "pid")), "--pid-file", "nodir")


def test_mount_the_kernel_refuses(pyrunc, bundle, cid):
    bundle.config["mounts"].append({"destination": "/mnt", "type": "nosuchfs", "source": "none"})
    bundle.write()
    fails(create(pyrunc, bundle, cid), "mounts[7] /mnt", "mount /mnt: ENODEV")


def test_program_not_found(pyrunc, bundle, cid):
    bundle.args("no-such-program")
    fails(create(pyrunc, bundle, cid), 'exec: "no-such-program": executable file not found in $PATH')
    bundle.args("/bin/nope")
    fails(create(pyrunc, bundle, cid), "/bin/nope", "no such file or directory")


def test_json_log_holds_exactly_one_error_object(pyrunc, bundle, cid, tmp_path):
    log = tmp_path / "log.json"
    bundle.args("no-such-program")
    proc = pyrunc("--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle.path), cid,
                  check=False)
    fails(proc, "executable file not found")
    entry = json.loads(log.read_text())  # the whole file is one object (podman parses it so)
    assert entry["level"] == "error" and "executable file not found" in entry["msg"] and entry["time"]


@pytest.mark.parametrize("stdio", ["read-only", "closed"])
def test_json_log_written_when_stderr_takes_no_writes(pyrunc, bundle, cid, tmp_path, stdio):
    # containerd's runc shim runs a pod sandbox's create with stdout and stderr on a
    # /dev/null opened read-only (every write is EBADF): the log line must still be
    # written, and the exit status stay pyrunc's (not the interpreter's 120).
    log = tmp_path / "log.json"
    bundle.args("no-such-program")
    null = os.open(os.devnull, os.O_RDONLY)
    fds = {"read-only": {"stdout": null, "stderr": null},
           "closed": {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
                      "preexec_fn": lambda: os.close(2)}}[stdio]
    pyrunc.ids.add(cid)
    try:
        proc = subprocess.run(pyrunc.cmd("--log", str(log), "--log-format", "json", "create",
                                         "--bundle", str(bundle.path), cid),
                              stdin=subprocess.DEVNULL, timeout=60, **fds)
    finally:
        os.close(null)
    assert proc.returncode == 1, proc.returncode
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and "executable file not found" in entry["msg"]
    assert pyrunc.list_ids() == []


@pytest.mark.parametrize("argv", [["--log-format", "xml", "list"], ["create"], ["nosuchcmd"],
                                  ["create", "--preserve-fds", "x", "c"], ["list", "--bogus"]])
def test_usage_errors(pyrunc, argv):
    fails(pyrunc(*argv, check=False))


def test_unsupported_flag_is_refused_not_ignored(pyrunc, bundle, cid, tmp_path):
    fails(create(pyrunc, bundle, cid, "--pidfd-socket", str(tmp_path / "s")), "--pidfd-socket")
