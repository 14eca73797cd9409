"""The container's file tree as it will be, seen from the host before create: the rootfs with
the planned mounts over it. Only reads.

Paths are resolved as create resolves them (linux/paths.py: inside the rootfs, symlinks
kept in). A path under a planned mount leads to what that mount shows: a bind's source,
the host's own /proc or /sys for a new procfs or sysfs (the same kernel shows the same
files), nothing yet on a new tmpfs or other filesystem.
"""
from __future__ import annotations

import posix

from pyrunc import fs


class Mount:
    """A mount the plan makes at ``target`` (a path in the container); ``flags`` the
    per-mount MS_* flags it ends with (None: not known before create), ``entry`` the
    report line that makes it."""

    __slots__ = ("target", "fstype", "source", "flags", "recursive", "entry")

    def __init__(self, target: str, fstype: str | None, source: str | None, flags: int | None,
                 recursive: bool, entry) -> None:
        self.target, self.fstype, self.source, self.flags = target, fstype, source, flags
        self.recursive, self.entry = recursive, entry


class Tree:
    def __init__(self, rootfs: str) -> None:
        self.rootfs = fs.realpath(rootfs)
        self.mounts: list[Mount] = []

    def add(self, m: Mount) -> Mount:
        self.mounts.append(m)
        return m

    def covering(self, path: str) -> Mount | None:
        """The last planned mount at or above ``path`` (the one whose files it names)."""
        best = None
        for m in self.mounts:
            t = m.target.rstrip("/")
            if path == m.target or path.startswith(t + "/") or t == "":
                best = m
        return best

    def resolve(self, path: str) -> str:
        """``path`` in the container after symlinks, where the rootfs decides them."""
        from pyrunc.linux import paths

        path = fs.normpath("/" + path)
        m = self.covering(path)
        if m is not None and m.target != "/":
            return path  # a new filesystem, or a bind: taken as written
        fd = posix.open(self.rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            return paths.resolve_in_root(fd, path)
        finally:
            posix.close(fd)

    def host(self, path: str) -> str | None:
        """The host path whose file the container will see at ``path``; None for a file
        on a filesystem create makes new and empty."""
        path = self.resolve(path)
        m = self.covering(path)
        if m is None or m.target == "/":
            return fs.join(self.rootfs, path.lstrip("/")) if path != "/" else self.rootfs
        rest = path[len(m.target.rstrip("/")):].lstrip("/")
        base = {"proc": "/proc", "sysfs": "/sys"}.get(m.fstype or "", m.source if m.fstype is None else None)
        if not base:
            return None
        return fs.join(base, rest) if rest else base

    def stat(self, path: str) -> posix.stat_result:
        """posix.stat of the file the container will see at ``path`` (for the PATH lookup)."""
        host = self.host(path)
        if host is None:
            raise FileNotFoundError(2, "not there before create", path)
        return posix.stat(host)

    def flags_at(self, path: str) -> int | None:
        m = self.covering(path)
        return m.flags if m is not None else None
