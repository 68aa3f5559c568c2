"""Every relative link of the user's guide resolves: README.md, docs/**/*.md, bench/README.md and
any README under config/ link only to files that exist and to #anchors that are a heading of the
target, as GitHub slugs headings."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: [text](target) with no nested brackets in the text; images too; the target up to a space or ")"
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def doc_files(repo: Path = REPO) -> list[Path]:
    """The Markdown files of the guide."""
    files = [repo / "README.md", repo / "bench" / "README.md",
             *sorted((repo / "docs").rglob("*.md")), *sorted((repo / "config").glob("README*.md"))]
    return [f for f in files if f.is_file()]


def _prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) of ``text`` outside fenced code blocks (links there are code)."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: Markdown marks and punctuation dropped, lower case, spaces
    to hyphens (``## Face datasets (user-supplied)`` -> ``face-datasets-user-supplied``)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = []
    for ch in text:
        if ch in " -_" or unicodedata.category(ch)[0] in "LNM":
            kept.append("-" if ch == " " else ch)
    return "".join(kept)


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the headings of ``path`` (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    """The relative links of ``path`` that do not resolve, each with the reason."""
    problems = []
    for number, line in _prose(path.read_text(encoding="utf-8")):
        line = re.sub(r"`[^`]*`", "", line)   # inline code is not a link
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):   # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            goal = path if not file_part else (path.parent / file_part).resolve()
            if not goal.exists():
                problems.append(f"{path.name} line {number}: {target}: no such file {goal}")
                continue
            if anchor and goal.is_file() and goal.suffix == ".md" and anchor not in anchors(goal):
                problems.append(f"{path.name} line {number}: {target}: no heading "
                                f"#{anchor} in {goal.name}")
    return problems


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_guide_has_its_pages() -> None:
    names = {p.relative_to(REPO).as_posix() for p in doc_files()}
    assert {"README.md", "bench/README.md", "docs/architecture.md",
            "docs/reproduction/README.md"} <= names


def test_the_readme_is_a_guide_of_at_most_300_lines() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 300


def test_github_slugs() -> None:
    assert slug("Face datasets (user-supplied)") == "face-datasets-user-supplied"
    assert slug("Reproducing a paper's table") == "reproducing-a-papers-table"
    assert slug("Configuration (`config.yaml`)") == "configuration-configyaml"
    assert slug("Intel Xeon with AMX (2026-12-06)") == "intel-xeon-with-amx-2026-12-06"
    assert slug("Stage 3: [default] readings") == "stage-3-default-readings"
    assert slug("STL-10 features") == "stl-10-features"


def test_the_checker_finds_a_missing_file_a_missing_anchor_and_ignores_code(tmp_path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[good](other.md#a-section) and [repeat](other.md#a-section-1) and [self](#page)\n"
        "[gone](missing.md) and [bad anchor](other.md#no-such-section) and [web](https://x.y/z)\n"
        "`[code](nowhere.md)` is code\n\n"
        "```\n[fenced](nowhere.md)\n```\n"
        "[bad self](#nope)\n")
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "missing.md: no such file" in problems[0]
    assert "no heading #no-such-section in other.md" in problems[1]
    assert "#nope: no heading #nope in page.md" in problems[2]
