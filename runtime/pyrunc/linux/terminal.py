"""process.terminal: a pty from the container's devpts, its master handed to whoever holds the console.

Container side (setup): the init opens /dev/pts/ptmx resolved inside the
rootfs (so the pty belongs to the container's devpts instance), binds the
slave over /dev/console, makes it its controlling terminal and stdio, and
sends the master over the console socket with SCM_RIGHTS: the protocol of
runc's recvtty, containerd and conmon (one message, one fd).

Host side (HostConsole, relay): `create --console-socket` connects the socket
before forking; a foreground `run` without one keeps a socketpair for itself
and copies between the master and its own stdio, as runc does.
"""
from __future__ import annotations

import errno
import fcntl
import posix
import struct
import termios

from pyrunc import unixsock as socket
from pyrunc.errors import PyruncError, UsageError, context
from pyrunc.linux import paths
from pyrunc.syscalls import calls as sc

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441
_WINSIZE = "HHHH"  # struct winsize: rows, cols, xpixel, ypixel


class TerminalError(PyruncError):
    pass


# ---- container side -------------------------------------------------------------------------

def setup(rootfd: int | None, console_fd: int | None, process: dict) -> None:
    """Run in the init before pivot_root; ``rootfd`` is None without a mount namespace."""
    size = process.get("consoleSize")
    user = process.get("user", {})
    if console_fd is None:
        raise TerminalError("process.terminal: no console socket to send the pty master to")
    with context("process.terminal"):
        root = rootfd if rootfd is not None else posix.open("/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            master = _open_ptmx(root)
        finally:
            if rootfd is None:
                posix.close(root)
        slave = fcntl.ioctl(master, _TIOCGPTPEER, posix.O_RDWR | posix.O_NOCTTY | posix.O_CLOEXEC)
        n = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, bytes(4)))[0]
        # The process's user owns its terminal (as login does), so it may reopen it by name;
        # the group stays devpts' (its gid= option, "tty"), as runc leaves it.
        posix.fchown(slave, user.get("uid", 0), -1)
        if size:
            with context("process.consoleSize"):
                fcntl.ioctl(master, termios.TIOCSWINSZ,
                            struct.pack(_WINSIZE, size.get("height", 0), size.get("width", 0), 0, 0))
        if rootfd is not None:
            _bind_console(rootfd, slave)
        with context("--console-socket"), socket.socket(fileno=console_fd) as sock:
            socket.send_fds(sock, [f"/dev/pts/{n}".encode()], [master])
        posix.close(master)
        posix.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for std in (0, 1, 2):
            posix.dup2(slave, std)
        posix.close(slave)


def _open_ptmx(root: int) -> int:
    try:
        master = paths.open_in_root(root, "/dev/pts/ptmx", posix.O_RDWR | posix.O_NOCTTY)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        raise TerminalError("/dev/pts/ptmx does not exist (mount devpts at /dev/pts)") from None
    if sc.fstatfs_type(master) != sc.DEVPTS_SUPER_MAGIC:
        posix.close(master)
        raise TerminalError("/dev/pts/ptmx is not on a devpts mount (mount devpts at /dev/pts)")
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    return master


def _bind_console(rootfd: int, slave: int) -> None:
    """runtime-linux.md: /dev/console is the pty slave, bind-mounted."""
    with context("/dev/console"):
        fd = paths.replace_with_file(rootfd, "/dev/console", 0o600)
        try:
            sc.mount(paths.fd_path(slave), paths.fd_path(fd), None, sc.MS_BIND, label="/dev/console")
        finally:
            posix.close(fd)


# ---- host side ------------------------------------------------------------------------------

class HostConsole:
    """Where the master goes: a --console-socket, or (foreground run) ourselves."""

    def __init__(self, enabled: bool, socket_path: str | None, detach: bool) -> None:
        if enabled and detach and not socket_path:
            raise UsageError("process.terminal: cannot allocate a tty if pyrunc will detach "
                             "without setting --console-socket")
        if socket_path and not (enabled and detach):
            raise UsageError("--console-socket: cannot use a console socket if pyrunc will not "
                             "detach or allocate a tty (process.terminal)")
        self.ours: socket.socket | None = None
        self.theirs: socket.socket | None = None
        if not enabled:
            return
        if socket_path:
            self.theirs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with context(f"--console-socket {socket_path}"):
                try:
                    self.theirs.connect(socket_path)
                except OSError as exc:
                    self.theirs.close()
                    raise PyruncError(f"connect: {exc.strerror}") from None
        else:
            self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def child_fd(self) -> int | None:
        return self.theirs.fileno() if self.theirs else None

    def created(self) -> int | None:
        """After create: drop the child's end; return the master if we relay it ourselves."""
        if self.theirs:
            self.theirs.close()
        if self.ours is None:
            return None
        with self.ours:
            self.ours.settimeout(10)
            _, fds, _, _ = socket.recv_fds(self.ours, 256, 1)
        if not fds:
            raise TerminalError("process.terminal: the container sent no pty master")
        copy_size(0, fds[0])  # before start: the process may ask for its size at once
        return fds[0]


def relay(master: int, wait: Callable[[Callable[[], None]], int]) -> int:
    """Copy stdin -> master and master -> stdout while ``wait(on_winch)`` waits for the init."""
    import threading

    saved = None
    if posix.isatty(0):
        import tty

        saved = termios.tcgetattr(0)
        tty.setraw(0)
    out = threading.Thread(target=_pump, args=(master, 1), daemon=True)
    threading.Thread(target=_pump, args=(0, master), daemon=True).start()
    out.start()
    try:
        status = wait(lambda: copy_size(0, master))
        out.join(timeout=2)  # the rest of the output; the slave closes with the last process
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return status


def copy_size(src: int, dst: int) -> None:
    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, bytes(8)))
    except OSError:
        pass  # src is not a terminal


def _pump(src: int, dst: int) -> None:
    while True:
        try:
            data = posix.read(src, 65536)
        except OSError:  # EIO: the slave side is closed
            return
        if not data:
            return
        try:
            while data:
                data = data[posix.write(dst, data):]
        except OSError:
            return
