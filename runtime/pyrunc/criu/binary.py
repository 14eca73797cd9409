"""Which criu pyrunc runs, and whether it works here. Every criu run is bounded in time."""
from __future__ import annotations

import posix
import subprocess

from pyrunc import fs
from pyrunc.errors import PyruncError

MIN_MAJOR = 4  # 3.x fails on current kernels ("vdso: Unexpected rt vDSO area bounds")
# hack/criu-setup.sh installs criu here; searched first, as a caller's PATH may lack it.
PREFIX_DIR = "/usr/local/sbin"
CHECK_TIMEOUT = 30.0


class CriuError(PyruncError):
    """criu missing, unusable, or failing: the message names criu and its reason."""


def find(explicit: str | None = None) -> str:
    """--criu PATH, else criu in /usr/local/sbin, else on PATH."""
    if explicit:
        if not posix.access(explicit, posix.X_OK):
            raise CriuError(f"criu {explicit}: not an executable file (--criu)")
        return explicit
    for d in [PREFIX_DIR, *fs.exec_path()]:
        path = fs.join(d or ".", "criu")
        if posix.access(path, posix.X_OK):
            return path
    raise CriuError("criu: not found in /usr/local/sbin or on PATH (hack/criu-setup.sh installs it)")


def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run criu to its end, its output captured; a run past ``timeout`` is killed."""
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CriuError(f"criu {argv[1]}: no answer within {timeout:g} s: killed") from None
    except OSError as exc:
        raise CriuError(f"criu {argv[0]}: {exc.strerror}") from None


def version(path: str) -> tuple[int, ...]:
    out = run([path, "--version"], CHECK_TIMEOUT).stdout
    for line in out.splitlines():
        if line.startswith("Version:"):
            return tuple(int(p) for p in line.split()[1].split(".") if p.isdigit())
    raise CriuError(f"criu {path}: --version printed no version")


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def usable(explicit: str | None = None) -> tuple[str, str]:
    """(path, version) of a criu that passes `criu check`, else CriuError saying why not."""
    path = find(explicit)
    ver = version(path)
    shown = ".".join(map(str, ver))
    if ver[:1] < (MIN_MAJOR,):
        raise CriuError(f"criu {path}: version {shown} is older than {MIN_MAJOR}.0, which this kernel needs")
    done = run([path, "check"], CHECK_TIMEOUT)
    if done.returncode != 0:
        raise CriuError(f"criu {path} check failed: {last_line(done.stdout + done.stderr)}")
    return path, shown


def tracks_memory(path: str) -> bool:
    """Whether this kernel tracks dirty pages (soft-dirty), which criu's --track-mem needs."""
    return run([path, "check", "--feature", "mem_dirty_track"], CHECK_TIMEOUT).returncode == 0


def failure(action: str, done: subprocess.CompletedProcess, log_path: str) -> CriuError:
    """One line: criu's first error from its log (its output if there is no log), and the log."""
    try:
        with open(log_path, errors="replace") as f:
            errors = [ln.split(": ", 1)[-1].strip() for ln in f if "Error (" in ln and "RLIMIT_NOFILE" not in ln]
    except OSError:
        errors = []
    told = [e for e in errors if not e.endswith("FAILED.")] or errors  # the cause before the verdict
    why = told[0] if told else last_line((done.stdout or "") + (done.stderr or ""))
    return CriuError(f"criu {action} failed (exit {done.returncode}): {why} (log: {log_path})")
