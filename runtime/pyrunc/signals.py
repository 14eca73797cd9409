"""Signal names as runc accepts them: KILL, SIGKILL or 9."""
from __future__ import annotations

import signal

from pyrunc.errors import UsageError


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
        raise UsageError(f"invalid signal {text!r}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if sig is None:
        raise UsageError(f"invalid signal {text!r}")
    return int(sig)
