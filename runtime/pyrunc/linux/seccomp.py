"""linux.seccomp: compiled to BPF by libseccomp in the parent, installed by the container side.

Compiling in the parent means a bad profile fails `create` before any process
exists, and the container side, after pivot_root, needs nothing from the host
but one seccomp(2) call. The program is installed as late as possible (right
before execve) so the profile does not have to allow pyrunc's own setup
syscalls -- except with SCMP_ACT_NOTIFY, where the listener fd must reach the
agent while `create` still runs ("status": "creating"), so the filter is
installed just before the init reports ready (runc does the same).
"""
from __future__ import annotations

import errno
import posix
import stat
from _struct import pack

from pyrunc import jsonio, log
from pyrunc import unixsock as socket
from pyrunc.errors import ConfigError, PyruncError, context

ACT_KILL_THREAD, ACT_KILL_PROCESS, ACT_TRAP = 0x00000000, 0x80000000, 0x00030000
ACT_ERRNO, ACT_TRACE, ACT_LOG, ACT_ALLOW, ACT_NOTIFY = 0x00050000, 0x7FF00000, 0x7FFC0000, 0x7FFF0000, 0x7FC00000
ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP, "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE, "SCMP_ACT_ALLOW": ACT_ALLOW, "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")  # the actions that carry errnoRet
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
             "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ARCHES = ("X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64",
          "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64", "RISCV64",
          "LOONGARCH64", "M68K", "SH", "SHEB")
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}
FLAG_NEW_LISTENER, FLAG_TSYNC_ESRCH = 8, 16


class Program:
    """What the container side needs: the BPF bytes, the seccomp(2) flags, the agent's socket."""

    __slots__ = ("bpf", "flags", "listener", "metadata")

    def __init__(self, bpf: bytes, flags: int, listener: str | None, metadata: str | None) -> None:
        self.bpf, self.flags, self.listener, self.metadata = bpf, flags, listener, metadata

    @property
    def notify(self) -> bool:
        return bool(self.flags & FLAG_NEW_LISTENER)


def _action(name: str, errno_ret: int | None) -> int:
    base = ACTIONS[name]
    if name in WITH_ERRNO:
        return base | ((errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    return base


def _uses_notify(prof: dict) -> bool:
    return prof.get("defaultAction") == "SCMP_ACT_NOTIFY" or any(
        r.get("action") == "SCMP_ACT_NOTIFY" for r in prof.get("syscalls") or [])


def compile_profile(prof: dict, where: str = "linux.seccomp") -> Program:
    """Profile -> Program; spec.security has already refused malformed combinations."""
    from pyrunc.syscalls import seccomp_calls as sc

    default = _action(prof["defaultAction"], prof.get("defaultErrnoRet"))
    flt = sc.Filter(default)
    try:
        for i, arch in enumerate(prof.get("architectures") or []):
            token = sc.resolve_arch(arch.removeprefix("SCMP_ARCH_").lower())
            if not token:
                raise ConfigError(f"{where}.architectures[{i}]: {arch} is not supported by libseccomp "
                                  f"{sc.version()}")
            with context(f"{where}.architectures[{i}] {arch}"):
                flt.add_arch(token)
        for i, rule in enumerate(prof.get("syscalls") or []):
            _add_rule(flt, rule, default, f"{where}.syscalls[{i}]")
        bpf = _enosys_stub(prof, default) + flt.export_bpf()
    finally:
        flt.close()
    flags = 0
    for i, name in enumerate(prof.get("flags") or []):
        if not flag_supported(name):
            raise ConfigError(f"{where}.flags[{i}]: {name} is not supported by this kernel")
        flags |= FLAGS[name]
    listener = None
    if _uses_notify(prof):
        listener = _check_listener(prof["listenerPath"], where)
        flags |= FLAG_NEW_LISTENER | (FLAG_TSYNC_ESRCH if flags & FLAGS["SECCOMP_FILTER_FLAG_TSYNC"] else 0)
    elif flags & FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]:
        # The kernel refuses the flag without a listener; it has no meaning without one.
        log.debug(f"{where}.flags: WAIT_KILLABLE_RECV ignored, no SCMP_ACT_NOTIFY rule")
        flags &= ~FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    return Program(bpf, flags, listener, prof.get("listenerMetadata"))


_X32_BIT, _AUDIT_ARCH_X86_64 = 0x40000000, 0xC000003E
_PERMISSIVE = (ACT_ALLOW, ACT_LOG, ACT_TRACE)


def _enosys_stub(prof: dict, default: int) -> bytes:
    """BPF to run before libseccomp's: on this machine's architecture, a syscall newer than
    every one the profile names gets ENOSYS, not the default action. Programs fall back on
    ENOSYS (glibc: clone3 -> clone, faccessat2, openat2); an EPERM from an older profile
    breaks them. runc patches its filters the same way; like runc, not where the default
    lets syscalls through (the kernel answers ENOSYS itself) or already is ENOSYS. x32
    syscalls stay with the filter."""
    from pyrunc.syscalls import seccomp_calls as sc

    if default & 0xFFFF0000 in _PERMISSIVE or default == ACT_ERRNO | errno.ENOSYS:
        return b""
    named = [sc.resolve_syscall(name) for rule in prof.get("syscalls") or [] for name in rule["names"]]
    last = max((nr for nr in named if nr >= 0), default=-1)
    if last < 0:
        return b""
    arch = sc.native_arch()
    x32 = arch == _AUDIT_ARCH_X86_64
    code = [(0x20, 0, 0, 4),  # A = arch
            (0x15, 0, 3 + x32, arch),  # another architecture: on to the filter
            (0x20, 0, 0, 0)]  # A = syscall number
    if x32:
        code.append((0x45, 2, 0, _X32_BIT))
    code += [(0x25, 0, 1, last),  # newer than the profile: ENOSYS
             (0x06, 0, 0, ACT_ERRNO | errno.ENOSYS)]
    return b"".join(pack("<HBBI", *ins) for ins in code)


def flag_supported(name: str) -> bool:
    """Asks the kernel; WAIT_KILLABLE_RECV is only accepted together with NEW_LISTENER."""
    from pyrunc.syscalls import seccomp_calls as sc

    extra = FLAG_NEW_LISTENER if name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" else 0
    return sc.flag_supported(FLAGS[name] | extra)


def _add_rule(flt, rule: dict, default: int, where: str) -> None:
    from pyrunc.syscalls import seccomp_calls as sc

    action = _action(rule["action"], rule.get("errnoRet"))
    if action == default:  # libseccomp refuses a rule that repeats the default; it changes nothing
        return
    conds = [(a["index"], OPERATORS[a["op"]], a["value"], a.get("valueTwo", 0)) for a in rule.get("args") or []]
    # libseccomp ANDs the comparisons of one rule but takes one per argument:
    # several on the same argument become one rule each (ORed), as runc does.
    indexes = [c[0] for c in conds]
    groups = [conds] if len(set(indexes)) == len(indexes) else [[c] for c in conds]
    for name in rule["names"]:
        nr = sc.resolve_syscall(name)
        if nr == sc.SCMP_ERROR:
            log.debug(f"{where}: syscall {name!r} unknown to libseccomp on this architecture, skipped")
            continue
        for group in groups:
            with context(f"{where} {name}"):
                flt.add_rule(action, nr, group)


def _check_listener(path: str, where: str) -> str:
    # runc's phrase, which engines match on, before pyrunc's detail
    try:
        mode = posix.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(f"{where}.listenerPath {path}: failed to connect with seccomp agent: "
                          f"{exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"{where}.listenerPath {path}: failed to connect with seccomp agent: not a unix socket")
    return path


def install(prog: Program) -> int:
    """Container side: install the filter; the listener fd with SCMP_ACT_NOTIFY, else -1."""
    from pyrunc.syscalls import seccomp_calls as sc

    with context("linux.seccomp"):
        fd = sc.install_filter(prog.bpf, prog.flags)
    return fd if prog.notify else -1


def send_to_agent(prog: Program, listener_fd: int, state: dict, pid: int) -> None:
    """Parent side: one connection, one container process state with the fd in SCM_RIGHTS, closed.

    ``pid`` is the process the filter was installed in (config-linux.md "The
    Container Process State"). Failing here fails `create` (or `exec`).
    """
    msg = {"ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": pid, "state": state}
    if prog.metadata is not None:
        msg["metadata"] = prog.metadata
    with context(f"linux.seccomp.listenerPath {prog.listener}"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            try:
                sock.connect(prog.listener)
            except OSError as exc:
                raise PyruncError(f"failed to connect with seccomp agent: connect: {exc.strerror or exc}") from None
            try:
                raw = jsonio.dumps(msg).encode()
                sent = socket.send_fds(sock, [raw], [listener_fd])
                if sent < len(raw):
                    sock.sendall(raw[sent:])
            except OSError as exc:
                raise PyruncError(f"sending the seccomp fd: {exc.strerror or exc}") from None


def features() -> dict:
    """features.linux.seccomp: what libseccomp and this kernel let us do."""
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": [f"SCMP_ARCH_{a}" for a in ARCHES if _arch_usable(a)],
        "knownFlags": sorted(FLAGS),
        "supportedFlags": sorted(name for name in FLAGS if flag_supported(name)),
    }


def _arch_usable(arch: str) -> bool:
    """Known to libseccomp and combinable with the native one (libseccomp refuses, with
    EDOM, to mix byte orders or word sizes it cannot handle in one filter)."""
    from pyrunc.syscalls import seccomp_calls as sc

    token = sc.resolve_arch(arch.lower())
    if not token:
        return False
    flt = sc.Filter(ACT_ALLOW)
    try:
        flt.add_arch(token)
        return True
    except OSError:
        return False
    finally:
        flt.close()
