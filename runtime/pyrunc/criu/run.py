"""Running criu for a command: bounded in time, dying with the runtime (a runtime killed
midway must not leave criu to finish a dump or restore that `delete -f` has already
cleaned up after), with its log in the work directory."""
from __future__ import annotations

import posix
import subprocess
from collections.abc import Callable

from pyrunc import fs
from pyrunc.criu.binary import CriuError, failure
from pyrunc.errors import PyruncError

DUMP_TIMEOUT = 300.0     # memory of a large container is written out at disk speed
RESTORE_TIMEOUT = 300.0


def image_dir(path: str | None, *, create: bool) -> str:
    """--image-path (default: ./checkpoint, as runc), absolute; made for a dump, checked for
    a restore: an image has criu's inventory.img."""
    path = fs.abspath(path or "checkpoint")
    if create:
        try:
            fs.makedirs(path, 0o700)
        except OSError as exc:
            raise PyruncError(f"--image-path {path}: {exc.strerror}") from None
    elif not fs.isdir(path):
        raise PyruncError(f"--image-path {path}: no such directory")
    elif not fs.exists(fs.join(path, "inventory.img")):
        raise PyruncError(f"--image-path {path}: not a checkpoint image (no inventory.img)")
    return path


def work_dir(path: str | None, images: str) -> str:
    if not path:
        return images
    path = fs.abspath(path)
    try:
        fs.makedirs(path, 0o700)
    except OSError as exc:
        raise PyruncError(f"--work-path {path}: {exc.strerror}") from None
    return path


def criu(path: str, action: str, argv: list[str], work: str, *, timeout: float, pass_fds: tuple[int, ...] = (),
         prepare: Callable[[], None] | None = None, stdio: tuple[int, int, int] | None = None,
         env: dict[str, str] | None = None) -> None:
    """criu ACTION ARGV, logging to WORK/ACTION.log; CriuError naming its first error.
    ``prepare`` runs in criu's process before exec (after it is set to die with us);
    ``stdio``: criu's fds 0-2; ``env``: its environment (None: ours)."""
    from pyrunc.syscalls import calls as sc

    log = fs.join(work, f"{action}.log")

    def child() -> None:
        sc.prctl(sc.PR_SET_PDEATHSIG, 9)
        if posix.getppid() == 1:  # we died before the line above
            posix._exit(1)
        if prepare is not None:
            prepare()

    cmd = [path, action, "--work-dir", work, "--log-file", log, "-v4", *argv]
    # A restore hands its fds 0-2 to the restored init (--inherit-fd): they are criu's own.
    # Other actions' output is captured (criu's errors are in its log anyway).
    io = stdio or (subprocess.DEVNULL, subprocess.PIPE, subprocess.PIPE)
    try:
        done = subprocess.run(cmd, stdin=io[0], stdout=io[1], stderr=io[2], text=True, timeout=timeout,
                              pass_fds=pass_fds, preexec_fn=child, env=env)
    except subprocess.TimeoutExpired:
        raise CriuError(f"criu {action}: not done within {timeout:g} s: killed (log: {log})") from None
    except subprocess.SubprocessError as exc:  # prepare() failed in the child
        raise CriuError(f"criu {action}: could not be started: {exc}") from None
    if done.returncode != 0:
        raise failure(action, done, log)
