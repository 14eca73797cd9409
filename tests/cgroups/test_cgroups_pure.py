"""Pure logic of pyrunc.cgroups: layout parsing, paths, conversions, flags, the
eBPF assembler. (Everything kernel-facing is in test_cgroups_manager.py.)"""
from __future__ import annotations

import re
import struct

import pytest

from pyrunc.cgroups import layout, resources_from_update_flags
from pyrunc.cgroups.devices import DEFAULT_RULES, WILDCARD, Rule, parse_rules
from pyrunc.cgroups.resources import pagesize_name
from pyrunc.cgroups.v2 import blkio_to_io_weight, shares_to_weight, swap_to_v2
from pyrunc.errors import PyruncError

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
V1 = "\n".join(HYBRID.splitlines()[:4]) + "\n"


@pytest.mark.parametrize("text,mode", [(HYBRID, "hybrid"), (V2, "v2"), (V1, "v1")])
def test_layout_modes(tmp_path, text, mode):
    f = tmp_path / "mountinfo"
    f.write_text(text)
    lay = layout.detect(str(f))
    assert lay.mode == mode
    if mode != "v2":
        assert lay.v1["cpu,cpuacct"] == ("/sys/fs/cgroup/cpu,cpuacct", "/")
        assert lay.v1["name=systemd"] == ("/sys/fs/cgroup/systemd", "/")
        assert set(lay.v1) == {"cpu,cpuacct", "memory", "name=systemd"}
    assert (lay.unified is None) == (mode == "v1")


def test_no_cgroup_mounted_is_an_error(tmp_path):
    f = tmp_path / "mountinfo"
    f.write_text("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")
    with pytest.raises(PyruncError, match="no cgroup filesystem"):
        layout.detect(str(f))


def test_own_cgroups_keys_match_layout_keys(tmp_path):
    f = tmp_path / "cgroup"
    f.write_text("3:cpuacct,cpu:/a\n2:name=systemd:/user.slice\n0::/init.scope\n")
    assert layout.own_cgroups(str(f)) == {"cpu,cpuacct": "/a", "name=systemd": "/user.slice",
                                          "": "/init.scope"}


@pytest.mark.parametrize("raw,clean", [("/a/b/", "/a/b"), ("a/./b", "a/b"), ("/a/x/../b", "/a/b"),
                                       ("c1", "c1"), ("//a", "/a")])
def test_clean_cgroups_path(raw, clean):
    assert layout.clean_cgroups_path(raw) == clean


def test_conversions_like_runc():
    assert [shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert [blkio_to_io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]
    assert swap_to_v2(None, 100) is None
    assert swap_to_v2(0, 100) is None
    assert swap_to_v2(-1, 100) == -1
    assert swap_to_v2(None, -1) == -1          # unlimited memory -> unlimited swap
    assert swap_to_v2(300, 100) == 200          # memory+swap -> swap alone
    with pytest.raises(PyruncError, match=r"^linux\.resources\.memory\.swap: .*below"):
        swap_to_v2(50, 100)
    with pytest.raises(PyruncError, match="without a memory limit"):
        swap_to_v2(50, None)
    assert [pagesize_name(s) for s in ("2MB", "1GB", "64KB", "2048KB")] == \
        ["2MB", "1GB", "64KB", "2MB"]


def test_update_flags():
    assert resources_from_update_flags({
        "memory": "96m", "memory-reservation": "1g", "memory-swap": "-1", "cpu-share": "512",
        "cpu-quota": "-1", "cpu-period": "100000", "cpu-burst": "10", "cpuset-cpus": "0-1",
        "cpuset-mems": "0", "pids-limit": "100", "blkio-weight": "300", "cpu-rt-period": "1000000",
        "cpu-rt-runtime": "950000", "cpu-idle": "1"}) == {
        "memory": {"limit": 96 << 20, "reservation": 1 << 30, "swap": -1},
        "cpu": {"shares": 512, "quota": -1, "period": 100000, "burst": 10, "cpus": "0-1",
                "mems": "0", "realtimePeriod": 1000000, "realtimeRuntime": 950000, "idle": 1},
        "pids": {"limit": 100}, "blockIO": {"weight": 300}}
    assert resources_from_update_flags({"--memory": "512KiB"}) == {"memory": {"limit": 512 << 10}}


@pytest.mark.parametrize("flags,msg", [({"memory": "lots"}, "--memory 'lots'"),
                                       ({"cpu-share": "-5"}, "--cpu-share"),
                                       ({"bogus": "1"}, "unknown flag --bogus")])
def test_update_flags_errors(flags, msg):
    with pytest.raises(PyruncError) as e:
        resources_from_update_flags(flags)
    assert msg in str(e.value)


def test_parse_rules_defaults_and_errors():
    assert parse_rules([{"allow": True}]) == [Rule(True, "a", WILDCARD, WILDCARD, "rwm")]
    assert parse_rules([{"allow": False, "type": "c", "major": 1, "access": "wr"}]) == \
        [Rule(False, "c", 1, WILDCARD, "rw")]
    # as runc: unknown access letters dropped; an entry left with none does nothing
    assert parse_rules([{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwa"},
                        {"allow": False, "access": "x"}]) == [Rule(True, "c", 1, 3, "rw")]
    for bad, where in (({"allow": 1}, "[0].allow"), ({"allow": True, "access": 7}, "[0].access"),
                       ({"allow": True, "major": -2}, "[0].major")):
        with pytest.raises(PyruncError, match="^linux\\.resources\\.devices" + re.escape(where)):
            parse_rules([bad])
    assert DEFAULT_RULES[2].v1_line() == "c 1:3 rwm"


def _run(prog: bytes, typ: int, access: int, major: int, minor: int) -> int:
    """A tiny interpreter for exactly the instructions the assembler emits."""
    regs = [0] * 11
    ctx = struct.pack("<III", (access << 16) | typ, major, minor)
    pc = 0
    insns = [struct.unpack_from("<BBhI", prog, i) for i in range(0, len(prog), 8)]
    while True:
        op, r, off, imm = insns[pc]
        dst, src = r & 0xF, r >> 4
        pc += 1
        if op == 0x61:
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:
            regs[dst] &= imm
        elif op == 0x74:
            regs[dst] >>= imm
        elif op == 0xbc:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == 0xb7:
            regs[dst] = imm
        elif op == 0x56:
            pc += off if (regs[dst] & 0xFFFFFFFF) != imm else 0
        elif op == 0x16:
            pc += off if (regs[dst] & 0xFFFFFFFF) == imm else 0
        elif op == 0x05:
            pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def test_bpf_program_decides_like_the_rule_list():
    from pyrunc.cgroups.bpf import assemble
    rules = parse_rules([{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 11},
                         {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "w"},
                         {"allow": True, "type": "b", "major": 8, "access": "r"}]) + list(DEFAULT_RULES)
    prog = assemble(rules)
    C, B, M, R, W = 2, 1, 1, 2, 4
    assert _run(prog, C, R, 1, 11) == 1
    assert _run(prog, C, W, 1, 11) == 0            # the later deny wins
    assert _run(prog, C, R | W, 1, 11) == 0
    assert _run(prog, B, R, 8, 3) == 1
    assert _run(prog, B, W, 8, 3) == 0
    assert _run(prog, C, R | W, 1, 3) == 1         # /dev/null, a default
    assert _run(prog, C, R, 4, 1) == 0             # nothing allows a tty 4:1
    assert _run(prog, C, M, 4, 1) == 1             # but any mknod is allowed
    assert _run(prog, C, R, 136, 7) == 1           # pts wildcard minor
    # bits are decided separately: two partial allows make a full one, as on v1
    split = assemble(parse_rules([{"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"},
                                  {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]))
    assert _run(split, C, R | W, 1, 11) == 1
    assert _run(split, C, R | M, 1, 11) == 0
    allow_all = assemble(parse_rules([{"allow": True}]))
    assert _run(allow_all, B, R | W | M, 259, 0) == 1
    # per bit: test the bit, one unconditional jump; then loads and the final allow
    assert len(allow_all) == 8 * (6 + 3 * 4 + 2)
    assert _run(assemble([]), C, R, 1, 3) == 0     # empty list: deny


def test_delegation_owner_follows_the_spec_conditions():
    """config-linux.md "Cgroup ownership": v2 only, new cgroup namespace, rw /sys/fs/cgroup."""
    from pyrunc.cgroups.delegate import owner

    config = {"process": {"user": {"uid": 1000, "gid": 5}},
              "mounts": [{"source": "cgroup", "destination": "/sys/fs/cgroup", "type": "cgroup"}],
              "linux": {"namespaces": [{"type": "cgroup"}, {"type": "user"}],
                        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                        "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]}}
    assert owner(config, "v2") == (101000, 200005)
    assert owner(config, "hybrid") is None and owner(config, "v1") is None
    ro = {**config, "mounts": [{**config["mounts"][0], "options": ["ro"]}]}
    assert owner(ro, "v2") is None
    joined = {**config, "linux": {**config["linux"], "namespaces": [{"type": "cgroup", "path": "/proc/1/ns/cgroup"}]}}
    assert owner(joined, "v2") is None
    no_userns = {**config, "linux": {"namespaces": [{"type": "cgroup"}]}}
    assert owner(no_userns, "v2") == (1000, 5)
