"""Signal names as runc accepts them: KILL, SIGKILL or 9."""
from __future__ import annotations

# _signal is the C module: `signal` would first build its enums (~3 ms of start-up)
import _signal

from pyrunc.errors import UsageError


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if 0 < num < _signal.NSIG:
            return num
        raise UsageError(f"invalid signal {text!r}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(_signal, name, None) if name.isidentifier() and not name.startswith("SIG_") else None
    if not isinstance(sig, int):
        raise UsageError(f"invalid signal {text!r}")
    return sig
