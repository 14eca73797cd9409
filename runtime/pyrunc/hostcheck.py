"""`pyrunc check`: what this host offers a container, and which of a bundle's requests it
cannot meet, told before `create` fails on them. It only reads (/proc, /sys, the bundle).

A fact is (mark, subject, meaning): OK met; NO not met (create refuses the request, or the
feature is missing); WARN create goes on, with a warning. A bundle whose config is invalid
gets the one-line error create would give, raised from the same code.
"""
from __future__ import annotations

import posix

from pyrunc import fs

OK, NO, WARN = "✓", "✗", "!"
Fact = tuple[str, str, str]
_CAP_SYS_RESOURCE = 24
_PROC_NS = {"network": "net", "mount": "mnt"}  # spec names -> /proc/<pid>/ns names


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


# ---- the host ------------------------------------------------------------------------------------

def host(criu: str | None = None) -> list[Fact]:
    """``criu``: the global --criu, else the one checkpoint and restore would find."""
    return [_cgroups(), _seccomp(), _userns(), _idmap(), _openat2(), _clone3(), _pidfd(), _overlayfs(),
            _systemd(), _criu(criu), *_lsms()]


def _cgroups() -> Fact:
    from pyrunc.cgroups import layout

    lay = layout.detect()
    parts = []
    v1 = sorted(k for k in lay.v1 if not k.startswith("name="))
    if v1:
        parts.append("v1 controllers " + " ".join(v1))
    if lay.unified:
        ctrls = _read(fs.join(lay.unified[0], "cgroup.controllers")) or "none"
        parts.append(f"cgroup2 at {lay.unified[0]} with controllers {ctrls}")
    return OK, f"cgroups {lay.mode}", "; ".join(parts)


def _seccomp() -> Fact:
    actions = _read("/proc/sys/kernel/seccomp/actions_avail")
    if actions is None:
        return NO, "seccomp", "this kernel has no seccomp filters: linux.seccomp is refused"
    try:
        from pyrunc.linux import seccomp
        archs = seccomp.features()["archs"]
    except Exception as exc:  # noqa: BLE001 - whatever keeps libseccomp from loading is the fact
        return NO, "seccomp", f"libseccomp cannot be used: {exc}"
    names = " ".join(a.removeprefix("SCMP_ARCH_").lower() for a in archs)
    return OK, "seccomp", f"kernel actions {actions}; libseccomp filters for {names}"


def _userns() -> Fact:
    from pyrunc.rootless import userns_unavailable

    why = userns_unavailable()
    if why:
        return NO, "user namespaces", why
    return OK, "user namespaces", f"available, at most {_read('/proc/sys/user/max_user_namespaces')} per user"


def _idmap() -> Fact:
    from pyrunc.rootless import idmap_supported

    if idmap_supported():
        return OK, "idmapped mounts", "mount_setattr(MOUNT_ATTR_IDMAP): the idmap and ridmap mount options work"
    return NO, "idmapped mounts", "needs Linux 5.12 and user namespaces: the idmap mount options are refused"


def _openat2() -> Fact:
    from pyrunc.errors import SyscallError
    from pyrunc.syscalls import calls as sc

    try:
        posix.close(sc.openat2(-100, "/", posix.O_PATH | posix.O_DIRECTORY, sc.RESOLVE_IN_ROOT))  # AT_FDCWD
    except SyscallError as exc:
        return NO, "openat2", f"{exc}: paths cannot be resolved inside the rootfs, create fails"
    return OK, "openat2", "mount targets, cwd and masks are resolved inside the rootfs (RESOLVE_IN_ROOT)"


def _clone3() -> Fact:
    from pyrunc.syscalls import calls as sc

    if sc.clone3_available():
        return OK, "clone3", "children are born in their cgroup2 directory and pid namespace"
    return NO, "clone3", "needs Linux 5.3: containers that fork their init (user or time namespaces) fail"


def _pidfd() -> Fact:
    try:
        posix.close(posix.pidfd_open(posix.getpid()))
    except OSError as exc:
        return NO, "pidfd", f"pidfd_open: {exc.strerror}: pyrunc cannot signal a container safely"
    return OK, "pidfd", "signals go through pidfds checked against the init's start time"


def _overlayfs() -> Fact:
    known = (_read("/proc/filesystems") or "").split()
    if "overlay" in known:
        return OK, "overlayfs", "in /proc/filesystems: overlay mounts and engines' overlay storage work"
    return NO, "overlayfs", "not in /proc/filesystems (modprobe overlay): overlay mounts fail"


def _systemd() -> Fact:
    if not fs.isdir("/run/systemd/system"):
        return NO, "systemd", "not running as PID 1 (no /run/systemd/system): no systemd cgroup driver here"
    if not fs.exists("/run/dbus/system_bus_socket"):
        return WARN, "systemd", "running, but no D-Bus system bus (/run/dbus/system_bus_socket): --systemd-cgroup fails"
    return OK, "systemd", "running, with its D-Bus system bus: --systemd-cgroup puts containers in transient scopes"


def _criu(explicit: str | None) -> Fact:
    from pyrunc.criu.binary import CriuError, usable

    try:
        path, ver = usable(explicit)
    except CriuError as exc:
        return NO, "criu", f"{exc}: checkpoint and restore fail"
    return OK, "criu", f"{path} version {ver}, `criu check` passes: checkpoint and restore work"


def _lsms() -> list[Fact]:
    from pyrunc.linux import lsm

    return [(OK, "AppArmor", "enabled: process.apparmorProfile is applied") if lsm.apparmor_enabled() else
            (NO, "AppArmor", "not enabled: a config with process.apparmorProfile is refused"),
            (OK, "SELinux", "enabled: process.selinuxLabel and linux.mountLabel are applied") if lsm.selinux_enabled()
            else (NO, "SELinux", "not enabled: a config with process.selinuxLabel or linux.mountLabel is refused")]


# ---- a bundle ------------------------------------------------------------------------------------

def bundle(path: str) -> list[Fact]:
    """Each request of the bundle this host cannot meet (NO), or meets only in part (WARN).
    An invalid config raises what create would raise."""
    from pyrunc.errors import BundleError
    from pyrunc.linux import lsm
    from pyrunc.spec.load import load_config
    from pyrunc.spec.plan import build

    config, bundle_dir = load_config(path)
    linux = config.get("linux") or {}
    process = config.get("process") or {}
    # Labels this host cannot apply are refused while the plan is made: report them, and
    # check the rest of the bundle without them.
    labels = [(NO, field, why) for field, why in lsm.host_issues(process, linux)]
    for _mark, field, _why in labels:
        section, _, key = field.partition(".")
        config = {**config, section: {k: v for k, v in config[section].items() if k != key}}
    plan = build(config, bundle_dir, "check")
    if not fs.isdir(plan.rootfs):
        raise BundleError(f"root.path {plan.rootfs}: not a directory or does not exist")
    facts: list[Fact] = [(OK, "config.json", f"valid (ociVersion {config.get('ociVersion')}); rootfs {plan.rootfs}")]
    facts += labels
    facts += _namespaces(linux)
    facts += _cgroup_requests(linux)
    facts += _process_requests(plan)
    facts += _other_requests(plan, config, linux)
    return facts


def _namespaces(linux: dict) -> list[Fact]:
    from pyrunc.rootless import userns_unavailable

    out = []
    for i, ns in enumerate(linux.get("namespaces") or []):
        field, kind = f"linux.namespaces[{i}]", ns["type"]
        if ns.get("path"):
            if not fs.exists(ns["path"]):
                out.append((NO, field, f"{kind} namespace {ns['path']} does not exist"))
        elif not fs.exists(f"/proc/self/ns/{_PROC_NS.get(kind, kind)}"):
            out.append((NO, field, f"this kernel has no {kind} namespaces"))
        elif kind == "user" and (why := userns_unavailable()):
            out.append((NO, field, why))
    return out


def _cgroup_requests(linux: dict) -> list[Fact]:
    """A limit whose controller this host lacks is refused by create (v1: not mounted; v2: not
    enabled at the root). The directories themselves are only made by create."""
    from pyrunc.cgroups import layout
    from pyrunc.cgroups.resources import controllers_asked

    lay = layout.detect()
    if lay.mode == "v2":
        have = set((_read(fs.join(lay.unified[0], "cgroup.controllers")) or "").split()) | {""}  # type: ignore[index]
        where = "enabled in the cgroup2 root"
    else:
        have = {c for key in lay.v1 for c in key.split(",")}
        where = "mounted as a v1 hierarchy"
    return [(NO, f"linux.resources.{field}", f"the {ctrl or 'cgroup2'} controller is not {where}")
            for field, ctrl in controllers_asked(linux.get("resources") or {}) if ctrl not in have]


def _process_requests(plan) -> list[Fact]:
    import resource

    from pyrunc.linux import caps
    from pyrunc.syscalls import calls as sc

    out: list[Fact] = []
    effective = sc.capget()[0]
    for label, res, _soft, hard in plan.attrs.rlimits:
        current = resource.getrlimit(res)[1]
        if current != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > current) \
                and not effective >> _CAP_SYS_RESOURCE & 1:
            out.append((NO, label, f"the hard limit is above the current {current}, and raising it needs "
                                   "CAP_SYS_RESOURCE, which this runtime lacks"))
    sets = plan.confine.caps
    held = caps.bounding_set(sets.last)
    wanted = sets.bounding | sets.effective | sets.permitted | sets.inheritable | sets.ambient
    lacking = [caps.NAMES[c] for c in range(sets.last + 1) if (wanted & ~held) >> c & 1]
    if lacking:
        out.append((WARN, "process.capabilities", f"{', '.join(lacking)}: not in this runtime's bounding set; "
                                                  "create warns and runs without them"))
    return out


def _other_requests(plan, config: dict, linux: dict) -> list[Fact]:
    from pyrunc.linux import idmap
    from pyrunc.rootless import idmap_supported

    out: list[Fact] = []
    if idmap.any_wanted(plan) and not idmap_supported():
        out.append((NO, "mounts", "idmapped mounts are asked for and this host cannot make them"))
    for kind, hooks in (config.get("hooks") or {}).items():
        for i, hook in enumerate(hooks or []):
            if not posix.access(hook["path"], posix.X_OK):
                out.append((NO, f"hooks.{kind}[{i}].path", f"{hook['path']}: not an executable file"))
    for name in linux.get("netDevices") or {}:
        if not fs.exists(f"/sys/class/net/{name}"):
            out.append((NO, f"linux.netDevices[{name!r}]", "no such network interface on this host"))
    return out
