"""Signal names as runc accepts them: KILL, SIGKILL or 9; 0 (no signal) probes liveness."""
from __future__ import annotations

# _signal is the C module: `signal` would first build its enums (~3 ms of start-up)
import _signal

from pyrunc.errors import UsageError


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if num < _signal.NSIG:  # 0 to 64
            return num
        raise UsageError(f"invalid signal {text!r}: a number must be from 0 to {_signal.NSIG - 1}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(_signal, name, None) if name.isidentifier() and not name.startswith("SIG_") else None
    if not isinstance(sig, int):
        raise UsageError(f"invalid signal {text!r}")
    return sig
