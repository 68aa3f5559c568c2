"""Stage ``aggregate``: collect per-run metrics into tables, beside the papers' numbers.

``python -m stages.aggregate --metrics results/metrics/D/M/seedS.json ... --out-dir results/tables
[--reference stages/reference/paper_results.csv] [--sweeps JSON]``: the tables of
:func:`stages.reporting.tables.aggregate` (all.csv, summary.csv, paper_vs_ours.md, sweeps.csv).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stages.plumbing.cli import json_arg, main_for
from stages.reporting.tables import DEFAULT_REFERENCE, aggregate

log = logging.getLogger("stages.aggregate")


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the aggregate stage."""
    parser = argparse.ArgumentParser(prog="python -m stages.aggregate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", nargs="+", required=True,
                        help="metrics JSONs from stages.evaluate (one per run)")
    parser.add_argument("--out-dir", required=True, help="folder for the tables")
    parser.add_argument("--reference", default=str(DEFAULT_REFERENCE),
                        help="published-results CSV (default: %(default)s); '' to skip")
    parser.add_argument("--sweeps", type=json_arg, default={"points": []},
                        help='JSON {"points": [...]}: the sweep points of the configuration '
                             "(stages.reporting.sweeps.sweep_index)")
    return parser


def run(args: argparse.Namespace) -> dict[str, Path]:
    """Aggregate the given metrics files into the tables."""
    paths = aggregate(args.metrics, args.out_dir, args.reference or None,
                      args.sweeps.get("points", []))
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


if __name__ == "__main__":
    main_for(build_parser, run)
