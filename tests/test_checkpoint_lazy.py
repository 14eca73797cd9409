"""Lazy migration (issue 28, runc's "checkpoint --lazy-pages and restore"): the dump serves the
counter's memory from a page server, criu's lazy-pages daemon fetches it for the restore, and
the restored counter goes on where it stopped while its pages arrive. criu's page server
needs 4 MiB pipes, past the default fs.pipe-max-size without CAP_SYS_RESOURCE: the tests set
the sysctl as each needs it and put it back, and checkpoint refuses it up front when low."""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from criuhelp import continued, criu_path, need_criu, stopped, wait_count
from helpers import wait_for
from test_checkpoint import counting, finish, one_line, restored

PIPE_MAX_SIZE = Path("/proc/sys/fs/pipe-max-size")
LAZY_PIPE_SIZE = 4 << 20  # criu's page pipe, rounded up by the kernel
CAP_SYS_RESOURCE = 24


@pytest.fixture(scope="module")
def criu() -> str:
    need_criu()
    path = criu_path()
    if subprocess.run([path, "check", "--feature", "uffd-noncoop"], capture_output=True, timeout=60).returncode:
        pytest.skip(f"{path} check --feature uffd-noncoop fails: lazy pages need userfaultfd's non-cooperative "
                    "events")
    return path


@contextmanager
def pipe_max_size(value: int) -> Iterator[None]:
    """fs.pipe-max-size set to ``value`` for the test, always put back."""
    before = int(PIPE_MAX_SIZE.read_text())
    if value != before:
        try:
            PIPE_MAX_SIZE.write_text(str(value))
        except OSError as exc:
            pytest.skip(f"cannot write {PIPE_MAX_SIZE}: {exc.strerror}")
    try:
        yield
    finally:
        if value != before:
            PIPE_MAX_SIZE.write_text(str(before))


@pytest.fixture
def big_pipes() -> Iterator[None]:
    with pipe_max_size(max(int(PIPE_MAX_SIZE.read_text()), LAZY_PIPE_SIZE)):
        yield


@pytest.fixture
def small_pipes() -> Iterator[None]:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:") and int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1:
            pytest.skip("the runtime has CAP_SYS_RESOURCE: criu grows its pipes past fs.pipe-max-size")
    with pipe_max_size(1 << 20):
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sessions:
    """Processes each started in a session of its own; whatever is still alive at the end is
    killed with its session: no criu outlives the test to hold the image directory."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], out, **kw) -> subprocess.Popen:
        self.procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                           start_new_session=True, **kw))
        return self.procs[-1]

    def __enter__(self) -> Sessions:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def text(f) -> str:
    f.seek(0)
    return f.read()


def status_byte(fd: int, timeout: float = 60) -> bytes:
    """What checkpoint's --status-fd says: one NUL once its page server listens."""
    if not select.select([fd], [], [], timeout)[0]:
        pytest.fail(f"no word on --status-fd within {timeout:g} s")
    return os.read(fd, 1)


def test_lazy_migration(pyrunc, bundle, cid, tmp_path, criu, big_pipes):
    """checkpoint --lazy-pages --page-server, criu lazy-pages, restore --lazy-pages under a new
    id (the old container lives until its last page is fetched): the counter goes on one by
    one, both criu sides exit 0, and the checkpointed container is gone as after any dump."""
    data, images, port, new = tmp_path / "data", tmp_path / "images", free_port(), "r" + cid
    counting(pyrunc, bundle, cid, data)
    pyrunc.ids.add(new)
    with Sessions() as s, open(tmp_path / "dump.out", "w+") as dump_out, \
            open(tmp_path / "lazy.out", "w+") as lazy_out:
        r, w = os.pipe()
        dump = s.start(pyrunc.cmd("checkpoint", "--lazy-pages", "--page-server", f"127.0.0.1:{port}",
                                  "--status-fd", str(w), "--image-path", str(images), cid), dump_out, pass_fds=(w,))
        os.close(w)
        try:
            assert status_byte(r) == b"\0", text(dump_out)
        finally:
            os.close(r)
        last = stopped(data)[-1]
        daemon = s.start([criu, "lazy-pages", "--page-server", "--address", "127.0.0.1", "--port", str(port),
                          "-D", str(images), "-W", str(images)], lazy_out)
        # stdio /dev/null: restore hands its own to the restored init
        restore = s.start(pyrunc.cmd("restore", "-d", "--lazy-pages", "--image-path", str(images), "--work-path",
                                     str(images), "-b", str(bundle.path), new), subprocess.DEVNULL)
        # a dump that fails mid-transfer leaves the restore waiting for pages for ever
        wait_for(lambda: restore.poll() is not None or dump.poll() not in (None, 0), 60, "restore --lazy-pages")
        assert restore.returncode == 0, f"restore: exit {restore.returncode}; checkpoint: {text(dump_out)}"
        restored(pyrunc, new)
        continued(data, last)
        assert dump.wait(timeout=120) == 0, text(dump_out)
        assert daemon.wait(timeout=120) == 0, text(lazy_out)
    assert pyrunc.list_ids() == [new], "the checkpointed container is gone, as with runc"
    wait_count(data, last + 10)
    finish(pyrunc, new)


def test_lazy_pages_refused_with_small_pipes(pyrunc, bundle, cid, tmp_path, criu, small_pipes):
    """Where criu could not grow its page pipe (and would fail deep in the transfer, the
    container's memory half sent), checkpoint says why and how to fix it, and touches nothing."""
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    images = tmp_path / "images"
    res = pyrunc("checkpoint", "--lazy-pages", "--page-server", f"127.0.0.1:{free_port()}", "--image-path",
                 str(images), cid, check=False)
    one_line(res, f"pyrunc: checkpoint {cid}: --lazy-pages: criu's page server needs 4 MiB pipes: "
                  f"fs.pipe-max-size is {1 << 20} and CAP_SYS_RESOURCE is missing "
                  f"(sysctl -w fs.pipe-max-size={LAZY_PIPE_SIZE})")
    assert pyrunc.state(cid)["status"] == "running" and not images.exists()
