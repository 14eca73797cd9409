"""linux.sysctl, written by the init through the container's /proc after pivot_root.

The checks of spec/sysctl.py already refused every key the container's own
namespaces do not cover, so these writes cannot reach the host; the write
goes through a verified procfs so a fake /proc in the image cannot redirect it.
"""
from __future__ import annotations

from pyrunc.errors import SyscallError, context
from pyrunc.linux import procfs
from pyrunc.spec.sysctl import proc_path


def apply(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        path = proc_path(key)
        with context(f"linux.sysctl.{key}"):
            try:
                procfs.write(path.removeprefix("/proc/"), value.encode())
            except SyscallError:
                raise
            except OSError as exc:  # a failed write carries no file name: name it
                raise SyscallError("write", exc.errno or 0, path) from None
