"""/dev inside the container: runtime-linux.md's default devices, linux.devices, and the symlinks.

Every node is made relative to the rootfs (paths.open_in_root), never through
a symlink out of it. Where mknod is refused (a user namespace, a devices
cgroup without "m"), the host's node at the same path is bind-mounted instead.
"""
from __future__ import annotations

import posix
import stat

from pyrunc import fs
from pyrunc.errors import ConfigError, PyruncError, context
from pyrunc.linux import paths
from pyrunc.syscalls import calls as sc

# runtime-linux.md "Default Devices": (name, major, minor)
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
SYMLINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore"))
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


class Node:
    """``given``: a linux.devices entry, which never replaces another file (defaults do)."""

    __slots__ = ("label", "path", "mode", "rdev", "uid", "gid", "given")

    def __init__(self, label: str, path: str, mode: int, rdev: int, uid: int = 0, gid: int = 0,
                 given: bool = False) -> None:
        self.label, self.path, self.mode, self.rdev, self.uid, self.gid = label, path, mode, rdev, uid, gid
        self.given = given


def dev_is_bind(mounts: list) -> bool:
    return any(op.destination.rstrip("/") == "/dev" and op.is_bind for op in mounts)


def config_nodes(devices: list[dict]) -> list[Node]:
    """linux.devices as Nodes. A path may be anywhere in the container (config-linux.md:
    "MAY be anywhere in the container filesystem, notably outside of /dev"), taken
    lexically ("/dev/xx/" is /dev/xx), as runc does; made inside the rootfs all the same."""
    nodes = []
    for i, dev in enumerate(devices):
        label = f"linux.devices[{i}]"
        path = fs.normpath(dev["path"])
        if path == "/":
            raise ConfigError(f"{label}.path: {dev['path']!r} names the container's root, not a file")
        mode = _TYPES[dev["type"]] | (dev.get("fileMode", 0o666) & 0o7777)
        rdev = 0 if dev["type"] == "p" else posix.makedev(dev.get("major", 0), dev.get("minor", 0))
        nodes.append(Node(f"{label} {path}", path, mode, rdev, dev.get("uid", 0), dev.get("gid", 0), given=True))
    return nodes


def planned_nodes(devices: list[dict], *, defaults: bool) -> list[Node]:
    """The nodes setup() makes, in order: the defaults (unless /dev is a bind mount), then linux.devices."""
    nodes = config_nodes(devices)
    if defaults:
        # A linux.devices entry for a default's path replaces it (podman --privileged lists
        # /dev/null and the rest): made twice, a default bound from the host because mknod
        # was refused would be a mount point the second one cannot replace.
        # /dev/ptmx stays the pts/ptmx symlink, as runc leaves it: a ptmx node listed (a
        # privileged container's) would open the host's devpts instance, not the container's
        nodes = [n for n in nodes if n.path != "/dev/ptmx"]
        given = {n.path for n in nodes}
        nodes[:0] = [Node(f"/dev/{n}", f"/dev/{n}", stat.S_IFCHR | 0o666, posix.makedev(ma, mi))
                     for n, ma, mi in DEFAULT_DEVICES if f"/dev/{n}" not in given]
    return nodes


def setup(rootfd: int, devices: list[dict], *, defaults: bool) -> None:
    """Create the default devices (unless /dev is a bind mount) and every linux.devices entry."""
    nodes = planned_nodes(devices, defaults=defaults)
    if defaults:
        devfd = paths.mkdir_all(rootfd, "/dev")
        try:
            for name, target in SYMLINKS:
                _symlink(devfd, name, target)
            with context("/dev/ptmx"):
                paths.unlink_nondir(devfd, "ptmx", "/dev/ptmx")
                posix.symlink("pts/ptmx", "ptmx", dir_fd=devfd)
        finally:
            posix.close(devfd)
    for node in nodes:
        with context(node.label):
            make_node(rootfd, node)


def _symlink(dirfd: int, name: str, target: str) -> None:
    try:
        posix.symlink(target, name, dir_fd=dirfd)
    except FileExistsError:
        pass


def make_node(rootfd: int, node: Node) -> None:
    parent, base = paths.split(node.path)
    pfd = paths.mkdir_all(rootfd, parent)
    try:
        if not (node.given and _same_node_there(pfd, base, node)):
            paths.unlink_nondir(pfd, base, node.path)
            try:
                posix.mknod(base, node.mode, node.rdev, dir_fd=pfd)
            except PermissionError:
                _bind_host_node(rootfd, node)
                return
        fd = posix.open(base, posix.O_PATH | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=pfd)
        try:
            # mknod honours the umask; the spec's fileMode is exact.
            posix.chmod(paths.fd_path(fd), node.mode & 0o7777)
            posix.chown(paths.fd_path(fd), node.uid, node.gid)
        finally:
            posix.close(fd)
    finally:
        posix.close(pfd)


def _same_node_there(pfd: int, base: str, node: Node) -> bool:
    """Whether the requested device is already there (it is kept, its mode and owner set).
    Anything else there is an error (config-linux.md: "If a file already exists at path that
    does not match the requested device, the runtime MUST generate an error"; runc replaces it)."""
    try:
        st = posix.stat(base, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_IFMT(st.st_mode) == stat.S_IFMT(node.mode) and (stat.S_ISFIFO(st.st_mode) or st.st_rdev == node.rdev):
        return True
    if stat.S_ISDIR(st.st_mode):
        raise PyruncError(f"{node.path}: a directory is in the way")
    raise PyruncError(f"{node.path}: a file that is not the requested device is there already")


def _bind_host_node(rootfd: int, node: Node) -> None:
    """mknod is refused: bind the host's node of the same path, if it is the same device."""
    try:
        st = posix.stat(node.path)
    except OSError as exc:
        raise PyruncError(f"mknod: EPERM and no host node to bind: {exc.strerror}") from None
    if stat.S_IFMT(st.st_mode) != stat.S_IFMT(node.mode) or (node.rdev and st.st_rdev != node.rdev):
        raise PyruncError(f"mknod: EPERM and the host's {node.path} is another device")
    fd = paths.replace_with_file(rootfd, node.path)
    try:
        sc.mount(node.path, paths.fd_path(fd), None, sc.MS_BIND, label=node.path)
    finally:
        posix.close(fd)
