"""Run the conformance suite against a runtime and report requirement coverage.

  python3 conformance/report.py --runtime PATH [--format text|json] [-- PYTEST ARGS...]

Per spec file and level: requirements that apply to a Linux runtime, how many are
covered by a test, passed (every covering test passed), failed (some covering
test failed) and not covered; then the ids of failing and uncovered ones.
Requirements marked n/a in requirements.json are counted separately.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LEVELS = ("MUST", "MUST NOT", "REQUIRED", "SHALL", "SHALL NOT", "SHOULD", "SHOULD NOT")
MUST_CLASS = {"MUST", "MUST NOT", "REQUIRED", "SHALL", "SHALL NOT"}


def run_suite(runtime: str, extra: list[str]) -> tuple[dict, str, int]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--runtime", runtime,
             "--req-report", out.name, str(HERE / "tests"), *extra],
            cwd=HERE / "tests", capture_output=True, text=True)
        text = Path(out.name).read_text() if Path(out.name).stat().st_size else "{}"
    tail = "\n".join(proc.stdout.strip().splitlines()[-1:])
    return json.loads(text), tail, proc.returncode


def evaluate(catalogue: list[dict], results: dict) -> dict:
    by_req: dict[str, list[tuple[str, str]]] = {}
    for nodeid, rec in results.items():
        for rid in rec["reqs"]:
            by_req.setdefault(rid, []).append((nodeid, rec["outcome"] or "not run"))
    groups: dict[tuple[str, str], dict] = {}
    failing: list[dict] = []
    uncovered: list[dict] = []
    na = 0
    for r in catalogue:
        if r["applicability"] != "linux":
            na += 1
            continue
        g = groups.setdefault((r["file"], r["level"]), {"applicable": 0, "covered": 0,
                                                        "passed": 0, "failed": 0,
                                                        "not_covered": 0})
        g["applicable"] += 1
        tests = by_req.get(r["id"], [])
        if not tests:
            g["not_covered"] += 1
            uncovered.append({"id": r["id"], "level": r["level"], "note": r.get("note", "")})
            continue
        g["covered"] += 1
        bad = [t for t, outcome in tests if outcome != "passed"]
        if bad:
            g["failed"] += 1
            failing.append({"id": r["id"], "level": r["level"], "summary": r["summary"],
                            "tests": bad})
        else:
            g["passed"] += 1
    must = [g for (f, lvl), g in groups.items() if lvl in MUST_CLASS]
    totals = {k: sum(g[k] for g in groups.values()) for k in
              ("applicable", "covered", "passed", "failed", "not_covered")}
    must_totals = {k: sum(g[k] for g in must) for k in totals}
    return {"groups": [{"file": f, "level": lvl, **g} for (f, lvl), g in
                       sorted(groups.items(), key=lambda kv: (kv[0][0], LEVELS.index(kv[0][1])))],
            "totals": totals, "must_totals": must_totals, "not_applicable": na,
            "failing": failing, "uncovered": uncovered}


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


def render_text(rep: dict) -> str:
    lines = [f"runtime: {rep['runtime']} ({rep['runtime_version']})",
             f"pytest:  {rep['pytest_summary']}", ""]
    head = f"{'spec file':<18} {'level':<10} {'appl':>5} {'covered':>8} {'passed':>7} " \
           f"{'failed':>7} {'not cov':>8}"
    lines += [head, "-" * len(head)]
    for g in rep["groups"]:
        lines.append(f"{g['file']:<18} {g['level']:<10} {g['applicable']:>5} {g['covered']:>8} "
                     f"{g['passed']:>7} {g['failed']:>7} {g['not_covered']:>8}")
    t, m = rep["totals"], rep["must_totals"]
    lines += ["-" * len(head),
              f"{'all levels':<29} {t['applicable']:>5} {t['covered']:>8} {t['passed']:>7} "
              f"{t['failed']:>7} {t['not_covered']:>8}",
              f"{'MUST/MUST NOT/REQUIRED':<29} {m['applicable']:>5} {m['covered']:>8} "
              f"{m['passed']:>7} {m['failed']:>7} {m['not_covered']:>8}",
              "",
              f"MUST-class coverage {pct(m['covered'], m['applicable'])}, "
              f"pass rate {pct(m['passed'], m['applicable'])}; "
              f"{rep['not_applicable']} requirements not applicable to a Linux runtime.",
              "", f"failing ({len(rep['failing'])}):"]
    for f in rep["failing"]:
        lines.append(f"  {f['id']} [{f['level']}] {f['summary']}")
        lines += [f"      {t}" for t in f["tests"]]
    lines += ["", f"not covered ({len(rep['uncovered'])}):"]
    for u in rep["uncovered"]:
        lines.append(f"  {u['id']} [{u['level']}] {u['note']}".rstrip())
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", default="runc")
    ap.add_argument("--format", choices=("text", "json"), default="text")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()
    runtime = shutil.which(args.runtime) or args.runtime
    version = subprocess.run([runtime, "--version"], capture_output=True, text=True)
    catalogue = json.loads((HERE / "requirements.json").read_text())["requirements"]
    results, summary, rc = run_suite(runtime, args.pytest_args)
    if rc not in (0, 1) or not results:
        print(f"test run failed (pytest rc={rc}): {summary}", file=sys.stderr)
        return 2
    rep = {"runtime": runtime,
           "runtime_version": (version.stdout.splitlines() or ["unknown"])[0],
           "pytest_summary": summary, **evaluate(catalogue, results)}
    print(json.dumps(rep, indent=1) if args.format == "json" else render_text(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
