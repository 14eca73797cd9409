"""features.md / features-linux.md: the `features` document and that what it lists works."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SPEC_DIR

UNUSED_SYSCALLS = ["acct", "swapon", "swapoff", "vhangup", "syslog", "reboot", "kexec_load",
                   "init_module"]


@pytest.fixture
def features(h) -> dict:
    proc = h.rt("features")
    return json.loads(proc.stdout)


def _semver(v: str) -> tuple[int, int, int]:
    core = v.split("-", 1)[0].split("+", 1)[0]
    major, minor, patch = core.split(".")
    return int(major), int(minor), int(patch)


@pytest.mark.req("features.specification-version.1", "features.specification-version.3",
                 "features.specification-version.5")
def test_version_range(features):
    assert isinstance(features["ociVersionMin"], str) and isinstance(features["ociVersionMax"], str)
    assert _semver(features["ociVersionMax"]) >= _semver(features["ociVersionMin"])


@pytest.mark.parametrize("which", ["ociVersionMin", "ociVersionMax"])
@pytest.mark.req("features.specification-version.2", "features.specification-version.4")
def test_advertised_versions_are_accepted(h, features, which):
    b = h.bundle()
    b.config["ociVersion"] = features[which]
    assert h.sh(b, "echo ok") == "ok\n"


def _allowed_keys() -> tuple[set[str], dict[str, set[str]]]:
    top = json.loads((SPEC_DIR / "schema/features-schema.json").read_text())["properties"]
    linux = json.loads((SPEC_DIR / "schema/features-linux.json").read_text())["linux"]["properties"]
    nested = {k: set(v.get("properties", {})) for k, v in linux.items()}
    # memoryPolicy is specified in features-linux.md but missing from the v1.3.0 schema
    nested["memoryPolicy"] = {"modes", "flags"}
    return set(top), nested


@pytest.mark.req("features.specification-version.6", "features.features-structure.2")
def test_no_undefined_properties(features):
    top, nested = _allowed_keys()
    assert set(features) <= top, set(features) - top
    for key, val in features.get("linux", {}).items():
        assert key in nested, key
        if isinstance(val, dict) and nested[key]:
            assert set(val) <= nested[key], (key, set(val) - nested[key])
    for key in ("hooks", "mountOptions"):
        assert features.get(key) is None or isinstance(features[key], list), key


@pytest.mark.req("features.features-structure.1")
def test_features_stable_between_calls(h, features):
    assert json.loads(h.rt("features").stdout) == features


@pytest.mark.req("features.annotations.1")
def test_annotations_are_string_map(features):
    ann = features.get("annotations", {})
    assert isinstance(ann, dict)
    assert all(isinstance(k, str) and k and isinstance(v, str) for k, v in ann.items())


@pytest.mark.req("features.hooks.1")
def test_listed_hooks_are_known_and_run(h, features):
    known = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
             "poststop"}
    hooks = features.get("hooks") or []
    assert set(hooks) <= known
    b = h.bundle()
    marker = h.tmp / "hooks.log"
    for stage in hooks:
        if stage == "startContainer":
            b.add_hook(stage, {"path": "/bin/sh", "args": ["sh", "-c", "echo sc > /sc"]})
        else:
            b.add_hook(stage, h.hook(stage, marker))
    h.run(b)
    ran = {json.loads(line)["name"] for line in marker.read_text().splitlines()}
    expected = set(hooks) - {"startContainer"}
    assert ran == expected
    if "startContainer" in hooks:
        assert (b.rootfs / "sc").exists()


_MOUNT_NEEDS_BIND = {"bind", "rbind", "idmap", "ridmap"}


@pytest.mark.req("features.mount-options.1")
def test_listed_mount_options_are_recognized(h, features):
    failures = []
    for opt in features.get("mountOptions") or []:
        b = h.bundle()
        (b.rootfs / "m").mkdir()
        src = h.tmp / f"src-{opt}"
        src.mkdir()
        if opt == "remount":  # remount the mount made by the entry before it
            b.config["mounts"].append({"destination": "/m", "type": "tmpfs", "source": "tmpfs"})
            mount = {"destination": "/m", "type": "tmpfs", "source": "tmpfs",
                     "options": ["remount", "ro"]}
        elif opt in _MOUNT_NEEDS_BIND:
            options = ["bind", opt] if opt not in ("bind", "rbind") else [opt]
            if opt in ("idmap", "ridmap"):
                b.linux["namespaces"].append({"type": "user"})
                m = [{"containerID": 0, "hostID": 100000, "size": 65536}]
                b.linux["uidMappings"], b.linux["gidMappings"] = m, list(m)
            mount = {"destination": "/m", "type": "bind", "source": str(src), "options": options}
        else:
            mount = {"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": [opt]}
        b.config["mounts"].append(mount)
        proc = h.run(b, check=False)
        if proc.returncode != 0:
            failures.append((opt, proc.stderr.strip()[-200:]))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.req("features.mount-options.2")
def test_mount_options_exclude_filesystem_data(features):
    fs_specific = {"mode", "size", "uid", "gid", "nr_inodes", "newinstance", "ptmxmode"}
    opts = features.get("mountOptions") or []
    assert not [o for o in opts if "=" in o or o in fs_specific]


@pytest.mark.req("features-linux.namespaces.1")
def test_listed_namespaces_work(h, features):
    failures = []
    for kind in features.get("linux", {}).get("namespaces") or []:
        b = h.bundle()
        if b.ns(kind) is None:
            b.linux["namespaces"].append({"type": kind})
        if kind == "user":
            m = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            b.linux["uidMappings"], b.linux["gidMappings"] = m, list(m)
        proc = h.run(b, check=False)
        if proc.returncode != 0:
            failures.append((kind, proc.stderr.strip()[-200:]))
    assert not failures, "\n".join(map(str, failures))


CAP_NUMBERS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
               "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
               "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
               "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
               "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
               "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
               "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
               "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
               "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
               "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]


@pytest.mark.req("features-linux.capabilities.1")
def test_listed_capabilities_are_recognized(h, features):
    """Every listed capability we hold ourselves can be granted (this host withholds some)."""
    ours = int(Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0], 16)
    caps = [c for c in features.get("linux", {}).get("capabilities") or []
            if c in CAP_NUMBERS and ours >> CAP_NUMBERS.index(c) & 1]
    assert caps
    b = h.bundle()
    b.process["capabilities"] = {"bounding": list(caps), "permitted": list(caps),
                                 "effective": list(caps), "inheritable": [], "ambient": []}
    b.process["args"] = ["sh", "-c", "grep CapBnd /proc/self/status"]
    bnd = int(h.run(b).stdout.split()[1], 16)
    assert bnd == sum(1 << CAP_NUMBERS.index(c) for c in caps)


def _seccomp_run(h, seccomp: dict) -> str | None:
    b = h.bundle()
    b.linux["seccomp"] = seccomp
    proc = h.run(b, check=False)
    return None if proc.returncode == 0 else proc.stderr.strip()[-200:]


@pytest.mark.req("features-linux.seccomp.1")
def test_listed_seccomp_actions(h, features):
    sec = features.get("linux", {}).get("seccomp") or {}
    failures = []
    for action in sec.get("actions") or []:
        if action == "SCMP_ACT_NOTIFY":
            continue  # needs a listener; covered by test_seccomp.py
        default = "SCMP_ACT_LOG" if action == "SCMP_ACT_ALLOW" else "SCMP_ACT_ALLOW"
        err = _seccomp_run(h, {"defaultAction": default,
                               "syscalls": [{"names": ["acct"], "action": action}]})
        if err:
            failures.append((action, err))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.req("features-linux.seccomp.2")
def test_listed_seccomp_operators(h, features):
    ops = (features.get("linux", {}).get("seccomp") or {}).get("operators") or []
    failures = []
    for op in ops:
        arg = {"index": 0, "value": 12345, "op": op}
        if op == "SCMP_CMP_MASKED_EQ":
            arg["valueTwo"] = 12345
        err = _seccomp_run(h, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["acct"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]})
        if err:
            failures.append((op, err))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.req("features-linux.seccomp.3")
def test_listed_seccomp_archs(h, features):
    archs = (features.get("linux", {}).get("seccomp") or {}).get("archs") or []
    failures = []
    # libseccomp cannot put big-endian architectures into a little-endian host's filter
    big_endian = {"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_PPC",
                  "SCMP_ARCH_PPC64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X"}
    for arch in (a for a in archs if a not in big_endian):
        err = _seccomp_run(h, {"defaultAction": "SCMP_ACT_ALLOW",
                               "architectures": ["SCMP_ARCH_X86_64", arch],
                               "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]})
        if err:
            failures.append((arch, err))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.req("features-linux.seccomp.4", "features-linux.seccomp.5")
def test_listed_seccomp_flags(h, features):
    sec = features.get("linux", {}).get("seccomp") or {}
    failures = []
    for flag in sorted(set(sec.get("knownFlags") or []) | set(sec.get("supportedFlags") or [])):
        err = _seccomp_run(h, {"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
                               "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO"}]})
        if err and flag in (sec.get("supportedFlags") or []):
            failures.append((flag, err))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.req("features-linux.memorypolicy.1", "features-linux.memorypolicy.2")
def test_listed_memory_policy(h, features):
    mp = features.get("linux", {}).get("memoryPolicy") or {}
    failures = []
    for mode in mp.get("modes") or []:
        b = h.bundle()
        policy = {"mode": mode}
        if mode not in ("MPOL_DEFAULT", "MPOL_LOCAL"):
            policy["nodes"] = "0"
        b.linux["memoryPolicy"] = policy
        proc = h.run(b, check=False)
        if proc.returncode != 0:
            failures.append((mode, proc.stderr.strip()[-200:]))
    for flag in mp.get("flags") or []:
        b = h.bundle()
        b.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0", "flags": [flag]}
        proc = h.run(b, check=False)
        if proc.returncode != 0:
            failures.append((flag, proc.stderr.strip()[-200:]))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.req("features-linux.mountextensions.1")
def test_idmap_extension_flag_matches_behaviour(h, features):
    idmap = ((features.get("linux", {}).get("mountExtensions") or {}).get("idmap") or {})
    enabled = idmap.get("enabled")
    src = h.tmp / "idsrc"
    src.mkdir()
    (src / "f").write_text("x")
    b = h.bundle()
    (b.rootfs / "m").mkdir()
    b.linux["namespaces"].append({"type": "user"})
    m = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["uidMappings"], b.linux["gidMappings"] = m, list(m)
    b.config["mounts"].append({"destination": "/m", "type": "bind", "source": str(src),
                               "options": ["bind", "idmap"]})
    b.process["args"] = ["stat", "-c", "%u", "/m/f"]
    proc = h.run(b, check=False)
    # idmapped through the container's mapping, host uid 0 shows as 0 (else nobody/65534)
    recognised = proc.returncode == 0 and proc.stdout.strip() == "0"
    assert bool(enabled) == recognised, (enabled, proc.stdout, proc.stderr[-200:])
