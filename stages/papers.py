"""Stage ``papers``: the papers' result tables in their own layout, ours beside theirs.

``python -m stages.papers --summary results/tables/summary.csv --out-dir results/paper
[--papers dcec ...] [--reference stages/reference/paper_results.csv] [--sweeps-csv
results/tables/sweeps.csv --sweeps JSON]``: the Markdown, LaTeX and HTML tables of
:func:`stages.reporting.paper_tables.write_paper_tables`, one of each per paper and table, and one
per sweep (``--sweeps``: the sweep index rows with the base method's ``family``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stages.plumbing.cli import json_list_arg, main_for
from stages.reporting.paper_tables import write_paper_tables
from stages.reporting.tables import DEFAULT_REFERENCE

log = logging.getLogger("stages.papers")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.papers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summary", required=True, help="results/tables/summary.csv")
    p.add_argument("--out-dir", required=True, help="folder for {paper}/{table}.md and .tex")
    p.add_argument("--reference", default=str(DEFAULT_REFERENCE),
                   help="published-results CSV (default: %(default)s)")
    p.add_argument("--papers", nargs="*", default=None, help="only these papers (default: all)")
    p.add_argument("--sweeps-csv", default=None, help="results/tables/sweeps.csv")
    p.add_argument("--sweeps", type=json_list_arg, default=[],
                   help="JSON list of sweep index rows (sweep, method, base, point, values, "
                        "family)")
    return p


def run(args: argparse.Namespace) -> list[Path]:
    paths = write_paper_tables(args.summary, args.out_dir, args.reference, args.papers,
                               sweeps_path=args.sweeps_csv, sweeps=args.sweeps)
    log.info("wrote %d files under %s", len(paths), args.out_dir)
    return paths


if __name__ == "__main__":
    main_for(build_parser, run)
