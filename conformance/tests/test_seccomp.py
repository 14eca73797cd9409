"""config-linux.md seccomp: filtering, errno handling, the notify listener socket."""
from __future__ import annotations

import array
import json
import os
import socket
import threading
from pathlib import Path

import pytest


def _filter(rules: list[dict], **extra) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": rules, **extra}


@pytest.mark.req("config-linux.seccomp.1", "config-linux.seccomp.9", "config-linux.seccomp.10",
                 "config-linux.seccomp.11", "runtime.create.4")
def test_errno_rule_blocks_syscall(h):
    b = h.bundle()
    b.linux["seccomp"] = _filter([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                   "errnoRet": 1}])
    out = h.sh(b, "mkdir /blocked 2>&1; echo rc=$?")
    assert "Operation not permitted" in out and "rc=1" in out
    assert not (b.rootfs / "blocked").exists()


@pytest.mark.req("config-linux.seccomp.13", "config-linux.seccomp.14", "config-linux.seccomp.15")
def test_argument_conditions(h):
    b = h.bundle()
    # block only personality(0xffffffff) queries that use a specific value: use
    # fchmodat's mode argument (index 2) == 0o700 to refuse that single chmod.
    b.linux["seccomp"] = _filter([{"names": ["fchmodat", "chmod"], "action": "SCMP_ACT_ERRNO",
                                   "errnoRet": 13,
                                   "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                                  {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                                   "errnoRet": 13,
                                   "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]}])
    out = h.sh(b, "touch /f; chmod 700 /f 2>/dev/null; echo a=$?; chmod 755 /f; echo b=$?")
    assert out.split() == ["a=1", "b=0"]


@pytest.mark.req("config-linux.seccomp.2")
def test_default_errno_with_action_without_errno_is_an_error(h):
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.linux.update(seccomp=_filter([], defaultErrnoRet=5)))


@pytest.mark.req("config-linux.seccomp.12")
def test_rule_errno_with_action_without_errno_is_an_error(h):
    b = h.bundle(["sleep", "30"])
    h.expect_rejected(b, lambda b: b.linux.update(seccomp=_filter(
        [{"names": ["acct"], "action": "SCMP_ACT_KILL", "errnoRet": 5}])))


class Agent(threading.Thread):
    """A seccomp agent: accepts connections on a unix socket, records messages and fds."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.sock.settimeout(15)
        self.conns: list[dict] = []

    def run(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            fds = array.array("i")
            data, first_fds, chunks = b"", None, 0
            while True:
                msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
                chunks += 1
                got = array.array("i")
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
                if first_fds is None:
                    first_fds = list(got)
                elif got:
                    first_fds.append(-1)  # fds outside the first message: recorded as error
                fds.extend(got)
                if not msg:
                    break
                data += msg
            kinds = [os.readlink(f"/proc/self/fd/{fd}") for fd in fds]
            for fd in fds:
                os.close(fd)
            self.conns.append({"data": data, "fds": list(fds), "first": first_fds,
                               "kinds": kinds})


@pytest.mark.req("config-linux.seccomp.3", "config-linux.seccomp.4", "config-linux.seccomp.5",
                 "config-linux.seccomp.7", "config-linux.the-container-process-state.1",
                 "config-linux.the-container-process-state.2",
                 "config-linux.the-container-process-state.3",
                 "config-linux.the-container-process-state.4",
                 "config-linux.the-container-process-state.5")
def test_notify_listener_receives_state_and_fd(h):
    sock = h.tmp / "agent.sock"
    agent = Agent(sock)
    h.later(agent.sock.close)
    agent.start()
    b = h.bundle(["sleep", "30"])
    b.linux["seccomp"] = _filter([{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}],
                                 listenerPath=str(sock), listenerMetadata="conf-meta")
    cid, _ = h.create(b)
    h.rt("start", cid)
    agent.join(10)
    assert len(agent.conns) == 1
    conn = agent.conns[0]
    msg = json.loads(conn["data"])
    assert msg["ociVersion"]
    assert msg["fds"] == ["seccompFd"]
    assert msg["metadata"] == "conf-meta"
    assert msg["state"]["id"] == cid
    assert isinstance(msg["pid"], int) and msg["pid"] == h.pid(cid)
    assert conn["first"] == conn["fds"] and len(conn["fds"]) == 1
    assert conn["kinds"] == ["anon_inode:seccomp notify"]


@pytest.mark.req("config-linux.seccomp.6")
def test_unreachable_listener_is_an_error(h):
    b = h.bundle(["sleep", "30"])
    h.create(b)  # positive control
    b.linux["seccomp"] = _filter([{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}],
                                 listenerPath=str(h.tmp / "nobody-listens.sock"))
    cid, proc = h.create(b, check=False)
    if proc.returncode == 0:  # the filter may be installed at start: that MUST fail then
        proc = h.rt("start", cid, check=False)
    assert proc.returncode != 0
