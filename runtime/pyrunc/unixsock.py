"""The few socket calls pyrunc makes, on the C module ``_socket`` alone.

``import socket`` costs ~3.5 ms of start-up (it pulls in selectors and builds
enums) on every create and exec; the modules that talk over unix sockets
import this instead: ``from pyrunc import unixsock as socket``.
"""
from __future__ import annotations

import struct

import _socket
from _socket import (AF_INET, AF_UNIX, MSG_CMSG_CLOEXEC, SOCK_DGRAM, SOCK_SEQPACKET,  # noqa: F401
                     SOCK_STREAM, sethostname)


__all__ = ["AF_INET", "AF_UNIX", "MSG_CMSG_CLOEXEC", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_STREAM",
           "recv_fds", "send_fds", "sethostname", "socket", "socketpair"]


class socket(_socket.socket):  # noqa: N801 - stands in for socket.socket
    """A socket object that closes itself at the end of a ``with`` block."""

    __slots__ = ()

    def __enter__(self) -> socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def socketpair(family: int, type: int) -> tuple[socket, socket]:
    a, b = _socket.socketpair(family, type)
    return socket(family, type, fileno=a.detach()), socket(family, type, fileno=b.detach())


def send_fds(sock: _socket.socket, buffers: list[bytes], fds: list[int]) -> int:
    """sendmsg with the fds as one SCM_RIGHTS message; returns the bytes sent."""
    # struct, not array: importing array imports collections (~1.5 ms)
    return sock.sendmsg(buffers, [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])


def recv_fds(sock: _socket.socket, bufsize: int, maxfds: int, flags: int = 0) -> tuple[bytes, list[int], int, object]:
    """recvmsg that returns (data, received fds, msg flags, address); ``flags`` reach recvmsg
    (MSG_CMSG_CLOEXEC: the fds arrive close-on-exec)."""
    fds: list[int] = []
    data, ancdata, msg_flags, addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * 4), flags)
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(payload) // 4}i", payload[:len(payload) - len(payload) % 4])
    return data, fds, msg_flags, addr
