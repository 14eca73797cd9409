"""The mount steps of a live container checked against its /proc/<pid>/mountinfo (mount points
as the container sees them, in the order the mounts were made): each planned mount at its
target, of its type, with its flags; any other mount is a difference, but for what a
recursive bind carried along from the host."""
from __future__ import annotations

from pyrunc import fs
from pyrunc.explain import DIFFERS, SAME, UNVERIFIED
from pyrunc.explain.live import inode, read
from pyrunc.explain.mounts import flag_names
from pyrunc.syscalls import consts as k

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.explain import Report
    from pyrunc.explain.tree import Mount

_BITS = {"ro": k.MS_RDONLY, "nosuid": k.MS_NOSUID, "nodev": k.MS_NODEV, "noexec": k.MS_NOEXEC}
_CHECKED = k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC


class Info:
    """One line of mountinfo."""

    __slots__ = ("id", "point", "flags", "tags", "fstype", "source")

    def __init__(self, line: str) -> None:
        left, _, right = line.partition(" - ")
        fields = left.split()
        self.id, self.point = int(fields[0]), fs.unescape_mountinfo(fields[4])
        self.flags = sum(_BITS.get(o, 0) for o in fields[5].split(","))
        self.tags = fields[6:]
        self.fstype, self.source = (right.split() + ["", ""])[:2]

    def show(self) -> str:
        return f"{self.point} ({self.fstype} {self.source}, {','.join(flag_names(self.flags)) or 'rw'})"


def parse(text: str) -> list[Info]:
    """In the kernel's order, which is the order the mounts were made in (ids are reused)."""
    return [Info(line) for line in text.splitlines() if line]


def check(r: Report, proc: str) -> None:
    infos = parse(read(f"{proc}/mountinfo") or "")
    tree = r.tree
    planned = [m for m in tree.mounts if m.entry is not None]
    used: set[int] = set()
    for m in planned:
        found = next((i for i in infos if i.id not in used and i.point == m.target
                      and (m.fstype is None or i.fstype == m.fstype)), None)
        if found is None:
            m.entry.live = (DIFFERS, f"no {m.fstype or 'bind'} mount at {m.target}")
            continue
        used.add(found.id)
        if m.flags is not None and found.flags != m.flags & _CHECKED:
            m.entry.live = (DIFFERS, f"mounted {','.join(flag_names(found.flags)) or 'rw'}")
        else:
            m.entry.live = (SAME, "")
    root = fs.realpath(r.plan.rootfs)
    for e in r.entries:
        if e.section not in ("mounts", "devices") or e.live is not None:
            continue
        target = e.detail.get("target")
        if e.op in ("remount", "setattr"):
            m = tree.covering(target) if target else None
            e.live = m.entry.live if m is not None and m.entry is not None else (UNVERIFIED, "")
        elif e.op == "propagation":
            e.live = _propagation(e, infos) if e.detail.get("propagation") else \
                (UNVERIFIED, "done to the tree pivot_root then detaches")
        elif e.op == "skip":
            there = [i for i in infos if i.point == target]
            e.live = (SAME, "") if not there else (DIFFERS, f"a mount is there: {there[-1].show()}")
        elif e.op in ("pivot_root", "chroot", "move"):
            # its root is in another mount namespace: compare the directories, not their names
            e.live = (SAME, "") if inode(f"{proc}/root/") == inode(root) else \
                (DIFFERS, f"its root is not {root}")
        elif e.op == "none":
            e.live = (SAME, "")
    carried = _carried(planned, root)
    for i in infos:
        if i.id not in used and i.point not in carried:
            e = r.add("init", "mounts", "unplanned", "mounts", f"a mount the plan does not make: {i.show()}",
                      target=i.point, type=i.fstype, source=i.source)
            e.live = (DIFFERS, "not in the plan")


def _propagation(e, infos: list[Info]) -> tuple[str, str]:
    target = e.detail.get("target")
    at = [i for i in infos if i.point == target]
    if not at:
        return DIFFERS, f"no mount at {target}"
    tags = at[-1].tags
    names = set(e.detail.get("propagation") or [])
    want = {"shared": any(t.startswith("shared:") for t in tags), "slave": any(t.startswith("master:") for t in tags),
            "unbindable": "unbindable" in tags, "private": not tags}
    wrong = [n for n in names if n in want and not want[n]]
    return (SAME, "") if not wrong else (DIFFERS, f"propagation {' '.join(tags) or 'private'}")


def _carried(planned: list[Mount], root: str) -> set[str]:
    """Mount points a recursive bind brought along: host mounts below its source."""
    host = [fs.unescape_mountinfo(line.split()[4]) for line in (read("/proc/self/mountinfo") or "").splitlines()]
    out: set[str] = set()
    for m in planned:
        if not m.recursive:
            continue
        src = root if m.target == "/" else m.source
        if not src:
            out |= {p.target for p in planned if p.target.startswith(m.target.rstrip("/") + "/")}
            continue
        for point in host:
            if point.startswith(src.rstrip("/") + "/"):
                out.add(fs.join(m.target, point[len(src.rstrip("/")) + 1:]))
    return out
