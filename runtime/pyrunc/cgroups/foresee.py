"""The cgroup files as create will find them, for `explain`: a look-up (see files.py) that
only reads.

Directories that exist are read as they are. For those create is yet to make, a file
reads as a new cgroup starts with it, and exists if it exists in the nearest existing
directory above (on v2 the root cgroup lacks the controllers' files: there a controller's
file is taken to exist when the controller is available). What the planned steps make and
write is remembered, so each later decision sees it, as it would during create. For a
container that exists, the directories its create made (``absent``) are taken as they were
before, so its steps are shown as they were taken.
"""
from __future__ import annotations

from .. import fs
from . import files

# A new cgroup's value of the files the deciding code reads (not inherited from above).
_FRESH = {"cpuset.cpus": "", "cpuset.mems": "", "cgroup.subtree_control": "", "cpu.max": "max 100000",
          "memory.max": "max", "memory.current": "0", "memory.usage_in_bytes": "0"}


class Foreseen:
    def __init__(self, mode: str, mounts: dict[str, str], absent: list[str] | None = None) -> None:
        self.mode, self.tops = mode, set(mounts.values())
        self.absent = set(absent or ())
        self.made: set[str] = set()
        self.written: dict[tuple[str, str], str] = {}
        self.guessed: set[str] = set()  # files taken to exist without a directory to look in

    def note(self, kind: str, arg: object) -> None:
        """Remember a step of CgroupManager.creation_steps (or a resource Write) as done."""
        if kind == "mkdir":
            self.made.add(arg)  # type: ignore[arg-type]
        elif kind == "enable":  # the kernel lists controllers in its own order, as cgroup.controllers does
            d = arg.dir  # type: ignore[attr-defined]
            on = set(self.read(d, "cgroup.subtree_control").split()) | {arg.value[1:]}  # type: ignore[attr-defined]
            order = self.read(d, "cgroup.controllers").split()
            self.written[(d, "cgroup.subtree_control")] = " ".join(c for c in order if c in on)
        else:
            self.written[(arg.dir, arg.name)] = arg.value  # type: ignore[attr-defined]

    def _real(self, d: str) -> bool:
        """Whether ``d`` is read as it is (it was there before create)."""
        return d not in self.absent and fs.isdir(d)

    def isdir(self, d: str) -> bool:
        return d in self.made or self._real(d)

    def _above(self, d: str) -> str:
        while d not in self.tops and not self._real(d) and d != "/":
            d = fs.dirname(d)
        return d

    def exists(self, d: str, name: str) -> bool:
        if self._real(d):
            return files.exists(d, name)
        above = self._above(d)
        if self.mode == "v2" and above in self.tops and not name.startswith("cgroup."):
            self.guessed.add(name)
            return name.split(".", 1)[0] in self.read(above, "cgroup.controllers").split()
        return files.exists(above, name)

    def read(self, d: str, name: str) -> str:
        if (d, name) in self.written:
            return self.written[(d, name)]
        if self._real(d):
            return files.read(d, name)
        if name == "cgroup.controllers":  # a child has what its parent enables for children
            return self.read(fs.dirname(d), "cgroup.subtree_control")
        if name in _FRESH:
            return _FRESH[name]
        return files.read(self._above(d), name)  # e.g. v1 memory.limit_in_bytes: unlimited, as at the top

    def read_int(self, d: str, name: str, default: int = 0) -> int:
        try:
            v = self.read(d, name)
        except OSError:
            return default
        return default if v == "max" else int(v)
