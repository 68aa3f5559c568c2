"""The index of one paper's regenerated tables and figures (the ``paper_index`` jobs).

:func:`paper_index` writes it in Markdown: every table (its Markdown inlined, with links to the
LaTeX and HTML versions) and every figure (a link), then the lines saying what is not drawn and
why.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stages.plumbing.errors import DataFileError


def paper_index(paper: str, files: Sequence[str], missing: Sequence[str], out: Path) -> str:
    """The Markdown index of ``paper``; links relative to ``out``'s folder."""
    def link(path: str) -> str:
        return Path(path).relative_to(out.parent).as_posix() if Path(path).is_relative_to(
            out.parent) else path

    lines = [f"# {paper}: tables and figures from our runs", ""]
    tables = [f for f in files if f.endswith(".md")]
    for table in tables:
        path = Path(table)
        if not path.is_file():
            raise DataFileError(f"{table}: the table is missing; rerun the paper_tables job "
                                "(snakemake results/paper/all)")
        others = ", ".join(f"[{s[1:]}]({link(str(path.with_suffix(s)))})"
                           for s in (".tex", ".html") if str(path.with_suffix(s)) in files)
        lines += [path.read_text().strip().replace("\n# ", "\n## ").replace("# ", "## ", 1),
                  "", f"Also as {others}." if others else "", ""]
    figures = [f for f in files if f.endswith(".png")]
    if figures:
        lines += ["## Figures", ""] + [f"- [{Path(f).stem}]({link(f)})" for f in figures] + [""]
    if missing:
        lines += ["## Not drawn", ""] + [f"- {line}" for line in missing] + [""]
    return "\n".join(lines).rstrip() + "\n"
