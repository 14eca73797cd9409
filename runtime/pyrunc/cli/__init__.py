"""pyrunc's command line: global flags, then one lazily imported module per command."""
from __future__ import annotations

import gc
import posix
import sys

from pyrunc import fs, log
from pyrunc.cli.args import STR, Flag, HelpRequested, parse
from pyrunc.errors import PyruncError, UsageError

# command -> (module under pyrunc.cli, one-line help)
COMMANDS = {
    "create": ("create", "create a container"),
    "start": ("start", "start the user process of a created container"),
    "run": ("create", "create and start a container"),
    "state": ("state", "print the state of a container"),
    "kill": ("kill", "send a signal to the container's init (or all its processes)"),
    "delete": ("delete", "delete a container and everything it holds"),
    "list": ("list", "list containers"),
    "spec": ("spec", "write a default config.json"),
    "features": ("features", "print what this runtime implements (JSON)"),
    "check": ("check", "what this host offers containers; with -b, what a bundle asks that it cannot"),
    "explain": ("explain", "what create does for a bundle, step by step; with a container's id, checked live"),
    "exec": ("exec", "run a process in an existing container"),
    "pause": ("pause", "freeze every process of a container"),
    "resume": ("pause", "thaw a paused container"),
    "update": ("update", "change a container's cgroup limits"),
    "events": ("events", "print container stats and OOM events as JSON"),
    "ps": ("ps", "list the processes in a container's cgroup"),
    "checkpoint": ("checkpoint", "checkpoint a running container with criu"),
    "restore": ("restore", "restore a container from a checkpoint image with criu"),
}

GLOBAL_FLAGS = [
    Flag("--root", STR), Flag("--log", STR), Flag("--log-format", STR, "text"), Flag("--debug"),
    Flag("--systemd-cgroup"), Flag("--rootless", STR, "auto"), Flag("--criu", STR),
    Flag("--version,-v"), Flag("--help,-h"),
]
_DEFAULTS = {f.name: f.default for f in GLOBAL_FLAGS}


class Globals:
    def __init__(self, opts: dict) -> None:
        self._root: str | None = opts["root"]
        self.systemd_cgroup: bool = opts["systemd_cgroup"]
        self.rootless: str = opts["rootless"]
        self.debug: bool = opts["debug"]
        self.criu: str | None = opts["criu"]  # runc's --criu PATH

    @property
    def root(self) -> str:
        """Resolved when a command needs it: `spec` and `features` work without any root."""
        from pyrunc.state import default_root

        return fs.abspath(self._root) if self._root else default_root()


def _version() -> str:
    """runc's lines (version, commit, spec), then what pyrunc is built on. Only here are
    git and libseccomp asked."""
    import subprocess

    from pyrunc import __version__
    from pyrunc.syscalls.seccomp_calls import version as libseccomp_version

    here = fs.dirname(__file__)
    try:
        git = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=5)
        commit = git.stdout.strip() if git.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return (f"pyrunc version {__version__}\ncommit: {commit or 'unknown'}\nspec: 1.3.0\n"
            f"python: {sys.version.split()[0]}\nlibseccomp: {libseccomp_version()}\n")


def _help(topic: str | None, flags: list | None = None) -> int:
    """`pyrunc --help`, `pyrunc help [TOPIC]` and `pyrunc TOPIC --help`."""
    from pyrunc.cli import help as h

    if topic is None:
        sys.stdout.write(h.usage(COMMANDS))
        return 0
    sys.stdout.write(h.command(topic, COMMANDS[topic][1], command_flags(topic) if flags is None else flags))
    return 0


def command_flags(cmd: str) -> list[Flag]:
    """The flags of cmd, as its own parser names them when given --help (for `help CMD`,
    the man pages and the completion: none can list a flag the command lacks)."""
    try:
        _run(cmd, None, ["--help"])
    except HelpRequested as req:
        return req.flags
    raise AssertionError(f"{cmd} parsed --help without asking for help")


def _run(cmd: str, gopts: dict | None, rest: list[str]) -> int:
    name = f"pyrunc.cli.{COMMANDS[cmd][0]}"
    __import__(name)  # importlib would add ~0.5 ms (it imports warnings)
    module = sys.modules[name]
    return module.main(cmd, Globals(gopts or _DEFAULTS), rest) or 0


def _split_global(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """Global flags come before the command name."""
    takes_value = {"--root", "-root", "--log", "-log", "--log-format", "-log-format", "--rootless",
                   "-rootless", "--criu", "-criu"}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in takes_value:
            i += 1
        i += 1
    if i >= len(argv):
        return argv, None, []
    return argv[:i], argv[i], argv[i + 1:]


def entry() -> None:
    """The launchers' entry point: main(), then exit without the interpreter's teardown,
    which frees every module and object one by one (~1.5 ms, a sixth of `state`). Only
    sys.stdout and sys.stderr buffer anything (the log is written unbuffered)."""
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. stdout is a pipe closed early (`pyrunc list | head -1`)
        status = status or 1
    posix._exit(status)


def main(argv: list[str] | None = None) -> int:
    # Each command is short-lived and makes no reference cycles worth collecting;
    # the collector would only run during imports (a few ms).
    gc.disable()
    argv = sys.argv[1:] if argv is None else argv
    gl_argv, cmd, rest = _split_global(argv)
    label = cmd or "pyrunc"
    try:
        gopts, extra = parse(GLOBAL_FLAGS, gl_argv)
        if gopts["log_format"] not in ("text", "json"):
            raise UsageError(f"invalid --log-format {gopts['log_format']!r}: use text or json")
        log.configure(gopts["log"], gopts["log_format"], gopts["debug"])
        if gopts["rootless"] not in ("true", "false", "auto"):
            raise UsageError(f"invalid --rootless {gopts['rootless']!r}: use true, false or auto")
        if gopts["version"]:
            sys.stdout.write(_version())
            return 0
        if cmd is None or gopts["help"]:
            _help(None)
            return 0 if gopts["help"] else 1  # no command at all is a usage error
        asked = cmd in ("help", "h")
        if asked:
            cmd = rest[0] if rest else None
        if cmd is not None and cmd not in COMMANDS:
            exc = UsageError(f"No help topic for {cmd!r}: not a pyrunc command (see pyrunc --help)")
            exc.exit_code = 3  # as runc
            label = "pyrunc"
            raise exc
        return _help(cmd) if asked else _run(cmd, gopts, rest)
    except HelpRequested as req:
        return _help(cmd, req.flags)
    except PyruncError as exc:
        if log.debugging():
            import traceback
            log.debug(traceback.format_exc())
        msg = str(exc)
        log.error(msg if label == "pyrunc" or msg.startswith(f"{label} ") else f"{label}: {msg}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        if log.debugging():
            import traceback
            log.debug(traceback.format_exc())
        log.error(f"{label}: internal error: {type(exc).__name__}: {exc}")
        return 1
