"""The channel between pyrunc and its container-side children.

A SOCK_SEQPACKET socketpair: one JSON object per packet, at most MAX_MSG
bytes, each with a "type" from the table below. The receiver names what it
expected when anything else arrives, and EOF means every child end is closed
(the child died without reporting).

    direction        type     fields               when
    parent -> child  go       -                    the child is in its cgroup
    child  -> parent userns   -                    the first child unshared a new user namespace (alone)
    parent -> child  mapped   setgroups            its uid/gid maps are written; setgroups: still allowed
                                                   (linux/userns.py; only with a new user namespace)
    child  -> parent pid      pid                  the init's pid (after the pid-namespace fork), 0 when
                                                   the child is the init itself
    child  -> parent hooks    -                    mounts done, before pivot_root: run prestart/createRuntime
                                                   (hooks.py; only with those, startContainer or poststart)
    parent -> child  hooks-done [fd]               they passed; the fd (with startContainer/poststart only)
                                                   is the write end of <state>/hooks.fifo for `start`
    parent -> child  netdevices-done -             linux.netDevices moved into the init's netns (only with
                                                   netDevices; the init waits for it before linux.sysctl)
    child  -> parent seccomp-fd [fd]               the seccomp listener (SCMP_ACT_NOTIFY only), one fd
                                                   in SCM_RIGHTS; any other message carrying fds is refused
    child  -> parent ready    -                    the init is set up; it becomes the launcher, which
                                                   waits on exec.fifo (in Python with startContainer
                                                   or poststart hooks; after "detached" under a
                                                   SCMP_ACT_NOTIFY filter, whose agent sees that execve)
    parent -> child  created  -                    state.json is complete: the init may outlive us
    child  -> parent detached -                    it no longer dies with us (PR_SET_PDEATHSIG 0);
                                                   sent by the launcher (launcher.c's detach()), which
                                                   reports a failure before it as "error"
    child  -> parent error    msg                  setup failed; the child exits
    child  -> parent crash    -                    tests only (crash.py): the runtime dies on reading it

Every child dies with the runtime (die_with_parent) until "detached": a runtime killed
at any step leaves no process behind that nobody knows about.

exec (process/exec.py) uses: pid (only when the child had to fork for the pid
namespace: rootless), go (sent once the parent put the process in the cgroup2; the
child waits for it right before execve), seccomp-fd, error; and EOF instead of "ready":
the child end is close-on-exec, so EOF means execve succeeded.
"""
from __future__ import annotations

import errno
import posix

import select

from pyrunc import crash, fs, jsonio, log
from pyrunc.errors import PyruncError, SyscallError
from pyrunc.syscalls import calls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

MAX_MSG = 64 * 1024


def setup_timeout() -> float:
    """Seconds the runtime waits for each message of a container's setup: a child that
    neither answers nor dies (frozen with its cgroup, stuck in a mount) must not hang
    create or exec. PYRUNC_SETUP_TIMEOUT changes it (for tests)."""
    return float(fs.getenv("PYRUNC_SETUP_TIMEOUT") or 60)


class ProtocolError(PyruncError):
    pass


def _encode(kind: str, fields: dict) -> bytes:
    raw = jsonio.dumps({"type": kind, **fields}).encode()
    if len(raw) > MAX_MSG:
        raise ProtocolError(f"internal message {kind!r} too large ({len(raw)} bytes)")
    return raw


class Channel:
    """One end, as a bare fd: posix and our C calls (syscalls/native.c) carry the packets,
    so create and exec need not import `_socket` (~0.2 ms)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.timeout: float | None = None  # seconds each recv waits (the runtime's end); None: no bound

    @staticmethod
    def pair() -> tuple[Channel, Channel]:
        a, b = sc.socketpair(sc.AF_UNIX, sc.SOCK_SEQPACKET)
        return Channel(a), Channel(b)

    def send(self, kind: str, **fields: object) -> None:
        posix.write(self.fd, _encode(kind, fields))  # Python ignores SIGPIPE: EPIPE is an error

    def send_ahead(self, kind: str) -> None:
        """Send a message the peer reads later, when it gets there. A peer that failed
        before has closed its end: the next recv reads its error, so EPIPE is not ours."""
        try:
            posix.write(self.fd, _encode(kind, {}))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_fd(self, kind: str, fd: int, **fields: object) -> None:
        sc.send_fds(self.fd, _encode(kind, fields), [fd])

    def read_raw(self) -> bytes:
        """One packet as it is (b"": EOF), past a reset: the child exited leaving a message of
        ours unread, which the kernel reports first, once; what it sent before is still queued."""
        try:
            return posix.read(self.fd, MAX_MSG + 1)
        except ConnectionResetError:
            return posix.read(self.fd, MAX_MSG + 1)

    def recv(self, *expected: str) -> dict:
        """Receive one message of an expected type; a child's error is raised here."""
        return self._recv(expected, 0)[0]

    def recv_fd(self, *expected: str) -> tuple[dict, int]:
        """Receive a message that carries exactly one fd; the caller closes it."""
        msg, fds = self._recv(expected, 1)
        return msg, fds[0]

    def wait(self, expected: tuple[str, ...]) -> None:
        """Until a message (or EOF) is there to read, for at most ``timeout``."""
        if self.timeout is None:
            return
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        if not poller.poll(int(self.timeout * 1000)):
            raise ProtocolError(f"container setup sent no {'/'.join(expected)} within {self.timeout:g} s"
                                " (is its cgroup frozen?)")

    def _recv(self, expected: tuple[str, ...], nfds: int) -> tuple[dict, list[int]]:
        self.wait(expected)
        try:
            raw, fds, flags = sc.recv_fds(self.fd, MAX_MSG + 1, 1, sc.MSG_CMSG_CLOEXEC)
        except SyscallError as exc:
            if exc.errno != errno.ECONNRESET:
                raise
            # The child exited leaving a message of ours unread: the kernel reports that first,
            # once; what the child sent before (its error) is still queued behind it.
            raw, fds, flags = sc.recv_fds(self.fd, MAX_MSG + 1, 1, sc.MSG_CMSG_CLOEXEC)
        try:
            msg = self.decode(raw, expected)
            if len(fds) != nfds or flags & sc.MSG_CTRUNC:
                raise ProtocolError(f"internal message {msg['type']!r} with {len(fds)} fds refused")
        except BaseException:
            for fd in fds:
                posix.close(fd)
            raise
        return msg, fds

    def decode(self, raw: bytes, expected: tuple[str, ...]) -> dict:
        if not raw:
            raise ProtocolError(f"container setup died before sending {'/'.join(expected)}")
        if len(raw) > MAX_MSG:
            raise ProtocolError("oversized internal message refused")
        try:
            msg = jsonio.loads(raw)
            kind = msg["type"]
        except (ValueError, TypeError, KeyError):
            raise ProtocolError("malformed internal message refused") from None
        if kind == "crash":
            crash.die()
        if kind == "error" and "error" not in expected:
            raise PyruncError(str(msg.get("msg", "unknown error")))
        if kind not in expected:
            raise ProtocolError(f"expected {'/'.join(expected)} from the container, got {kind!r}")
        return msg

    def crash_point(self, op: str, step: str) -> None:
        """crash.point for a container-side child: have the runtime die now (on reading
        "crash"), and wait until it has."""
        if crash.reached(op, step):
            self.send("crash")
            while posix.read(self.fd, 65536):  # EOF: the runtime is gone (its death signal usually comes first)
                pass
            posix._exit(1)

    def peer_gone(self) -> bool:
        """Whether the other end is closed: its process died (or gave up on us)."""
        poller = select.poll()
        poller.register(self.fd, select.POLLRDHUP)
        return any(ev & (select.POLLHUP | select.POLLRDHUP) for _, ev in poller.poll(0))

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def die_with_parent(chan: Channel) -> None:
    """SIGKILL us when our parent dies (PR_SET_PDEATHSIG), and if it died before that was
    set, exit now: its end of ``chan`` is closed then. getppid() cannot tell: in a new pid
    namespace it is 0. The kernel clears the setting at every credential change (a user
    switch, becoming root of a user namespace), so it is set again after each."""
    sc.prctl(sc.PR_SET_PDEATHSIG, 9)
    if chan.peer_gone():
        posix._exit(1)


def fork_and_report_pid(chan: Channel) -> None:
    """Fork for a pid or time namespace entered before: the parent sends "pid" (the child's
    pid as the runtime sees it) and exits; the child returns. CLONE_PARENT makes the child
    the runtime's own child, so that it dies with the runtime and not with its exiting
    parent. The child first waits for its forker's exit (EOF on a pipe), so "pid" always
    arrives before anything it sends."""
    hold_r, hold_w = posix.pipe2(posix.O_CLOEXEC)
    pid = sc.clone3(-1, sc.CLONE_PARENT)
    if pid:
        chan.send("pid", pid=pid)
        posix._exit(0)
    die_with_parent(chan)
    posix.close(hold_w)
    posix.read(hold_r, 1)
    posix.close(hold_r)


def report_and_exit(chan: Channel, exc: BaseException, what: str = "container setup") -> NoReturn:
    """A child's last act: its failure travels to the parent as an "error" message (the
    stderr we share when the parent is gone). Never returns: a child must not unwind into
    the parent's code. For the --debug traceback the child must have imported traceback
    while the host's files were reachable; this import then only finds it in sys.modules."""
    try:
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)) and chan.peer_gone():
            return  # our channel broke: the parent gave up first and reports why itself
        if isinstance(exc, (PyruncError, OSError)):
            msg = str(exc)
        else:  # a bug: name it, and keep the traceback for --debug
            msg = f"internal error: {type(exc).__name__}: {exc}"
            if log.debugging():
                import traceback
                log.debug(f"{what}: " + "".join(traceback.format_exception(exc)))
        try:
            chan.send("error", msg=msg)
        except OSError:
            posix.write(2, f"pyrunc: {msg}\n".encode(errors="replace"))
    finally:
        posix._exit(1)
