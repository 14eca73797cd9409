"""A small client for the Kubernetes CRI (runtime.v1) as the kubelet speaks it: gRPC
over the runtime's unix socket. The stubs are generated at test time from our own
cri/api.proto with grpcio-tools (no generated code is kept in the tree), and every call
is recorded, with what it returned, for the lane's report."""
from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from engine_helpers import TIMEOUT, run

try:  # the test extras (hack/setup.sh --test); without them only the CRI tests fail
    # grpc's fork handlers start threads in a forked child, and a child with threads cannot
    # unshare(CLONE_NEWUSER): the tests that fork in this pytest process (test_userns) would fail.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    import grpc
    from google.protobuf import json_format, text_format
except ImportError:
    grpc = None
if TYPE_CHECKING:
    from google.protobuf.message import Message

PROTO = Path(__file__).resolve().parent / "cri" / "api.proto"
IMAGE_RPCS = {"ImageStatus"}


def generate_stubs(out: Path) -> tuple[ModuleType, ModuleType]:
    """protoc api.proto into out/ and import it: (messages, services)."""
    out.mkdir(parents=True, exist_ok=True)
    proc = run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}",
                f"--python_out={out}", f"--grpc_python_out={out}", str(PROTO)])
    assert proc.returncode == 0, f"protoc failed: {proc.stderr}"
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")
    finally:
        sys.path.remove(str(out))


@dataclass
class CriCall:
    rpc: str
    code: str     # "OK" or the gRPC status code's name
    result: str   # the response in protobuf text form, or the error's details


class CriError(Exception):
    def __init__(self, rpc: str, code: str, details: str) -> None:
        super().__init__(f"{rpc}: {code}: {details}")
        self.code = code  # the gRPC status code's name: "NOT_FOUND", "UNKNOWN", ...
        self.details = details


class CriClient:
    """cri("RunPodSandbox", config={...}, runtime_handler="pyrunc") -> the response.

    Requests are given as their fields (dicts for messages, enum names as strings; the
    call's own deadline is `deadline`, as several requests have a `timeout` field); a gRPC
    error becomes CriError with its code and details."""

    def __init__(self, sock: str, stubs_dir: Path) -> None:
        if grpc is None:
            pytest.fail("grpcio/grpcio-tools not installed: run hack/setup.sh --test and use "
                        ".venv/bin/python", pytrace=False)
        self.pb, services = generate_stubs(stubs_dir)
        self.channel = grpc.insecure_channel(f"unix://{sock}")
        self.runtime = services.RuntimeServiceStub(self.channel)
        self.images = services.ImageServiceStub(self.channel)
        self.calls: list[CriCall] = []

    def __call__(self, rpc: str, /, *, deadline: float = TIMEOUT, **fields) -> Message:
        request = json_format.ParseDict(fields, getattr(self.pb, f"{rpc}Request")())
        stub = self.images if rpc in IMAGE_RPCS else self.runtime
        try:
            response = getattr(stub, rpc)(request, timeout=deadline)
        except grpc.RpcError as err:
            code, details = err.code().name, err.details() or ""
            self.calls.append(CriCall(rpc, code, details))
            raise CriError(rpc, code, details) from None
        self.calls.append(CriCall(rpc, "OK", summary(response)))
        return response

    def close(self) -> None:
        self.channel.close()


def summary(response: Message) -> str:
    """One line, without the verbose info maps (whole specs as JSON)."""
    if "info" in response.DESCRIPTOR.fields_by_name:
        copy = type(response)()
        copy.CopyFrom(response)
        copy.ClearField("info")
        response = copy
    return text_format.MessageToString(response, as_one_line=True)


def report(calls: list[CriCall], replacements: dict[str, str], most: int = 12) -> list[str]:
    """Per RPC and outcome: how often, and the distinct results (ids, uids and times
    masked; at most `most` of them, each cut to 300 characters)."""
    seen: dict[tuple[str, str], list] = {}
    for call in calls:
        result = call.result
        for old, new in replacements.items():
            result = result.replace(old, new)
        result = re.sub(r"\b[0-9a-f]{64}\b", "<id>", result)
        result = re.sub(r"\b[0-9a-f]{16}\b", "<uid>", result)
        result = re.sub(r"\b(created_at|started_at|finished_at|timestamp): \d+", r"\1: <t>",
                        result)
        if len(result) > 300:
            result = result[:300] + " ..."
        entry = seen.setdefault((call.rpc, call.code), [0, []])
        entry[0] += 1
        if result not in entry[1]:
            entry[1].append(result)
    lines = []
    for (rpc, code), (count, results) in seen.items():
        lines.append(f"{rpc} x{count} -> {code}" + (f" ({len(results)} distinct)" if
                                                      len(results) > 1 else ""))
        lines += [f"    {r}" for r in results[:most] if r]
        if len(results) > most:
            lines.append(f"    ... {len(results) - most} more")
    return lines
