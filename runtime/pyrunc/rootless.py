"""--rootless auto|true|false, and the checks that run before anything is created.

A rootless setup that cannot work fails here with what is missing and how to
fix it, instead of half-way through create with a bare errno.
"""
from __future__ import annotations

import posix
import pwd
import stat

from pyrunc import fs, log
from pyrunc.errors import ConfigError, PyruncError
from pyrunc.spec.plan import Plan
from pyrunc.spec.userns import IDMAP_OPTIONS, new_userns


class RootlessError(PyruncError):
    """The host lacks something a rootless (or user-namespaced) container needs."""


def wanted(flag: str) -> bool:
    """runc's meaning: "auto" is rootless when not root, or root only inside a user namespace."""
    if flag in ("true", "false"):
        return flag == "true"
    return posix.geteuid() != 0 or _in_child_userns()


def _in_child_userns() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def userns_unavailable() -> str | None:
    """Why this host refuses new user namespaces to us, with the fix; None when it allows them."""
    if _read_int("/proc/sys/user/max_user_namespaces", 1) == 0:
        return ("user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0): "
                "enable them with `sysctl -w user.max_user_namespaces=15000`")
    if posix.geteuid() != 0 and _read_int("/proc/sys/kernel/unprivileged_userns_clone", 1) == 0:
        return ("unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone is 0): "
                "enable them with `sysctl -w kernel.unprivileged_userns_clone=1`")
    return None


def idmap_supported() -> bool:
    """Idmapped mounts need mount_setattr (Linux 5.12) and user namespaces for their mappings."""
    major, minor = (int(x) for x in posix.uname().release.split(".")[:2])
    return (major, minor) >= (5, 12) and userns_unavailable() is None


def _read_int(path: str, default: int) -> int:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def preflight(plan: Plan, flag: str) -> bool:
    """Refuse what cannot work; return whether cgroups are handled the rootless way."""
    config = plan.config
    linux = config.get("linux", {})
    idmapped = [i for i, m in enumerate(config.get("mounts", []))
                if m.get("uidMappings") or set(IDMAP_OPTIONS) & set(m.get("options") or [])]
    if new_userns(config) or idmapped:
        why = userns_unavailable()
        if why:  # an idmapped mount takes its mapping from a user namespace too
            field = "linux.namespaces user" if new_userns(config) else f"mounts[{idmapped[0]}]"
            raise RootlessError(f"{field}: {why}")
    if new_userns(config):
        check_reachable(plan)
    if posix.geteuid() != 0:
        if not plan.has_ns("user"):
            raise RootlessError(f"running as uid {posix.geteuid()} needs a user namespace: add {{\"type\": \"user\"}} "
                                "to linux.namespaces with uidMappings/gidMappings (`pyrunc spec --rootless` "
                                "writes a config that has them)")
        if new_userns(config):
            _check_helper_maps(linux["uidMappings"], linux["gidMappings"])
        if idmapped:
            raise RootlessError(f"mounts[{idmapped[0]}]: an idmapped mount needs root: marking a host filesystem "
                                "idmapped takes CAP_SYS_ADMIN in the host's user namespace")
    rootless = wanted(flag)
    if rootless:
        _check_cgroups(plan)
    return rootless


def _check_helper_maps(uids: list[dict], gids: list[dict]) -> None:
    """Maps beyond our own single id go through newuidmap/newgidmap and /etc/sub[ug]id."""
    from pyrunc.linux.userns import direct_write

    if direct_write(uids, gids):
        return
    user = _user_name()
    for tool, field, maps, own, db in (("newuidmap", "linux.uidMappings", uids, posix.geteuid(), "/etc/subuid"),
                                       ("newgidmap", "linux.gidMappings", gids, posix.getegid(), "/etc/subgid")):
        if not any(posix.access(fs.join(d, tool), posix.X_OK) for d in fs.exec_path()):
            raise RootlessError(f"{field}: mapping more than your own id needs {tool}, which is not installed: "
                                "install the uidmap package (apt-get install uidmap)")
        ranges = _subid_ranges(db, user, own)
        for i, m in enumerate(maps):
            lo, hi = m["hostID"], m["hostID"] + m["size"]
            if (lo, hi) == (own, own + 1) or any(s <= lo and hi <= e for s, e in ranges):
                continue
            have = ", ".join(f"{s}-{e - 1}" for s, e in ranges) or "none"
            raise RootlessError(f"{field}[{i}]: host ids {lo}-{hi - 1} are not delegated to {user} in {db} "
                                f"(delegated: {have}): add a line like `{user}:100000:65536` to {db} "
                                f"(usermod --add-sub{'uids' if db.endswith('uid') else 'gids'} 100000-165535 {user})")


def _user_name() -> str:
    try:
        return pwd.getpwuid(posix.geteuid()).pw_name
    except KeyError:
        return str(posix.geteuid())


def _subid_ranges(db: str, user: str, own: int) -> list[tuple[int, int]]:
    """[start, end) ranges of ``db`` for this user (named or by number)."""
    out = []
    try:
        with open(db) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in (user, str(own)) and parts[1].isdigit() and parts[2].isdigit():
                    out.append((int(parts[1]), int(parts[1]) + int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def _check_cgroups(plan: Plan) -> None:
    """Use cgroups only where delegated to us; refuse limits that could not be applied."""
    from pyrunc.cgroups import open_manager
    from pyrunc.cgroups.resources import controllers_asked

    linux = plan.config.get("linux", {})
    cg = open_manager(linux.get("cgroupsPath"), plan.id, rootless=True)
    for field, ctrl in controllers_asked(linux.get("resources") or {}):
        d = cg.unified if ctrl == "" else cg.dir_of(ctrl)
        if d is not None and not _can_create(d):
            raise RootlessError(f"linux.resources.{field}: cannot be applied rootless: cgroup {d} is not delegated "
                                f"to uid {posix.geteuid()} (not writable): remove the limit, or delegate a cgroup "
                                "(systemd-run --user -p Delegate=yes, or chown a cgroup directory to the user) "
                                "and set linux.cgroupsPath below it")
    blocked = [d for d in cg.dirs.values() if not _can_create(d)]
    if blocked:
        log.debug(f"rootless: cgroups not delegated, not used: {', '.join(blocked)}")


def _can_create(d: str) -> bool:
    """Whether we may make ``d``: its nearest existing ancestor is writable to us."""
    while not fs.exists(d):
        d = fs.dirname(d)
    return posix.access(d, posix.W_OK | posix.X_OK)


def check_reachable(plan: Plan) -> None:
    """The container's root does its mounts as the host id it maps to, and without
    capabilities over host-owned directories: every directory above the rootfs (and,
    unless host root opens them first, the bind sources) must be searchable by that id."""
    linux = plan.config["linux"]
    uid = _host_id(linux["uidMappings"])
    gid = _host_id(linux["gidMappings"])
    if uid is None:
        raise ConfigError("linux.uidMappings: container uid 0 is not mapped: the container's setup runs as its root")
    from pyrunc.linux.idmap import opens_sources

    paths = [("root.path", plan.rootfs)]
    if not opens_sources(plan):  # else host root opens them before the user namespace is entered
        paths += [(op.label(), op.source) for op in plan.mounts if op.is_bind and op.source]
    for label, path in paths:
        d = fs.dirname(fs.abspath(path))
        while True:
            try:
                st = posix.stat(d)
            except OSError:
                break  # a missing source is reported by the mount itself
            if not _searchable(st, uid, gid, linux):
                raise RootlessError(f"{label} {path}: {d} is not searchable by the container's root (host uid {uid}): "
                                    f"make it searchable (chmod o+x {d}) or move the bundle")
            if d == "/":
                break
            d = fs.dirname(d)


def _host_id(mappings: list[dict], cid: int = 0) -> int | None:
    for m in mappings:
        if m["containerID"] <= cid < m["containerID"] + m["size"]:
            return m["hostID"] + cid - m["containerID"]
    return None


def _mapped(host_id: int, mappings: list[dict]) -> bool:
    return any(m["hostID"] <= host_id < m["hostID"] + m["size"] for m in mappings)


def _searchable(st: posix.stat_result, uid: int, gid: int | None, linux: dict) -> bool:
    # the namespace's root keeps CAP_DAC_* over inodes whose owner and group are both mapped
    if _mapped(st.st_uid, linux["uidMappings"]) and _mapped(st.st_gid, linux["gidMappings"]):
        return True
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid:
        return bool(mode & 0o100)
    if st.st_gid == gid:
        return bool(mode & 0o010)
    return bool(mode & 0o001)
