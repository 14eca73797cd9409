"""Requirement catalogue tooling: extract keyword sentences from the spec and
check that conformance/requirements.json accounts for every one of them.

  python3 conformance/catalogue.py extract [FILE...]   # candidate statements
  python3 conformance/catalogue.py check               # completeness + consistency
  python3 conformance/catalogue.py sync-tests          # refresh "tests" from markers

A statement is one Markdown source line of the spec (the spec writes one
sentence per line).  Its id is <doc>.<section-slug>.<n>, n counting keyword
lines inside the section, so ids stay stable for the pinned spec version.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from report import REQUIRES

HERE = Path(__file__).resolve().parent
SPEC_DIR = Path("/work/shared/reference/oci-runtime-spec-v1.3.0")
CATALOGUE = HERE / "requirements.json"
DOCS = ("runtime.md", "runtime-linux.md", "config.md", "config-linux.md",
        "bundle.md", "features.md", "features-linux.md")
# Longest alternatives first so "MUST NOT" is not counted as "MUST".
KEYWORD_RE = re.compile(r"\b(MUST NOT|MUST|REQUIRED|SHALL NOT|SHALL|SHOULD NOT|SHOULD)\b")
MUST_CLASS = ("MUST", "MUST NOT", "REQUIRED", "SHALL", "SHALL NOT")
HEADING_RE = re.compile(r"^(#+)\s+(.*)$")
ANCHOR_RE = re.compile(r"<a name=\"[^\"]*\"\s*/>")


def slug(text: str) -> str:
    text = ANCHOR_RE.sub("", text).replace("`", "")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def level_of(keywords: list[str]) -> str:
    """The statement's level: its first MUST-class keyword, else its first keyword."""
    strong = [k for k in keywords if k in MUST_CLASS]
    return (strong or keywords)[0]


def extract(doc: str) -> list[dict]:
    out: list[dict] = []
    section, counts, in_code = "(top)", {}, False
    stem = doc.removesuffix(".md")
    for lineno, line in enumerate((SPEC_DIR / doc).read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        m = HEADING_RE.match(line)
        if m:
            section = ANCHOR_RE.sub("", m.group(2)).strip()
            continue
        keywords = KEYWORD_RE.findall(line)
        if not keywords:
            continue
        sec = slug(section)
        counts[sec] = counts.get(sec, 0) + 1
        out.append({"id": f"{stem}.{sec}.{counts[sec]}", "file": doc, "section": section,
                    "line": lineno, "keywords": keywords, "level": level_of(keywords),
                    "text": line.strip()})
    return out


def marker_ids(tests_dir: Path = HERE / "tests") -> dict[str, list[str]]:
    """Map requirement id -> test ids, from @pytest.mark.req markers seen by pytest collection."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only",
                        "-p", "no:cacheprovider", "--req-report", out.name, str(tests_dir)],
                       check=True, capture_output=True, cwd=tests_dir)
        collected = json.loads(Path(out.name).read_text())
    found: dict[str, list[str]] = {}
    for nodeid, rec in collected.items():
        for rid in rec["reqs"]:
            found.setdefault(rid, []).append(nodeid.split("/")[-1])
    return found


def load() -> list[dict]:
    return json.loads(CATALOGUE.read_text())["requirements"]


def check() -> int:
    cat = {r["id"]: r for r in load()}
    problems: list[str] = []
    for doc in DOCS:
        for cand in extract(doc):
            entry = cat.get(cand["id"])
            if entry is None:
                problems.append(f"missing {cand['id']} ({doc}:{cand['line']})")
            elif (entry["line"], entry["keywords"]) != (cand["line"], cand["keywords"]):
                problems.append(f"mismatch {cand['id']}: catalogue line/keywords differ from spec")
    known = {c["id"] for d in DOCS for c in extract(d)}
    problems += [f"stale {i}" for i in cat if i not in known]
    for r in cat.values():
        if not r.get("summary"):
            problems.append(f"no summary {r['id']}")
        app = r.get("applicability", "")
        if app != "linux" and not app.startswith("n/a:"):
            problems.append(f"bad applicability {r['id']}: {app!r}")
        if "deviation" in r and (not isinstance(r["deviation"], str) or not r["deviation"].strip()):
            problems.append(f"{r['id']}: a deviation must say what the runtime does instead")
        if r.get("not_observable") and r.get("tests"):
            problems.append(f"{r['id']}: marked not observable but claimed by tests")
        if r.get("requires", "") not in ("", *REQUIRES):
            problems.append(f"{r['id']}: unknown requires {r['requires']!r} (see report.REQUIRES)")
    markers = marker_ids()
    problems += [f"unknown id in test marker: {i}" for i in markers if i not in cat]
    problems += [f"stale tests list for {r['id']} (run sync-tests)" for r in cat.values()
                 if sorted(markers.get(r["id"], [])) != r.get("tests")]
    for line in problems:
        print(line)
    n_occ = sum(len(c["keywords"]) for d in DOCS for c in extract(d))
    print(f"{len(cat)} statements, {n_occ} keyword occurrences, {len(problems)} problems")
    return 1 if problems else 0


def sync_tests() -> None:
    data = json.loads(CATALOGUE.read_text())
    markers = marker_ids()
    for r in data["requirements"]:
        r["tests"] = sorted(markers.get(r["id"], []))
    CATALOGUE.write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "extract":
        for doc in argv[1:] or DOCS:
            for c in extract(doc):
                print(f"{c['id']}\t{c['level']}\t{c['line']}\t{c['text']}")
        return 0
    if cmd == "sync-tests":
        sync_tests()
        return 0
    return check()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
