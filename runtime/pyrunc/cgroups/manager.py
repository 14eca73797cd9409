"""One container's cgroup: a directory per v1 hierarchy and/or one in the v2 tree.

Everything here is plain file I/O on cgroupfs; resource mapping, stats and the
v2 device program live in modules imported only when needed.
"""
from __future__ import annotations

import errno
import posix
import time

from .. import fs, log
from ..errors import SyscallError
from . import files
from .files import CgroupError

SIGKILL = 9  # signal.SIGKILL, without the signal module's enum import on `state`'s path

TYPE_CHECKING = False  # typing costs ~3 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Iterator

    from .oom import OomWatcher
    from .files import Op

UNIFIED = ""    # key of the cgroup2 directory in CgroupManager.dirs
_ROOTLESS_SKIP = (errno.EACCES, errno.EPERM, errno.EROFS)


class CgroupManager:
    """mode: "v1" | "hybrid" | "v2". dirs: hierarchy key -> host directory
    ("cpu,cpuacct", "memory", "name=systemd" ..., and "" for cgroup2).
    mounts: hierarchy key -> its mountpoint (the bound for created parents)."""

    def __init__(self, mode: str, dirs: dict[str, str], mounts: dict[str, str],
                 created: list[str] | None = None, rootless: bool = False) -> None:
        self.mode, self.dirs, self.mounts = mode, dirs, mounts
        self.created = created or []
        self.rootless = rootless
        self.found: frozenset[int] = frozenset()  # processes check_joinable() found (not saved)

    # -- persistence ---------------------------------------------------------
    def to_state(self) -> dict:
        # copies: the state saved before create() must not change as create() does
        return {"driver": "fs", "mode": self.mode, "dirs": dict(self.dirs), "mounts": dict(self.mounts),
                "created": list(self.created), "rootless": self.rootless}

    @property
    def unified(self) -> str | None:
        return self.dirs.get(UNIFIED)

    def dir_of(self, controller: str) -> str | None:
        """The directory where ``controller``'s files are (v2: the one directory)."""
        if self.mode == "v2":
            return self.unified
        for key, d in self.dirs.items():
            if key and controller in key.split(","):
                return d
        return None

    # -- lifecycle -----------------------------------------------------------
    def plan(self) -> None:
        """Record in ``created`` every directory create() is about to make, before it makes
        any: saved in the state first, they are removed even if the runtime dies halfway."""
        for key, d in self.dirs.items():
            for cur in self._chain(key, d):
                if cur not in self.created and not fs.isdir(cur):
                    self.created.append(cur)

    def create(self) -> None:
        """mkdir every hierarchy's directory (those missing: plan() listed them)."""
        for key, d in list(self.dirs.items()):
            try:
                self._mkdirs(key, d)
            except OSError as exc:
                if self.rootless and exc.errno in _ROOTLESS_SKIP:
                    del self.dirs[key]
                    continue
                raise CgroupError(f"cgroup: mkdir {d}: {errno.errorcode.get(exc.errno or 0, exc.errno)}"
                                  f" ({exc.strerror})") from None
            if self.rootless and not posix.access(d, posix.W_OK):
                del self.dirs[key]  # someone else's cgroup of that name: not ours to use or destroy

    def check_joinable(self) -> None:
        """Before the init joins, as runc checks: processes already there get a warning (and
        are left alone should create fail: discard()); a frozen cgroup is refused, for the
        init would stop in it at once, and create with it, beyond the reach of SIGKILL."""
        self.found = frozenset(self.pids())
        if self.found:
            log.warn(f"cgroup {self._procs_dir()}: container's cgroup is not empty:"
                     f" {len(self.found)} process(es) found")
        for key, d in self.dirs.items():
            why = _frozen(d) if key == UNIFIED else _freezer_state(d) if "freezer" in key.split(",") else ""
            if why:
                raise CgroupError(f"cgroup {d}: container's cgroup unexpectedly frozen ({why})")

    def _chain(self, key: str, d: str) -> list[str]:
        """The directories from below the hierarchy's mountpoint down to ``d``."""
        top = self.mounts[key]
        out = []
        for part in fs.relpath(d, top).split("/"):
            top = fs.join(top, part)
            out.append(top)
        return out

    def _mkdirs(self, key: str, d: str) -> None:
        for kind, arg in self.creation_steps(key, d):
            if kind == "mkdir":
                try:
                    posix.mkdir(arg, 0o755)
                except FileExistsError:
                    continue
                if arg not in self.created:
                    self.created.append(arg)
            elif kind == "enable":
                try:
                    files.write(arg.dir, arg.name, arg.value, "")
                except SyscallError:
                    pass  # e.g. EBUSY: the parent holds processes; unified keys needing it will say so
            else:
                files.write(arg.dir, arg.name, arg.value, arg.field)

    def creation_steps(self, key: str, d: str, look=files) -> Iterator[tuple[str, object]]:
        """What making ``d`` takes: ("mkdir", dir), ("enable", Write) to turn a v2 controller
        on for the children of a directory (a refusal is not an error), ("write", Write).
        A generator, so each step is decided (through ``look``) once the one before it is
        carried out: create does them on the way, `explain` only notes them."""
        parent = self.mounts[key]
        for cur in self._chain(key, d):
            if self.mode == "v2":
                for c in _controllers_to_enable(parent, look):
                    yield "enable", files.Write(parent, "cgroup.subtree_control", f"+{c}", "", path="linux.cgroupsPath")
            if not look.isdir(cur):
                yield "mkdir", cur
            if "cpuset" in key.split(","):
                # A v1 cpuset made by a plain mkdir starts empty and refuses tasks until
                # filled in: ours, and (as runc does) a parent someone else made so, such
                # as a pod's cgroup made by hand or by a tool that left it empty.
                for name in ("cpuset.cpus", "cpuset.mems"):
                    if not look.read(cur, name):
                        yield "write", files.Write(cur, name, look.read(parent, name), "", path="linux.cgroupsPath")
            parent = cur

    def apply(self, pid: int) -> None:
        """Move ``pid`` into every hierarchy (hybrid: v1 controllers and cgroup2)."""
        for key, d in list(self.dirs.items()):
            try:
                files.write(d, "cgroup.procs", pid, f"cgroup {key or 'unified'}")
            except SyscallError as exc:
                if self.rootless and exc.errno in _ROOTLESS_SKIP:
                    continue
                raise

    def fork_into(self, ns_flags: int = 0) -> tuple[int, bool, int]:
        """posix.fork(), the child born in our cgroup2 directory and in new namespaces
        ``ns_flags`` when the kernel lets us (clone3, 5.7+). Born there, nobody writes
        cgroup.procs, whose global lock waits for an RCU grace period (5-15 ms here).
        Returns (pid, placed in cgroup2, the namespace flags the child was born with)."""
        from pyrunc.syscalls import calls as sc

        d = self.unified
        fd = -1 if d is None else posix.open(d, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            return sc.clone3(fd, ns_flags), True, ns_flags
        except SyscallError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM, errno.EACCES,
                                 errno.EBUSY, errno.EOPNOTSUPP):
                raise
            # old kernel or no right to: join(v1=False, pid) after, the child unshares itself
            return posix.fork(), d is None, 0
        finally:
            if fd >= 0:
                posix.close(fd)

    def join(self, *, v1: bool, pid: int = 0) -> None:
        """Put ``pid`` (0: the caller) in the v1 hierarchies, or in the cgroup2 one.

        A process joins v1 itself through `tasks` with "0": moving the calling thread
        (all of it: no threads) skips the kernel's global threadgroup lock that each
        cgroup.procs write waits on. cgroup2 has no such door: fork_into() is the fast way."""
        for key, d in self.dirs.items():
            if (key != UNIFIED) != v1:
                continue
            try:
                files.write(d, "tasks" if v1 and pid == 0 else "cgroup.procs", pid, f"cgroup {key or 'unified'}")
            except SyscallError as exc:
                if not (self.rootless and exc.errno in _ROOTLESS_SKIP):
                    raise

    def set_resources(self, resources: dict, *, update: bool = False) -> None:
        """Apply the spec's linux.resources object; errors name the field and file."""
        files.apply(self.resource_writes(resources, update=update))

    def resource_writes(self, resources: dict, *, update: bool = False, look=files) -> list[Op]:
        """linux.resources as the ordered writes set_resources makes (see files.py)."""
        if self.mode == "v2":
            from . import v2
            return v2.plan(self, resources or {}, update=update, look=look)
        from . import v1
        return v1.plan(self, resources or {}, update=update, look=look)

    def destroy(self) -> None:
        """Kill what is left, remove our directories and the empty parents we created."""
        self._kill_remaining()
        self._remove_dirs()

    def discard(self) -> None:
        """Undo a create that failed: kill what it put in the cgroup, and remove the
        directories it made, no other. Processes found there before are not ours: they
        and their cgroup stay (the container's own were killed one by one)."""
        if not self.found:
            self._kill_remaining()
        self._remove_dirs(only_ours=True)

    def thaw_if_frozen(self) -> None:
        """A process in a frozen v1 freezer dies of SIGKILL only once thawed."""
        try:
            if self.is_frozen():
                self.thaw()
        except (OSError, CgroupError):
            pass  # no freezer, or the cgroup is gone: nothing holds the process

    def _kill_remaining(self) -> None:
        if self._exists() and self.pids():
            if self.mode != "v2" and self.is_frozen():
                self.thaw()
            deadline, pause = time.monotonic() + 30, 0.001
            self.kill_all(SIGKILL)
            while left := self.pids():
                if time.monotonic() > deadline:
                    raise CgroupError(f"cgroup {self._procs_dir()}: processes {left} survive SIGKILL")
                time.sleep(pause)  # most are gone within a millisecond or two
                pause = min(pause * 2, 0.05)
                for pid in left:  # also those cgroup.kill misses: put in v1 hierarchies alone
                    _signal(pid, SIGKILL)

    def _remove_dirs(self, only_ours: bool = False) -> None:
        """rmdir the container's directories (``only_ours``: only those it made itself)."""
        removed = set()
        for d in self.dirs.values():
            if not only_ours or d in self.created:
                _rmtree(d)
                removed.add(d)
        for d in sorted(set(self.created) - removed, key=len, reverse=True):  # the parents we made
            try:
                posix.rmdir(d)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                    raise CgroupError(f"cgroup: rmdir {d}: {exc.strerror}") from None

    def _exists(self) -> bool:
        return any(fs.isdir(d) for d in self.dirs.values())

    # -- freezer -------------------------------------------------------------
    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def is_frozen(self) -> bool:
        if self.mode == "v2":
            return files.read_keyed(self.unified, "cgroup.events").get("frozen") == 1
        if self.rootless and self.dir_of("freezer") is None:
            return False  # no freezer delegated to a rootless container: it cannot be paused
        d = self._freezer()
        return files.read(d, "freezer.state") == "FROZEN"

    def _freezer(self) -> str:
        d = self.dir_of("freezer")
        if d is None:
            raise CgroupError("cgroup: the freezer controller is not mounted")
        return d

    def _set_frozen(self, frozen: bool) -> None:
        if self.mode == "v2":
            d, name, val = self.unified, "cgroup.freeze", "1" if frozen else "0"
        else:
            d, name, val = self._freezer(), "freezer.state", "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + 30
        tries = 0
        while True:
            # v1 can stay in FREEZING while tasks fork; writing again retries it
            if tries % 20 == 0:
                files.write(d, name, val, "cgroup freezer")
            tries += 1
            if self.is_frozen() == frozen:
                return
            if time.monotonic() > deadline:
                if frozen:
                    files.write(d, name, "0" if self.mode == "v2" else "THAWED", "cgroup freezer")
                raise CgroupError(f"cgroup: {name} did not reach {val}")
            time.sleep(0.001 * min(tries, 50))

    # -- processes -----------------------------------------------------------
    def _procs_dir(self) -> str | None:
        """The directory whose cgroup.procs tells the container's processes."""
        return self.unified if self.mode == "v2" else (
            self.dir_of("pids") or self.dir_of("freezer") or self.dir_of("memory")
            or next(iter(self.dirs.values()), None))

    def pids(self) -> list[int]:
        """Host pids in the cgroup and its descendants."""
        d = self._procs_dir()
        out: list[int] = []
        if d is None:
            return out
        for sub in [d, *fs.walk_dirs_bottom_up(d)]:
            try:
                text = files.read(sub, "cgroup.procs")
            except FileNotFoundError:
                continue
            out.extend(int(p) for p in text.split())
        return out

    def kill_all(self, sig: int) -> None:
        """Signal every process of the container, and nothing else: SIGKILL through
        cgroup.kill where the container has a cgroup2 directory (v2, and hybrid hosts, where
        every process of it is placed there too), else frozen around a signal to each
        member, so that none can fork a process past it or exit and leave its pid to reuse."""
        d = self.unified
        if sig == SIGKILL and d is not None and files.exists(d, "cgroup.kill"):
            files.write(d, "cgroup.kill", "1", "cgroup kill")
            if self.mode != "v2" and self.dir_of("freezer") is not None and self.is_frozen():
                self.thaw()  # a v1 freezer holds the killed processes until thawed
            return
        can_freeze = self.mode == "v2" or self.dir_of("freezer") is not None
        was_frozen = can_freeze and self.is_frozen()
        if can_freeze and not was_frozen:
            self.freeze()
        try:
            for pid in self.pids():
                _signal(pid, sig)
        finally:
            # SIGKILL takes effect only once thawed; otherwise keep a pause a pause
            if can_freeze and (not was_frozen or sig == SIGKILL):
                self.thaw()

    # -- reporting -----------------------------------------------------------
    def stats(self) -> dict:
        """The "data" object of runc's `events --stats`."""
        from . import stats
        return stats.collect(self)

    def oom_watcher(self) -> OomWatcher:
        from .oom import OomWatcher
        return OomWatcher(self)

    def oom_kill_count(self) -> int:
        """How many processes the kernel's OOM killer has killed in this cgroup."""
        d = self.dir_of("memory")
        if d is None:
            return 0
        if self.mode == "v2":
            return files.read_keyed(d, "memory.events").get("oom_kill", 0)
        return files.read_keyed(d, "memory.oom_control").get("oom_kill", 0)


def _controllers_to_enable(d: str, look) -> list[str]:
    """The controllers available to ``d`` that are not yet enabled for its children (v2)."""
    try:
        avail = look.read(d, "cgroup.controllers").split()
        on = set(look.read(d, "cgroup.subtree_control").split())
    except OSError:
        return []
    return [c for c in avail if c not in on]


def _signal(pid: int, sig: int) -> None:
    if pid > 1:  # 0: a process this pid namespace cannot see; never a group
        try:
            posix.kill(pid, sig)
        except ProcessLookupError:
            pass


def _frozen(d: str) -> str:
    """Why the cgroup2 directory ``d`` is frozen ("" if it is not, or does not exist)."""
    try:
        if files.read(d, "cgroup.freeze") == "1":
            return "cgroup.freeze is 1"
    except OSError:
        return ""  # the root cgroup has no freezer; a systemd scope is not there yet
    return "cgroup.events frozen 1: a parent is frozen" if files.read_keyed(d, "cgroup.events").get("frozen") else ""


def _freezer_state(d: str) -> str:
    """Why the v1 freezer cgroup ``d`` is frozen or freezing ("" if it is not)."""
    try:
        state = files.read(d, "freezer.state")
        if state == "THAWED":
            return ""
        if files.read(d, "freezer.self_freezing") == "0":
            return f"freezer.state {state}: a parent is frozen"
    except OSError:
        return ""
    return f"freezer.state {state}"


def _rmtree(d: str) -> None:
    """rmdir ``d`` and the cgroups nested in it, retrying while the kernel says EBUSY."""
    try:
        posix.rmdir(d)  # the usual case: nothing nested in it, no task still leaving
        return
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError:
        pass  # nested cgroups, or a task not yet gone: one directory at a time, below
    for sub in fs.walk_dirs_bottom_up(d) + [d]:
        for attempt in range(100):
            try:
                posix.rmdir(sub)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == 99:
                    raise CgroupError(f"cgroup: rmdir {sub}: "
                                      f"{errno.errorcode.get(exc.errno or 0)} ({exc.strerror})") from None
                time.sleep(0.01 * (attempt + 1))
