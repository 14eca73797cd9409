"""The last steps before execve: find the program, become the user, enter cwd."""
from __future__ import annotations

import errno
import posix
import stat

from pyrunc import fs
from pyrunc.errors import PyruncError, context

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Whether setgroups(2) is allowed in the user namespace this process made
# (userns.enter_new), for when the container has no /proc to ask.
setgroups_allowed = True


class ExecError(PyruncError):
    pass


def env_value(env: list[str], name: str) -> str | None:
    prefix = name + "="
    for entry in reversed(env):
        if entry.startswith(prefix):
            return entry[len(prefix):]
    return None


def find_executable(arg0: str, env: list[str], stat_=posix.stat) -> str:
    """PATH lookup inside the container (called after pivot_root); wording matches runc's for engines.
    ``stat_`` is how a path is looked at: `explain` resolves it inside the rootfs from the host."""
    if "/" in arg0:
        _check_exec(arg0, arg0, stat_)
        return arg0
    for d in (env_value(env, "PATH") or DEFAULT_PATH).split(":"):
        cand = fs.join(d or ".", arg0)
        try:
            st = stat_(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise ExecError(f'exec: "{arg0}": executable file not found in $PATH')


def _check_exec(path: str, arg0: str, stat_) -> None:
    try:
        st = stat_(path)
    except FileNotFoundError:
        raise ExecError(f'exec: "{arg0}": stat {path}: no such file or directory') from None
    except PermissionError:
        raise ExecError(f'exec: "{arg0}": stat {path}: permission denied') from None
    if stat.S_ISDIR(st.st_mode):
        raise ExecError(f'exec: "{arg0}": {path} is a directory: permission denied')
    if not st.st_mode & 0o111:
        raise ExecError(f'exec: "{arg0}": {path}: permission denied')


def env_dict(env: list[str]) -> dict[str, str]:
    """posix.execve wants a mapping; a later entry for the same name wins."""
    out: dict[str, str] = {}
    for entry in env:
        name, eq, value = entry.partition("=")
        if eq and name:
            out[name] = value
    return out


def home_from_passwd(uid: int, passwd: str = "/etc/passwd") -> str:
    try:
        with open(passwd, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def final_env(process: dict, passwd: str = "/etc/passwd") -> list[str]:
    """The program's environment: HOME from ``passwd`` (the container's) unless env sets it."""
    env = list(process.get("env") or [])
    if env_value(env, "HOME") is None:
        env.append("HOME=" + home_from_passwd(process.get("user", {}).get("uid", 0), passwd))
    return env


def switch_user(user: dict) -> None:
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    with context("process.user"):
        setgroups(user.get("additionalGids", []))
        posix.setresgid(gid, gid, gid)
        posix.setresuid(uid, uid, uid)


def enter_cwd(cwd: str, retry_later: bool = False) -> bool:
    """Resolve cwd beneath the container root: symlinks cannot climb out of it and magic
    links are refused, so /proc/self/fd/N naming a host directory that leaked into this
    process cannot become the program's cwd (CVE-2024-21626). With ``retry_later`` (still
    the runtime's user), a permission error returns False: the user may enter it after
    the switch (a volume chowned to it); root may enter what the user cannot search."""
    from pyrunc.syscalls import calls as sc

    with context(f"process.cwd {cwd}"):
        root = posix.open("/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            fd = sc.openat2(root, cwd.lstrip("/") or ".", posix.O_PATH | posix.O_DIRECTORY,
                            sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)
            try:
                posix.fchdir(fd)
            finally:
                posix.close(fd)
        except OSError as exc:
            if retry_later and exc.errno in (errno.EACCES, errno.EPERM):
                return False
            raise
        finally:
            posix.close(root)
    return True


def setgroups(groups: list[int]) -> None:
    """setgroups(2), where the user namespace allows it: a single-id rootless
    mapping denies it, and then only "no supplementary groups" can be honoured."""
    if _groups_allowed():
        posix.setgroups(groups)
    elif groups:
        raise PyruncError("additionalGids: setgroups is denied in this user namespace (a single-id rootless "
                          "mapping): map a gid range through /etc/subgid, or drop additionalGids")


def _groups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:  # no /proc in the container: what enter_new was told
        return setgroups_allowed
