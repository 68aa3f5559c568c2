"""Stage ``papers``: the papers' result tables in their own layout, ours beside theirs.

``python -m stages.papers --summary results/tables/summary.csv --out-dir results/paper
[--papers dcec ...] [--reference stages/reference/paper_results.csv]``: the Markdown and LaTeX
tables of :func:`stages.paper_tables.write_paper_tables`, one pair per paper and table.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stages.cli import main_for
from stages.paper_tables import write_paper_tables
from stages.tables import DEFAULT_REFERENCE

log = logging.getLogger("stages.papers")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.papers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summary", required=True, help="results/tables/summary.csv")
    p.add_argument("--out-dir", required=True, help="folder for {paper}/{table}.md and .tex")
    p.add_argument("--reference", default=str(DEFAULT_REFERENCE),
                   help="published-results CSV (default: %(default)s)")
    p.add_argument("--papers", nargs="*", default=None, help="only these papers (default: all)")
    return p


def run(args: argparse.Namespace) -> list[Path]:
    paths = write_paper_tables(args.summary, args.out_dir, args.reference, args.papers)
    log.info("wrote %d files under %s", len(paths), args.out_dir)
    return paths


if __name__ == "__main__":
    main_for(build_parser, run)
