"""The container process's last step, shared by create's init and exec: enter the sealed
launcher (syscalls/launcher.c), which [waits for `start`,] writes the exec labels, marks our
fds close-on-exec, sets the capabilities and installs the seccomp filter, and execs the program.

Why a program of its own (CVE-2019-5736): the kernel resolves a `#!/proc/self/exe`
interpreter, a /proc/self/exe program, /proc/thread-self/exe, against the process that calls
execve, and the program it starts is dumpable: called from Python, it would be the host's
interpreter, opened and written through /proc/self/fd. So the last execve is made by a
static program that lives only in a memfd sealed against every write (runc's exeseal has
the same aim with a copy of its whole binary). Being non-dumpable before that execve
does not help after it. A waiting init is that program too: a few pages, not an interpreter.

The launcher's own execve changes the capability rules (capabilities(7)): a non-root user
keeps only its ambient set through it, root gets its bounding set. So before it we make the
permitted set inheritable and ambient, and the launcher sets the exact sets again after.
The memfd is execute-only and we drop DAC_OVERRIDE/DAC_READ_SEARCH from the effective set,
so the kernel makes the launcher non-dumpable from its first instruction (it cannot be read).
"""
from __future__ import annotations

import errno
import posix
from _struct import pack  # builtin: nothing to read from the host's disk after pivot_root
from fcntl import F_ADD_SEALS, fcntl

# _signal is the C module: `signal` would first build its enums (start-up time)
import _signal as signal

from pyrunc import fs
from pyrunc.errors import PyruncError
from pyrunc.linux import caps as capmod
from pyrunc.linux import confine, execute
from pyrunc.syscalls import calls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

MAGIC = 0x314C5250  # "PRL1", launcher.c's LAUNCH_MAGIC
_SEALS = 0x1 | 0x2 | 0x4 | 0x8  # F_SEAL_SEAL, SHRINK, GROW, WRITE
_F_SEAL_EXEC = 0x20  # Linux >= 6.3: the mode (our execute-only bits) cannot change either
_MFD_EXEC = 0x10  # Linux >= 6.3: say so, or vm.memfd_noexec=1 makes it non-executable
_DAC = 1 << 1 | 1 << 2  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
_CLOSE_RANGE_CLOEXEC = 4
_ERRNOS = 134  # the launcher's error texts, by errno: 1..133 (EHWPOISON)
_PROGRAM = __file__.rsplit("/", 2)[0] + "/syscalls/pyrunc-launch"


def sealed_launcher() -> int:
    """The parent's part, before any fork: the launcher in a sealed, execute-only memfd
    (an O_CLOEXEC fd, which execveat still runs). Refuses rather than run unsealed."""
    try:
        with open(_PROGRAM, "rb") as f:
            code = f.read()
    except OSError as exc:
        raise PyruncError(f"{_PROGRAM}: {exc.strerror}: pyrunc is not fully installed (hack/setup.sh)") from None
    flags = posix.MFD_CLOEXEC | posix.MFD_ALLOW_SEALING
    try:
        fd = posix.memfd_create("pyrunc-launch", flags | _MFD_EXEC)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a kernel before MFD_EXEC: every memfd is executable there
            fd = posix.memfd_create("pyrunc-launch", flags)
        else:
            raise _refusal("memfd_create", exc) from None
    try:
        posix.write(fd, code)
        posix.fchmod(fd, 0o111)
        try:
            fcntl(fd, F_ADD_SEALS, _SEALS | _F_SEAL_EXEC)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            fcntl(fd, F_ADD_SEALS, _SEALS)
    except OSError as exc:
        posix.close(fd)
        raise _refusal("sealing the launcher", exc) from None
    return fd


def _refusal(what: str, exc: OSError) -> PyruncError:
    why = ""
    if exc.errno == errno.EACCES:
        why = " (vm.memfd_noexec forbids executable memfds)"
    return PyruncError(f"{what}: {errno.errorcode.get(exc.errno or 0, exc.errno)}{why}: "
                       "without a sealed launcher the container could reach the host's Python; refusing")


def launch(launcher_fd: int, path: str, args: list[str], env: list[str], c: confine.Confinement,
           close_from: int, fifo_fd: int = -1, report_fd: int = -1, detach_fd: int = -1) -> NoReturn:
    """Become the launcher, which execs ``path``; with ``fifo_fd``, once `start` wrote a byte
    to it. ``report_fd``: the channel to the caller (exec), which then reads our failure.
    ``detach_fd``: create's channel, over which the launcher answers "created" with
    "detached" (process/protocol.py) while create saves the state, and reports a failure
    until then."""
    prefixes = ("launcher: ", "exec.fifo: read: ", "process.apparmorProfile/selinuxLabel: write: ",
                "linux.seccomp: seccomp: ", "process.capabilities: capset: ", f'exec: "{args[0]}": execve {path}: ')
    labels = c.labels  # (apparmor, selinux) exec attribute: (fd or -1, text)
    data = posix.memfd_create("pyrunc-launch-data", 0)  # the blob below; the launcher closes it
    # Every fd of ours from close_from on goes at execve, those the launcher needs (it closes
    # them) after its own. The syscalls here come before any filter: an older profile may
    # allow neither close_range nor memfd_create.
    sc.close_range(close_from, flags=_CLOSE_RANGE_CLOEXEC)
    for fd in (fifo_fd, report_fd, detach_fd, labels[0][0], labels[1][0], data):
        if fd >= 0:
            posix.set_inheritable(fd, True)
    confine.install_early(c)
    bpf, flags, caps = confine.final_steps(c)
    envp = [f"{name}={value}" for name, value in execute.env_dict(env).items()]
    strings = [path, *args, *envp, *prefixes, labels[0][1], labels[1][1], *map(_errtext, range(_ERRNOS))]
    try:
        blob = b"".join(map(_c_string, strings))
    except ValueError as exc:  # a NUL byte in process.args or process.env
        raise PyruncError(f"process: {exc}") from None
    caps = _carry_capabilities(caps, capmod.bounding_set(c.caps.last))
    head = pack("<IiiiiiIIIIII4Q", MAGIC, fifo_fd, report_fd, detach_fd, labels[0][0], labels[1][0],
                flags, len(bpf or b""), len(args), len(envp), _ERRNOS, 0, *caps)
    posix.write(data, head + (bpf or b"") + blob)
    # Python ignores these two, and an ignored signal stays ignored through execve.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    try:
        posix.execve(launcher_fd, ["pyrunc-launch", str(data)], {})
    except OSError as exc:
        raise PyruncError(f"execveat pyrunc-launch: {errno.errorcode.get(exc.errno or 0, exc.errno)} "
                          f"({exc.strerror})") from None


def _carry_capabilities(final: tuple[int, int, int, int], bset: int) -> tuple[int, int, int, int]:
    """Make what we hold survive the launcher's execve, as far as the kernel lets it: our
    permitted set inheritable and ambient (a new inheritable capability must be in the
    bounding set, and an ambient one inheritable). Returns ``final`` cut to what the launcher
    will hold: a permitted capability outside both never reaches the program anyway (a user
    execs with its ambient set, root with its bounding set)."""
    eff, perm, inh = sc.capget()
    reach = perm & (bset | inh)
    sc.set_capabilities(eff & ~_DAC, perm, inh | reach, reach)
    return final[0] & reach, final[1] & reach, final[2], final[3] & reach


def _c_string(s: str) -> bytes:
    raw = fs.fsencode(s)
    if b"\0" in raw:
        raise ValueError(f"embedded null byte in {s!r}")
    return raw + b"\0"


def _errtext(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))} ({posix.strerror(err)})" if err else ""
