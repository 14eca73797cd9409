"""The loopback interface of a new network namespace, brought up with one ioctl (no netlink library)."""
from __future__ import annotations

import fcntl
import posix
import struct

from pyrunc.errors import context
from pyrunc.syscalls import calls as sc

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def loopback_up() -> None:
    with context("network namespace: lo up"):
        s = sc.socket(sc.AF_INET, sc.SOCK_DGRAM)
        try:
            req = struct.pack("16sH14x", b"lo", 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
        finally:
            posix.close(s)
