"""cgroups for pyrunc: v1, v2 and hybrid hosts, cgroupfs driver.

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
    relative path "<container_id>".
    """
    from . import layout as _layout
    from .manager import UNIFIED, CgroupManager

    if systemd:
        _check_systemd(cgroups_path, container_id)
    path = _layout.clean_cgroups_path(cgroups_path if cgroups_path else container_id)
    lay = _layout.detect()
    v1, unified = _layout.resolve(lay, path)
    dirs = dict(v1)
    mounts = {k: m[0] for k, m in lay.v1.items()}
    if unified is not None:
        dirs[UNIFIED] = unified
        mounts[UNIFIED] = lay.unified[0]
    return CgroupManager(lay.mode, dirs, mounts, rootless=rootless)


def load_manager(saved: dict) -> CgroupManager:
    """The manager of an existing container, from what ``to_state()`` returned."""
    from .manager import CgroupManager
    return CgroupManager(saved["mode"], dict(saved["dirs"]), dict(saved["mounts"]),
                         list(saved.get("created", [])), bool(saved.get("rootless")))


def _check_systemd(cgroups_path: str | None, container_id: str) -> None:
    if cgroups_path:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise ConfigError(f"linux.cgroupsPath: {cgroups_path!r}: the systemd cgroup driver "
                              "expects \"slice:prefix:name\"")
        slice_, _prefix, _name = parts
        if slice_ and not slice_.endswith(".slice"):
            raise ConfigError(f"linux.cgroupsPath: {slice_!r} is not a systemd slice (*.slice)")
    if not fs.isdir("/run/systemd/system"):
        raise ConfigError("systemd cgroup driver: systemd is not running on this host")
    raise ConfigError("systemd cgroup driver: not implemented yet; run without --systemd-cgroup")


def resources_from_update_flags(flags: dict[str, str]) -> dict:
    """runc `update` flags ({"memory": "96m", "cpu-shares": "512"}) -> LinuxResources."""
    from .flags import resources_from_update_flags as conv
    return conv(flags)
