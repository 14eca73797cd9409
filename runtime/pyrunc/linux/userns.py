"""User namespaces: writing uid/gid maps, entering a new namespace as its root, and
user namespaces made only to lend their mapping to an idmapped mount.

The maps of a new namespace are written by a process outside it (the parent):
root writes /proc/<pid>/{uid,gid}_map directly; an unprivileged user may write
only a single line mapping itself (after "deny" in setgroups), anything more
goes through the setuid helpers newuidmap/newgidmap, which check /etc/subuid.
"""
from __future__ import annotations

import posix

from pyrunc.errors import PyruncError, context
from pyrunc.linux import execute
from pyrunc.syscalls import calls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.process.protocol import Channel
    from pyrunc.spec.plan import Plan


def map_text(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def _self_map(mappings: list[dict], host_id: int) -> bool:
    """The one mapping the kernel lets an unprivileged user write itself."""
    return len(mappings) == 1 and mappings[0]["hostID"] == host_id and mappings[0]["size"] == 1


def direct_write(uids: list[dict], gids: list[dict]) -> bool:
    """Whether we may write both maps ourselves (else newuidmap/newgidmap)."""
    return posix.geteuid() == 0 or (_self_map(uids, posix.geteuid()) and _self_map(gids, posix.getegid()))


def write_maps(pid: int, uids: list[dict], gids: list[dict]) -> bool:
    """Write ``pid``'s maps; return whether setgroups(2) stays allowed in the namespace."""
    if direct_write(uids, gids):
        allow = posix.geteuid() == 0
        if not allow:  # an unprivileged gid_map needs setgroups denied first (user_namespaces(7))
            _write(pid, "setgroups", "deny\n", "linux.gidMappings")
        _write(pid, "uid_map", map_text(uids), "linux.uidMappings")
        _write(pid, "gid_map", map_text(gids), "linux.gidMappings")
        return allow
    _helper("newuidmap", pid, uids, "linux.uidMappings")
    _helper("newgidmap", pid, gids, "linux.gidMappings")
    return True


def _write(pid: int, name: str, text: str, field: str) -> None:
    path = f"/proc/{pid}/{name}"
    with context(field):
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, text.encode())  # one write(2): the kernel takes a map only whole
        except OSError as exc:
            raise PyruncError(f"write {path}: the kernel refused {text.strip()!r}: "
                              f"{posix.strerror(exc.errno or 0)}") from None
        finally:
            posix.close(fd)


def _helper(tool: str, pid: int, mappings: list[dict], field: str) -> None:
    import shutil
    import subprocess  # only here: create's common path does without it

    exe = shutil.which(tool)
    if exe is None:
        raise PyruncError(f"{field}: {tool} not found: install the uidmap package to map ranges from /etc/sub[ug]id")
    args = [exe, str(pid)] + [str(m[k]) for m in mappings for k in ("containerID", "hostID", "size")]
    res = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if res.returncode:
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        raise PyruncError(f"{field}: {tool} refused the mapping: {why}")


def handshake_parent(chan: Channel, pid: int, uids: list[dict], gids: list[dict]) -> None:
    """Parent side: wait for the child to be in its new user namespace, map it, tell it."""
    chan.recv("userns")
    allow = write_maps(pid, uids, gids)
    chan.send("mapped", setgroups=allow)


def enter(plan: Plan, chan: Channel) -> None:
    """After the joins: create the new user namespace, or act as root of the joined one."""
    if plan.new_ns & sc.CLONE_NEWUSER:
        enter_new(chan)
    elif plan.has_ns("user"):  # joined by path: our host ids are unmapped there until we switch
        _become_root()


def enter_new(chan: Channel) -> None:
    """Child side: unshare the user namespace alone, have it mapped, become its root.

    Alone and first, so that every namespace unshared afterwards is owned by it."""
    with context("linux.namespaces user"):
        sc.unshare(sc.CLONE_NEWUSER)
    # The parent opens our /proc/<pid>/*_map files: an unprivileged parent can
    # only while we are dumpable. Nothing of the container runs yet.
    sc.prctl(sc.PR_SET_DUMPABLE, 1)
    chan.send("userns")
    execute.setgroups_allowed = chan.recv("mapped")["setgroups"]
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    _become_root()


def _become_root() -> None:
    with context("linux.uidMappings: becoming root in the user namespace (is container id 0 mapped?)"):
        posix.setresgid(0, 0, 0)
        posix.setresuid(0, 0, 0)
        execute.setgroups([])
    sc.prctl(sc.PR_SET_DUMPABLE, 0)  # a credential change resets it


def mapped_userns_fd(uids: list[dict], gids: list[dict]) -> int:
    """An fd of a new user namespace with these maps and no process left in it.

    A helper child unshares it and waits; we map it, open its ns/user, and let it go."""
    ready_r, ready_w = posix.pipe2(posix.O_CLOEXEC)
    done_r, done_w = posix.pipe2(posix.O_CLOEXEC)
    pid = posix.fork()
    if pid == 0:
        try:
            posix.close(ready_r)
            posix.close(done_w)
            sc.unshare(sc.CLONE_NEWUSER)
            posix.write(ready_w, b"1")
            posix.read(done_r, 1)  # EOF: the parent is done with us
        finally:
            posix._exit(0)
    for fd in (ready_w, done_r):
        posix.close(fd)
    try:
        if not posix.read(ready_r, 1):
            raise PyruncError("unshare(CLONE_NEWUSER) failed in the helper process: user namespaces unavailable")
        write_maps(pid, uids, gids)
        return posix.open(f"/proc/{pid}/ns/user", posix.O_RDONLY | posix.O_CLOEXEC)
    finally:
        posix.close(ready_r)
        posix.close(done_w)
        posix.waitpid(pid, 0)
