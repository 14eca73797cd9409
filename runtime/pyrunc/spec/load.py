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
        return jsonio.loads(raw)  # json (and re) only on the error path
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid UTF-8 at byte {exc.start}") from None
    except ValueError as exc:  # json.JSONDecodeError
        if not hasattr(exc, "lineno"):
            raise ConfigError(f"{path}: invalid JSON: {exc}") from None
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


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
