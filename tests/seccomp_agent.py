"""A seccomp agent for the tests: takes container process states on a unix socket and
answers the notifications of each listener fd it receives with ``handler(pid, nr)``."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

RECV, SEND = 0xC0502100, 0xC0182101  # SECCOMP_IOCTL_NOTIF_RECV/SEND (struct sizes 80 and 24)
CONTINUE = 1  # SECCOMP_USER_NOTIF_FLAG_CONTINUE: let the syscall run

# handler(host pid, syscall nr) -> (error as a negative errno or 0, response flags)
Handler = Callable[[int, int], tuple[int, int]]


class Agent(threading.Thread):
    def __init__(self, path: Path, handler: Handler) -> None:
        super().__init__(daemon=True)
        self.handler = handler
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.states: list[dict] = []  # each connection's message, in order
        self.closed_after_state: list[bool] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.served: list[threading.Thread] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    conn, _ = self.srv.accept()
                except TimeoutError:
                    continue
                with conn:
                    msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
                    self.closed_after_state.append(conn.recv(1) == b"")
                self.states.append(json.loads(msg))
                assert len(fds) == 1, fds
                t = threading.Thread(target=self.serve, args=(fds[0],), daemon=True)
                t.start()
                self.served.append(t)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            self.errors.append(exc)
        finally:
            self.srv.close()

    def serve(self, fd: int) -> None:
        """Until every process using the filter is gone (POLLHUP) or the test stops us."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while not self.stop.is_set():
                events = poller.poll(200)
                if events and events[0][1] & (select.POLLHUP | select.POLLERR):
                    return
                if not events:
                    continue
                buf = bytearray(80)
                try:
                    fcntl.ioctl(fd, RECV, buf)
                except OSError:
                    continue  # the caller went away meanwhile
                notif_id, pid, _flags, nr = struct.unpack_from("=QIIi", buf)
                error, flags = self.handler(pid, nr)
                with contextlib.suppress(OSError):
                    fcntl.ioctl(fd, SEND, bytearray(struct.pack("=QqiI", notif_id, 0, error, flags)))
        except BaseException as exc:  # noqa: BLE001
            self.errors.append(exc)
        finally:
            os.close(fd)

    def finish(self) -> None:
        self.stop.set()
        self.join(10)
        for t in self.served:
            t.join(10)
