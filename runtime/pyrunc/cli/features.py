"""features: what this pyrunc build really implements (features-schema.json)."""
from __future__ import annotations

import json
import sys

from pyrunc.cli.args import parse
from pyrunc.spec import HOOK_KINDS


def features() -> dict:
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
        "annotations": {"org.opencontainers.runtime-spec.version": "1.3.0"},
    }


def _idmap() -> bool:
    from pyrunc.rootless import idmap_supported
    return idmap_supported()


def main(cmd: str, g, argv: list[str]) -> int:
    parse([], argv)
    sys.stdout.write(json.dumps(features(), indent=2) + "\n")
    return 0
