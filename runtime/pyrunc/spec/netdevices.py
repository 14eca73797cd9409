"""linux.netDevices (runtime-spec 1.3): names and namespace checks, pure."""
from __future__ import annotations

from pyrunc.spec.sysctl import is_host_netns

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator

Issue = tuple[str, str]
IFNAMSIZ = 16


def ifname_problem(name: object) -> str | None:
    """Mirror of the kernel's dev_valid_name(); '%d' is a template the kernel fills in."""
    if not isinstance(name, str) or not name or len(name) >= IFNAMSIZ:
        return f"{name!r} is not 1-{IFNAMSIZ - 1} characters"
    if name in (".", "..") or any(c == "/" or c == ":" or c.isspace() for c in name):
        return f"{name!r} must not be '.', '..' or contain '/', ':' or whitespace"
    return None


def check(config: dict) -> Iterator[Issue]:
    linux = config.get("linux", {})
    devices = linux.get("netDevices") or {}
    if not devices:
        return
    nets = [ns for ns in linux.get("namespaces", []) if ns.get("type") == "network"]
    if not nets:
        yield "linux.netDevices", "moving devices needs a network namespace in linux.namespaces"
    elif nets[0].get("path") and is_host_netns(nets[0]["path"]):
        yield "linux.netDevices", "the network namespace to move devices into is the host's"
    targets: dict[str, str] = {}
    for host, dev in devices.items():
        new = (dev or {}).get("name") or host
        for name in (host, new):
            problem = ifname_problem(name)
            if problem:
                yield f"linux.netDevices.{host}", problem
        if new in targets and "%d" not in new:
            yield f"linux.netDevices.{host}", f"name {new!r} is also the name of {targets[new]}"
        targets[new] = host
