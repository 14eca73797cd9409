"""The container process's last step (process/launch.py, syscalls/launch.c).

A created container's init waits for `start` in C, having given the interpreter's memory
back first (issue 17); then it closes our fds, installs the filter, sets the deferred
capabilities and calls execve, reporting any failure in one line. Checked from the host
(/proc/<init>/smaps, status) and by what the program then sees and does.
"""
from __future__ import annotations

import os
import sys

import pytest

from helpers import wait_for

SIGPIPE_BIT, SIGXFSZ_BIT = 1 << 12, 1 << 24  # SigIgn: bit n-1 for signal n


def mappings(pid: int) -> list[dict]:
    """/proc/<pid>/smaps as one dict per mapping: range, perms, path and the kB fields."""
    out: list[dict] = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                out.append({"range": head[0], "perms": head[1], "path": head[5] if len(head) > 5 else ""})
            elif head[0] != "VmFlags:":
                out[-1][head[0].rstrip(":")] = int(head[1])
    return out


def interpreter_pages(pid: int) -> dict[str, int]:
    """kB of the heap and of the interpreter's own writable data that are resident."""
    exe = os.path.realpath(sys.executable)
    maps = mappings(pid)
    return {"heap": sum(m["Rss"] for m in maps if m["path"] == "[heap]"),
            "data": sum(m["Private_Dirty"] for m in maps if m["path"] == exe and "w" in m["perms"])}


def created(pyrunc, bundle, cid: str) -> int:
    pyrunc("create", "--bundle", str(bundle.path), cid)
    init = pyrunc.state(cid)["pid"]
    assert os.path.realpath(f"/proc/{init}/exe") == os.path.realpath(sys.executable)
    return init


def shed(pid: int) -> bool:
    return interpreter_pages(pid) == {"heap": 0, "data": 0}


def test_waiting_init_gives_back_the_interpreters_memory(pyrunc, bundle, cid):
    bundle.sh("{ echo started; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; } >/out")
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    bundle.write()
    init = created(pyrunc, bundle, cid)
    # The init sheds right after create returns: wait for it, then nothing may come back.
    wait_for(lambda: shed(init), what=f"the init to shed its memory, now {interpreter_pages(init)}")
    assert sum(m.get("Anonymous", 0) for m in mappings(init)) < 1024  # kB: from ~4 MiB
    with open(f"/proc/{init}/status") as f:
        assert "Seccomp:\t0\n" in f.read()  # the filter comes with start, not before
    pyrunc("start", cid)
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="the program to end")
    assert (bundle.rootfs / "out").read_text().split() == ["started", "NoNewPrivs:", "1", "Seccomp:", "2"]


def test_lookalike_proc_is_not_trusted(pyrunc, bundle, cid):
    """No proc mount: the rootfs's own /proc/self/maps, a plain file, must not steer which
    pages go. It claims the whole address space in 64 GiB slices, so only the slices holding
    the init's stack, TCB or code would be spared. The init keeps its memory and starts."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    bundle.config["linux"]["maskedPaths"] = bundle.config["linux"]["readonlyPaths"] = []  # they need a procfs
    (bundle.rootfs / "proc/self").mkdir(parents=True)
    (bundle.rootfs / "proc/self/maps").write_text("".join(
        f"{lo:08x}-{lo + (1 << 36):08x} rw-p 00000000 00:00 0\n" for lo in range(0, 1 << 47, 1 << 36)))
    bundle.sh("echo started >/out").write()
    init = created(pyrunc, bundle, cid)
    pages = interpreter_pages(init)
    assert pages["heap"] > 0 and pages["data"] > 0, pages
    pyrunc("start", cid)
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="the program to end")
    assert (bundle.rootfs / "out").read_text() == "started\n"


@pytest.mark.parametrize("how", ["run", "exec"])
def test_exec_failure_is_one_line(pyrunc, bundle, cid, how):
    """execve fails after every check passed (not an executable format): after shedding
    only stderr is left (run: the init exits 1), otherwise the error reaches pyrunc (exec
    exits 255, as runc's exec does for its own errors)."""
    bad = bundle.rootfs / "bad"
    bad.write_bytes(b"\x00\x01 neither ELF nor a script\n")
    bad.chmod(0o755)
    want = 'exec: "/bad": execve /bad: ENOEXEC (Exec format error)'
    if how == "run":
        bundle.args("/bad")
        proc = pyrunc("run", "--bundle", str(bundle.path), cid, check=False)
    else:
        bundle.args("sleep", "1000")
        pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
        proc = pyrunc("exec", cid, "/bad", check=False)
    assert proc.returncode == {"run": 1, "exec": 255}[how]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyrunc: ") and lines[0].endswith(want), proc.stderr


def test_program_starts_with_default_sigpipe_and_sigxfsz(pyrunc, bundle, cid):
    """The interpreter ignores SIGPIPE and SIGXFSZ, and an ignored signal survives execve:
    the container's program must get them back at their default, as subprocess does."""
    bundle.sh("grep SigIgn /proc/self/status >/out; exec sleep 1000")
    out = bundle.rootfs / "out"
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    wait_for(lambda: "SigIgn" in out.read_text(), what="the program's status")
    ignored = [int(out.read_text().split()[1], 16)]
    ignored.append(int(pyrunc("exec", cid, "grep", "SigIgn", "/proc/self/status").stdout.split()[1], 16))
    assert [mask & (SIGPIPE_BIT | SIGXFSZ_BIT) for mask in ignored] == [0, 0], [hex(m) for m in ignored]
