"""The cgroup v2 device filter: an eBPF program assembled here and loaded with bpf(2).

Imported only when a v2 device policy is applied. The raw syscall goes through
the shared syscall layer (syscalls.calls.bpf); the attr structs are packed here.
"""
from __future__ import annotations

import posix
import struct

from ..errors import SyscallError
from ..syscalls import calls as sc
from .devices import WILDCARD, Rule

BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6          # attach type
BPF_F_ALLOW_MULTI = 2
_ATTR_SIZE = 128               # zero-padded; the kernel ignores trailing zeros

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
# access_type = (access << 16) | type
_TYPE = {"b": 1, "c": 2}                  # BPF_DEVCG_DEV_BLOCK / _CHAR
_ACC = {"m": 1, "r": 2, "w": 4}           # BPF_DEVCG_ACC_MKNOD / READ / WRITE

# opcodes
_LDX_W = 0x61        # dst = *(u32 *)(src + off)
_AND32_K = 0x54      # dst &= imm
_RSH32_K = 0x74      # dst >>= imm
_MOV32_X = 0xbc      # dst = src
_MOV64_K = 0xb7      # dst = imm
_JNE_K = 0x56        # if (u32)dst != imm: pc += off   (BPF_JMP32)
_JEQ_K = 0x16        # if (u32)dst == imm: pc += off
_JA = 0x05           # pc += off
_EXIT = 0x95


def _insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    # imm is a signed 32-bit field; 32-bit compares make the sign irrelevant
    return struct.pack("<BBhI", op, (src << 4) | dst, off, imm & 0xFFFFFFFF)


def assemble(rules: list[Rule]) -> bytes:
    """Decide each requested access bit (m, r, w) on its own, like the v1 devices
    controller: the last rule naming the device and that bit decides it, none
    means deny; the request passes only if every bit it asks for is allowed.

    r2 = device type, r3 = requested access bits, r4 = major, r5 = minor.
    """
    # items: bytes, ("label", name), or a jump (op, dst, src, imm, label)
    code: list = [
        _insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),
        _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),
        _insn(_LDX_W, 4, 1, 4), _insn(_LDX_W, 5, 1, 8),
    ]
    deny = [_insn(_MOV64_K, 0, imm=0), _insn(_EXIT)]
    for bit in "mrw":
        done = f"{bit}:done"
        code += [_insn(_MOV32_X, 1, 3), _insn(_AND32_K, 1, imm=_ACC[bit]),
                 (_JEQ_K, 1, 0, 0, done)]          # bit not requested
        open_end = True
        for n, r in enumerate(reversed(rules)):
            if bit not in r.access:
                continue
            nxt = f"{bit}:{n}"
            tests = []
            if r.type != "a":
                tests.append((_JNE_K, 2, 0, _TYPE[r.type], nxt))
            if r.major != WILDCARD:
                tests.append((_JNE_K, 4, 0, r.major, nxt))
            if r.minor != WILDCARD:
                tests.append((_JNE_K, 5, 0, r.minor, nxt))
            code += tests
            code += [(_JA, 0, 0, 0, done)] if r.allow else deny
            code.append(("label", nxt))
            if not tests:
                open_end = False   # matches every device: earlier rules are unreachable
                break
        if open_end:
            code += deny           # no rule names this device for this bit
        code.append(("label", done))
    code += [_insn(_MOV64_K, 0, imm=1), _insn(_EXIT)]
    return _link(code)


def _link(code: list) -> bytes:
    """Resolve jump labels into instruction offsets."""
    where: dict[str, int] = {}
    pc = 0
    for item in code:
        if isinstance(item, tuple) and item[0] == "label":
            where[item[1]] = pc
        else:
            pc += 1
    out, pc = [], 0
    for item in code:
        if isinstance(item, tuple):
            if item[0] == "label":
                continue
            op, dst, src, imm, label = item
            item = _insn(op, dst, src, where[label] - pc - 1, imm)
        out.append(item)
        pc += 1
    return b"".join(out)


def _bpf(cmd: int, attr: bytearray, what: str) -> int:
    try:
        return sc.bpf(cmd, attr)
    except SyscallError as exc:
        raise SyscallError(f"bpf {what}", exc.errno or 0) from None


def _attr(fmt: str, *vals: object) -> bytearray:
    buf = bytearray(_ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *vals)
    return buf


def load(insns: bytes) -> int:
    """BPF_PROG_LOAD; on refusal retry with the verifier log for the message."""
    # the attr holds pointers to these: they must stay alive (and unresized) until loaded
    code, lic = bytearray(insns), bytearray(b"Apache\0")
    name = b"pyrunc_devices"

    def attr(log: bytearray | None) -> bytearray:
        return _attr("<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                     sc.buffer_address(code), sc.buffer_address(lic),
                     1 if log else 0, len(log) if log else 0,
                     sc.buffer_address(log) if log else 0, 0, 0, name)
    try:
        return _bpf(BPF_PROG_LOAD, attr(None), "BPF_PROG_LOAD")
    except SyscallError as exc:
        log = bytearray(1 << 16)
        try:
            posix.close(_bpf(BPF_PROG_LOAD, attr(log), "BPF_PROG_LOAD"))
        except SyscallError:
            pass
        msg = bytes(log).split(b"\0", 1)[0].decode(errors="replace").strip().splitlines()
        if msg:
            exc.prefix(f"verifier: {msg[-1]}")
        raise


def attached(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to the cgroup itself."""
    ids = bytearray(64 * 4)
    a = _attr("<IIIIQI", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, sc.buffer_address(ids), 64)
    _bpf(BPF_PROG_QUERY, a, "BPF_PROG_QUERY")
    count = struct.unpack_from("<I", a, 24)[0]
    return list(struct.unpack_from(f"<{count}I", ids))


def install(cgroup_dir: str, rules: list[Rule]) -> None:
    """Attach a program for ``rules`` to the cgroup, then detach the ones it replaces
    (attach first: for a moment both apply, which is stricter, never looser)."""
    prog = load(assemble(rules))
    cg = posix.open(cgroup_dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        old = attached(cg)
        _bpf(BPF_PROG_ATTACH, _attr("<IIII", cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI),
             "BPF_PROG_ATTACH")
        for pid in old:
            fd = _bpf(BPF_PROG_GET_FD_BY_ID, _attr("<I", pid), "BPF_PROG_GET_FD_BY_ID")
            try:
                _bpf(BPF_PROG_DETACH, _attr("<III", cg, fd, BPF_CGROUP_DEVICE), "BPF_PROG_DETACH")
            finally:
                posix.close(fd)
    finally:
        posix.close(cg)
        posix.close(prog)
