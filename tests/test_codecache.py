"""The launcher's code cache: modules come from it while their sources are unchanged,
from the sources as soon as one is edited, and the commands never import `os`."""
import marshal
import shutil
import subprocess
import sys

import pytest

from helpers import REPO

PROBE = """
import sys
sys.path[:0] = [{runtime!r}]
from pyrunc import codecache
codecache.install({cache!r})
import pyrunc.cli, pyrunc.errors
print(type(pyrunc.cli.__spec__.loader).__name__, type(pyrunc.errors.__spec__.loader).__name__,
      pyrunc.errors.__file__, getattr(pyrunc.errors, "MARK", None), "os" in sys.modules)
"""


def _probe(runtime, cache) -> list[str]:
    out = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE.format(runtime=str(runtime), cache=str(cache))],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return out.split()


def test_served_from_cache_until_a_source_changes(tmp_path):
    runtime = tmp_path / "runtime"
    shutil.copytree(REPO / "runtime" / "pyrunc", runtime / "pyrunc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "pyrunc.code"
    subprocess.run([sys.executable, "-I", str(runtime / "pyrunc" / "codecache.py"), str(runtime / "pyrunc"),
                    str(cache)], check=True, capture_output=True, timeout=60)
    errors = runtime / "pyrunc" / "errors.py"
    assert _probe(runtime, cache) == ["CodeCache", "CodeCache", str(errors), "None", "False"]
    errors.write_text(errors.read_text() + "\nMARK = 'edited'\n")
    loader_cli, loader_errors, _, mark, _ = _probe(runtime, cache)
    assert (loader_cli, loader_errors, mark) == ("CodeCache", "SourceFileLoader", "edited")


@pytest.mark.parametrize("content", [None, b"", b"\x10\x00\x00\x00\x00\x00\x00\x00garbage",
                                     b"\x05\x00\x00\x00\x00\x00\x00\x00" + marshal.dumps(7)],
                         ids=["missing", "empty", "garbage", "not-an-index"])
def test_unusable_cache_means_normal_imports(tmp_path, content):
    cache = tmp_path / "pyrunc.code"
    if content is not None:
        cache.write_bytes(content)
    assert _probe(REPO / "runtime", cache)[:2] == ["SourceFileLoader", "SourceFileLoader"]


def test_installed_launcher_uses_the_cache():
    launcher = (REPO / ".venv" / "bin" / "pyrunc").read_text()
    assert "codecache.install(" in launcher and (REPO / ".venv" / "pyrunc.code").is_file()
