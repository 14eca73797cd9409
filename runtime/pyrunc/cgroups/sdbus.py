"""systemd's manager over D-Bus, for the systemd cgroup driver: start, change and stop
transient units and wait for their jobs. jeepney speaks the protocol; it is imported only
here, so only --systemd-cgroup pays for it (~25 ms).

Every failure is one PyruncError naming the unit and systemd's error, e.g.
"systemd: StartTransientUnit pyrunc-c1.scope: org.freedesktop.systemd1.UnitExists: Unit
pyrunc-c1.scope was already loaded or has a fragment file."
"""
from __future__ import annotations

import posix

from ..errors import PyruncError

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
JOB_TIMEOUT = 60.0  # s: systemd's own default job timeout for a scope is infinity


def bus_address(user: bool) -> str:
    """The system bus; for a rootless pyrunc, the user's own (the user manager is there)."""
    env = posix.environ
    if not user:
        return env.get(b"DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS.encode()).decode()
    if b"DBUS_SESSION_BUS_ADDRESS" in env:
        return env[b"DBUS_SESSION_BUS_ADDRESS"].decode()
    runtime_dir = env.get(b"XDG_RUNTIME_DIR", f"/run/user/{posix.geteuid()}".encode()).decode()
    return f"unix:path={runtime_dir}/bus"


class Systemd:
    def __init__(self, user: bool = False) -> None:
        from jeepney import DBusAddress
        from jeepney.io.blocking import open_dbus_connection

        addr = bus_address(user)
        try:
            self.conn = open_dbus_connection(bus=addr)
        except (OSError, ValueError) as exc:
            raise PyruncError(f"systemd cgroup driver: cannot reach the D-Bus {'user' if user else 'system'} bus at {addr}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        self.manager = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                                   interface="org.freedesktop.systemd1.Manager")
        self._subscribed = False

    def _call(self, method: str, signature: str, args: tuple, unit: str) -> tuple:
        from jeepney import new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        try:
            reply = self.conn.send_and_get_reply(new_method_call(self.manager, method, signature, args),
                                                 timeout=JOB_TIMEOUT)
            return unwrap_msg(reply)
        except DBusErrorResponse as exc:
            detail = exc.data[0] if exc.data else ""
            raise SystemdError(method, unit, exc.name or "error", detail) from None
        except TimeoutError:
            raise PyruncError(f"systemd: {method} {unit}: no answer in {JOB_TIMEOUT:.0f} s") from None

    def _run_job(self, method: str, signature: str, args: tuple, unit: str) -> None:
        """Call a method that queues a job, and wait for the job's JobRemoved signal."""
        from jeepney import MatchRule, message_bus
        from jeepney.io.blocking import Proxy

        # The bus routes by the well-known sender; the signals then carry systemd's unique
        # name, which jeepney's local filter would compare, so that one names no sender.
        fields = {"type": "signal", "path": "/org/freedesktop/systemd1",
                  "interface": "org.freedesktop.systemd1.Manager", "member": "JobRemoved"}
        rule = MatchRule(**fields)
        if not self._subscribed:  # signals are sent only to subscribers, and through matches
            Proxy(message_bus, self.conn).AddMatch(MatchRule(sender="org.freedesktop.systemd1", **fields))
            self._call("Subscribe", "", (), unit)
            self._subscribed = True
        with self.conn.filter(rule, bufsize=64) as removed:
            (job,) = self._call(method, signature, args, unit)
            while True:
                try:
                    msg = self.conn.recv_until_filtered(removed, timeout=JOB_TIMEOUT)
                except TimeoutError:
                    raise PyruncError(f"systemd: {method} {unit}: job {job} did not finish in "
                                      f"{JOB_TIMEOUT:.0f} s") from None
                _id, path, _unit, result = msg.body
                if path == job:
                    break
        if result != "done":
            raise PyruncError(f"systemd: {method} {unit}: the job ended {result!r} "
                              f"(journalctl -u {unit} may say why)")

    def start_unit(self, unit: str, props: list) -> None:
        """StartTransientUnit, and wait until it is up."""
        self._run_job("StartTransientUnit", "ssa(sv)a(sa(sv))", (unit, "replace", props, []), unit)

    def description(self, unit: str) -> str | None:
        """The loaded unit's Description; None when systemd has no such unit."""
        from jeepney import DBusAddress, Properties

        try:
            (path,) = self._call("GetUnit", "s", (unit,), unit)
        except SystemdError as exc:
            if exc.name == "org.freedesktop.systemd1.NoSuchUnit":
                return None
            raise
        obj = DBusAddress(path, bus_name="org.freedesktop.systemd1", interface="org.freedesktop.systemd1.Unit")
        reply = self.conn.send_and_get_reply(Properties(obj).get("Description"), timeout=JOB_TIMEOUT)
        return reply.body[0][1]

    def manager_cgroup(self) -> str:
        """The manager's own cgroup: "/" for the system's, user@UID.service's for a user's,
        whose slices and scopes live below it."""
        from jeepney import Properties

        reply = self.conn.send_and_get_reply(Properties(self.manager).get("ControlGroup"), timeout=JOB_TIMEOUT)
        return reply.body[0][1] or "/"

    def set_properties(self, unit: str, props: list) -> None:
        self._call("SetUnitProperties", "sba(sv)", (unit, True, props), unit)

    def stop_unit(self, unit: str) -> None:
        """StopUnit and wait; a unit that is gone already is fine. Then forget a failed one."""
        try:
            self._run_job("StopUnit", "ss", (unit, "replace"), unit)
        except SystemdError as exc:
            if exc.name != "org.freedesktop.systemd1.NoSuchUnit":
                raise
        try:
            self._call("ResetFailedUnit", "s", (unit,), unit)
        except SystemdError:
            pass  # not failed, or not loaded: nothing to forget


class SystemdError(PyruncError):
    def __init__(self, method: str, unit: str, name: str, detail: str) -> None:
        super().__init__(f"systemd: {method} {unit}: {name}: {detail}".rstrip(": "))
        self.name = name
