"""Small per-process settings of the init: oomScoreAdj, personality, memoryPolicy."""
from __future__ import annotations

from pyrunc.errors import PyruncError, SyscallError, context
from pyrunc.linux import procfs
from pyrunc.syscalls import calls as sc


def set_oom_score_adj(value: int | None) -> None:
    """Written before the user switch: lowering the score needs CAP_SYS_RESOURCE."""
    if value is None:
        return
    path = "/proc/self/oom_score_adj"
    with context("process.oomScoreAdj"):
        try:
            procfs.write("self/oom_score_adj", str(value).encode())
        except SyscallError:
            raise
        except PermissionError:
            raise PyruncError(f"write {path}: EACCES: lowering the score needs CAP_SYS_RESOURCE") from None
        except OSError as exc:  # a failed write carries no file name: name it
            raise SyscallError("write", exc.errno or 0, path) from None


def set_personality(persona: int | None) -> None:
    if persona is not None:
        with context("linux.personality"):
            sc.personality(persona)


def set_memory_policy(policy: tuple[int, list[int]] | None) -> None:
    """Kept across fork and execve, so the init sets it for everything it starts."""
    if policy is not None:
        with context("linux.memoryPolicy"):
            sc.set_mempolicy(*policy)
