"""Capabilities: config names -> masks (parent), and the five sets applied around the uid switch.

One mechanism: capget/capset and prctl through our syscall layer (syscalls/native.c).
python-prctl needs libcap, has no ambient call and its table stops at CAP_PERFMON, so
it could not express what the spec asks for.

Order (capabilities(7), "Effect of user ID changes on capabilities"):
  1. PR_SET_KEEPCAPS and drop the bounding set, while we still are root with
     CAP_SETPCAP;
  2. setgroups/setresgid/setresuid (switch_user);
  3. clear KEEPCAPS, capset effective/permitted/inheritable (a non-zero uid has
     lost its effective set, permitted survived thanks to KEEPCAPS);
  4. raise ambient: each needs the capability in permitted and inheritable.
"""
from __future__ import annotations

from pyrunc import log
from pyrunc.syscalls import consts as k

# capability number = index (include/uapi/linux/capability.h)
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_SYS_ADMIN = NAMES.index("CAP_SYS_ADMIN")
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def last_cap() -> int:
    """The kernel's highest capability number; our table's end if /proc does not say."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


def supported() -> list[str]:
    """Names both this kernel and our table know (features)."""
    return list(NAMES[: min(last_cap(), len(NAMES) - 1) + 1])


def well_formed(name: object) -> bool:
    """CAP_ and upper-case letters, digits, underscores (whether the kernel knows it is another matter)."""
    return (isinstance(name, str) and name.startswith("CAP_") and len(name) > 4
            and all(c.isascii() and (c.isupper() or c.isdigit() or c == "_") for c in name))


class CapSets:
    """The five sets as bit masks; built in the parent, applied by the container side."""

    __slots__ = SETS + ("last",)

    def __init__(self, masks: dict[str, int], last: int) -> None:
        for name in SETS:
            setattr(self, name, masks.get(name, 0))
        self.last = last

    def has_effective(self, cap: int) -> bool:
        return bool(self.effective >> cap & 1)  # type: ignore[attr-defined]


def parse(caps: dict | None, where: str = "process.capabilities") -> CapSets:
    """Names -> masks. No ``capabilities`` object means every set empty, as runc does.

    A well-formed name this kernel (or our table) does not know is skipped with
    a warning: runtime-spec 1.3 says the runtime SHOULD NOT fail on it. Anything
    else is a ConfigError naming its JSON path (the schema refuses it first for config.json).
    """
    from pyrunc.errors import ConfigError

    last = last_cap()
    masks: dict[str, int] = {}
    unknown: list[str] = []
    for set_name in SETS:
        mask = 0
        for i, name in enumerate((caps or {}).get(set_name) or []):
            if not well_formed(name):
                raise ConfigError(f"{where}.{set_name}[{i}]: {name!r} is not a capability name")
            num = NAMES.index(name) if name in NAMES else -1
            if num < 0 or num > last:
                unknown.append(f"{set_name}[{i}] {name}")
                continue
            mask |= 1 << num
        masks[set_name] = mask
    if unknown:
        log.warn(f"{where}: ignoring capabilities unknown to this kernel: {', '.join(unknown)}")
    return CapSets(masks, last)


_bounding_now: int | None = None  # our bounding set, known since drop_bounding() shrank it


def drop_bounding(sets: CapSets) -> None:
    """Step 1 (as root, before the uid switch): keep permitted across it, shrink the bounding set."""
    from pyrunc.syscalls import calls as sc

    global _bounding_now
    held = bounding_set(sets.last)
    _warn_dropped("bounding", sets.bounding, sets.bounding & held)  # type: ignore[attr-defined]
    sc.prctl(k.PR_SET_KEEPCAPS, 1)
    for cap in range(sets.last + 1):
        if held >> cap & 1 and not sets.bounding >> cap & 1:  # type: ignore[attr-defined]
            sc.prctl(k.PR_CAPBSET_DROP, cap)
    _bounding_now = held & sets.bounding  # type: ignore[attr-defined]  (only a drop changes it)


def hold_for_seccomp() -> None:
    """After the uid switch, when the filter must still be installed without no_new_privs:
    make the surviving permitted set effective (it has CAP_SYS_ADMIN) until apply() runs."""
    from pyrunc.syscalls import calls as sc

    sc.prctl(k.PR_SET_KEEPCAPS, 0)
    _eff, perm, _inh = sc.capget()
    sc.capset(perm, perm, 0)


def final(sets: CapSets) -> tuple[int, int, int, int]:
    """Steps 3 and 4 decided: the (effective, permitted, inheritable, ambient) masks this
    process can set, warning for each configured capability it cannot.

    Never an implicit inheritable set: it is exactly the configured one.
    """
    from pyrunc.syscalls import calls as sc

    # runtime-spec 1.3 config.md: a capability that "cannot be granted otherwise MUST be
    # logged as a warning"; runtimes "SHOULD NOT fail". capset(2) refuses a permitted bit we
    # do not hold, or an inheritable bit outside (inheritable | permitted) and the bounding set;
    # PR_CAP_AMBIENT_RAISE one not in both permitted and inheritable.
    _eff, have_perm, have_inh = sc.capget()
    bset = bounding_set(sets.last)
    perm = sets.permitted & have_perm  # type: ignore[attr-defined]
    inh = sets.inheritable & (have_inh | have_perm) & (have_inh | bset)  # type: ignore[attr-defined]
    eff = sets.effective & perm  # type: ignore[attr-defined]
    amb = sets.ambient & perm & inh  # type: ignore[attr-defined]
    _warn_dropped("effective", sets.effective, eff)  # type: ignore[attr-defined]
    _warn_dropped("permitted", sets.permitted, perm)  # type: ignore[attr-defined]
    _warn_dropped("inheritable", sets.inheritable, inh)  # type: ignore[attr-defined]
    _warn_ambient(sets.ambient & ~amb, "not in the permitted and inheritable sets")  # type: ignore[attr-defined]
    return eff, perm, inh, amb


def apply(sets: CapSets) -> tuple[int, int, int, int]:
    """Steps 3 and 4, now (else the launcher sets them, just before execve); returns the sets."""
    from pyrunc.syscalls import calls as sc

    decided = final(sets)
    _warn_ambient(sc.set_capabilities(*decided), "refused by the kernel")
    return decided


def _warn_ambient(mask: int, why: str) -> None:
    for cap in range(64):
        if mask >> cap & 1:  # as runc: warn and go on
            log.warn(f"process.capabilities.ambient: cannot raise {NAMES[cap] if cap < len(NAMES) else cap}: {why}")


def bounding_set(last: int) -> int:
    """This process's bounding set, as a mask of capabilities 0..last (one prctl each, unless
    drop_bounding() made it)."""
    from pyrunc.syscalls import calls as sc

    if _bounding_now is not None:
        return _bounding_now & ((1 << (last + 1)) - 1)
    return sum(1 << cap for cap in range(last + 1) if sc.prctl(k.PR_CAPBSET_READ, cap) == 1)


def _warn_dropped(set_name: str, wanted: int, granted: int) -> None:
    lost = [NAMES[cap] for cap in range(len(NAMES)) if (wanted & ~granted) >> cap & 1]
    if lost:
        log.warn(f"process.capabilities.{set_name}: cannot grant {', '.join(lost)} (not held by the runtime)")
