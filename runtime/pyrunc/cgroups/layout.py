"""Which cgroup hierarchies this host mounts, and where a container's cgroup goes.

Read from /proc/self/mountinfo and /proc/self/cgroup only (no sysfs walking),
so resolving a path costs two small reads.
"""
from __future__ import annotations

from .. import fs
from ..errors import ConfigError

# Mount options of a v1 cgroup mount that are not controller names.
_NOT_CONTROLLERS = {"rw", "ro", "nosuid", "nodev", "noexec", "relatime", "noatime",
                    "clone_children", "noprefix", "xattr", "cpuset_v2_mode", "none",
                    "favordynmods"}


class Layout:
    """mode is "v1", "v2" or "hybrid" (v1 controllers plus a cgroup2 mount).
    v1: hierarchy key ("cpu", "cpu,cpuacct", "name=systemd") -> (mountpoint, mount root);
    unified: the cgroup2 (mountpoint, mount root). (No dataclass: its import costs ~5 ms.)"""

    def __init__(self, mode: str, v1: dict[str, tuple[str, str]],
                 unified: tuple[str, str] | None) -> None:
        self.mode, self.v1, self.unified = mode, v1, unified


def detect(mountinfo: str = "/proc/self/mountinfo") -> Layout:
    with open(mountinfo) as f:
        lines = f.read().splitlines()
    v1: dict[str, tuple[str, str]] = {}
    unified = None
    for line in lines:
        left, _, right = line.partition(" - ")
        fstype, _src, superopts = (right.split(" ") + ["", ""])[:3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        fields = left.split(" ")
        root, mnt = fs.unescape_mountinfo(fields[3]), fs.unescape_mountinfo(fields[4])
        if fstype == "cgroup2":
            # several mounts of the same tree: prefer the one showing its root
            if unified is None or (root == "/" and unified[1] != "/"):
                unified = (mnt, root)
            continue
        ctrls = [o for o in superopts.split(",")
                 if o not in _NOT_CONTROLLERS and not o.startswith("release_agent=")]
        if not ctrls:
            continue
        key = ",".join(sorted(ctrls))
        if key not in v1 or (root == "/" and v1[key][1] != "/"):
            v1[key] = (mnt, root)
    real_v1 = [k for k in v1 if not k.startswith("name=")]
    if not real_v1:
        if unified is None:
            raise ConfigError("cgroups: no cgroup filesystem is mounted")
        return Layout("v2", {}, unified)
    return Layout("hybrid" if unified else "v1", v1, unified)


def own_cgroups(path: str = "/proc/self/cgroup") -> dict[str, str]:
    """hierarchy key (as in Layout.v1; "" for cgroup2) -> this process's cgroup."""
    out: dict[str, str] = {}
    with open(path) as f:
        for line in f.read().splitlines():
            _hid, ctrls, cg = line.split(":", 2)
            key = ",".join(sorted(c for c in ctrls.split(",") if c))
            out[key] = cg
    return out


def clean_cgroups_path(path: str) -> str:
    """Normalise linux.cgroupsPath, refusing ".." that climbs above its base."""
    if "\0" in path:
        raise ConfigError("linux.cgroupsPath: contains a NUL byte")
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"linux.cgroupsPath: {path!r} escapes the cgroup root with '..'")
        elif part not in ("", "."):
            depth += 1
    if depth == 0:
        raise ConfigError(f"linux.cgroupsPath: {path!r} names the parent cgroup itself, not a new one")
    norm = fs.normpath(path)
    return "/" + norm.lstrip("/") if path.startswith("/") else norm


def in_mount(mount: tuple[str, str], cgpath: str) -> str:
    """Host directory of cgroup ``cgpath`` (as /proc/self/cgroup names it) in ``mount``."""
    mnt, root = mount
    rel = fs.relpath(cgpath, root) if root != "/" else cgpath.lstrip("/")
    if rel.startswith(".."):
        # our own cgroup is outside what this mount shows (e.g. a bind of a subtree)
        rel = cgpath.lstrip("/")
    return fs.normpath(fs.join(mnt, rel))


def resolve(layout: Layout, cgpath: str) -> tuple[dict[str, str], str | None]:
    """Host directories for a cleaned cgroupsPath: ({v1 key: dir}, unified dir)."""
    own = own_cgroups() if not cgpath.startswith("/") else {}

    def place(mount: tuple[str, str], key: str, parent_of_own: bool) -> str:
        if cgpath.startswith("/"):
            return fs.normpath(fs.join(mount[0], cgpath.lstrip("/")))
        base = own.get(key, "/")
        if parent_of_own:
            # On pure v2 our own cgroup holds processes, so controllers cannot be
            # enabled below it ("no internal processes"); runc uses its parent.
            base = fs.dirname(base.rstrip("/")) or "/"
        return fs.join(in_mount(mount, base), cgpath)

    v1 = {key: place(m, key, False) for key, m in layout.v1.items()}
    unified = place(layout.unified, "", layout.mode == "v2") if layout.unified else None
    return v1, unified
