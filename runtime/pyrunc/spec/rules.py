"""Cross-field rules the schema cannot express. Pure: each check yields (json_path, message)."""
from __future__ import annotations

from pyrunc.errors import ConfigError
from pyrunc.spec import HOOK_KINDS, netdevices, procattrs, security, sysctl, unsupported, userns

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

Issue = tuple[str, str]


def _new_ns(config: dict) -> set[str]:
    return {ns.get("type") for ns in config.get("linux", {}).get("namespaces", []) if not ns.get("path")}


def _all_ns(config: dict) -> set[str]:
    return {ns.get("type") for ns in config.get("linux", {}).get("namespaces", [])}


def process_args(config: dict) -> Iterator[Issue]:
    proc = config.get("process")
    if proc is None:
        yield "process", "required to create a container"
    elif not proc.get("args"):
        yield "process.args", "at least one entry (the program) is required"


def namespaces(config: dict) -> Iterator[Issue]:
    seen: set[str] = set()
    for i, ns in enumerate(config.get("linux", {}).get("namespaces", [])):
        t = ns.get("type")
        if t in seen:
            yield f"linux.namespaces[{i}].type", f"namespace {t!r} given more than once"
        seen.add(t)
        path = ns.get("path")
        if path is not None and not path.startswith("/"):
            yield f"linux.namespaces[{i}].path", f"{path!r} is not an absolute path"


def uts_names(config: dict) -> Iterator[Issue]:
    for field in ("hostname", "domainname"):
        if config.get(field) and "uts" not in _all_ns(config):
            yield field, "setting it needs a uts namespace in linux.namespaces"


def time_offsets(config: dict) -> Iterator[Issue]:
    if config.get("linux", {}).get("timeOffsets") and "time" not in _new_ns(config):
        yield "linux.timeOffsets", "needs a new time namespace in linux.namespaces"


def id_mappings(config: dict) -> Iterator[Issue]:
    linux = config.get("linux", {})
    for field in ("uidMappings", "gidMappings"):
        if linux.get(field) and "user" not in _all_ns(config):
            yield f"linux.{field}", "mappings need a user namespace in linux.namespaces"


def hook_paths(config: dict) -> Iterator[Issue]:
    """config.md: a hook's path MUST be absolute (its timeout > 0 is the schema's)."""
    hooks = config.get("hooks") or {}
    for kind in HOOK_KINDS:
        for i, hook in enumerate(hooks.get(kind) or []):
            path = hook.get("path", "")
            if not path.startswith("/"):
                yield f"hooks.{kind}[{i}].path", f"{path!r} is not an absolute path"


CHECKS: list[Callable[[dict], Iterator[Issue]]] = [
    process_args, namespaces, uts_names, time_offsets, id_mappings,
    *procattrs.CHECKS, sysctl.check, netdevices.check, unsupported.check, *security.CHECKS,
    *userns.CHECKS, hook_paths,
]


def issues(config: dict) -> list[Issue]:
    return [issue for check_fn in CHECKS for issue in check_fn(config)]


def check(config: dict) -> None:
    found = issues(config)
    if found:
        msgs = [f"{path}: {msg}" for path, msg in found]
        raise ConfigError("; ".join(msgs))
