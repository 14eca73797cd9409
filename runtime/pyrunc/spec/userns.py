"""Rules for user-namespace mappings and idmapped mounts. Pure: each check yields (json_path, message)."""
from __future__ import annotations

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator


Issue = tuple[str, str]

MAX_ID = 0xFFFFFFFF   # (uid_t)-1 is "no id": a range must stop before it
MAX_EXTENTS = 340     # the kernel's limit on lines in uid_map / gid_map
IDMAP_OPTIONS = ("idmap", "ridmap")


def new_userns(config: dict) -> bool:
    return any(ns.get("type") == "user" and not ns.get("path")
               for ns in config.get("linux", {}).get("namespaces", []))


def _ranges(path: str, mappings: list[dict]) -> Iterator[Issue]:
    """What the kernel would refuse in one uid_map/gid_map, said before anything is created."""
    if len(mappings) > MAX_EXTENTS:
        yield path, f"{len(mappings)} entries: the kernel accepts at most {MAX_EXTENTS}"
    for key in ("containerID", "hostID"):
        spans = []
        for i, m in enumerate(mappings):
            start, size = m.get(key, 0), m.get("size", 0)
            if size < 1:
                if key == "hostID":
                    yield f"{path}[{i}].size", "must be at least 1"
                continue
            if start + size > MAX_ID:
                yield f"{path}[{i}]", f"{key} {start} + size {size} goes past the largest id {MAX_ID - 1}"
                continue
            spans.append((start, start + size, i))
        spans.sort()
        for (_s1, e1, i1), (s2, _e2, i2) in zip(spans, spans[1:]):
            if s2 < e1:
                yield f"{path}[{max(i1, i2)}]", f"{key} range overlaps {path}[{min(i1, i2)}]"


def mappings(config: dict) -> Iterator[Issue]:
    linux = config.get("linux", {})
    for field in ("uidMappings", "gidMappings"):
        yield from _ranges(f"linux.{field}", linux.get(field) or [])
    if new_userns(config):
        for field in ("uidMappings", "gidMappings"):
            if not linux.get(field):
                yield f"linux.{field}", "a new user namespace needs mappings (pyrunc spec --rootless writes them)"


def proc_needs_pidns(config: dict) -> Iterator[Issue]:
    """The kernel mounts proc only for the owner of the pid namespace: the host's is not ours."""
    if not new_userns(config) or any(ns.get("type") == "pid" for ns in config["linux"]["namespaces"]):
        return
    for i, m in enumerate(config.get("mounts", [])):
        if m.get("type") == "proc":
            yield f"mounts[{i}]", "proc in a new user namespace needs a pid namespace in linux.namespaces"


def mount_idmaps(config: dict) -> Iterator[Issue]:
    userns_maps = new_userns(config) and config.get("linux", {}).get("uidMappings")
    for i, m in enumerate(config.get("mounts", [])):
        uids, gids = m.get("uidMappings"), m.get("gidMappings")
        wanted = [o for o in m.get("options") or [] if o in IDMAP_OPTIONS]
        if not (uids or gids or wanted):
            continue
        path = f"mounts[{i}]"
        if bool(uids) != bool(gids):
            yield path, "uidMappings and gidMappings must be given together"
        if len(wanted) > 1:
            yield f"{path}.options", "give one of idmap and ridmap"
        if not uids and not gids and not userns_maps:
            yield f"{path}.options", (f"{wanted[0]} needs uidMappings/gidMappings on the mount "
                                      "or a new user namespace with mappings")
        binds = {"bind", "rbind"} & set(m.get("options") or [])
        if not binds and m.get("type") != "bind":
            yield path, "idmapped mounts are supported for bind mounts only"
        for field, maps in (("uidMappings", uids), ("gidMappings", gids)):
            if maps:
                yield from _ranges(f"{path}.{field}", maps)


def mount_entry(config: dict, m: dict) -> dict:
    """sysfs may be mounted only from a user namespace that owns a network namespace:
    without a new one, the host's /sys is bound instead (what runc's rootless spec writes)."""
    if m.get("type") != "sysfs" or not new_userns(config):
        return m
    if any(ns.get("type") == "network" and not ns.get("path") for ns in config["linux"]["namespaces"]):
        return m
    return {**m, "type": "bind", "source": "/sys", "options": ["rbind", *(m.get("options") or [])]}


CHECKS = [mappings, proc_needs_pidns, mount_idmaps]
