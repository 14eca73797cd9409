"""The documentation (issue 27 item 5): README.md and docs/*.md link only to what exists;
the man pages and the bash completion that hack/setup.sh generates (pyrunc.cli.docgen)
name every command and every flag that `--help` prints, render cleanly, and complete."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, pyrunc_binary

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


# the command table, read from --help as users see it
COMMANDS = re.findall(r"^   (\w+) ", subprocess.run([pyrunc_binary(), "--help"], capture_output=True, text=True)
                      .stdout.partition("COMMANDS:")[2].partition("GLOBAL OPTIONS:")[0], re.M)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """What hack/setup.sh installs, generated the same way into a directory of our own."""
    out = tmp_path_factory.mktemp("docgen")
    subprocess.run([sys.executable, "-m", "pyrunc.cli.docgen", str(out), str(out / "pyrunc.bash")], check=True)
    return out


def help_flags(*cmd: str) -> list[str]:
    """Every flag name in the OPTIONS of `pyrunc [CMD] --help` (`--bundle value, -b value`)."""
    text = subprocess.run([pyrunc_binary(), *cmd, "--help"], capture_output=True, text=True).stdout
    opts = text.partition("OPTIONS:\n")[2]
    columns = [line[3:].split("  ")[0] for line in opts.splitlines() if line.startswith("   -")]
    return [part.split()[0] for col in columns for part in col.split(", ")]


def complete(generated: Path, *words: str, pyrunc: str = "pyrunc", cwd: Path | None = None) -> list[str]:
    """What bash offers for `pyrunc WORDS...<TAB>` (the last word being the one completed)."""
    quoted = " ".join(f"'{w}'" for w in (pyrunc, *words))
    script = (f"source {generated / 'pyrunc.bash'}; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; "
              'COMPREPLY=(); _pyrunc; printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, cwd=cwd).stdout
    return out.split()


def test_every_command_has_a_man_page_and_a_completion(generated: Path) -> None:
    assert len(COMMANDS) > 10 and "delete" in COMMANDS
    assert sorted(p.name for p in generated.glob("*.8")) == sorted(["pyrunc.8"] + [f"pyrunc-{c}.8" for c in COMMANDS])
    assert complete(generated, "") == COMMANDS + ["help"]
    assert complete(generated, "help", "") == COMMANDS
    main = (generated / "pyrunc.8").read_text()
    assert [c for c in COMMANDS if f".B {c}\n" not in main or f"pyrunc\\-{c}\\fR(8)" not in main] == []


@pytest.mark.parametrize("cmd", [None, *COMMANDS])
def test_every_flag_of_help_is_in_the_man_page_and_the_completion(generated: Path, cmd: str | None) -> None:
    flags = help_flags(*filter(None, [cmd]))
    assert flags or cmd in ("start", "state", "features", "pause", "resume")
    page = (generated / (f"pyrunc-{cmd}.8" if cmd else "pyrunc.8")).read_text().replace("\\-", "-")
    assert [f for f in flags if f"\\fB{f}\\fR" not in page] == []
    offered = complete(generated, *filter(None, [cmd]), "-")
    assert sorted(offered) == sorted(flags)


def man_renderer() -> list[str] | None:
    """A command that formats a page and prints roff's warnings, or None."""
    if shutil.which("man"):
        return ["man", "--warnings=w", "-l"]  # groff's "w": every warning
    if shutil.which("groff"):
        return ["groff", "-man", "-ww", "-z"]
    if shutil.which("mandoc"):
        return ["mandoc", "-W", "warning", "-T", "utf8"]  # messages on stderr (-T lint would print them on stdout)
    return None


def render(page: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*man_renderer(), str(page)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "MANWIDTH": "80", "LANG": "C.UTF-8"})


@pytest.mark.skipif(man_renderer() is None, reason="neither man, groff nor mandoc is installed")
def test_man_pages_render_without_warnings(generated: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.8"
    bad.write_text('.TH BAD 8\n.SH NAME\nbad \\- a page\n.NOSUCHMACRO\n')
    assert render(bad).stderr  # the renderer does report warnings
    for page in sorted(generated.glob("*.8")):
        proc = render(page)
        assert (page.name, proc.returncode, proc.stderr) == (page.name, 0, "")


def test_completion_completes_commands_flags_values_and_ids(generated: Path, tmp_path: Path) -> None:
    registered = subprocess.run(["bash", "-c", f"source {generated / 'pyrunc.bash'}; complete -p pyrunc"],
                                capture_output=True, text=True).stdout
    assert registered.split()[-3:] == ["-F", "_pyrunc", "pyrunc"]
    assert complete(generated, "del") == ["delete"]
    assert complete(generated, "delete", "--f") == ["--force"]
    assert complete(generated, "--root", "/x", "--debug", "ki") == ["kill"]
    assert complete(generated, "exec", "--cw") == ["--cwd"]
    (tmp_path / "bundle1").mkdir()
    assert complete(generated, "create", "--bundle", "bun", cwd=tmp_path) == ["bundle1"]
    assert complete(generated, "create", "--bundle", "=", "bun", cwd=tmp_path) == ["bundle1"]
    # container ids come from `pyrunc list -q` of the pyrunc being completed, with its --root
    fake = tmp_path / "fake-pyrunc"
    fake.write_text(f"#!/bin/sh\necho \"$*\" > {tmp_path}/asked\necho abc abd xyz\n")
    fake.chmod(0o755)
    assert complete(generated, "--root", "/r", "delete", "-f", "a", pyrunc=str(fake)) == ["abc", "abd"]
    assert (tmp_path / "asked").read_text() == "--root /r list -q\n"
    assert complete(generated, "delete", "abc", "a", pyrunc=str(fake)) == []  # one id only
    assert complete(generated, "list", "a", pyrunc=str(fake)) == []  # list takes no id
