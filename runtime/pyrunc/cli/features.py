"""features: what this pyrunc build really implements (features-schema.json)."""
from __future__ import annotations

import json
import sys

from pyrunc.cli.args import parse
from pyrunc.spec import HOOK_KINDS


def features(criu: str | None = None) -> dict:
    from pyrunc.linux import confine
    from pyrunc.spec import mountopts, procattrs
    from pyrunc.syscalls.consts import NAMESPACE_FLAGS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": list(HOOK_KINDS),
        "mountOptions": mountopts.all_options(),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": False},
            "mountExtensions": {"idmap": {"enabled": _idmap()}},
            **procattrs.features(),
            **confine.features(),
        },
        "annotations": {"org.opencontainers.runtime-spec.version": "1.3.0",
                        CHECKPOINT_ANNOTATION: _checkpoint(criu)},
    }


CHECKPOINT_ANNOTATION = "io.github.pyrunc.checkpoint"  # checkpoint/restore: criu's version, or why not


def _checkpoint(criu: str | None) -> str:
    from pyrunc.criu.binary import CriuError, usable

    try:
        path, version = usable(criu)
    except CriuError as exc:
        return f"unavailable: {exc}"
    return f"criu {version} ({path})"


def _idmap() -> bool:
    from pyrunc.rootless import idmap_supported
    return idmap_supported()


def main(cmd: str, g, argv: list[str]) -> int:
    parse([], argv)
    sys.stdout.write(json.dumps(features(g.criu), indent=2) + "\n")
    return 0
