"""pyrunc's OCI schemas (oci-schemas/) and the generated validator (pyrunc.spec._validators).

jsonschema is the reference implementation here, and only here: the runtime
never imports it.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pyrunc.spec.schema import validate

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "oci-schemas"
FIXTURES = REPO.parent / "shared" / "reference" / "oci-runtime-spec-v1.3.0" / "schema" / "test"
FULL = json.loads((REPO / "tests" / "data" / "config-full.json").read_text())
ROOTS = {
    "config": "config-schema.json",
    "state": "state-schema.json",
    "features": "features-schema.json",
    "process": "config-schema.json#/$defs/posixProcess",
}
STATE = {"ociVersion": "1.3.0", "id": "c1", "status": "running", "pid": 4422, "bundle": "/run/b",
         "annotations": {"com.example.k": "v"}}
FEATURES = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.3.0",
    "hooks": ["prestart", "createRuntime", "poststop"],
    "mountOptions": ["bind", "rbind", "ro"],
    "annotations": {"org.example.runtime": "pyrunc"},
    "potentiallyUnsafeConfigAnnotations": ["org.systemd.property."],
    "linux": {
        "namespaces": ["pid", "mount", "time"],
        "capabilities": ["CAP_CHOWN"],
        "cgroup": {"v1": True, "v2": False, "systemd": False, "systemdUser": False, "rdma": False},
        "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW"], "operators": ["SCMP_CMP_EQ"],
                    "archs": ["SCMP_ARCH_X86_64"], "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"], "supportedFlags": []},
        "apparmor": {"enabled": False},
        "selinux": {"enabled": False},
        "memoryPolicy": {"modes": ["MPOL_BIND"], "flags": ["MPOL_F_STATIC_NODES"]},
        "intelRdt": {"enabled": False, "schemata": False, "monitoring": False},
        "mountExtensions": {"idmap": {"enabled": False}},
        "netDevices": {"enabled": False},
    },
}
VALID = {"config": FULL, "state": STATE, "features": FEATURES, "process": FULL["process"]}


def reference_validator(kind: str) -> jsonschema.protocols.Validator:
    """jsonschema over our schemas; "integer" excludes 1.0, as in the generated code (see the generator)."""
    registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT202012))
        for p in SCHEMAS.glob("*.json")
    )
    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", lambda _c, x: type(x) is int)
    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)
    return cls({"$ref": ROOTS[kind]}, registry=registry)


REFERENCE = {kind: reference_validator(kind) for kind in ROOTS}


def display(path: deque) -> str:
    """jsonschema's absolute_path in our message syntax."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isascii() and part.isidentifier():
            out += "." + part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out[1:] if out.startswith(".") else (out or "$")


def our_paths(kind: str, doc: object) -> set[str]:
    return {m.split(": ", 1)[0] for m in validate(kind, doc)}  # type: ignore[arg-type]


def reference_paths(kind: str, doc: object) -> set[str]:
    return {display(err.absolute_path) for err in REFERENCE[kind].iter_errors(doc)}


# --- (a) upstream fixtures -------------------------------------------------------------------

def fixture_problems(kind: str, path: Path) -> list[str]:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [f"invalid JSON: {exc}"]
    return validate(kind, doc)  # type: ignore[arg-type]


def test_upstream_fixtures() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"{FIXTURES} does not exist")
    seen = 0
    for kind in ("config", "state", "features"):
        for path in sorted((FIXTURES / kind / "good").glob("*.json")):
            assert fixture_problems(kind, path) == [], path
            seen += 1
        for path in sorted((FIXTURES / kind / "bad").glob("*.json")):
            assert fixture_problems(kind, path) != [], path
            seen += 1
    assert seen >= 18  # 12 good + 7 bad in v1.3.0; catches a moved directory


def test_upstream_bad_fixtures_fail_for_the_right_reason() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"{FIXTURES} does not exist")
    expected = {
        ("config", "freebsd-vnet-disable.json"): "freebsd.jail.vnet: 'disable' is not one of ['new', 'inherit']",
        ("config", "linux-hugepage.json"): "linux.resources.hugepageLimits[0].pageSize: '64kB' is not a page size",
        ("config", "linux-netdevice.json"): "linux.netDevices.eth0.name: expected string, got integer",
        ("config", "linux-rdma.json"): "linux.resources.rdma.mlx5_1.hcaHandles: expected integer, got string",
        ("features", "missing-ociVersionMax.json"): "$: missing required property 'ociVersionMax'",
    }
    for (kind, name), start in expected.items():
        problems = fixture_problems(kind, FIXTURES / kind / "bad" / name)
        assert len(problems) == 1 and problems[0].startswith(start), (name, problems)


def test_our_examples_are_valid_for_the_upstream_schemas_too() -> None:
    """config-full.json is shared with the team as a reference: upstream must accept it as well."""
    upstream = FIXTURES.parent
    if not upstream.is_dir():
        pytest.skip(f"{upstream} does not exist")
    from referencing.jsonschema import DRAFT4

    registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT4))
        for p in upstream.glob("*.json")
    )
    for name, doc in (("config-schema.json", FULL), ("state-schema.json", STATE), ("features-schema.json", FEATURES)):
        errors = [e.message for e in jsonschema.Draft4Validator({"$ref": name}, registry=registry).iter_errors(doc)]
        assert errors == [], name


# --- (b) agreement with jsonschema ------------------------------------------------------------

def test_our_schemas_are_valid_2020_12_schemas() -> None:
    for path in sorted(SCHEMAS.glob("*.json")):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_full_config_uses_every_linux_and_posix_field() -> None:
    """tests/data/config-full.json is the team's reference config: it must exercise every field."""
    schema = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")}

    def resolve(file: str, ref: str) -> tuple[str, dict]:
        target, _, ptr = ref.partition("#")
        node = schema[target or file]
        for part in ptr.split("/")[1:]:
            node = node[part]
        return target or file, node

    def fields(file: str, node: dict, prefix: str, out: set[str]) -> None:
        if "$ref" in node:
            fields(*resolve(file, node["$ref"]), prefix, out)
        for key in ("allOf", "anyOf"):
            for sub in node.get(key, ()):
                fields(file, sub, prefix, out)
        for name, sub in node.get("properties", {}).items():
            out.add(prefix + name)
            fields(file, sub, prefix + name + ".", out)
        if "items" in node:
            fields(file, node["items"], prefix, out)
        if isinstance(node.get("additionalProperties"), dict):
            fields(file, node["additionalProperties"], prefix + "*.", out)

    wanted: set[str] = set()
    fields("config-schema.json", schema["config-schema.json"], "", wanted)
    other = ("windows", "solaris", "vm", "zos", "freebsd", "process.commandLine", "process.user.username")
    wanted = {f for f in wanted if not f.startswith(other)}

    used: set[str] = set()
    maps = {"linux.timeOffsets", "linux.netDevices", "linux.resources.rdma"}  # keys are names, not fields

    def walk(doc: object, prefix: str, in_map: bool) -> None:
        if isinstance(doc, list):
            for x in doc:
                walk(x, prefix, False)
        elif isinstance(doc, dict):
            for k, x in doc.items():
                name = prefix + ("*" if in_map else k)
                used.add(name)
                walk(x, name + ".", name in maps)

    walk(FULL, "", False)
    assert wanted - used == set()
    assert validate("config", FULL) == []


def mutations(base: object, doc: object, path: tuple = ()):
    """(description, mutated copy of base) pairs: wrong types, bad values and removed keys at every node."""
    def put(value: object) -> object:
        new = copy.deepcopy(base)
        node = new
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        return new

    if path:
        if isinstance(doc, bool):
            candidates = ["true", 1]
        elif isinstance(doc, int):
            candidates = ["1", 1.5, True, -1, -2**31 - 1, 2**31, 2**32, 2**63, 2**64, None]
        elif isinstance(doc, str):
            candidates = [7, "", "bogus", "relative/path", "MB:1;x", "01.2.3", "0-3,7"]
        elif isinstance(doc, list):
            candidates = [{}, "x", [], [7], [None]]
        else:
            candidates = [[], "x", {}]
        for value in candidates:
            yield f"{path}={value!r}", put(value)
    if isinstance(doc, dict):
        for key, value in doc.items():
            new = copy.deepcopy(base)
            node = new
            for part in path:
                node = node[part]
            del node[key]
            yield f"del {path + (key,)}", new
            yield from mutations(base, value, path + (key,))
    elif isinstance(doc, list):  # the first and last entries are enough to exercise "items"
        for i in sorted({0, len(doc) - 1}) if doc else ():
            yield from mutations(base, doc[i], path + (i,))


@pytest.mark.parametrize("kind", sorted(VALID))
def test_generated_validator_agrees_with_jsonschema(kind: str) -> None:
    base = VALID[kind]
    assert validate(kind, base) == [] and reference_paths(kind, base) == set()  # type: ignore[arg-type]
    invalid = 0
    for what, doc in mutations(base, base):
        ours, theirs = our_paths(kind, doc), reference_paths(kind, doc)
        assert ours == theirs, what
        invalid += bool(ours)
    assert invalid > 20  # the mutations really exercise failures


@pytest.mark.parametrize("doc", [None, [], "x", 3, True, {}, {"ociVersion": "1.3.0"}, {"root": {}}])
def test_agreement_on_degenerate_documents(doc: object) -> None:
    for kind in ROOTS:
        assert our_paths(kind, doc) == reference_paths(kind, doc), kind


# --- (c) every violation, with its path --------------------------------------------------------

def test_every_violation_is_reported_with_its_path() -> None:
    doc = copy.deepcopy(FULL)
    doc["process"]["args"] = "sh"
    doc["process"]["user"] = {"uid": -1}
    doc["root"] = {"readonly": "yes"}
    doc["mounts"][1]["destination"] = 5
    doc["mounts"][7].pop("gidMappings")
    doc["annotations"][""] = "empty key"
    doc["annotations"]["com.example.n"] = 1
    linux = doc["linux"]
    linux["namespaces"][3]["type"] = "foo"
    linux["namespaces"][1]["path"] = "var/run/netns/x"
    linux["sysctl"]["net.ipv4.ip_forward"] = True
    linux["devices"][0].pop("major")
    linux["resources"]["memory"]["swappiness"] = 101
    linux["resources"]["cpu"]["shares"] = 1.5
    linux["resources"]["blockIO"]["weightDevice"][1].pop("leafWeight")
    linux["resources"]["hugepageLimits"][0]["limit"] = 2**64
    linux["seccomp"]["syscalls"][0]["names"] = []
    linux["seccomp"].pop("listenerPath")
    linux["maskedPaths"].append("proc/kcore")
    linux["intelRdt"]["memBwSchema"] = "MB:0=20\n"
    assert sorted(validate("config", doc)) == sorted([
        "process.args: expected array, got string",
        "process.user.uid: -1 is less than the minimum 0",
        "process.user: missing required property 'gid'",
        "root: missing required property 'path'",
        "root.readonly: expected boolean, got string",
        "mounts[1].destination: expected string, got integer",
        "mounts[7]: property 'gidMappings' is required when 'uidMappings' is present",
        "annotations: property name '' must not be empty",
        'annotations["com.example.n"]: expected string, got integer',
        "linux.namespaces[3].type: 'foo' is not one of "
        "['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time']",
        "linux.namespaces[1].path: 'var/run/netns/x' is not an absolute path",
        'linux.sysctl["net.ipv4.ip_forward"]: expected string, got boolean',
        "linux.devices[0]: missing required property 'major'",
        "linux.resources.memory.swappiness: 101 is greater than the maximum 100",
        "linux.resources.cpu.shares: expected integer, got number",
        "linux.resources.blockIO.weightDevice[1]: matches none of the alternatives "
        "(missing required property 'weight'; missing required property 'leafWeight')",
        "linux.resources.hugepageLimits[0].limit: 18446744073709551616 is greater than the maximum 18446744073709551615",
        "linux.seccomp.syscalls[0].names: expected at least 1 item(s), got 0",
        "linux.seccomp: property 'listenerPath' is required when 'listenerMetadata' is present",
        "linux.maskedPaths[3]: 'proc/kcore' is not an absolute path",
        "linux.intelRdt.memBwSchema: 'MB:0=20\\n' must start with 'MB:' and contain no newline",
    ])


def test_root_level_and_kind_specific_messages() -> None:
    assert validate("config", []) == ["$: expected object, got array"]
    assert sorted(validate("config", {"ociVersion": "1.3"})) == [
        "$: missing required property 'root'",
        "ociVersion: '1.3' is not a SemVer 2.0.0 version",
    ]
    # Windows needs no root, and its process needs no args.
    assert validate("config", {"ociVersion": "1.3.0", "windows": {"layerFolders": ["C:\\l"]},
                               "process": {"cwd": "C:\\", "commandLine": "cmd"}}) == []
    assert validate("state", {**STATE, "status": "created", "pid": None}) == ["pid: expected integer, got null"]
    no_pid = {k: v for k, v in STATE.items() if k != "pid"}
    assert validate("state", no_pid) == ["$: missing required property 'pid'"]
    assert validate("state", {**no_pid, "status": "stopped"}) == []
    assert validate("process", {"cwd": "/", "args": [], "user": {"uid": 0}}) == [
        "args: expected at least 1 item(s), got 0",
        "user: missing required property 'gid'",
    ]
    assert validate("process", {"cwd": "/"}) == ["$: missing required property 'args'"]


def test_devices_of_type_p_need_no_numbers() -> None:
    doc = copy.deepcopy(FULL)
    doc["linux"]["devices"] = [{"type": "p", "path": "/run/fifo"}, {"type": "c", "path": "/dev/x", "major": 1}]
    assert validate("config", doc) == ["linux.devices[1]: missing required property 'minor'"]


# --- (d) the generated file is current ---------------------------------------------------------

@pytest.mark.parametrize("seed", ["0", "12345"])
def test_generated_validators_are_up_to_date_and_deterministic(seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    result = subprocess.run([sys.executable, str(REPO / "hack" / "gen-validators.py"), "--check"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- (e) no jsonschema on the runtime's path ---------------------------------------------------

def test_import_does_not_load_jsonschema() -> None:
    code = (  # json first: the caller has always imported it to read the document
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "from pyrunc.spec.schema import validate\n"
        "new = set(sys.modules) - before - {'__future__', 'pyrunc', 'pyrunc.spec'}\n"
        "assert new == {'pyrunc.spec.schema', 'pyrunc.spec._validators'}, new\n"
        "assert validate('config', json.load(open(sys.argv[1]))) == []\n"
        "assert validate('config', {}) != []\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'referencing')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "runtime")}
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "tests" / "data" / "config-full.json")],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plain_pattern_tests_agree_with_re():
    """The generator writes the common patterns as string tests (no `re` on create's path)."""
    import importlib.util
    import random
    import re

    spec = importlib.util.spec_from_file_location("gen", REPO / "hack" / "gen-validators.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    from pyrunc.spec import _validators

    rng = random.Random(7)
    alphabet = "0123456789.-+abzAZ_CKMGB:/\\\nrwm,P٣"
    samples = ["1.0.0", "1.0.0-rc.1+b.5", "01.0.0", "1.0.0-01", "C:\\x", "CAP_SYS_ADMIN", "0-3,7", "64KB",
               "MB:0=20", "", "\n"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(4000)]
    for pattern, name in gen.PLAIN_TESTS.items():
        rx = re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)
        test = getattr(_validators, name)
        wrong = [s for s in samples if (rx.search(s) is not None) != test(s)]
        assert not wrong, (pattern, wrong[:5])
