"""AppArmor profile and SELinux labels: process.apparmorProfile, process.selinuxLabel, linux.mountLabel.

When a label is requested and its LSM is not enabled on the host, `create`
fails with an error naming the field, before anything is created. That is
runc's behaviour (checked against runc 1.1.5 on a host with neither LSM:
selinuxLabel -> "selinux label is specified in config, but selinux is
disabled or not supported"; apparmorProfile -> the write of the profile to
/proc/self/attr/exec fails with EINVAL; mountLabel -> the "context=" mount
option fails with EINVAL). Running the container without the confinement the
user asked for would be a silent security downgrade; we only report it
earlier and more clearly.

Both process labels take effect at the next execve; the container side opens
the exec attribute through a procfs that cannot be redirected (linux.procfs)
before it drops its capabilities, and the launcher writes them right before
the program's execve (its own execve comes first).
"""
from __future__ import annotations

import errno
import posix

from pyrunc import fs
from pyrunc.errors import ConfigError, context
from pyrunc.linux import procfs  # imported here: the container side uses it after pivot_root

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator

Issue = tuple[str, str]


def apparmor_enabled() -> bool:
    if not fs.isdir("/sys/kernel/security/apparmor"):
        return False
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read(1) == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return fs.exists("/sys/fs/selinux/enforce")


def host_issues(process: dict | None, linux: dict | None) -> Iterator[Issue]:
    """Labels that cannot be applied on this host (not pure: reads /sys)."""
    process, linux = process or {}, linux or {}
    if process.get("apparmorProfile") and not apparmor_enabled():
        yield "process.apparmorProfile", "AppArmor is not enabled on this host"
    if process.get("selinuxLabel") and not selinux_enabled():
        yield "process.selinuxLabel", "SELinux is not enabled on this host"
    if linux.get("mountLabel") and not selinux_enabled():
        yield "linux.mountLabel", "SELinux is not enabled on this host"


def check(process: dict | None, linux: dict | None) -> None:
    found = list(host_issues(process, linux))
    if found:
        raise ConfigError("; ".join(f"{path}: {msg}" for path, msg in found))


def label_mounts(mounts: list, mount_label: str | None) -> None:
    """linux.mountLabel: SELinux's context= option on each filesystem mount (plan.MountOp),
    not on binds (they keep their files' labels) nor on proc/sysfs/cgroup, as runc."""
    if not mount_label:
        return
    for op in mounts:
        if not op.is_bind and op.fstype not in ("proc", "sysfs", "cgroup", "cgroup2"):
            op.opts.data.append(f'context="{mount_label}"')


def open_exec_labels(process: dict) -> tuple[tuple[int, str], tuple[int, str]]:
    """Container side, before the capability drop: the exec attributes to write the labels to,
    ((apparmor fd, text), (selinux fd, text)), fd -1 where none. A label applies at the next
    execve, so the launcher writes them just before the program's (process/launch.py)."""
    apparmor: tuple[int, str] = (-1, "")
    selinux: tuple[int, str] = (-1, "")
    profile = process.get("apparmorProfile")
    if profile:
        with context("process.apparmorProfile"):
            try:  # the per-LSM directory (Linux >= 5.1) first, the shared file on older kernels
                fd = procfs.open_proc("self/attr/apparmor/exec", posix.O_WRONLY)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                fd = procfs.open_proc("self/attr/exec", posix.O_WRONLY)
            apparmor = (fd, f"exec {profile}")
    label = process.get("selinuxLabel")
    if label:
        with context("process.selinuxLabel"):
            selinux = (procfs.open_proc("self/attr/exec", posix.O_WRONLY), label)
    return apparmor, selinux
