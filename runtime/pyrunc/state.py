"""Per-container state: <root>/<id>/{state.json, config.json, exec.fifo}.

Only facts are stored (pid, its start time, paths); the status is derived
when read, so a crashed pyrunc never leaves a stale status behind.
state.json is replaced atomically (write a temporary file, rename) and every command
holds an flock on the container directory while it reads or changes it.
"""
from __future__ import annotations

import fcntl
import posix

from pyrunc import fs, jsonio
from pyrunc.errors import ContainerExists, ContainerNotFound, PyruncError, UsageError

OCI_VERSION = "1.3.0"
STATE_FILE = "state.json"
FIFO = "exec.fifo"
# runc's id alphabet; a set instead of a regex keeps `re` (~7 ms) off every command's path
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def default_root() -> str:
    if posix.geteuid() == 0:
        return "/run/pyrunc"
    xdg = fs.getenv("XDG_RUNTIME_DIR")
    if not xdg:
        raise UsageError("--root not given and XDG_RUNTIME_DIR is not set")
    return fs.join(xdg, "pyrunc")


def check_id(cid: str) -> None:
    if not cid:
        raise UsageError("container id cannot be empty")
    if len(cid) > 255 or not _ID_CHARS.issuperset(cid) or cid in (".", ".."):
        raise UsageError(f"invalid container id {cid!r}: use 1-255 of [A-Za-z0-9_+-.], not '.' or '..'")


def pid_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class Container:
    """An open, flock'ed container directory and its stored facts."""

    def __init__(self, root: str, cid: str, fd: int, data: dict) -> None:
        self.root, self.id, self.dir_fd, self.data = root, cid, fd, data
        self.dir = fs.join(root, cid)
        self.removed = False

    @property
    def pid(self) -> int:
        return self.data.get("pid", 0)

    def init_alive(self) -> bool:
        pid = self.pid
        return pid > 0 and pid_start_time(pid) == self.data.get("pid_start")

    def status(self) -> str:
        if self.pid <= 0:
            return "creating"
        if not self.init_alive():
            return "stopped"
        if self.has_fifo():
            return "created"
        if self.data.get("cgroup") and self.cgroup().is_frozen():
            return "paused"
        return "running"

    def has_fifo(self) -> bool:
        try:
            posix.stat(FIFO, dir_fd=self.dir_fd)
            return True
        except FileNotFoundError:
            return False

    def cgroup(self):  # -> pyrunc.cgroups.CgroupManager
        from pyrunc.cgroups import load_manager
        return load_manager(self.data["cgroup"])

    def save(self) -> None:
        tmp = f".{STATE_FILE}.tmp"
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, 0o600,
                        dir_fd=self.dir_fd)
        try:
            # No fsync: the rename makes the update atomic, and runtime state lives
            # in /run, which does not outlive a reboot anyway.
            posix.write(fd, jsonio.dumps(self.data).encode())
        finally:
            posix.close(fd)
        posix.rename(tmp, STATE_FILE, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)

    def oci_state(self) -> dict:
        """The runtime-spec state object, plus runc's rootfs/created/owner."""
        status = self.status()
        out = {"ociVersion": OCI_VERSION, "id": self.id, "status": status,
               "pid": self.pid if status not in ("stopped", "creating") else 0,
               "bundle": self.data["bundle"], "rootfs": self.data["rootfs"],
               "created": self.data["created"], "owner": self.data.get("owner", "")}
        if self.data.get("annotations"):
            out["annotations"] = self.data["annotations"]
        return out

    def remove(self) -> None:
        for name in posix.listdir(self.dir_fd):
            posix.unlink(name, dir_fd=self.dir_fd)
        posix.rmdir(self.dir)
        self.close()
        self.removed = True

    def close(self) -> None:
        if self.dir_fd >= 0:
            posix.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # releases the flock


def _lock(fd: int, shared: bool) -> None:
    fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)


def create_dir(root: str, cid: str, data: dict) -> Container:
    """Make the container's directory; an existing one means a duplicate id."""
    check_id(cid)
    fs.makedirs(root, 0o711)
    path = fs.join(root, cid)
    try:
        posix.mkdir(path, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    _lock(fd, shared=False)
    c = Container(root, cid, fd, data)
    c.save()
    return c


def load(root: str, cid: str, shared: bool = False) -> Container:
    check_id(cid)
    path = fs.join(root, cid)
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except FileNotFoundError:
        raise ContainerNotFound(cid) from None
    try:
        _lock(fd, shared)
        with open(posix.open(STATE_FILE, posix.O_RDONLY | posix.O_CLOEXEC, dir_fd=fd), "rb") as f:
            data = jsonio.loads(f.read())
    except FileNotFoundError:
        posix.close(fd)
        raise ContainerNotFound(cid) from None
    except (ValueError, OSError) as exc:
        posix.close(fd)
        raise PyruncError(f"container {cid!r}: corrupt state: {exc}") from None
    return Container(root, cid, fd, data)


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in posix.listdir(root) if _ID_CHARS.issuperset(n))
    except FileNotFoundError:
        return []
