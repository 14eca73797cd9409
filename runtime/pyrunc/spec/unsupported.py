"""Fields of runtime-spec 1.3 that pyrunc does not implement: refused, never silently ignored.

One place for the list, so features and the error agree.
"""
from __future__ import annotations

TYPE_CHECKING = False  # collections.abc is imported by type checkers only (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator


Issue = tuple[str, str]

# json path -> why it is refused
UNSUPPORTED: dict[tuple[str, ...], str] = {
    ("linux", "intelRdt"): "Intel RDT (resctrl) is not supported by pyrunc",
}


def check(config: dict) -> Iterator[Issue]:
    for path, why in UNSUPPORTED.items():
        node: object = config
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            yield ".".join(path), why
