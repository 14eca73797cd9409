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
print(type(pyrunc.cli.__loader__).__name__, type(pyrunc.errors.__loader__).__name__,
      pyrunc.errors.__file__, getattr(pyrunc.errors, "MARK", None), "os" in sys.modules)
"""

# What the cache's __import__ must do as the standard one does (run with the cache installed).
SEMANTICS = """
import sys
sys.path[:0] = [{runtime!r}]
from pyrunc import codecache
codecache.install({cache!r})
from pyrunc.cgroups import manager            # relative imports inside ("from .. import fs")
import pyrunc.cgroups.files as files           # a dotted import binds the submodule
import pyrunc.spec                              # returns the top package, binds its submodules
from pyrunc import state, crash                 # submodules named in a fromlist
import json                                     # not in the cache: the standard import
try:
    from pyrunc import no_such_module
except ImportError as exc:
    missing = type(exc).__name__
try:
    import pyrunc.broken
except ZeroDivisionError:
    pass
print(type(manager.__loader__).__name__, manager.fs is sys.modules["pyrunc.fs"],
      files is pyrunc.cgroups.files, pyrunc.spec.__name__, state.__name__, crash.__name__,
      type(json.__loader__).__name__, missing, "pyrunc.broken" in sys.modules,
      pyrunc.errors.__doc__, manager.__package__, pyrunc.cgroups.__package__)
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


def test_cache_import_semantics(tmp_path):
    """The cache's own __import__: relative and dotted imports, fromlists, a missing name,
    a module failing to run (not left half-made in sys.modules), docstrings stripped."""
    runtime = tmp_path / "runtime"
    shutil.copytree(REPO / "runtime" / "pyrunc", runtime / "pyrunc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (runtime / "pyrunc" / "broken.py").write_text("1 / 0\n")
    cache = tmp_path / "pyrunc.code"
    subprocess.run([sys.executable, "-I", str(runtime / "pyrunc" / "codecache.py"), str(runtime / "pyrunc"),
                    str(cache)], check=True, capture_output=True, timeout=60)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", SEMANTICS.format(runtime=str(runtime), cache=str(cache))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CodeCache", "True", "True", "pyrunc.spec", "pyrunc.state", "pyrunc.crash",
                                  "SourceFileLoader", "ImportError", "False", "None", "pyrunc.cgroups",
                                  "pyrunc.cgroups"]


LINES = """
import sys
sys.path[:0] = [{runtime!r}]
sys.argv[1:] = {argv!r}
from pyrunc import codecache
codecache.install({cache!r})
import pyrunc.cli
print(type(pyrunc.cli.__loader__).__name__, any(line for _, _, line in pyrunc.cli.main.__code__.co_lines()))
"""


@pytest.mark.parametrize("argv", [["state", "x"], ["--debug", "state", "x"]])
def test_line_numbers_only_with_debug(argv):
    """The cache's code has no line tables (a quarter less to unmarshal); --debug, which
    alone prints tracebacks, imports the usual way, with them."""
    probe = LINES.format(runtime=str(REPO / "runtime"), argv=argv, cache=str(REPO / ".venv" / "pyrunc.code"))
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True,
                         timeout=60).stdout.split()
    assert out == (["SourceFileLoader", "True"] if "--debug" in argv else ["CodeCache", "False"])
