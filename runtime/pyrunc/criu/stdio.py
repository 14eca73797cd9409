"""The container's stdio across a checkpoint: what fds 0-2 of its init were, kept in the
image, and handed back on restore as the restoring runtime's own fds 0-2 (criu's
--inherit-fd), so that a caller's pipes, /dev/null or terminal reach the restored program.

descriptors.json is runc's (the fds' /proc links, a list); stdio.json is ours: the criu key
of each fd that criu must be told is external on dump and inherited on restore.
"""
from __future__ import annotations

import posix
import stat

from pyrunc import fs, jsonio
from pyrunc.errors import PyruncError

DESCRIPTORS = "descriptors.json"
KEYS = "stdio.json"
_PTS_MAJORS = range(136, 144)


def _mount_ids(pid: int) -> set[int]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return {int(line.split()[0]) for line in f}


def _fdinfo_mnt_id(pid: int, fd: int) -> int:
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    return -1


def key_of(pid: int, fd: int, visible: set[int]) -> str | None:
    """criu's name for fd ``fd`` of ``pid`` when it is not the container's own file: a
    pipe or socket (inherited on restore), a terminal, or a file on a mount the container
    does not see (such as the host's /dev/null): external on dump, inherited on restore."""
    link = posix.readlink(f"/proc/{pid}/fd/{fd}")
    if link.startswith(("pipe:[", "socket:[")):
        return link  # criu matches pipes and sockets by their /proc link
    st = posix.stat(f"/proc/{pid}/fd/{fd}")
    if stat.S_ISCHR(st.st_mode) and posix.major(st.st_rdev) in _PTS_MAJORS:
        return f"tty[{st.st_rdev:x}:{st.st_dev:x}]"
    mnt = _fdinfo_mnt_id(pid, fd)
    if mnt not in visible:
        return f"file[{mnt:x}:{st.st_ino:x}]"
    return None


def record(pid: int, images: str) -> list[str]:
    """Write both files into the image directory; return criu's --external flags for dump."""
    visible = _mount_ids(pid)
    links, keys, argv = [], [], []
    for fd in range(3):
        try:
            links.append(posix.readlink(f"/proc/{pid}/fd/{fd}"))
            key = key_of(pid, fd, visible)
        except FileNotFoundError:  # a closed fd stays closed
            links.append("")
            key = None
        keys.append(key)
        if key is not None and not key.startswith(("pipe:[", "socket:[")):
            argv += ["--external", key]
    for name, value in ((DESCRIPTORS, links), (KEYS, keys)):
        with open(fs.join(images, name), "w") as f:
            f.write(jsonio.dumps(value))
    return argv


def inherit(images: str, stdio: tuple[int, int, int]) -> tuple[list[str], list[int]]:
    """criu's --inherit-fd flags for restore, and the fds to pass: fd N of ``stdio`` stands
    for the init's fd N as it was dumped. Each goes to criu as a copy above 2: criu moves an
    inherited fd away, and with --shell-job it needs its own fd 0 (the terminal) in place.
    One copy a key: a pipe on fds 1 and 2 is one pipe."""
    path = fs.join(images, KEYS)
    try:
        with open(path, "rb") as f:
            keys = jsonio.loads(f.read())
    except FileNotFoundError:
        return [], []  # an image not made by pyrunc: criu restores the files it dumped
    except ValueError as exc:
        raise PyruncError(f"{path}: corrupt: {exc}") from None
    argv: list[str] = []
    fds: list[int] = []
    seen = set()
    for n, key in enumerate(keys):
        if key is not None and key not in seen:
            seen.add(key)
            fds.append(posix.dup(stdio[n]))
            argv += ["--inherit-fd", f"fd[{fds[-1]}]:{key}"]
    return argv, fds
