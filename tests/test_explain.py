"""pyrunc explain (issue 16): what create does for a bundle, step by step, each step naming its
config.json field; for an existing container, each step checked against the kernel.

It only reads: a census of the host does not change. Its plan is what create then does:
on several configs, every cgroup file write it lists reads back from the real cgroup, and
its mounts are the container's mountinfo, in order, of the type and flags it says. A bad
bundle gets create's own one-line error. A live container shows no difference, until
something is changed behind its back.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from helpers import REPO, processes_rooted_under, wait_for
from usernshelp import base, make_bundle  # noqa: F401 (fixtures)

MiB = 1 << 20
MOUNT_OPS = ("mount", "bind", "mask", "readonly")  # the steps that make a mount (explain-schema.json)
SHOWN_FLAGS = {"ro", "nosuid", "nodev", "noexec"}


def validator() -> jsonschema.protocols.Validator:
    schemas = REPO / "oci-schemas"
    registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT202012))
        for p in schemas.glob("*.json"))
    return jsonschema.Draft202012Validator({"$ref": "explain-schema.json"}, registry=registry)


VALIDATOR = validator()


def _differing(out: str) -> list:
    """The steps a live explain found different, for an assertion message."""
    try:
        steps = json.loads(out)["steps"]
    except (ValueError, KeyError):
        return [out]
    return [(s["jsonPath"], s["text"], s["live"]) for s in steps if s.get("live", {}).get("status") == "differs"]


def explain(pyrunc, *args: str, check_rc: int | None = 0) -> dict:
    """`explain --format json`, checked against oci-schemas/explain-schema.json."""
    proc = pyrunc("explain", "--format", "json", *args, check=False)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr or _differing(proc.stdout)
    doc = json.loads(proc.stdout)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert not errors, errors
    return doc


def own_census(pyrunc, tmp_path: Path, cid: str) -> dict[str, set]:
    """What explain could have changed, and only of this test (others may run containers on this
    host meanwhile): every mount outside pytest's trees and below ours, cgroup directories
    named after the id (or explain's placeholder), processes of this test, the state root."""
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    mounts = {p for p in points if not p.startswith("/tmp/pytest-of-") or p.startswith(str(tmp_path))}
    cgroups = {d for d, _, _ in os.walk("/sys/fs/cgroup") if cid in d or "<id>" in d}
    procs = set(processes_rooted_under(tmp_path))
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and str(pyrunc.root).encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                procs.add(int(entry))
        except OSError:
            continue
    state = set(os.listdir(pyrunc.root)) if pyrunc.root.exists() else set()
    return {"mounts": mounts, "cgroups": cgroups, "processes": procs, "state": state}


def mountinfo(pid: int) -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, shown flags) of each mount of the container, in the kernel's order."""
    out = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        out.append((fields[4], right.split()[0], set(fields[5].split(",")) & SHOWN_FLAGS))
    return out


def in_config(config: dict, path: str) -> bool:
    """Whether the JSON path's parent is in the config (the field itself may be unset: a default)."""
    parts = re.findall(r"[A-Za-z]+|\[\d+\]|\['[^']*'\]", path)
    node: object = config
    for part in parts[:-1]:
        key: object = int(part[1:-1]) if part.startswith("[") and part[1] != "'" else part.strip("[]'")
        try:
            node = node[key]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return False
    return True


# --- the configs ---------------------------------------------------------------------------------

def _default(b, tmp: Path, cid: str) -> None:
    pass


def _limits(b, tmp: Path, cid: str) -> None:
    res = b.config["linux"]["resources"]
    res["memory"] = {"limit": 64 * MiB, "reservation": 16 * MiB}
    if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() or \
            Path("/sys/fs/cgroup/cgroup.controllers").exists():
        res["memory"]["swap"] = 96 * MiB
    res["pids"] = {"limit": 32}
    res["cpu"] = {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}
    b.config["linux"]["cgroupsPath"] = f"{cid}-parent/{cid}"  # a parent to make, and remove on delete


def _mounts(b, tmp: Path, cid: str) -> None:
    data = tmp / "data"
    data.mkdir()
    (data / "f").write_text("x")
    one = tmp / "one.txt"
    one.write_text("1")
    (b.rootfs / "run").mkdir(exist_ok=True)
    (b.rootfs / "var").mkdir(exist_ok=True)
    (b.rootfs / "var" / "run").symlink_to("../run")  # resolved inside the rootfs: /run/x
    b.config["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nodev", "noexec", "size=1m"]},
        {"destination": "/etc/one.txt", "type": "bind", "source": str(one), "options": ["bind"]},
        {"destination": "/var/run/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]


def _paths(b, tmp: Path, cid: str) -> None:
    (b.rootfs / "secret").write_text("s")
    (b.rootfs / "hidden").mkdir()
    (b.rootfs / "ro").mkdir()
    linux = b.config["linux"]
    linux["maskedPaths"] += ["/secret", "/hidden", "/not-there"]
    linux["readonlyPaths"] += ["/ro"]
    b.config["root"]["readonly"] = True


def _user(b, tmp: Path, cid: str) -> None:
    proc = b.config["process"]
    proc["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000], "umask": 0o027}
    one = ["CAP_NET_RAW"]
    proc["capabilities"] = {"bounding": ["CAP_NET_RAW", "CAP_CHOWN", "CAP_KILL"], "effective": one,
                            "permitted": one, "inheritable": one, "ambient": one}
    proc["noNewPrivileges"] = False
    proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    proc["cwd"] = "/tmp"
    proc["env"].append("FOO=bar")
    proc["oomScoreAdj"] = 100


def _seccomp(b, tmp: Path, cid: str) -> None:
    b.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


CONFIGS = {"default": _default, "limits": _limits, "mounts": _mounts, "paths": _paths, "user": _user,
           "seccomp": _seccomp, "userns": _default}


def _bundle(name: str, request, tmp_path: Path, cid: str):
    b = request.getfixturevalue("make_bundle")() if name == "userns" else request.getfixturevalue("bundle")
    CONFIGS[name](b, tmp_path, cid)
    return b.args("sleep", "1000")


def _cgroup_file(d: str, name: str) -> str:
    return Path(d, name).read_text().strip()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_plan_is_what_create_does(pyrunc, request, tmp_path, cid, name):
    b = _bundle(name, request, tmp_path, cid)
    before = own_census(pyrunc, tmp_path, cid)
    plan = explain(pyrunc, "-b", str(b.path), cid)
    assert own_census(pyrunc, tmp_path, cid) == before, "explain changed the host"
    assert plan["mode"] == "plan" and plan["id"] == cid
    steps = plan["steps"]
    assert all(in_config(b.config, s["jsonPath"]) for s in steps), [s["jsonPath"] for s in steps
                                                                     if not in_config(b.config, s["jsonPath"])]
    pyrunc("run", "-d", "-b", str(b.path), cid)
    pid = pyrunc.state(cid)["pid"]

    # every cgroup file reads back its last write (devices.allow/deny are write-only: the live check below)
    writes = [s["detail"] for s in steps if s["section"] == "cgroup" and s["op"] == "write"]
    last = {(w["dir"], w["file"]): w["value"] for w in writes}
    for w in writes:
        now = _cgroup_file(w["dir"], w["file"]) if not w["file"].startswith("devices.") else None
        if w["file"] == "cgroup.subtree_control":  # "+cpu": one of the file's words
            assert w["value"][1:] in now.split(), w
        elif now is not None:
            assert now == last[(w["dir"], w["file"])], w
    got = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, where = line.split(":", 2)
        got[",".join(sorted(ctrls.split(",")))] = where
    for key, d in plan["cgroup"]["dirs"].items():  # the init is in each directory the plan names
        assert d.endswith(got[key]), (key, d, got)
    if name == "limits":
        paths = {s["jsonPath"] for s in steps if s["section"] == "cgroup" and s["op"] == "write"}
        res = b.config["linux"]["resources"]
        asked = {f"linux.resources.{group}.{field}" for group in ("memory", "pids", "cpu") for field in res[group]}
        if any(w["file"] == "cpu.max" for w in writes):  # v2: one write of quota and period
            asked.discard("linux.resources.cpu.period")
        assert asked <= paths, asked - paths
        assert any(s["op"] == "mkdir" and s["detail"]["dir"].endswith(f"{cid}-parent") for s in steps)

    # the mounts, in order, of the type and flags the plan says
    planned = [s["detail"] for s in steps if s["op"] in MOUNT_OPS]
    actual = mountinfo(pid)
    assert [m["target"] for m in planned] == [point for point, _, _ in actual]
    for m, (point, fstype, flags) in zip(planned, actual):
        if m.get("type"):
            assert m["type"] == fstype, (m, fstype)
        if "flags" in m:
            assert set(m["flags"]) == flags, (point, m["flags"], flags)
    if name == "mounts":
        assert "/run/x" in [m["target"] for m in planned]  # /var/run -> ../run, resolved in the rootfs

    # and explain ID, on the live container, finds nothing to tell
    live = explain(pyrunc, cid)
    assert live["mode"] == "live" and live["status"] == "running"
    assert live["differences"] == 0, [s for s in live["steps"] if s.get("live", {}).get("status") == "differs"]
    assert [s["text"] for s in live["steps"]] == [s["text"] for s in steps]
    text = pyrunc("explain", cid)
    assert text.stdout.rstrip().endswith("no difference from the plan")
    pyrunc("delete", "-f", cid)


def test_explain_of_a_live_container_changes_nothing(pyrunc, bundle, tmp_path, cid):
    """Created (the init waits: what start does is not done yet), then running."""
    bundle.args("sleep", "1000")
    pyrunc("create", "-b", str(bundle.path), cid)
    for status in ("created", "running"):
        before = own_census(pyrunc, tmp_path, cid)
        assert pyrunc("explain", cid).returncode == 0
        doc = explain(pyrunc, cid)
        assert own_census(pyrunc, tmp_path, cid) == before
        assert doc["status"] == status and doc["differences"] == 0
        execve = next(s for s in doc["steps"] if s["op"] == "execve")
        assert execve["live"]["status"] == ("unverified" if status == "created" else "same")
        if status == "created":
            pyrunc("start", cid)
            wait_for(lambda: pyrunc.state(cid)["status"] == "running", what="running")
    pyrunc("delete", "-f", cid)
    stopped = explain(pyrunc, "-b", str(bundle.path), cid)  # gone: a plan again
    assert stopped["mode"] == "plan"


def test_a_change_behind_its_back_is_a_difference(pyrunc, bundle, cid):
    """The memory limit is written anew from the host; a mount is added inside the container."""
    bundle.config["linux"]["resources"]["memory"] = {"limit": 64 * MiB}
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    step = next(s for s in explain(pyrunc, cid)["steps"] if s["jsonPath"] == "linux.resources.memory.limit")
    assert step["live"]["status"] == "same"
    Path(step["detail"]["dir"], step["detail"]["file"]).write_text(str(32 * MiB))
    pid = str(pyrunc.state(cid)["pid"])
    if shutil.which("nsenter"):
        subprocess.run(["nsenter", "-t", pid, "-m", "mount", "-t", "tmpfs", "extra", "/tmp"], check=True)
    doc = explain(pyrunc, cid, check_rc=1)
    differs = {s["jsonPath"]: s for s in doc["steps"] if s.get("live", {}).get("status") == "differs"}
    assert str(32 * MiB) in differs.pop("linux.resources.memory.limit")["live"]["actual"]
    if shutil.which("nsenter"):
        extra = differs.pop("mounts")
        assert extra["op"] == "unplanned" and extra["detail"]["target"] == "/tmp"
    assert not differs and doc["differences"] == (2 if shutil.which("nsenter") else 1)
    text = pyrunc("explain", cid, check=False)
    assert text.returncode == 1 and "✗" in text.stdout and f"reads '{32 * MiB}'" in text.stdout
    pyrunc("delete", "-f", cid)


def _bad_json(b) -> None:
    (b.path / "config.json").write_text('{"ociVersion": "1.3.0",')


def _bad_schema(b) -> None:
    (b.path / "config.json").write_text(json.dumps({**b.config, "ociVersion": 13}))


def _no_rootfs(b) -> None:
    shutil.rmtree(b.rootfs)


def _bad_resource(b) -> None:
    b.config["linux"]["resources"]["cpu"] = {"shares": 1}
    b.write()


def _no_controller(b) -> None:
    """Refused while the writes are planned: v2 keys on a v1 host; on v2 a controller not enabled."""
    b.config["linux"]["resources"]["unified"] = {"nosuch.max": "1"}
    b.write()


def _no_program(b) -> None:
    b.args("no-such-program")


@pytest.mark.parametrize("bad", [_bad_json, _bad_schema, _no_rootfs, _bad_resource, _no_controller, _no_program])
def test_a_bad_bundle_gets_creates_error(pyrunc, bundle, tmp_path, cid, bad):
    bad(bundle)
    before = own_census(pyrunc, tmp_path, cid)
    got = pyrunc("explain", "-b", str(bundle.path), cid, check=False)
    assert own_census(pyrunc, tmp_path, cid) == before
    create = pyrunc("create", "-b", str(bundle.path), cid, check=False)
    assert got.returncode == create.returncode == 1
    assert got.stdout == "" and got.stderr.count("\n") == 1, got.stderr
    assert got.stderr.replace(f"pyrunc: explain {cid}: ", "") == create.stderr.replace(f"pyrunc: create {cid}: ", "")
    assert not (pyrunc.root / cid).exists()


def test_without_an_id_and_in_text(pyrunc, bundle, tmp_path):
    """The plan is made for the id "<id>"; every text line names its JSON path, in order."""
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}], "poststop": [{"path": "/bin/true"}]}
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    bundle.write()
    before = own_census(pyrunc, tmp_path, "<id>")
    doc = explain(pyrunc, "-b", str(bundle.path))
    text = pyrunc("explain", "-b", str(bundle.path)).stdout
    assert own_census(pyrunc, tmp_path, "<id>") == before
    assert doc["id"] == "<id>" and all(d.endswith("/<id>") for d in doc["cgroup"]["dirs"].values())
    numbered = [line for line in text.splitlines() if re.match(r"^ +\d+ ", line)]
    assert [re.search(r"  \[(.*)\]$", line).group(1) for line in numbered] == [s["jsonPath"] for s in doc["steps"]]
    order = [(s["who"], s["op"]) for s in doc["steps"] if s["section"] == "hooks" or s["op"] in ("execve", "pivot_root")]
    assert order == [("parent", "createRuntime"), ("init", "pivot_root"), ("init", "execve"), ("delete", "poststop")]
    assert any(s["jsonPath"] == "linux.sysctl['net.ipv4.ip_forward']" for s in doc["steps"])


def test_pid_namespace_after_a_user_namespace_forks_the_init(pyrunc, make_bundle, cid):  # noqa: F811
    """With a user namespace the pid namespace is made by the child, so the init is forked."""
    b = make_bundle()
    steps = explain(pyrunc, "-b", str(b.path), cid)["steps"]
    ns = [(s["who"], s["op"], s.get("detail", {}).get("type")) for s in steps if s["section"] == "namespaces"]
    assert ns.index(("child", "unshare", "user")) < ns.index(("child", "unshare", "pid"))
    assert ("parent", "write", None) in ns and ns[-1] == ("child", "fork", None)


def test_a_pure_v2_host_is_planned_with_the_layout_code(tmp_path):
    """A cgroup2-only host, as a directory tree: explain decides with create's code (layout,
    creation_steps, v2.plan), reading through the foreseen view what does not exist yet."""
    from pyrunc.cgroups import layout
    from pyrunc.cgroups.foresee import Foreseen
    from pyrunc.cgroups.manager import CgroupManager

    top = tmp_path / "cgroup"
    top.mkdir()
    (top / "cgroup.controllers").write_text("cpu io memory pids\n")
    (top / "cgroup.subtree_control").write_text("memory\n")
    mi = tmp_path / "mountinfo"
    mi.write_text(f"30 23 0:26 / {top} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n")
    lay = layout.detect(str(mi))
    assert lay.mode == "v2"
    v1, unified = layout.resolve(lay, "/pod/c1")
    assert v1 == {} and unified == f"{top}/pod/c1"
    cg = CgroupManager(lay.mode, {"": unified}, {"": str(top)})
    look = Foreseen(cg.mode, cg.mounts)
    steps = []
    for kind, arg in cg.creation_steps("", unified, look):
        look.note(kind, arg)
        steps.append((kind, arg) if kind == "mkdir" else (kind, arg.dir, arg.value))
    assert steps == [("enable", str(top), "+cpu"), ("enable", str(top), "+io"), ("enable", str(top), "+pids"),
                     ("mkdir", f"{top}/pod"),
                     ("enable", f"{top}/pod", "+cpu"), ("enable", f"{top}/pod", "+io"),
                     ("enable", f"{top}/pod", "+memory"), ("enable", f"{top}/pod", "+pids"),
                     ("mkdir", unified)]
    res = {"memory": {"limit": 64 * MiB, "swap": 96 * MiB}, "pids": {"limit": -1},
           "cpu": {"shares": 1024, "quota": 20000}}
    ops = cg.resource_writes(res, look=look)
    assert type(ops[0]).__name__ == "Program" and ops[0].dir == unified
    assert [(w.name, w.value, w.path) for w in ops[1:]] == [
        ("memory.swap.max", str(32 * MiB), "linux.resources.memory.swap"),  # v2: swap alone
        ("memory.max", str(64 * MiB), "linux.resources.memory.limit"),
        ("cpu.weight", "39", "linux.resources.cpu.shares"),
        ("cpu.max", "20000 100000", "linux.resources.cpu.quota"),  # the period a new cgroup has
        ("pids.max", "max", "linux.resources.pids.limit")]
    assert not (top / "pod").exists() and (top / "cgroup.subtree_control").read_text() == "memory\n"
    with pytest.raises(Exception, match=r"^linux\.resources\.hugepageLimits\[0\]: the hugetlb controller is not enabled"):
        cg.resource_writes({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}, look=look)


def test_a_live_container_against_another_bundle(pyrunc, bundle, tmp_path, cid):
    """-b with the id of a container compares it with that bundle's plan instead of its own."""
    bundle.config["linux"]["resources"]["pids"] = {"limit": 32}
    bundle.args("sleep", "1000")
    pyrunc("run", "-d", "-b", str(bundle.path), cid)
    other = tmp_path / "other"
    other.mkdir()
    (other / "rootfs").symlink_to(bundle.rootfs)
    (other / "config.json").write_text(json.dumps({**bundle.config, "linux": {
        **bundle.config["linux"], "resources": {**bundle.config["linux"]["resources"], "pids": {"limit": 64}}}}))
    assert explain(pyrunc, cid)["differences"] == 0
    doc = explain(pyrunc, "-b", str(other), cid, check_rc=1)
    differs = [s for s in doc["steps"] if s.get("live", {}).get("status") == "differs"]
    assert [(s["jsonPath"], s["live"]["actual"]) for s in differs] == [("linux.resources.pids.limit",
                                                                        "pids.max reads '32'")]
    pyrunc("delete", "-f", cid)
