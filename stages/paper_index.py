"""Stage ``paper_index``: the list of one paper's regenerated tables and figures.

``python -m stages.paper_index --paper dcec --files JSON [--missing JSON] --out
results/paper/dcec/all`` writes a Markdown index: every table (its Markdown inlined, with links
to the LaTeX and HTML versions) and every figure (a link), then the lines of ``--missing`` (what
is not drawn and why). ``--combine A B ... --out results/paper/all``
concatenates the papers' indexes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.plumbing.artifacts import atomic_path
from stages.plumbing.cli import json_list_arg, main_for
from stages.plumbing.errors import DataFileError
from stages.reporting.paper_index import paper_index


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the paper_index jobs."""
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


def run(args: argparse.Namespace) -> Path:
    """Write one paper's index, or the papers' indexes concatenated."""
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
