"""cgroups for pyrunc: v1, v2 and hybrid hosts, cgroupfs and systemd drivers.

Cheap to import: the manager, resource writers, stats and the eBPF device
program are pulled in by the calls that need them.
"""
from __future__ import annotations

from .. import fs
from ..errors import ConfigError

TYPE_CHECKING = False  # typing costs ~3 ms of start-up
if TYPE_CHECKING:
    from .manager import CgroupManager


def open_manager(cgroups_path: str | None, container_id: str, *, systemd: bool = False,
                 rootless: bool = False) -> CgroupManager:
    """The manager for a new container; nothing is created until ``create()``.

    ``cgroups_path`` is linux.cgroupsPath: absolute = below each hierarchy's root,
    relative = below this process's own cgroup, None = runc's default, the
    relative path "<container_id>". With ``systemd``: "slice:prefix:name" (systemd.py).
    """
    from . import layout as _layout
    from .manager import UNIFIED, CgroupManager

    lay = _layout.detect()
    if systemd:
        from . import systemd as sd

        slice_, unit = sd.parse_path(cgroups_path, container_id, rootless)
        if not fs.isdir("/run/systemd/system"):
            raise ConfigError("systemd cgroup driver: systemd is not running on this host (no /run/systemd/system)")
        path = sd.cgroup_path(slice_, unit)
        if rootless:  # the user's manager: its units are below its own cgroup
            from .sdbus import Systemd
            path = fs.join(Systemd(user=True).manager_cgroup(), path.lstrip("/"))
    else:
        path = _layout.clean_cgroups_path(cgroups_path if cgroups_path else container_id)
    v1, unified = _layout.resolve(lay, path)
    dirs = dict(v1)
    mounts = {k: m[0] for k, m in lay.v1.items()}
    if unified is not None:
        dirs[UNIFIED] = unified
        mounts[UNIFIED] = lay.unified[0]
    if systemd:
        return sd.SystemdCgroupManager(lay.mode, dirs, mounts, unit, slice_, f"pyrunc container {container_id}",
                                       rootless=rootless, owned=False)
    return CgroupManager(lay.mode, dirs, mounts, rootless=rootless)


def load_manager(saved: dict) -> CgroupManager:
    """The manager of an existing container, from what ``to_state()`` returned."""
    args = (saved["mode"], dict(saved["dirs"]), dict(saved["mounts"]))
    if saved.get("driver") == "systemd":
        from .systemd import SystemdCgroupManager
        return SystemdCgroupManager(*args, saved["unit"], saved["slice"], saved["description"],
                                    created=list(saved.get("created", [])), rootless=bool(saved.get("rootless")))
    from .manager import CgroupManager
    return CgroupManager(*args, list(saved.get("created", [])), bool(saved.get("rootless")))


def resources_from_update_flags(flags: dict[str, str]) -> dict:
    """runc `update` flags ({"memory": "96m", "cpu-share": "512"}) -> LinuxResources."""
    from .flags import resources_from_update_flags as conv
    return conv(flags)
