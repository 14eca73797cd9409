"""JSON for the hot paths, built on the C accelerator ``_json`` alone.

The ``json`` package imports ``re`` (and through it ``enum``), about 4-7 ms of
start-up for every command. ``state``, ``start``, ``kill``, ``delete`` and
``list`` only read and write small trusted documents, so they use this module;
parse errors fall back to ``json`` for its precise messages.
"""
from __future__ import annotations

import _json


class _ScanContext:
    """The attributes _json.make_scanner reads (json.decoder.JSONDecoder's)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN / Infinity / -Infinity
    memo: dict = {}


_scan = _json.make_scanner(_ScanContext())
_encode_compact = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
_WS = " \t\n\r"


def loads(raw: str | bytes) -> object:
    text = raw.decode() if isinstance(raw, bytes) else raw
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
    except Exception:  # noqa: BLE001 - StopIteration, or the scanner's own error, which
        # needs json.decoder imported to be raised properly: json.loads below reports it
        obj, end = None, -1
    if end < 0 or text[end:].strip(_WS):
        import json

        return json.loads(text)  # raises json.JSONDecodeError with line and column
    return obj


def dumps(obj: object, indent: int | None = None) -> str:
    if indent is None:
        return "".join(_encode_compact(obj, 0))
    return _pretty(obj, indent, 0)


def _pretty(obj: object, indent: int, level: int) -> str:
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{_json.encode_basestring_ascii(str(k))}: {_pretty(v, indent, level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and obj:
        items = [f"{inner}{_pretty(v, indent, level + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return dumps(obj)
