"""Run the conformance suite against a runtime and report requirement coverage.

  python3 conformance/report.py --runtime PATH [--format text|json] [--save F] [--results F]
                                [--merge F]... [--strict] [-- PYTEST ARGS...]

Per spec file and level, each requirement that applies to a Linux runtime is one of:
passed (a covering test passed, none failed), failed (a covering test failed),
skipped (covered, but every covering test was skipped on this host, e.g. cgroup v2
tests on a hybrid host), not covered, blocked here (no test can run: the host lacks
what the catalogue's "requires" names), or not observable (catalogue
"not_observable": no client of the runtime can tell compliance from violation).
"covered" = passed + failed + skipped. n/a requirements are counted separately.
--merge folds in a run made elsewhere (hack/test-v2.sh writes the v2 guest's).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LEVELS = ("MUST", "MUST NOT", "REQUIRED", "SHALL", "SHALL NOT", "SHOULD", "SHOULD NOT")
MUST_CLASS = {"MUST", "MUST NOT", "REQUIRED", "SHALL", "SHALL NOT"}


def run_suite(runtime: str, extra: list[str]) -> tuple[dict, str, int, str]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--runtime", runtime,
             "--req-report", out.name, str(HERE / "tests"), *extra],
            cwd=HERE / "tests", capture_output=True, text=True)
        text = Path(out.name).read_text() if Path(out.name).stat().st_size else "{}"
    tail = "\n".join(proc.stdout.strip().splitlines()[-1:])
    return json.loads(text), tail, proc.returncode, proc.stdout


# Catalogue "requires": what a host needs before the requirement can be tested at all.
REQUIRES = {
    "resctrl": (lambda: "resctrl" in Path("/proc/filesystems").read_text().split(),
                "no resctrl filesystem in this kernel (needs Intel RDT / AMD PQoS hardware)"),
}
COUNTS = ("applicable", "covered", "passed", "failed", "skipped", "not_covered", "blocked",
          "not_observable")


def merge(results: dict, other: dict) -> None:
    """Fold in a run made elsewhere (e.g. the cgroup v2 guest): a test that ran there
    replaces the same test skipped or deselected here; new tests are added."""
    for nodeid, rec in other.items():
        mine = results.get(nodeid)
        if mine is None or (mine["outcome"] in (None, "skipped")
                            and rec["outcome"] not in (None, "skipped")):
            results[nodeid] = rec


def classify(r: dict, tests: list[tuple[str, str, str]]) -> tuple[str, list[str]]:
    """One applicable requirement -> (category, details)."""
    if r.get("not_observable"):
        return "not_observable", [r["not_observable"]]
    if not tests:
        need = REQUIRES.get(r.get("requires", ""))
        if need and not need[0]():
            return "blocked", [need[1]]
        return "not_covered", []
    bad = [t for t, outcome, _ in tests if outcome not in ("passed", "skipped")]
    if bad:  # a documented deviation still fails, with the reason beside it
        return "failed", ([f"documented deviation: {r['deviation']}"] if r.get("deviation") else []) + bad
    if all(outcome == "skipped" for _, outcome, _ in tests):
        return "skipped", sorted({reason for _, _, reason in tests})
    return "passed", []


def evaluate(catalogue: list[dict], results: dict) -> dict:
    by_req: dict[str, list[tuple[str, str, str]]] = {}
    for nodeid, rec in results.items():
        for rid in rec["reqs"]:
            by_req.setdefault(rid, []).append((nodeid, rec["outcome"] or "not run",
                                               rec.get("reason", "")))
    groups: dict[tuple[str, str], dict] = {}
    lists: dict[str, list[dict]] = {k: [] for k in COUNTS[3:]}
    na = 0
    for r in catalogue:
        if r["applicability"] != "linux":
            na += 1
            continue
        g = groups.setdefault((r["file"], r["level"]), dict.fromkeys(COUNTS, 0))
        g["applicable"] += 1
        kind, details = classify(r, by_req.get(r["id"], []))
        g[kind] += 1
        g["covered"] += kind in ("passed", "failed", "skipped")
        if kind != "passed":
            lists[kind].append({"id": r["id"], "level": r["level"], "summary": r["summary"],
                                "note": r.get("note", ""), "details": details})
    must = [g for (f, lvl), g in groups.items() if lvl in MUST_CLASS]
    return {"groups": [{"file": f, "level": lvl, **g} for (f, lvl), g in
                       sorted(groups.items(), key=lambda kv: (kv[0][0], LEVELS.index(kv[0][1])))],
            "totals": {k: sum(g[k] for g in groups.values()) for k in COUNTS},
            "must_totals": {k: sum(g[k] for g in must) for k in COUNTS},
            "not_applicable": na, **lists}


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


COLUMNS = (("applicable", "appl"), ("covered", "covered"), ("passed", "passed"),
           ("failed", "failed"), ("skipped", "skipped"), ("not_covered", "not cov"),
           ("blocked", "blocked"), ("not_observable", "not obs"))
SECTIONS = (("failed", "failing", "failing tests"),
            ("skipped", "covered but not run here", "skip reasons"),
            ("blocked", "blocked here", ""),
            ("not_observable", "not observable from outside the runtime", ""),
            ("not_covered", "not covered", ""))


def render_text(rep: dict) -> str:
    lines = [f"runtime: {rep['runtime']} ({rep['runtime_version']})",
             f"pytest:  {rep['pytest_summary']}"]
    lines += [f"merged:  {m}" for m in rep["merged"]]
    row = "{:<18} {:<10}" + " {:>7}" * len(COLUMNS)
    head = row.format("spec file", "level", *(c[1] for c in COLUMNS))
    lines += ["", "MUST-class = MUST, MUST NOT, REQUIRED; covered = passed + failed + skipped",
              head, "-" * len(head)]
    for g in rep["groups"]:
        lines.append(row.format(g["file"], g["level"], *(g[c] for c, _ in COLUMNS)))
    t, m = rep["totals"], rep["must_totals"]
    lines += ["-" * len(head),
              row.format("all levels", "", *(t[c] for c, _ in COLUMNS)),
              row.format("MUST-class", "", *(m[c] for c, _ in COLUMNS)),
              "",
              f"MUST-class: covered {m['covered']}/{m['applicable']} "
              f"({pct(m['covered'], m['applicable'])}), passed {m['passed']}, failed {m['failed']}, "
              f"not run here {m['skipped']}, not covered {m['not_covered']}, "
              f"blocked here {m['blocked']}, not observable {m['not_observable']}; "
              f"{rep['not_applicable']} requirements not applicable to a Linux runtime."]
    for key, title, _ in SECTIONS:
        lines += ["", f"{title} ({len(rep[key])}):"]
        for e in rep[key]:
            if key in ("blocked", "not_observable"):  # details: the one reason
                lines.append(f"  {e['id']} [{e['level']}] {e['details'][0]}")
                continue
            text = e["summary"] if key in ("failed", "skipped") else e["note"]
            lines.append(f"  {e['id']} [{e['level']}] {text}".rstrip())
            lines += [f"      {d}" for d in e["details"]]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", default="runc")
    ap.add_argument("--format", choices=("text", "json"), default="text")
    ap.add_argument("--results", metavar="FILE",
                    help="report on a saved run (pytest --req-report FILE) instead of running")
    ap.add_argument("--save", metavar="FILE", help="also write this run's raw results to FILE")
    ap.add_argument("--merge", metavar="FILE", action="append", default=[],
                    help="fold in results saved elsewhere, e.g. by hack/test-v2.sh (repeatable)")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when a test failed (for CI), but for one whose every requirement is a "
                         "documented deviation (catalogue \"deviation\")")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()
    found = shutil.which(args.runtime)  # absolute: the suite runs from conformance/tests
    runtime = os.path.abspath(found) if found else args.runtime
    version = subprocess.run([runtime, "--version"], capture_output=True, text=True)
    catalogue = json.loads((HERE / "requirements.json").read_text())["requirements"]
    if args.results:
        results, rc, output = json.loads(Path(args.results).read_text()), 0, ""
        summary = f"saved results {args.results}"
    else:
        results, summary, rc, output = run_suite(runtime, args.pytest_args)
    if rc not in (0, 1) or not results:
        print(f"test run failed (pytest rc={rc}): {summary}", file=sys.stderr)
        return 2
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1))
    for path in args.merge:
        merge(results, json.loads(Path(path).read_text()))
    rep = {"runtime": runtime,
           "runtime_version": (version.stdout.splitlines() or ["unknown"])[0],
           "pytest_summary": summary, "merged": args.merge, **evaluate(catalogue, results)}
    print(json.dumps(rep, indent=1) if args.format == "json" else render_text(rep))
    deviating = {r["id"] for r in catalogue if r.get("deviation")}
    if args.strict and any(r["outcome"] in ("failed", "error") and not (r["reqs"] and set(r["reqs"]) <= deviating)
                           for r in results.values()):
        if rc == 1:
            print(output, file=sys.stderr)  # pytest's own account of this host's failures
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
