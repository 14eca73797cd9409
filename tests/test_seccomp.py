"""linux.seccomp (issue 4): behaviour seen from inside, the filter seen from the host, a notify agent."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from helpers import wait_for
from seccomp_agent import Agent

SIGSYS_STATUS = 128 + signal.SIGSYS
MKDIR_NR = 83  # x86_64


def profile(*rules: dict, default: str = "SCMP_ACT_ALLOW", **extra) -> dict:
    return {"defaultAction": default, "syscalls": list(rules), **extra}


def deny(names: list[str], action: str = "SCMP_ACT_ERRNO", **extra) -> dict:
    return {"names": names, "action": action, **extra}


def run(pyrunc, bundle, cid, script: str, prof: dict, check: bool = True):
    bundle.config["root"]["readonly"] = False
    bundle.config["linux"]["seccomp"] = prof
    bundle.sh(script)
    return pyrunc("run", "--bundle", str(bundle.path), cid, check=check)


def status_of(pid: int) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if ":\t" in line)


def test_denied_syscall_returns_configured_errno(pyrunc, bundle, cid):
    prof = profile(deny(["mkdir", "mkdirat", "no_such_syscall_anywhere"]),
                   deny(["rmdir"], errnoRet=errno.EROFS))
    proc = run(pyrunc, bundle, cid, "mkdir /d; echo mkdir=$?; rmdir /tmp; echo rmdir=$?; touch /f; echo touch=$?",
               prof)
    assert proc.stdout.split() == ["mkdir=1", "rmdir=1", "touch=0"]
    assert "Operation not permitted" in proc.stderr and "Read-only file system" in proc.stderr
    assert not (bundle.rootfs / "d").exists() and (bundle.rootfs / "f").exists()


def test_filter_visible_from_host_and_loaded_after_start(pyrunc, bundle, cid):
    bundle.config["linux"]["seccomp"] = profile(deny(["mkdir"]), architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                                                flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    bundle.sh("exec sleep 1000")
    pyrunc("create", "--bundle", str(bundle.path), cid)
    pid = pyrunc.state(cid)["pid"]
    assert status_of(pid)["Seccomp"] == "0"  # installed right before execve, not during setup
    pyrunc("start", cid)
    wait_for(lambda: status_of(pid)["Seccomp"] == "2", what="the filter")
    assert status_of(pid)["Seccomp_filters"] == "1"


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS",
                                    "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process_with_sigsys(pyrunc, bundle, cid, action):
    proc = run(pyrunc, bundle, cid, "exec mkdir /d", profile(deny(["mkdir"], action)), check=False)
    assert proc.returncode == SIGSYS_STATUS, proc.stderr
    assert not (bundle.rootfs / "d").exists()


def test_trace_without_tracer_fails_the_call(pyrunc, bundle, cid):
    # With no tracer attached the kernel fails a TRACE'd syscall with ENOSYS.
    proc = run(pyrunc, bundle, cid, "mkdir /d; echo mkdir=$?", profile(deny(["mkdir"], "SCMP_ACT_TRACE")))
    assert proc.stdout == "mkdir=1\n" and "not implemented" in proc.stderr.lower()


def test_log_action_reaches_the_kernel_log(pyrunc, bundle, cid):
    kmsg = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.lseek(kmsg, 0, os.SEEK_END)
        proc = run(pyrunc, bundle, cid, "mkdir /d; echo mkdir=$?", profile(deny(["mkdir"], "SCMP_ACT_LOG")))
        assert proc.stdout == "mkdir=0\n" and (bundle.rootfs / "d").is_dir()  # logged, and allowed
        records = []
        while True:
            try:
                records.append(os.read(kmsg, 8192).decode(errors="replace"))
            except BlockingIOError:
                break
    finally:
        os.close(kmsg)
    assert any("code=0x7ffc0000" in r and f"syscall={MKDIR_NR} " in r for r in records), records


# kill(pid, sig): arg 1 is the signal. "kill -0" sends 0, "kill -18" sends SIGCONT (harmless).
@pytest.mark.parametrize("args,denied", [
    ([{"index": 1, "op": "SCMP_CMP_EQ", "value": 18}], "b"),
    ([{"index": 1, "op": "SCMP_CMP_NE", "value": 18}], "a"),
    ([{"index": 1, "op": "SCMP_CMP_LT", "value": 18}], "a"),
    ([{"index": 1, "op": "SCMP_CMP_LE", "value": 0}], "a"),
    ([{"index": 1, "op": "SCMP_CMP_GE", "value": 18}], "b"),
    ([{"index": 1, "op": "SCMP_CMP_GT", "value": 0}], "b"),
    ([{"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 16, "valueTwo": 16}], "b"),
    # two comparisons of the same argument: either one matches
    ([{"index": 1, "op": "SCMP_CMP_EQ", "value": 0}, {"index": 1, "op": "SCMP_CMP_EQ", "value": 18}], "ab"),
])
def test_argument_operators(pyrunc, bundle, cid, args, denied):
    proc = run(pyrunc, bundle, cid, "kill -0 $$; echo a=$?; kill -18 $$; echo b=$?",
               profile(deny(["kill"], args=args)))
    expect = [f"{k}={1 if k in denied else 0}" for k in "ab"]
    assert proc.stdout.split() == expect, proc.stderr


def test_notify_reaches_the_agent(pyrunc, bundle, cid, tmp_path):
    seen: list[int] = []

    def refuse(_pid: int, nr: int) -> tuple[int, int]:
        seen.append(nr)
        return -errno.ENOSPC, 0

    agent = Agent(tmp_path / "agent.sock", refuse)
    agent.start()
    try:
        bundle.config["annotations"] = {"k": "v"}
        bundle.config["root"]["readonly"] = False
        bundle.config["linux"]["seccomp"] = profile(
            deny(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY"), listenerPath=str(tmp_path / "agent.sock"),
            listenerMetadata="hello-agent",
            flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"])  # TSYNC needs TSYNC_ESRCH
        bundle.sh("mkdir /d 2>/err; echo mkdir=$? >/out")
        pyrunc("create", "--bundle", str(bundle.path), cid)
        pid = pyrunc.state(cid)["pid"]
        wait_for(lambda: bool(agent.states) or bool(agent.errors), what="the agent's message")
        assert not agent.errors, agent.errors
        st = agent.states[0]
        assert st["fds"] == ["seccompFd"] and st["pid"] == pid and st["metadata"] == "hello-agent"
        assert st["ociVersion"] and st["state"]["id"] == cid and st["state"]["status"] == "creating"
        assert st["state"]["pid"] == pid and st["state"]["bundle"] == str(bundle.path)
        assert st["state"]["annotations"] == {"k": "v"}
        assert agent.closed_after_state == [True]
        pyrunc("start", cid)
        wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="the program to finish")
    finally:
        agent.finish()
    assert not agent.errors, agent.errors
    assert MKDIR_NR in seen
    # The agent's answer is what mkdir got.
    assert (bundle.rootfs / "out").read_text() == "mkdir=1\n"
    assert "No space left on device" in (bundle.rootfs / "err").read_text()
    assert not (bundle.rootfs / "d").exists()


def _refused(pyrunc, bundle, cid, prof: dict, *needles: str) -> None:
    bundle.config["linux"]["seccomp"] = prof
    bundle.write()
    proc = pyrunc("create", "--bundle", str(bundle.path), cid, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("pyrunc: "), proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr
    assert not (pyrunc.root / cid).exists()


@pytest.mark.parametrize("prof,path", [
    (profile(deny(["mkdir"], "SCMP_ACT_EXPLODE")), "linux.seccomp.syscalls[0].action"),
    (profile(default="SCMP_ACT_NOPE"), "linux.seccomp.defaultAction"),
    (profile(deny(["kill"], args=[{"index": 1, "op": "SCMP_CMP_ALMOST", "value": 1}])),
     "linux.seccomp.syscalls[0].args[0].op"),
    (profile(deny(["kill"], args=[{"index": 6, "op": "SCMP_CMP_EQ", "value": 1}])),
     "linux.seccomp.syscalls[0].args[0].index"),
    (profile(architectures=["SCMP_ARCH_Z80"]), "linux.seccomp.architectures[0]"),
    (profile(flags=["SECCOMP_FILTER_FLAG_TURBO"]), "linux.seccomp.flags[0]"),
    (profile(deny(["mkdir"], "SCMP_ACT_KILL", errnoRet=5)), "linux.seccomp.syscalls[0].errnoRet"),
    (profile(default="SCMP_ACT_ALLOW", defaultErrnoRet=5), "linux.seccomp.defaultErrnoRet"),
    (profile(deny(["mkdir"], "SCMP_ACT_NOTIFY")), "linux.seccomp.listenerPath"),
    (profile(listenerMetadata="x"), "'listenerPath' is required when 'listenerMetadata'"),
    (profile(default="SCMP_ACT_NOTIFY", listenerPath="/x"), "linux.seccomp.defaultAction"),
])
def test_bad_profiles_are_refused(pyrunc, bundle, cid, prof, path):
    _refused(pyrunc, bundle, cid, prof, path)


def test_listener_path_must_be_a_socket(pyrunc, bundle, cid, tmp_path):
    not_sock = tmp_path / "plain-file"
    not_sock.write_text("")
    _refused(pyrunc, bundle, cid, profile(deny(["mkdir"], "SCMP_ACT_NOTIFY"), listenerPath=str(not_sock)),
             "linux.seccomp.listenerPath", "not a unix socket")


def test_agent_that_is_gone_fails_create(pyrunc, bundle, cid, tmp_path):
    # A socket file nobody listens on: sending the state fails, and create leaves nothing.
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    _refused(pyrunc, bundle, cid, profile(deny(["mkdir"], "SCMP_ACT_NOTIFY"), listenerPath=str(path)),
             "linux.seccomp.listenerPath", "Connection refused")


# What a busybox shell running mkdir needs; everything else gets defaultErrnoRet.
BUSYBOX_SYSCALLS = [
    "read", "write", "open", "openat", "close", "fstat", "newfstatat", "stat", "lstat", "statx", "mmap",
    "mprotect", "munmap", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "access", "execve",
    "exit", "exit_group", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "arch_prctl",
    "set_tid_address", "fcntl", "dup2", "dup3", "wait4", "clone", "fork", "vfork", "uname", "getcwd", "chdir",
    "lseek", "readlink", "prlimit64", "set_robust_list", "rseq", "futex", "getrandom", "pipe", "pipe2", "poll",
    "getdents64", "madvise", "sigaltstack", "setpgid", "getpgrp", "umask",
]


def test_default_errno_ret(pyrunc, bundle, cid):
    prof = profile({"names": BUSYBOX_SYSCALLS, "action": "SCMP_ACT_ALLOW"}, default="SCMP_ACT_ERRNO",
                   defaultErrnoRet=errno.EXDEV)
    proc = run(pyrunc, bundle, cid, "mkdir /d; echo mkdir=$?", prof)
    assert proc.stdout == "mkdir=1\n" and "Invalid cross-device link" in proc.stderr, proc.stderr


def test_non_root_without_no_new_privs(pyrunc, bundle, cid):
    # Installing a filter without no_new_privs needs CAP_SYS_ADMIN, which the final sets of
    # this user lack: the sets are applied right after the filter instead.
    proc = bundle.config["process"]
    proc["user"] = {"uid": 1000, "gid": 1000}
    proc["noNewPrivileges"] = False
    proc["capabilities"] = {n: ["CAP_KILL"] for n in ("bounding", "effective", "permitted")}
    out = run(pyrunc, bundle, cid, "grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status; "
              "mkdir /tmp/d; echo mkdir=$?", profile(deny(["mkdir"], errnoRet=errno.EDQUOT)))
    assert out.stdout.split() == ["CapPrm:", "0000000000000000", "CapEff:", "0000000000000000",
                                  "NoNewPrivs:", "0", "Seccomp:", "2", "mkdir=1"], out.stdout
    assert "quota" in out.stderr.lower()


def test_features_seccomp_lists_what_works(pyrunc, bundle, cid):
    feats = json.loads(pyrunc("features").stdout)["linux"]
    sec = feats["seccomp"]
    assert sec["enabled"] and len(sec["actions"]) == 9 and len(sec["operators"]) == 7
    assert set(sec["supportedFlags"]) <= set(sec["knownFlags"])
    assert "CAP_CHECKPOINT_RESTORE" in feats["capabilities"] and "CAP_SYS_ADMIN" in feats["capabilities"]
    assert feats["apparmor"] == {"enabled": False} and feats["selinux"] == {"enabled": False}
    # every listed architecture can join the native one in a filter
    from pyrunc.linux.seccomp import compile_profile

    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(sec["archs"])
    for arch in sec["archs"]:
        assert compile_profile(profile(deny(["mkdir"]), architectures=["SCMP_ARCH_X86_64", arch])).bpf
    assert "SCMP_ARCH_S390X" not in sec["archs"]  # big-endian: libseccomp cannot mix it in (EDOM)
    flags = [f for f in sec["supportedFlags"] if f != "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]  # needs notify
    prof = profile(deny(["mkdir"]), architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                   flags=flags)
    assert run(pyrunc, bundle, cid, "echo ok", prof).stdout == "ok\n"
    # an architecture the spec names but this host's libseccomp (2.5) does not know is refused
    missing = [f"SCMP_ARCH_{a}" for a in ("LOONGARCH64", "M68K", "SH", "SHEB") if f"SCMP_ARCH_{a}" not in sec["archs"]]
    assert missing
    _refused(pyrunc, bundle, cid, profile(architectures=missing[:1]), "linux.seccomp.architectures[0]",
             "not supported by libseccomp")


def test_exec_process_gets_the_filter_and_capabilities(pyrunc, bundle, cid):
    bundle.config["root"]["readonly"] = False
    bundle.config["linux"]["seccomp"] = profile(deny(["mkdir", "mkdirat"], errnoRet=errno.EMLINK))
    bundle.config["process"]["capabilities"] = {n: ["CAP_KILL"] for n in ("bounding", "effective", "permitted")}
    bundle.sh("exec sleep 1000")
    pyrunc("run", "-d", "--bundle", str(bundle.path), cid)
    proc = pyrunc("exec", cid, "sh", "-c", "grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; "
                  "mkdir /d; echo mkdir=$?")
    assert proc.stdout.split() == ["CapBnd:", "0000000000000020", "NoNewPrivs:", "1", "Seccomp:", "2", "mkdir=1"]
    assert "Too many links" in proc.stderr


def _libseccomp():
    import ctypes

    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    return lib, ctypes


def _syscall_names_below(limit: int) -> list[str]:
    lib, ctypes = _libseccomp()
    names = []
    for nr in range(limit):
        ptr = lib.seccomp_syscall_resolve_num_arch(0, nr)  # 0: the native architecture
        if ptr:
            names.append(ctypes.string_at(ptr).decode())
            ctypes.CDLL(None).free(ctypes.c_void_p(ptr))
    return names


def test_syscalls_newer_than_the_profile_get_enosys(pyrunc, bundle, cid):
    """An allowlist that names nothing from clone3 (435) on: a newer syscall (openat2) and a
    number no kernel knows get ENOSYS, which programs fall back on; an older one the profile
    does not name gets the default action, a named one its own. (runc 1.1.5, Debian 12's,
    answers EPERM for the first two: see docs/security.md.)"""
    import subprocess

    lib, _ = _libseccomp()
    nr = {name: lib.seccomp_syscall_resolve_name(name.encode()) for name in ("clone3", "openat2", "acct", "mkdirat")}
    allowed = [n for n in _syscall_names_below(nr["clone3"]) if n not in ("acct", "mkdirat")]
    subprocess.run(["gcc", "-static", "-O2", "-o", str(bundle.rootfs / "bin/sysnr"),
                    str(Path(__file__).parent / "data/sysnr.c")], check=True)
    bundle.config["linux"]["seccomp"] = profile(
        {"names": allowed, "action": "SCMP_ACT_ALLOW"}, deny(["mkdirat"], errnoRet=errno.EACCES),
        default="SCMP_ACT_ERRNO")
    bundle.args("/bin/sysnr", "99999", str(nr["openat2"]), str(nr["acct"]), str(nr["mkdirat"]))
    bundle.write()
    want = "ENOSYS\nENOSYS\nEPERM\nEACCES\n"
    assert pyrunc("run", "--bundle", str(bundle.path), cid).stdout == want
    # the same syscalls under a denylist: the kernel's own answers (no stub where the default allows)
    bundle.config["linux"]["seccomp"] = profile(deny(["mkdirat"], errnoRet=errno.EACCES))
    bundle.write()
    assert pyrunc("run", "--bundle", str(bundle.path), cid + "d").stdout.splitlines()[0] == "ENOSYS"
