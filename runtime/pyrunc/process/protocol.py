"""The channel between pyrunc and its container-side children.

A SOCK_SEQPACKET socketpair: one JSON object per packet, at most MAX_MSG
bytes, each with a "type" from the table below. The receiver names what it
expected when anything else arrives, and EOF means every child end is closed
(the child died without reporting).

    direction        type     fields               when
    parent -> child  go       -                    the child is in its cgroup (and maps are written)
    child  -> parent pid      pid                  the init's pid (after the pid-namespace fork)
    child  -> parent ready    -                    the init is set up and waits on exec.fifo
    child  -> parent error    msg                  setup failed; the child exits
"""
from __future__ import annotations

import json
import socket

from pyrunc.errors import PyruncError

MAX_MSG = 64 * 1024


class ProtocolError(PyruncError):
    pass


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @staticmethod
    def pair() -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return Channel(a), Channel(b)

    def send(self, kind: str, **fields: object) -> None:
        raw = json.dumps({"type": kind, **fields}).encode()
        if len(raw) > MAX_MSG:
            raise ProtocolError(f"internal message {kind!r} too large ({len(raw)} bytes)")
        self.sock.send(raw)

    def recv(self, *expected: str) -> dict:
        """Receive one message of an expected type; a child's error is raised here."""
        raw = self.sock.recv(MAX_MSG + 1)
        if not raw:
            raise ProtocolError(f"container setup died before sending {'/'.join(expected)}")
        if len(raw) > MAX_MSG:
            raise ProtocolError("oversized internal message refused")
        try:
            msg = json.loads(raw)
            kind = msg["type"]
        except (ValueError, TypeError, KeyError):
            raise ProtocolError("malformed internal message refused") from None
        if kind == "error" and "error" not in expected:
            raise PyruncError(str(msg.get("msg", "unknown error")))
        if kind not in expected:
            raise ProtocolError(f"expected {'/'.join(expected)} from the container, got {kind!r}")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
