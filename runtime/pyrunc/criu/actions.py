"""restore's hooks. runc runs prestart and createRuntime during a restore once criu has made
the restored tree's namespaces (criu's setup-namespaces step), with the restored init's pid
in the state. pyrunc runs criu as a program, which runs ACTION_SCRIPT at each step
(--action-script); at setup-namespaces the script starts main() in pyrunc's interpreter,
which runs the hooks as create does. A failed hook's one line is left in the container's
state directory for restore to report (criu's own log only says the script failed)."""
from __future__ import annotations

import posix
import sys

from pyrunc import fs, jsonio
from pyrunc.errors import PyruncError

ACTION_SCRIPT = __file__.rsplit("/", 1)[0] + "/action-script"
KINDS = ("prestart", "createRuntime")  # what runc runs on restore
FAILURE = "hook-failure"  # in the state directory
# what the script and main() are told; the hooks get the environment without them
# PYRUNC_PATH: our own module path (the launcher's entries, the venv's site-packages among
# them), so that the script's interpreter imports what ours can
_ENV = {"PYRUNC_PYTHON": sys.executable, "PYRUNC_PATH": ":".join(p for p in sys.path if p)}
_STATE_DIR = "PYRUNC_STATE_DIR"


def criu_args(config: dict, state_dir: str) -> tuple[list[str], dict[str, str] | None]:
    """criu's --action-script and environment when the config has hooks to run on restore;
    else ([], None): criu runs no script and inherits our environment."""
    if not any((config.get("hooks") or {}).get(kind) for kind in KINDS):
        return [], None
    return ["--action-script", ACTION_SCRIPT], {**fs.environ(), **_ENV, _STATE_DIR: state_dir}


def failure(state_dir: str) -> PyruncError | None:
    """The error of a hook that failed during the restore, if one did."""
    try:
        with open(fs.join(state_dir, FAILURE)) as f:
            return PyruncError(f.read())
    except FileNotFoundError:
        return None


def main() -> int:
    """The action script's interpreter, at setup-namespaces: criu waits for our exit status."""
    from pyrunc import hooks
    from pyrunc.state import STATE_FILE

    state_dir = fs.getenv(_STATE_DIR) or ""
    init_pid = int(fs.getenv("CRTOOLS_INIT_PID") or 0)
    ours = {fs.fsencode(name) for name in (*_ENV, _STATE_DIR)}
    for name in list(posix.environ):  # the hooks get the environment create's hooks get
        if name.startswith(b"CRTOOLS_") or name in ours:
            del posix.environ[name]
    try:
        with open(fs.join(state_dir, "config.json"), "rb") as f:
            config = jsonio.loads(f.read())
        with open(fs.join(state_dir, STATE_FILE), "rb") as f:
            data = jsonio.loads(f.read())
        hooks.prestart_create_runtime(config, data, data["id"], init_pid)
    except PyruncError as exc:
        why = str(exc)
    except OSError as exc:
        why = f"{exc.filename}: {exc.strerror}"
    else:
        return 0
    with open(fs.join(state_dir, FAILURE), "w") as f:
        f.write(why)
    return 1
