"""linux.sysctl: which kernel parameters a container may set, following runc's rules.

A sysctl is accepted only when it belongs to a namespace the container has of
its own; anything else would change the host for every process on it.
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator

Issue = tuple[str, str]

# IPC-namespaced parameters (ipc_namespace.c / mq_sysctl): fs.mqueue.* as a prefix.
IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})
UTS_SYSCTLS = {"kernel.hostname": "hostname", "kernel.domainname": "domainname"}


def dotted(key: str) -> str:
    """The dotted spelling of a key that sysctl(8) also accepts as a/b/c."""
    return key.replace("/", ".") if _first_sep(key) == "/" else key


def proc_path(key: str) -> str:
    """/proc/sys path of a key: in the dotted form a '/' stands for a literal '.' (eth0/100 -> eth0.100)."""
    if _first_sep(key) == "/":
        return "/proc/sys/" + key
    return "/proc/sys/" + key.translate(str.maketrans("./", "/."))


def _first_sep(key: str) -> str:
    for ch in key:
        if ch in "./":
            return ch
    return "."


def _namespaces(config: dict) -> dict[str, str | None]:
    return {ns.get("type"): ns.get("path") for ns in config.get("linux", {}).get("namespaces", [])}


def is_host_netns(path: str) -> bool:
    try:
        a, b = posix.stat(path), posix.stat("/proc/self/ns/net")
    except OSError:
        return False  # a missing path is reported when the namespace is joined
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def refusal(key: str, config: dict) -> str | None:
    """Why ``key`` may not be set in this container, or None when it may."""
    ns = _namespaces(config)
    name = dotted(key)
    if ".." in key.split("/") or not name or name.startswith((".", "/")):
        return "is not a sysctl name"
    if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
        return None if "ipc" in ns else "is not allowed in the host's ipc namespace (add an ipc namespace)"
    if name.startswith("net."):
        if "network" not in ns:
            return "is not allowed in the host's network namespace (add a network namespace)"
        if ns["network"] and is_host_netns(ns["network"]):
            return f"is not allowed: linux.namespaces network path {ns['network']} is the host's network namespace"
        return None
    if name in UTS_SYSCTLS:
        if "uts" not in ns:
            return "is not allowed in the host's uts namespace (add a uts namespace)"
        field = UTS_SYSCTLS[name]
        if name == "kernel.hostname":  # as runc and crun: the hostname field says it
            return f"is not allowed as it conflicts with the OCI {field!r} field (set the hostname there)"
        value = config.get(field)
        if value and value != config["linux"]["sysctl"][key]:  # equal: both ask the same
            return f"conflicts with the {field!r} field, which is set to {value!r}"
        return None
    return "is not in a separate kernel namespace: it would change the host"


def check(config: dict) -> Iterator[Issue]:
    for key in config.get("linux", {}).get("sysctl") or {}:
        why = refusal(key, config)
        if why:
            yield f"linux.sysctl.{key}", f"{key!r} {why}"
