"""What the container process may do: capabilities, no_new_privs, seccomp, LSM labels.

`prepare` runs in the parent (it reads config, talks to libseccomp, may fail
with a ConfigError before anything exists); the other functions run on the
container side, in this order, for `create` (process/init.py) and for `exec`:

    before_user_switch(c)        LSM exec labels; KEEPCAPS; drop the bounding set
    execute.switch_user(user)
    after_user_switch(c)         no_new_privs; the final capability sets
    before_ready(c, chan)        only with SCMP_ACT_NOTIFY: install, hand the listener fd to the parent
    ... "ready" ...
    final_steps(c)               what process/launch.py does after the wait for start, just
                                 before execve: the seccomp filter, the deferred capabilities

Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: when the final
effective set lacks it, the capability sets are applied just after the filter
("deferred"), so the filter must allow capset and prctl (as with runc).
"""
from __future__ import annotations

import posix

from pyrunc.linux import caps as capmod
from pyrunc.linux import lsm
from pyrunc.syscalls import consts as k

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.linux.seccomp import Program


class Confinement:
    __slots__ = ("caps", "no_new_privs", "seccomp", "process", "deferred")

    def __init__(self, caps: capmod.CapSets, no_new_privs: bool, seccomp: Program | None,
                 process: dict) -> None:
        self.caps, self.no_new_privs, self.seccomp, self.process = caps, no_new_privs, seccomp, process
        self.deferred = seccomp is not None and not no_new_privs and not caps.has_effective(capmod.CAP_SYS_ADMIN)


def prepare(process: dict, linux: dict) -> Confinement:
    """Parent side: names -> masks, profile -> BPF, labels checked against the host's LSMs."""
    lsm.check(process, linux)
    sets = capmod.parse(process.get("capabilities"))
    prog = None
    if linux.get("seccomp"):  # seccomp.py (and libseccomp) only for containers that have a profile
        prog = _seccomp().compile_profile(linux["seccomp"])
    return Confinement(sets, bool(process.get("noNewPrivileges")), prog, process)


def before_user_switch(c: Confinement) -> None:
    lsm.apply_exec_labels(c.process)
    capmod.drop_bounding(c.caps)


def after_user_switch(c: Confinement) -> None:
    from pyrunc.syscalls import calls as sc

    if c.no_new_privs:
        sc.prctl(k.PR_SET_NO_NEW_PRIVS, 1)
    if c.deferred:
        capmod.hold_for_seccomp()
    else:
        capmod.apply(c.caps)


def _install(c: Confinement) -> int:
    fd = _seccomp().install(c.seccomp)  # type: ignore[arg-type]
    if c.deferred:
        capmod.apply(c.caps)
    return fd


def before_ready(c: Confinement, chan) -> None:
    """With SCMP_ACT_NOTIFY the agent must get the fd during create: install now, send it up."""
    if c.seccomp is None or not c.seccomp.notify:
        return
    fd = _install(c)
    try:
        chan.send_fd("seccomp-fd", fd)
    finally:
        posix.close(fd)


def final_steps(c: Confinement) -> tuple[bytes | None, int, tuple[int, int, int, int] | None]:
    """(BPF, seccomp flags, deferred capability sets) for the last moment; the capabilities
    are decided (and warned about) now, as they would be after the filter."""
    if c.seccomp is None or c.seccomp.notify:  # none, or installed by before_ready
        return None, 0, None
    return c.seccomp.bpf, c.seccomp.flags, capmod.final(c.caps) if c.deferred else None


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
