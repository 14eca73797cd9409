"""What the container process may do: capabilities, no_new_privs, seccomp, LSM labels.

`prepare` runs in the parent (it reads config, talks to libseccomp, may fail
with a ConfigError before anything exists); the other functions run on the
container side, in this order, for `create` (process/init.py) and for `exec`:

    before_user_switch(c)        open the LSM exec attributes; KEEPCAPS; drop the bounding set
    execute.switch_user(user)
    after_user_switch(c)         no_new_privs; the final capability sets
    before_ready(c, chan)        only with SCMP_ACT_NOTIFY: install, hand the listener fd to the parent
    ... "ready" ...
    install_early(c)             a deferred filter (below); before startContainer hooks, any
                                 filter: they run under it, as in runc
    final_steps(c)               what the launcher (process/launch.py) does after the wait for
                                 start, just before execve: the labels, the capability sets
                                 (again: its own execve changed them), the seccomp filter

Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: when the final
effective set lacks it, the capability sets are applied just after the filter
("deferred"), so the filter must allow capset and prctl (as with runc). Such a
filter goes in before the launcher's execve, which would drop the CAP_SYS_ADMIN held
for it; a filter installed before the launcher (deferred, SCMP_ACT_NOTIFY, before
startContainer hooks) must also allow execveat and the launcher's few syscalls.
"""
from __future__ import annotations

import posix

from pyrunc.linux import caps as capmod
from pyrunc.linux import lsm
from pyrunc.syscalls import consts as k

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.linux.seccomp import Program


NO_LABELS = ((-1, ""), (-1, ""))


class Confinement:
    __slots__ = ("caps", "no_new_privs", "seccomp", "process", "deferred", "labels", "final", "installed")

    def __init__(self, caps: capmod.CapSets, no_new_privs: bool, seccomp: Program | None,
                 process: dict) -> None:
        self.caps, self.no_new_privs, self.seccomp, self.process = caps, no_new_privs, seccomp, process
        self.deferred = seccomp is not None and not no_new_privs and not caps.has_effective(capmod.CAP_SYS_ADMIN)
        self.labels = NO_LABELS  # the container side's (apparmor, selinux) (exec attribute fd, label)
        self.final: tuple[int, int, int, int] | None = None  # the capability sets, once decided
        self.installed = False  # the filter is in place already (notify, startContainer hooks)


def prepare(process: dict, linux: dict) -> Confinement:
    """Parent side: names -> masks, profile -> BPF, labels checked against the host's LSMs."""
    lsm.check(process, linux)
    sets = capmod.parse(process.get("capabilities"))
    prog = None
    if linux.get("seccomp"):  # seccomp.py (and libseccomp) only for containers that have a profile
        prog = _seccomp().compile_profile(linux["seccomp"])
    return Confinement(sets, bool(process.get("noNewPrivileges")), prog, process)


def before_user_switch(c: Confinement) -> None:
    c.labels = lsm.open_exec_labels(c.process)  # written by the launcher: they apply at the next execve
    capmod.drop_bounding(c.caps)


def after_user_switch(c: Confinement) -> None:
    from pyrunc.syscalls import calls as sc

    if c.no_new_privs:
        sc.prctl(k.PR_SET_NO_NEW_PRIVS, 1)
    if c.deferred:
        capmod.hold_for_seccomp()
    else:
        c.final = capmod.apply(c.caps)


def _install(c: Confinement) -> int:
    fd = _seccomp().install(c.seccomp)  # type: ignore[arg-type]
    if c.deferred:
        c.final = capmod.apply(c.caps)
    c.installed = True
    return fd


def install_early(c: Confinement, any_filter: bool = False) -> None:
    """The filter now, before the launcher would: a deferred one needs the CAP_SYS_ADMIN we
    hold, which the launcher's execve drops; startContainer hooks run under any (``any_filter``).
    Not a notify filter: that one is in place already (before_ready)."""
    if c.seccomp is not None and not c.installed and (c.deferred or any_filter):
        _install(c)


def before_ready(c: Confinement, chan) -> None:
    """With SCMP_ACT_NOTIFY the agent must get the fd during create: install now, send it up."""
    if c.seccomp is None or not c.seccomp.notify:
        return
    fd = _install(c)
    try:
        chan.send_fd("seccomp-fd", fd)
    finally:
        posix.close(fd)


def final_steps(c: Confinement) -> tuple[bytes | None, int, tuple[int, int, int, int]]:
    """(BPF or None when it is in place already, seccomp flags, the exact capability sets)
    for the launcher; deferred capabilities are decided (and warned about) now, as they
    would be after the filter."""
    final = c.final if c.final is not None else capmod.final(c.caps)
    if c.seccomp is None or c.installed:
        return None, 0, final
    return c.seccomp.bpf, c.seccomp.flags, final


def hand_over_listener(c: Confinement, chan, state: dict, pid: int) -> None:
    """Parent side, after "pid": pass the listener fd on to the agent. ``state`` is the
    container's (runtime.md "State"), ``pid`` the process the filter belongs to."""
    if c.seccomp is None or not c.seccomp.notify:
        return
    _msg, fd = chan.recv_fd("seccomp-fd")
    try:
        _seccomp().send_to_agent(c.seccomp, fd, state, pid)
    finally:
        posix.close(fd)


def creating_state(plan, pid: int) -> dict:
    """The container state (runtime.md "State") the agent receives during create."""
    return {"ociVersion": "1.3.0", "id": plan.id, "status": "creating", "pid": pid, "bundle": plan.bundle,
            "annotations": plan.config.get("annotations") or {}}


def features() -> dict:
    """features.linux entries for capabilities, seccomp and the LSMs.

    AppArmor and SELinux report false: the label code is only exercised here in
    its refusal path (no LSM on the test hosts), and features lists what works.
    """
    return {"capabilities": capmod.supported(), "seccomp": _seccomp().features(),
            "apparmor": {"enabled": False}, "selinux": {"enabled": False}}


def _seccomp():
    """Imported by prepare(), in the parent, before the container side could no longer load it."""
    from pyrunc.linux import seccomp

    return seccomp
