"""spec [-b DIR] [--rootless]: write a default config.json, like runc's."""
from __future__ import annotations

import json
import posix

from pyrunc import fs
from pyrunc.cli.args import STR, Flag, parse
from pyrunc.errors import PyruncError, UsageError

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
           "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _mount(dst: str, typ: str, src: str, *opts: str) -> dict:
    m = {"destination": dst, "type": typ, "source": src}
    if opts:
        m["options"] = list(opts)
    return m


def default_config(rootless: bool, cgroup_ns: bool = True) -> dict:
    """runc's default for a host; cgroup_ns as runc 1.1 decides it: only on a pure cgroup v2
    host (elsewhere engines that add their own cgroup namespace would name it twice)."""
    nosx = ("nosuid", "noexec", "nodev")
    mounts = [
        _mount("/proc", "proc", "proc"),
        _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        _mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
               *(() if rootless else ("gid=5",))),
        _mount("/dev/shm", "tmpfs", "shm", *nosx, "mode=1777", "size=65536k"),
        _mount("/dev/mqueue", "mqueue", "mqueue", *nosx),
        _mount("/sys", "none", "/sys", "rbind", *nosx, "ro") if rootless
        else _mount("/sys", "sysfs", "sysfs", *nosx, "ro"),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", *nosx, "relatime", "ro"),
    ]
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount") + (("cgroup",) * cgroup_ns)]
    linux: dict = {"namespaces": namespaces, "maskedPaths": _MASKED, "readonlyPaths": _READONLY}
    if rootless:
        uid, gid = posix.geteuid(), posix.getegid()
        linux["namespaces"] = [ns for ns in namespaces if ns["type"] != "network"] + [{"type": "user"}]
        linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    return {
        "ociVersion": "1.3.0",
        "process": {
            "terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {s: list(_CAPS) for s in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrunc",
        "mounts": mounts,
        "linux": linux,
    }


def _pure_v2() -> bool:
    from pyrunc.cgroups.layout import detect

    try:
        return detect().mode == "v2"
    except PyruncError:  # no cgroup filesystem at all
        return False


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse([Flag("--bundle,-b", STR, "."), Flag("--rootless")], argv)
    if pos:
        raise UsageError('"spec" takes no arguments')
    path = fs.join(opts["bundle"], "config.json")
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise PyruncError(f"File {path} exists. Remove it first") from None
    except OSError as exc:
        raise PyruncError(f"{path}: {exc.strerror}") from None
    with open(fd, "w") as f:
        json.dump(default_config(opts["rootless"], _pure_v2()), f, indent=2)
        f.write("\n")
    return 0
