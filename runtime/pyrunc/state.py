"""Per-container state: <root>/<id>/{state.json, config.json, exec.fifo}.

Only facts are stored (pid, its start time, paths); the status is derived
when read, so a crashed pyrunc never leaves a stale status behind.
state.json is replaced atomically (write a temporary file, rename) and every command
holds an flock on the container directory while it reads or changes it.

A runtime can die at any step, so what state.json says is always true: create writes
it first with the creator's pid and what it is about to make (the cgroup directories),
before making anything; the init's pid goes in only once the init is ready. Until then
the container is "creating" while its creator lives and "stopped" once it is gone, and
`delete` removes whatever the dead creator had made.
"""
from __future__ import annotations

import errno
import fcntl
import posix

from pyrunc import crash, fs, jsonio
from pyrunc.errors import ContainerExists, ContainerNotFound, PyruncError, UsageError

OCI_VERSION = "1.3.0"
STATE_FILE = "state.json"
FIFO = "exec.fifo"
NOTIFY_DIR = "notify"  # notify.DIR, named here so that `state` never imports notify.py
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


_PF_EXITING = 0x4  # /proc/<pid>/stat field 9 (flags): set as the process starts to exit


def pid_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the pid is gone, a zombie, or exiting: a
    dying init closes its files (exec.fifo) before it is a zombie, and must not look
    "running" meanwhile."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X") or int(fields[6]) & _PF_EXITING:
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
        """The init's pid once create is complete, else 0."""
        return self.data.get("pid", 0)

    @property
    def pid_start(self) -> int | None:
        return self.data.get("pid_start")

    def init_alive(self) -> bool:
        pid = self.pid
        return pid > 0 and pid_start_time(pid) == self.pid_start

    def status(self) -> str:
        if self.pid <= 0:  # create has not finished: is its creator still at it?
            return "creating" if self._creator_alive() else "stopped"
        if not self.init_alive():
            return "stopped"
        if self.init_waiting():
            return "created"
        if self.data.get("cgroup") and self.cgroup().is_frozen():
            return "paused"
        return "running"

    def _creator_alive(self) -> bool:
        creator = self.data.get("creator")
        return bool(creator) and pid_start_time(creator[0]) == creator[1]

    def init_waiting(self) -> bool:
        """Whether the init still waits on exec.fifo. It holds the fifo open (read-write,
        so this probe never wakes it) until its execve closes it; opening the fifo for
        writing succeeds only while someone has it open. A `start` killed between its
        write and its unlink leaves the fifo behind, and this still says "running"."""
        try:
            fd = posix.open(FIFO, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=self.dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENXIO):
                return False
            raise
        posix.close(fd)
        return True

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
        """The runtime-spec state object, plus runc's rootfs/created/owner, keys in runc's
        order (`state` and `list -f json`): scripts compare the text."""
        status = self.status()
        out = {"ociVersion": OCI_VERSION, "id": self.id,
               "pid": self.pid if status not in ("stopped", "creating") else 0, "status": status,
               "bundle": self.data["bundle"], "rootfs": self.data["rootfs"], "created": self.data["created"]}
        if self.data.get("annotations"):
            out["annotations"] = self.data["annotations"]
        out["owner"] = self.data.get("owner", "")
        return out

    def remove(self) -> None:
        """state.json goes last: a delete killed halfway leaves a container that delete still knows."""
        for name in posix.listdir(self.dir_fd):
            if name == NOTIFY_DIR:  # notify.py's socket directory
                for inner in posix.listdir(fs.join(self.dir, name)):
                    posix.unlink(fs.join(self.dir, name, inner))
                posix.rmdir(name, dir_fd=self.dir_fd)
            elif name != STATE_FILE:
                posix.unlink(name, dir_fd=self.dir_fd)
        crash.point("delete", "files-removed")
        try:
            posix.unlink(STATE_FILE, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
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


def create_dir(root: str, cid: str, data: dict) -> Container:
    """Make the container's directory, locked, with its first state; an existing one
    means a duplicate id."""
    check_id(cid)
    fs.makedirs(root, 0o711)
    path = fs.join(root, cid)
    try:
        posix.mkdir(path, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    if posix.fstat(fd).st_nlink == 0:  # a `delete -f` took the empty directory before our lock
        posix.close(fd)
        raise PyruncError(f"container {cid!r} was deleted while it was being created")
    c = Container(root, cid, fd, data)
    c.save()
    return c


def load(root: str, cid: str, shared: bool = False) -> Container:
    """The container, flock'ed: exclusively to change it; ``shared`` to read it, and then
    without waiting for a create (or delete) that holds the lock: state.json is only ever
    replaced whole, so it can be read at any time, and a create in progress is "creating"."""
    check_id(cid)
    path = fs.join(root, cid)
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except FileNotFoundError:
        raise ContainerNotFound(cid) from None
    try:
        if shared:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
        with open(posix.open(STATE_FILE, posix.O_RDONLY | posix.O_CLOEXEC, dir_fd=fd), "rb") as f:
            data = jsonio.loads(f.read())
    except FileNotFoundError:
        posix.close(fd)
        raise ContainerNotFound(cid) from None
    except (ValueError, OSError) as exc:
        posix.close(fd)
        raise PyruncError(f"container {cid!r}: corrupt state: {exc}") from None
    return Container(root, cid, fd, data)


def remove_leftover(root: str, cid: str) -> None:
    """A directory without state.json: its creator died before writing one, or its deleter
    after removing it. Under the lock, and if it still has none, remove it and what it holds."""
    check_id(cid)
    try:
        fd = posix.open(fs.join(root, cid), posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except FileNotFoundError:
        return
    c = Container(root, cid, fd, {})
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if posix.fstat(fd).st_nlink == 0 or STATE_FILE in posix.listdir(fd):
            return  # gone already, or a create wrote its state meanwhile: a real container
        c.remove()
    finally:
        c.close()


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in posix.listdir(root) if _ID_CHARS.issuperset(n))
    except FileNotFoundError:
        return []
