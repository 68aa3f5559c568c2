"""Command ``records``: the ``schedule: paper`` rows kept in ``docs/reproduction/``.

    python -m stages.records append RUN/results/tables/all.csv --config config/reproduce-X.yaml
    python -m stages.records append RUN/.../all.csv --config config/reproduce-X-bf16.yaml \
        --variant-of config/reproduce-X.yaml
    python -m stages.records table
    python -m stages.records papers [--out-dir docs/reproduction/papers]
    python -m stages.records rename --from rmn-gmm --to rmn-gmm-std --commit 772d96d \
        --config config/reproduce-rmn.yaml [--dataset fashion ...]

``append`` adds a finished run's rows of ``all.csv`` to ``docs/reproduction/all.csv`` and
rebuilds ``paper_vs_ours.md`` and the papers' tables (``papers/``) beside it. It refuses,
writing nothing, a row whose schedule is not ``paper``, whose commit is missing or is not an
ancestor of this checkout's HEAD, or that is already recorded (same dataset, method, seed and
config; ``--replace`` replaces it). ``table`` only rebuilds ``paper_vs_ours.md`` and
``papers/`` from the recorded rows. ``papers`` writes only each paper's tables, the Markdown,
LaTeX and HTML the workflow writes to ``results/paper/`` (:mod:`stages.reporting.paper_tables`),
from the recorded rows that are not variants, each table naming the config and commit of each
of our rows.

``rename`` gives recorded rows the name of the method that runs their recipe today, so that no
superseded reading is shown under a current method's name (a default changed after the run):
it renames the rows of method ``--from`` made with ``--config`` at ``--commit`` (a prefix of the
recorded commit; optionally only ``--dataset``), refuses (writing nothing) when no row matches or
when a renamed row would clash with a recorded one, and rebuilds the tables.

A run made to check a variant of a recorded run (the same methods and seeds under another
precision, say) is appended with ``--variant-of`` the recorded run's config. Its rows carry that
config in the ``variant_of`` column; they are left out of ``paper_vs_ours.md`` (which compares
the reference runs with the papers) and compared with their reference in ``variants.md``.
The work is done by :mod:`stages.reporting.records`.
"""

from __future__ import annotations

import argparse
import logging

from stages.plumbing.cli import main_for
from stages.reporting.records import (
    RECORDS,
    append,
    paper_tables_from_records,
    rebuild_table,
    rename,
)
from stages.reporting.tables import DEFAULT_REFERENCE

log = logging.getLogger("stages.records")


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``records``: append, table, papers, rename."""
    parser = argparse.ArgumentParser(prog="python -m stages.records", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("append", help="record a paper-schedule run's rows")
    add.add_argument("table", help="the run's results/tables/all.csv")
    add.add_argument("--config", required=True,
                     help="the config file layered on config.yaml, e.g. "
                          "config/reproduce-dec.yaml")
    add.add_argument("--replace", action="store_true", help="replace rows already recorded")
    add.add_argument("--variant-of", metavar="CONFIG",
                     help="the config of recorded rows this run is a variant of (e.g. "
                          "config/reproduce-dec.yaml for a bf16-mixed rerun); compared in "
                          "variants.md, left out of paper_vs_ours.md")
    sub.add_parser("table", help="rebuild docs/reproduction/paper_vs_ours.md and papers/")
    pap = sub.add_parser("papers", help="write each paper's tables from the records")
    pap.add_argument("--records", default=str(RECORDS / "all.csv"),
                     help="the records (default: %(default)s)")
    pap.add_argument("--out-dir", default=None,
                     help="where to write {paper}/{table}.md, .tex, .html (default: papers/ "
                          "beside the records)")
    pap.add_argument("--reference", default=str(DEFAULT_REFERENCE),
                     help="published-results CSV (default: %(default)s)")
    ren = sub.add_parser("rename", help="give recorded rows the name of the method that runs "
                                        "their recipe today")
    ren.add_argument("--from", dest="old", required=True, help="the recorded method name")
    ren.add_argument("--to", dest="new", required=True, help="the method's name today")
    ren.add_argument("--commit", required=True,
                     help="the commit the rows were made at (a prefix, >= 7 characters)")
    ren.add_argument("--config", required=True,
                     help="the config the rows were made with, e.g. config/reproduce-rmn.yaml")
    ren.add_argument("--dataset", action="append", dest="datasets", metavar="DATASET",
                     help="only this dataset's rows (repeatable; default: every dataset)")
    return parser


def run(args: argparse.Namespace) -> None:
    """Run the chosen subcommand."""
    if args.command == "append":
        n = append(args.table, args.config, replace=args.replace, variant_of=args.variant_of)
        log.info("recorded %d row(s) in %s", n, RECORDS / "all.csv")
    elif args.command == "rename":
        n = rename(args.old, args.new, commit=args.commit, config=args.config,
                   datasets=args.datasets, records=RECORDS)
        log.info("renamed %d row(s) of %s to %s in %s", n, args.old, args.new,
                 RECORDS / "all.csv")
    elif args.command == "papers":
        paths = paper_tables_from_records(args.records, args.out_dir, args.reference)
        log.info("wrote %d table files", len(paths))
    else:
        log.info("wrote %s", rebuild_table())


if __name__ == "__main__":
    main_for(build_parser, run)
