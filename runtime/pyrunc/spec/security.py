"""Rules for linux.seccomp the schema cannot express. Pure: yields (json_path, message).

Capability names are checked by the schema (pattern) and again by linux.caps.parse,
which also serves names that come from the command line (exec --cap).
"""
from __future__ import annotations

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator


Issue = tuple[str, str]

ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
MAX_ARG_INDEX = 5  # seccomp_data.args has six entries


def seccomp(config: dict) -> Iterator[Issue]:
    prof = (config.get("linux") or {}).get("seccomp")
    if not isinstance(prof, dict):
        return
    where = "linux.seccomp"
    if "defaultErrnoRet" in prof and prof.get("defaultAction") not in ERRNO_ACTIONS:
        yield f"{where}.defaultErrnoRet", f"not allowed with defaultAction {prof.get('defaultAction')}"
    if prof.get("defaultAction") == "SCMP_ACT_NOTIFY":
        yield f"{where}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action"
    notify = False
    for i, rule in enumerate(prof.get("syscalls") or []):
        at = f"{where}.syscalls[{i}]"
        if "errnoRet" in rule and rule.get("action") not in ERRNO_ACTIONS:
            yield f"{at}.errnoRet", f"not allowed with action {rule.get('action')}"
        if rule.get("action") == "SCMP_ACT_NOTIFY":
            notify = True
            for name in rule.get("names") or []:
                if name == "sendmsg":
                    yield f"{at}.names", "SCMP_ACT_NOTIFY cannot be used for sendmsg (pyrunc hands the fd over with it)"
        for j, arg in enumerate(rule.get("args") or []):
            if isinstance(arg.get("index"), int) and arg["index"] > MAX_ARG_INDEX:
                yield f"{at}.args[{j}].index", f"{arg['index']} is out of range 0..{MAX_ARG_INDEX}"
    if notify and not prof.get("listenerPath"):
        yield f"{where}.listenerPath", "required when SCMP_ACT_NOTIFY is used"


CHECKS = [seccomp]
