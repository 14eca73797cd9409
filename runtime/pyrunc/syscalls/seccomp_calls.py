"""Typed wrappers over ``_seccomp``: libseccomp's profile compiler and the seccomp(2) syscall.

libseccomp reports failures as negative errno return values (not errno), and
_seccomp returns seccomp(2)'s the same way; both surface as SyscallError naming the call.
"""
from __future__ import annotations

import posix

from pyrunc.errors import SyscallError
from pyrunc.syscalls import _seccomp as lib

SCMP_ERROR = -1  # __NR_SCMP_ERROR: the name is unknown to libseccomp


def _check(name: str, ret: int) -> int:
    if ret < 0:
        raise SyscallError(name, -ret)
    return ret


class Filter:
    """A libseccomp filter context, released on close."""

    def __init__(self, default_action: int) -> None:
        self._ctx = lib.init(default_action)  # the context's address
        if not self._ctx:
            raise SyscallError("seccomp_init", 22)  # EINVAL: the only way it fails for a valid action

    def add_arch(self, token: int) -> bool:
        """Add an architecture; False if the filter already has it (the native one)."""
        ret = lib.arch_add(self._ctx, token)
        if ret == -17:  # EEXIST
            return False
        _check("seccomp_arch_add", ret)
        return True

    def add_rule(self, action: int, syscall: int, conds: list[tuple[int, int, int, int]]) -> None:
        """``conds``: (arg index, op, value, valueTwo) tuples, all of which must match."""
        _check("seccomp_rule_add", lib.rule_add(self._ctx, action, syscall, conds))

    def export_bpf(self) -> bytes:
        """The compiled program: an array of struct sock_filter (8 bytes each)."""
        fd = posix.memfd_create("pyrunc-seccomp", posix.MFD_CLOEXEC)
        try:
            _check("seccomp_export_bpf", lib.export_bpf(self._ctx, fd))
            size = posix.lseek(fd, 0, 1)  # 1: SEEK_CUR
            return posix.pread(fd, size, 0)
        finally:
            posix.close(fd)

    def close(self) -> None:
        if self._ctx:
            lib.release(self._ctx)
            self._ctx = 0


def resolve_arch(name: str) -> int:
    """libseccomp's token for an arch name such as "x86_64"; 0 if unknown."""
    return lib.arch_resolve_name(name)


def native_arch() -> int:
    """This machine's token, which is its AUDIT_ARCH_* value."""
    return lib.arch_native()


def resolve_syscall(name: str) -> int:
    return lib.syscall_resolve_name(name)


def version() -> str:
    return ".".join(map(str, lib.version()))


def install_filter(bpf: bytes, flags: int) -> int:
    """Install a compiled program on the calling thread; the listener fd if flags ask for one, else 0."""
    while True:
        ret = lib.filter(flags, bpf)
        if ret >= 0:
            return ret
        if ret != -4:  # EINTR
            raise SyscallError("seccomp", -ret)


def flag_supported(flag: int) -> bool:
    """A known flag with no program fails with EFAULT; an unknown one with EINVAL (nothing is installed)."""
    return lib.filter(flag, None) == -14
