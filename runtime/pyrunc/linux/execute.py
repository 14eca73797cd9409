"""The last steps before execve: find the program, become the user, enter cwd."""
from __future__ import annotations

import os
import stat

from pyrunc.errors import PyruncError, context

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecError(PyruncError):
    pass


def env_value(env: list[str], name: str) -> str | None:
    prefix = name + "="
    for entry in reversed(env):
        if entry.startswith(prefix):
            return entry[len(prefix):]
    return None


def find_executable(arg0: str, env: list[str]) -> str:
    """PATH lookup inside the container (called after pivot_root); wording matches runc's for engines."""
    if "/" in arg0:
        _check_exec(arg0, arg0)
        return arg0
    for d in (env_value(env, "PATH") or DEFAULT_PATH).split(":"):
        cand = os.path.join(d or ".", arg0)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise ExecError(f'exec: "{arg0}": executable file not found in $PATH')


def _check_exec(path: str, arg0: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ExecError(f'exec: "{arg0}": stat {path}: no such file or directory') from None
    except PermissionError:
        raise ExecError(f'exec: "{arg0}": stat {path}: permission denied') from None
    if stat.S_ISDIR(st.st_mode):
        raise ExecError(f'exec: "{arg0}": {path} is a directory: permission denied')
    if not st.st_mode & 0o111:
        raise ExecError(f'exec: "{arg0}": {path}: permission denied')


def env_dict(env: list[str]) -> dict[str, str]:
    """os.execve wants a mapping; a later entry for the same name wins."""
    out: dict[str, str] = {}
    for entry in env:
        name, eq, value = entry.partition("=")
        if eq and name:
            out[name] = value
    return out


def home_from_passwd(uid: int) -> str:
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def final_env(process: dict) -> list[str]:
    env = list(process.get("env") or [])
    if env_value(env, "HOME") is None:
        env.append("HOME=" + home_from_passwd(process.get("user", {}).get("uid", 0)))
    return env


def switch_user(user: dict) -> None:
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    with context("process.user"):
        os.setgroups(user.get("additionalGids", []))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)


def enter_cwd(cwd: str) -> None:
    with context(f"process.cwd {cwd}"):
        os.chdir(cwd)
        # A cwd reached through a leaked host fd would be outside our root (CVE-2024-21626).
        if not os.getcwd().startswith("/"):
            raise ExecError(f"process.cwd {cwd}: resolves outside the container root")
