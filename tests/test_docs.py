"""The documentation (issue 27 item 5): README.md and docs/*.md link only to what exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def unfenced(text: str) -> str:
    """The text outside fenced code blocks (where `# comment` is no heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def anchors(page: Path) -> set[str]:
    return {slug(m[1]) for m in re.finditer(r"^#+ (.*)$", unfenced(page.read_text()), re.M)}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(re.sub(r"`[^`\n]*`", "", unfenced(page.read_text()))):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not ours to check here
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no {dest}")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Some `code` title: here\n")
    page = tmp_path / "page.md"
    page.write_text("# Top\n[a](#top) [b](other.md#some-code-title-here) `[c](nowhere.md)`\n"
                    "[d](missing.md) [e](#nope) [f](other.md#top) [g](https://example.org/x)\n")
    assert [b.split(":")[0] for b in broken_links(page)] == ["missing.md", "#nope", "other.md#top"]


def test_readme_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert [p.name for p in PAGES[1:] if f"(docs/{p.name})" not in readme] == []
