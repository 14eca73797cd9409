"""sd_notify passing: with NOTIFY_SOCKET set (a Type=notify unit running pyrunc, podman's
--sdnotify=container), the container's program gets a socket of its own and its READY=1
reaches the caller's socket, as with runc.

create binds the state directory's notify/ at /run/notify in the container and sets the
program's NOTIFY_SOCKET=/run/notify/notify.sock. start (and run) binds that socket afresh,
releases the init, and waits until the program says READY=1 or exits; then it sends what
the program said to the caller's socket, with MAINPID= the init's host pid (the program's
own pid means nothing outside its pid namespace).
"""
from __future__ import annotations

import posix
import select

from pyrunc import fs
from pyrunc import unixsock as socket
from pyrunc.errors import PyruncError
from pyrunc.state import NOTIFY_DIR as DIR

SOCK, IN_CONTAINER = "notify.sock", "/run/notify"


def requested() -> str | None:
    """The caller's NOTIFY_SOCKET: a path, or "@name" for an abstract socket."""
    return fs.getenv("NOTIFY_SOCKET") or None


def add_to_config(config: dict, container_dir: str) -> None:
    """create, before the Plan: the mount and the program's NOTIFY_SOCKET."""
    config.setdefault("mounts", []).append({
        "destination": IN_CONTAINER, "type": "bind", "source": fs.join(container_dir, DIR),
        "options": ["bind", "nosuid", "nodev", "noexec"]})
    env = config.setdefault("process", {}).setdefault("env", [])
    env[:] = [e for e in env if not e.startswith("NOTIFY_SOCKET=")] + [f"NOTIFY_SOCKET={IN_CONTAINER}/{SOCK}"]


def make_dir(dir_fd: int) -> None:
    """create, once the container's directory exists and before its init mounts notify/."""
    posix.mkdir(DIR, 0o755, dir_fd=dir_fd)


def listen(container_dir: str) -> socket.socket:
    """start, before the init is released: a fresh socket the program can write to."""
    path = fs.join(container_dir, DIR, SOCK)
    try:
        posix.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    posix.chmod(path, 0o777)  # whatever user the program runs as
    return sock


def relay_ready(sock: socket.socket, host: str, pid: int, pidfd: int) -> None:
    """Wait for READY=1 from the program (or its exit: pidfd readable), then tell ``host``."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if sock.fileno() in ready:
            lines = sock.recv(4096).decode(errors="replace").splitlines()
            if "READY=1" in lines:
                break
        elif pidfd in ready:
            return  # the program ended without READY=1: the caller sees it exit
    said = [line for line in lines if line and not line.startswith("MAINPID=")]
    msg = "\n".join(said + [f"MAINPID={pid}"]).encode()
    addr = "\0" + host[1:] if host.startswith("@") else host
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as out:
        try:
            out.sendto(msg, addr)
        except OSError as exc:
            raise PyruncError(f"NOTIFY_SOCKET {host}: sendto: {exc.strerror or exc}") from None
