"""Read a bundle's config.json: pure file reading, never touches the kernel."""
from __future__ import annotations

from pyrunc import fs, jsonio
from pyrunc.errors import BundleError, ConfigError


def read_json(path: str, what: str) -> object:
    """Parse a JSON file; syntax errors name the file, line and column."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise BundleError(f"{what} {path}: no such file or directory") from None
    except IsADirectoryError:
        raise BundleError(f"{what} {path}: is a directory") from None
    except PermissionError:
        raise BundleError(f"{what} {path}: permission denied") from None
    try:
        doc = jsonio.loads(raw)  # json (and re) only on the error path
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid UTF-8 at byte {exc.start}") from None
    except ValueError as exc:  # json.JSONDecodeError
        if not hasattr(exc, "lineno"):
            raise ConfigError(f"{path}: invalid JSON: {exc}") from None
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if b"\\u0000" in raw:  # JSON's only way to write a NUL byte (a cheap test: the walk is rare)
        where = _nul_at(doc, "")
        if where is not None:
            raise ConfigError(f"{fs.basename(path)}: {where or '$'}: contains a NUL byte, which ends a string"
                              " for the kernel and every program")
    return doc


def _nul_at(v: object, path: str) -> str | None:
    """The JSON path of the first string (or key) holding a NUL byte, but annotations' values:
    they are only data, carried in the state. None if there is none."""
    if isinstance(v, str):
        return path if "\0" in v else None
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        if isinstance(k, str) and "\0" in k:
            return f"{path}[{k!r}]"  # the key shown escaped: a NUL byte has no place on stderr either
        sub = f"{path}[{k}]" if isinstance(k, int) else f"{path}.{k}" if path else k
        if sub != "annotations":
            found = _nul_at(x, sub)
            if found is not None:
                return found
    return None


def load_config(bundle: str) -> tuple[dict, str]:
    """Return (config, absolute bundle path) after schema validation."""
    if not fs.isdir(bundle):
        raise BundleError(f"bundle {bundle}: not a directory or does not exist")
    bundle = fs.abspath(bundle)
    config = read_json(fs.join(bundle, "config.json"), "config")
    check_schema("config", config, "config.json")
    return config, bundle  # type: ignore[return-value]


def check_schema(kind: str, doc: object, label: str) -> None:
    from pyrunc.spec.schema import validate

    problems = validate(kind, doc)  # type: ignore[arg-type]
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
        raise ConfigError(f"{label}: {problems[0]}{more}")
