"""Linux fields pyrunc does not implement are refused with an error naming the field
(issue 3 item 7), and every field of the Linux schema is accounted for."""
from __future__ import annotations

import json
import os

import pytest

from helpers import REPO
from probe import create_fails

# Where each field of config-linux.json's "linux" object is carried out (or refused).
HANDLED = {
    "namespaces": "linux/namespaces.py", "uidMappings": "userns", "gidMappings": "userns",
    "timeOffsets": "linux/namespaces.py", "devices": "linux/devices.py", "netDevices": "linux/netdev.py",
    "cgroupsPath": "cgroups/", "resources": "cgroups/", "sysctl": "linux/sysctl.py",
    "seccomp": "seccomp (issue 4)", "rootfsPropagation": "linux/mounts.py", "maskedPaths": "linux/paths.py",
    "readonlyPaths": "linux/paths.py", "mountLabel": "LSM (issue 4)", "personality": "linux/attrs.py",
    "memoryPolicy": "linux/attrs.py",
}


def test_every_linux_field_is_handled_or_refused():
    from pyrunc.spec.unsupported import UNSUPPORTED

    schema = json.loads((REPO / "oci-schemas" / "config-linux.json").read_text())
    fields = set(schema["$defs"]["linux"]["properties"])
    refused = {path[1] for path in UNSUPPORTED if path[0] == "linux"}
    assert refused.isdisjoint(HANDLED)
    assert fields == set(HANDLED) | refused


@pytest.mark.parametrize("rdt", [{"closID": "guaranteed_group", "schemata": ["L3:0=7f0;1=1f"]},
                                 {"enableMonitoring": True}, {}])
def test_intel_rdt_refused(pyrunc, bundle, cid, rdt):
    bundle.config["linux"]["intelRdt"] = rdt
    err = create_fails(pyrunc, bundle, cid)
    assert err == f"pyrunc: create {cid}: linux.intelRdt: Intel RDT (resctrl) is not supported by pyrunc", err
    assert not os.path.exists("/sys/fs/resctrl/guaranteed_group")


def test_features_agree():
    from pyrunc.cli.features import features

    linux = features()["linux"]
    assert linux["intelRdt"] == {"enabled": False}
    assert linux["netDevices"] == {"enabled": True}
    assert "MPOL_BIND" in linux["memoryPolicy"]["modes"]
    assert "MPOL_F_STATIC_NODES" in linux["memoryPolicy"]["flags"]
