"""config.md's Linux mount options, turned into mount(2)/mount_setattr(2) arguments. Pure."""
from __future__ import annotations

from pyrunc.syscalls import consts as k

# option -> (flags to set, flags to clear) for mount(2)
FLAGS: dict[str, tuple[int, int]] = {
    "defaults": (0, 0),
    "ro": (k.MS_RDONLY, 0), "rw": (0, k.MS_RDONLY),
    "suid": (0, k.MS_NOSUID), "nosuid": (k.MS_NOSUID, 0),
    "dev": (0, k.MS_NODEV), "nodev": (k.MS_NODEV, 0),
    "exec": (0, k.MS_NOEXEC), "noexec": (k.MS_NOEXEC, 0),
    "sync": (k.MS_SYNCHRONOUS, 0), "async": (0, k.MS_SYNCHRONOUS),
    "dirsync": (k.MS_DIRSYNC, 0),
    "remount": (k.MS_REMOUNT, 0),
    "mand": (k.MS_MANDLOCK, 0), "nomand": (0, k.MS_MANDLOCK),
    # one access-time mode: the last of noatime/relatime/strictatime wins
    "atime": (0, k.MS_NOATIME), "noatime": (k.MS_NOATIME, k.MS_RELATIME | k.MS_STRICTATIME),
    "diratime": (0, k.MS_NODIRATIME), "nodiratime": (k.MS_NODIRATIME, 0),
    "relatime": (k.MS_RELATIME, k.MS_NOATIME | k.MS_STRICTATIME), "norelatime": (0, k.MS_RELATIME),
    "strictatime": (k.MS_STRICTATIME, k.MS_NOATIME | k.MS_RELATIME), "nostrictatime": (0, k.MS_STRICTATIME),
    "iversion": (k.MS_I_VERSION, 0), "noiversion": (0, k.MS_I_VERSION),
    "lazytime": (k.MS_LAZYTIME, 0), "nolazytime": (0, k.MS_LAZYTIME),
    "silent": (k.MS_SILENT, 0), "loud": (0, k.MS_SILENT),
    "nosymfollow": (k.MS_NOSYMFOLLOW, 0), "symfollow": (0, k.MS_NOSYMFOLLOW),
    "bind": (k.MS_BIND, 0), "rbind": (k.MS_BIND | k.MS_REC, 0),
}

PROPAGATION: dict[str, int] = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC,
    "shared": k.MS_SHARED, "rshared": k.MS_SHARED | k.MS_REC,
    "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}

# recursive attributes applied with mount_setattr(AT_RECURSIVE): option -> (set, clear)
RECURSIVE: dict[str, tuple[int, int]] = {
    "rro": (k.MOUNT_ATTR_RDONLY, 0), "rrw": (0, k.MOUNT_ATTR_RDONLY),
    "rnosuid": (k.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, k.MOUNT_ATTR_NOSUID),
    "rnodev": (k.MOUNT_ATTR_NODEV, 0), "rdev": (0, k.MOUNT_ATTR_NODEV),
    "rnoexec": (k.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, k.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (k.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, k.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (k.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, k.MOUNT_ATTR_NOSYMFOLLOW),
}
# The access-time mode is one value, not bits: mount_setattr wants all of MOUNT_ATTR__ATIME in
# attr_clr and one mode in attr_set. "Not noatime/strictatime" means the kernel default, relatime;
# "rnorelatime" changes nothing, as "norelatime" does on mount(2).
RECURSIVE_ATIME: dict[str, int | None] = {
    "rrelatime": k.MOUNT_ATTR_RELATIME, "ratime": k.MOUNT_ATTR_RELATIME,
    "rnostrictatime": k.MOUNT_ATTR_RELATIME, "rnoatime": k.MOUNT_ATTR_NOATIME,
    "rstrictatime": k.MOUNT_ATTR_STRICTATIME, "rnorelatime": None,
}

# options pyrunc itself consumes rather than passing to the kernel
EXTRA = ("tmpcopyup", "idmap", "ridmap")  # idmap/ridmap: linux/idmap.py


class MountOptions:
    __slots__ = ("flags", "clear", "propagation", "rec_set", "rec_clr", "data", "extra")

    def __init__(self) -> None:
        self.flags = 0
        self.clear = 0
        self.propagation: list[int] = []
        self.rec_set = 0
        self.rec_clr = 0
        self.data: list[str] = []
        self.extra: set[str] = set()


def parse(options: list[str]) -> MountOptions:
    """Split options into flags, propagation, recursive attrs and fs data (unknown options)."""
    out = MountOptions()
    for opt in options:
        if opt in FLAGS:
            set_, clr = FLAGS[opt]
            out.flags = (out.flags | set_) & ~clr
            out.clear |= clr
        elif opt in PROPAGATION:
            out.propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE:
            set_, clr = RECURSIVE[opt]
            out.rec_set = (out.rec_set & ~clr) | set_
            out.rec_clr = (out.rec_clr | clr) & ~set_
        elif opt in RECURSIVE_ATIME:
            mode = RECURSIVE_ATIME[opt]
            if mode is not None:
                out.rec_set = (out.rec_set & ~k.MOUNT_ATTR__ATIME) | mode
                out.rec_clr |= k.MOUNT_ATTR__ATIME
        elif opt in EXTRA:
            out.extra.add(opt)
        else:
            out.data.append(opt)
    return out


def all_options() -> list[str]:
    """What `features` lists: every option pyrunc carries out (tests/test_mounts.py checks each in a
    container's mountinfo; idmap/ridmap belong to linux/idmap.py)."""
    return sorted([*FLAGS, *PROPAGATION, *RECURSIVE, *RECURSIVE_ATIME, *EXTRA])


# per-mount flags: the only ones a remount of a bind mount changes
PER_MOUNT = (k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC | k.MS_NOATIME | k.MS_NODIRATIME
             | k.MS_RELATIME | k.MS_STRICTATIME | k.MS_NOSYMFOLLOW)


class Step:
    """One mount(2) or mount_setattr(2) call, its arguments decided from the config alone.

    kind: "mount" a new filesystem (source, fstype, flags, data); "bind" source here (flags:
    MS_BIND, MS_REC); "remount-bind" the bind's per-mount flags: those it has (its source's),
    ``clear`` cleared, ``flags`` set; "remount" (flags, data); "propagation" (flags);
    "setattr" recursive attributes (flags set, clear cleared). ``target`` is a path in the
    container, None for the mount entry's destination."""

    __slots__ = ("kind", "source", "fstype", "flags", "clear", "data", "target")

    def __init__(self, kind: str, source: str | None = None, fstype: str | None = None, flags: int = 0,
                 clear: int = 0, data: str | None = None, target: str | None = None) -> None:
        self.kind, self.source, self.fstype, self.flags = kind, source, fstype, flags
        self.clear, self.data, self.target = clear, data, target


def steps(op) -> list[Step]:
    """The calls a config mount (spec.plan.MountOp) takes, in order, but for "cgroup" mounts
    (linux/cgroupfs.py). Without "remount", the first makes the mount."""
    o = op.opts
    out = []
    data = ",".join(o.data) or None
    if not o.flags & k.MS_REMOUNT:
        if op.is_bind:
            out.append(Step("bind", op.source, flags=o.flags & (k.MS_BIND | k.MS_REC)))
        else:
            out.append(Step("mount", op.source or op.fstype or "none", op.fstype, o.flags, data=data))
    if op.is_bind and (o.flags & k.MS_REMOUNT or o.flags & PER_MOUNT or o.clear & PER_MOUNT):
        # A bind keeps the source mount's flags; options change them, "rw" & co. clear them.
        out.append(Step("remount-bind", flags=o.flags & PER_MOUNT, clear=o.clear))
    elif o.flags & k.MS_REMOUNT:
        out.append(Step("remount", flags=o.flags, data=data))
    out += [Step("propagation", flags=prop) for prop in o.propagation]
    if o.rec_set or o.rec_clr:
        out.append(Step("setattr", flags=o.rec_set, clear=o.rec_clr))
    return out
