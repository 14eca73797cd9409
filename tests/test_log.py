"""--debug and --log (issue 27 item 1): every step of create, start, exec, kill and delete
(crash.STEPS: the names PYRUNC_CRASH_AT takes) is logged with its duration and the config.json
field it carries out; --log FILE is opened before any work."""
from __future__ import annotations

import json
import re

from pyrunc import crash

from test_bad_input import fails

# runc's logfmt, one step a line
STEP = re.compile(r'^time="[0-9T:.\-]+Z" level=debug msg="(\w+):([\w-]+): (\S+) \(\d+\.\d+ ms\)"$')


def steps(text: str) -> list[tuple[str, str, str]]:
    return [m.groups() for m in map(STEP.match, text.splitlines()) if m]


def expected(op: str, *skip: str) -> list[tuple[str, str, str]]:
    return [(op, name, field) for name, field in crash.STEPS[op].items() if name not in skip]


def test_debug_shows_every_step_on_stderr(pyrunc, bundle, cid):
    bundle.args("sleep", "1000")
    run = pyrunc("--debug", "run", "-d", "-b", str(bundle.path), cid)
    got = steps(run.stderr)
    assert len(got) == len(run.stderr.splitlines()), run.stderr  # nothing but step lines
    # the init's steps come from another process: compare as sets, then the parent's order
    assert set(got) == {("create", "config", str(bundle.path / "config.json"))} | set(
        expected("create", "pid-file")) | set(expected("start")), got
    parent = [s for s in got if s[1] not in ("namespaces", "rootfs", "user")]
    assert parent == [("create", "config", str(bundle.path / "config.json"))] + [
        s for s in expected("create", "pid-file") if s[1] not in ("namespaces", "rootfs", "user")
    ] + expected("start")
    exec_ = pyrunc("--debug", "exec", cid, "true")
    assert sorted(steps(exec_.stderr)) == sorted(expected("exec", "pid-file"))
    assert steps(pyrunc("--debug", "kill", cid, "KILL").stderr) == expected("kill")
    pyrunc("--debug", "delete", "--force", cid)
    assert not pyrunc.list_ids()


def test_debug_to_log_file_in_both_formats(pyrunc, bundle, cid, tmp_path):
    bundle.args("sleep", "1000")
    text, js = tmp_path / "text.log", tmp_path / "json.log"
    r = pyrunc("--debug", "--log", str(text), "create", "-b", str(bundle.path), cid)
    assert r.stderr == ""  # with --log, nothing on stderr
    assert {s[:2] for s in steps(text.read_text())} >= {("create", n) for n in crash.STEPS["create"]} - {
        ("create", "pid-file")}
    pyrunc("--debug", "--log", str(js), "--log-format", "json", "delete", cid)
    lines = [json.loads(line) for line in js.read_text().splitlines()]
    assert [line["msg"].split(" (")[0] for line in lines] == [f"delete:{n}: {f}" for n, f in
                                                             crash.STEPS["delete"].items()]
    assert all(line["level"] == "debug" and line["time"] for line in lines)


def test_without_debug_nothing_is_logged(pyrunc, bundle, cid, tmp_path):
    log = tmp_path / "log"
    bundle.args("true")
    r = pyrunc("--log", str(log), "run", "-b", str(bundle.path), cid)
    assert (r.stderr, log.read_text()) == ("", "")  # created at start, empty on success


def test_log_opened_before_any_work(pyrunc, bundle, cid, tmp_path):
    bad = tmp_path / "no-such-dir" / "log"
    bundle.args("true")
    for argv in (["list"], ["run", "-b", str(bundle.path), cid], ["--debug", "state", cid]):
        r = pyrunc("--log", str(bad), *argv, check=False)
        assert r.returncode == 1
        fails(r, f"--log {bad}", "No such file or directory")
    assert not pyrunc.list_ids() and not bad.parent.exists()
    fails(pyrunc("--log", str(tmp_path), "list", check=False), "Is a directory")
