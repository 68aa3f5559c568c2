"""Stage ``paper_index``: the list of one paper's regenerated tables and figures.

``python -m stages.paper_index --paper dcec --files JSON [--missing JSON] --out
results/paper/dcec/all`` writes a Markdown index: every table (its Markdown inlined, with links
to the LaTeX and HTML versions) and every figure (a link), then the lines of ``--missing`` (what
is not drawn and why). ``--combine A B ... --out results/paper/all``
concatenates the papers' indexes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from stages.plumbing.artifacts import atomic_path
from stages.plumbing.cli import main_for
from stages.plumbing.errors import DataFileError


def json_list_arg(text: str) -> list:
    """argparse type for ``--files '["a.md", "b.png"]'`` (a JSON list). Here, not in
    stages/plumbing/cli.py, which every job runs: a change there reruns every job."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from err
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError("expected a JSON list")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.paper_index", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", help="the paper's id (dcec, depict, dscdan, saip, rmn-gmm)")
    p.add_argument("--files", type=json_list_arg, default=[],
                   help="JSON list of the paper's tables and figures")
    p.add_argument("--missing", type=json_list_arg, default=[],
                   help="JSON list of lines: the figures not drawn and why")
    p.add_argument("--combine", nargs="+", default=None, help="indexes to concatenate")
    p.add_argument("--out", required=True)
    return p


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


def run(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if args.combine:
        text = "\n".join(Path(p).read_text() for p in args.combine)
    elif args.paper:
        text = paper_index(args.paper, args.files, args.missing, out)
    else:
        raise DataFileError("give --paper PAPER --files JSON, or --combine INDEX ...")
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)
    return out


if __name__ == "__main__":
    main_for(build_parser, run)
