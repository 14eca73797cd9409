"""pyrunc.jsonio against the json package: same values, same text, same errors (pure logic)."""
import json
from pathlib import Path

import pytest

from pyrunc import jsonio

DOCS = [
    {"a": [1, 2.5, None, True, False, {"b": "ü\"x\n"}], "c": {}, "d": []},
    [], "str", 12, -3.5e10, {"ociVersion": "1.3.0", "annotations": {"k": "v"}},
    json.loads((Path(__file__).parent / "data" / "config-full.json").read_text()),
]


@pytest.mark.parametrize("doc", DOCS)
def test_round_trip_matches_json(doc):
    assert jsonio.loads(json.dumps(doc, indent=3)) == doc
    assert jsonio.dumps(doc) == json.dumps(doc, separators=(",", ":"))
    assert jsonio.dumps(doc, indent=2) == json.dumps(doc, indent=2)
    assert jsonio.loads(jsonio.dumps(doc).encode()) == doc


@pytest.mark.parametrize("bad", ["{", "{}x", "", "[1,]", '{"a" 1}', "nul"])
def test_errors_are_json_errors(bad):
    with pytest.raises(json.JSONDecodeError) as exc:
        jsonio.loads(bad)
    with pytest.raises(json.JSONDecodeError) as ref:
        json.loads(bad)
    assert (exc.value.lineno, exc.value.colno) == (ref.value.lineno, ref.value.colno)


def test_errors_in_a_fresh_interpreter():
    """The C scanner can only raise its error once json.decoder is imported."""
    import subprocess
    import sys
    runtime = str(Path(__file__).resolve().parents[1] / "runtime")
    code = (f"import sys; sys.path.insert(0, {runtime!r}); from pyrunc import jsonio\n"
            "try:\n    jsonio.loads('{\"a\": ,}')\nexcept ValueError as e:\n    print(e.lineno, e.colno)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["1", "7"], out.stderr


def test_state_path_imports_no_re():
    import subprocess
    import sys
    runtime = str(Path(__file__).resolve().parents[1] / "runtime")
    code = (f"import sys; sys.path.insert(0, {runtime!r}); import pyrunc.cli, pyrunc.cli.state, pyrunc.cli.list, "
            "pyrunc.cli.start, pyrunc.cli.delete, pyrunc.state, pyrunc.log; print('re' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
