"""process.rlimits, set by the init before it drops privileges (raising a hard limit needs CAP_SYS_RESOURCE)."""
from __future__ import annotations

import resource

from pyrunc.errors import PyruncError


class RlimitError(PyruncError):
    pass


def apply(limits: list[tuple[str, int, int, int]]) -> None:
    """``limits``: (label, resource, soft, hard) from spec.procattrs.build."""
    for label, res, soft, hard in limits:
        try:
            resource.setrlimit(res, (soft, hard))
        except ValueError:  # CPython's spelling of EPERM (and EINVAL) from setrlimit
            cur_hard = resource.getrlimit(res)[1]
            raise RlimitError(f"{label}: setrlimit: EPERM (Operation not permitted): the hard limit {show(hard)} is above the current "
                              f"{show(cur_hard)} and raising it needs CAP_SYS_RESOURCE") from None
        except OSError as exc:
            raise RlimitError(f"{label}: setrlimit: {exc.strerror}") from None


def show(v: int) -> str:
    return "unlimited" if v == resource.RLIM_INFINITY else str(v)
