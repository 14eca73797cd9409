"""linux.netDevices: host interfaces moved into the container's network namespace, by the parent.

Imported (with pyroute2) only when the config has netDevices. The move keeps
the permanent global addresses (the kernel drops addresses on a namespace
change, so they are read first and added again) and brings the device up, as
runtime-spec 1.3 requires. The state records each move so `delete` can give
the device back to the host under its original name.
"""
from __future__ import annotations

import errno
import posix

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyrunc import log
from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.undo import Undo

IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
IFF_UP = 0x1


class NetDeviceError(PyruncError):
    pass


def _fail(label: str, what: str, exc: NetlinkError) -> NetDeviceError:
    name = errno.errorcode.get(exc.code, str(exc.code))
    return NetDeviceError(f"{label}: {what}: {name} ({posix.strerror(exc.code)})")


def _addresses(ipr: IPRoute, index: int) -> list[list]:
    """[family, local, prefixlen] of the permanent, global-scope addresses (RFC 3549 2.3.3.2)."""
    out = []
    for a in ipr.get_addr(index=index):
        flags = a.get("IFA_FLAGS") or a["flags"]
        if flags & IFA_F_PERMANENT and a["scope"] == RT_SCOPE_UNIVERSE:
            out.append([a["family"], a.get("IFA_LOCAL") or a.get("IFA_ADDRESS"), a["prefixlen"]])
    return out


def _find(ipr: IPRoute, name: str | None, mac: str | None) -> int | None:
    """The index of the device with MAC ``mac`` (and named ``name`` unless None).

    In the container's namespace the MAC alone is enough (it holds only lo and
    the moved devices) and finds a '%d' template's result or a half-done move."""
    for link in ipr.get_links():
        if link.get("IFLA_ADDRESS") == mac and name in (None, link.get("IFLA_IFNAME")):
            return link["index"]
    return None


def _configure(ipr: IPRoute, index: int, addrs: list[list], up: bool) -> None:
    for family, local, prefixlen in addrs:
        ipr.addr("add", index=index, family=family, address=local, prefixlen=prefixlen)
    if up:
        ipr.link("set", index=index, state="up")


def move_in(devices: dict[str, dict], pid: int, netns: str, moved: list[dict]) -> None:
    """Move every device into ``netns`` (the namespace of ``pid``), appending to ``moved``
    (what the state records) as it goes, so a failure half-way can be undone."""
    with IPRoute() as host, IPRoute(netns=netns, flags=0) as ctr:
        for name, dev in devices.items():
            label, new = f"linux.netDevices.{name}", (dev or {}).get("name") or name
            found = host.link_lookup(ifname=name)
            if not found:
                raise NetDeviceError(f"{label}: no network device {name!r} on the host")
            link = host.get_links(found[0])[0]
            rec = {"host": name, "container": new, "mac": link.get("IFLA_ADDRESS"),
                   "addrs": _addresses(host, found[0]), "up": bool(link["flags"] & IFF_UP)}
            if "%d" not in new and ctr.link_lookup(ifname=new):
                raise NetDeviceError(f"{label}: the container already has a device named {new!r}")
            moved.append(rec)  # first: the kernel may move the device and then fail to rename it
            try:
                host.link("set", index=found[0], net_ns_pid=pid, ifname=new)
            except NetlinkError as exc:
                raise _fail(label, f"move into the container as {new!r}", exc) from None
            index = _find(ctr, None, rec["mac"])
            if index is None:
                raise NetDeviceError(f"{label}: moved, but not found in the container as {new!r}")
            rec["container"] = ctr.get_links(index)[0].get("IFLA_IFNAME")
            try:
                _configure(ctr, index, rec["addrs"], up=True)
            except NetlinkError as exc:
                raise _fail(label, f"configure {rec['container']!r} in the container", exc) from None


def move_out(moved: list[dict], netns: str) -> None:
    """A failed create gives the devices it moved back to the host, under their
    original names and addresses. A device that cannot be restored is a warning."""
    if not moved:
        return
    try:
        with IPRoute() as host, IPRoute(netns=netns, flags=0) as ctr:
            for rec in moved:
                _give_back(host, ctr, rec)
    except (NetlinkError, OSError) as exc:
        log.warn(f"linux.netDevices: could not give the devices back to the host: {exc}")


def _give_back(host: IPRoute, ctr: IPRoute, rec: dict) -> None:
    index = _find(ctr, None, rec["mac"])
    if index is None:
        return  # already gone with the namespace
    ctr.link("set", index=index, ifname=rec["host"], net_ns_pid=posix.getpid())
    index = _find(host, rec["host"], rec["mac"])
    if index is not None:
        _configure(host, index, rec["addrs"], rec["up"])


def attach(devices: dict[str, dict], pid: int, undo: Undo) -> None:
    """create's step: move the devices in, and give them back if create fails.

    Once the container exists they are the namespace's: runtime-spec 1.3 says the
    runtime MUST NOT move them out before deletion; when the namespace dies the
    kernel destroys virtual devices and returns physical ones to the host.
    The namespace is held open until create ends: an init that dies during
    setup must not take the devices (a veth is destroyed with its namespace) along.
    """
    fd = posix.open(f"/proc/{pid}/ns/net", posix.O_RDONLY | posix.O_CLOEXEC)
    undo.callback(posix.close, fd)
    netns = f"/proc/{posix.getpid()}/fd/{fd}"  # pyroute2 opens it from a helper process
    moved: list[dict] = []
    undo.callback(move_out, moved, netns)
    move_in(devices, pid, netns, moved)
