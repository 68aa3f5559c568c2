"""Stage ``evaluate``: score one run's predicted labels against the true labels.

``python -m stages.evaluate --data results/data/D.h5 --labels results/finetune/D/M/seedS/labels.h5
--out results/metrics/D/M/seedS.json``: the record of :func:`stages.reporting.runs.evaluate`.
Inconsistent inputs raise :class:`DataFileError` and write nothing.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from stages.plumbing.artifacts import write_json
from stages.plumbing.cli import main_for
from stages.reporting.runs import evaluate

log = logging.getLogger("stages.evaluate")


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the evaluate stage."""
    parser = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="results/data/{dataset}.h5")
    parser.add_argument("--labels", required=True,
                        help="results/finetune/{dataset}/{method}/seed{seed}/labels.h5")
    parser.add_argument("--history", default=None,
                        help="the run's fine-tuning history.csv (deep methods), for diagnostics")
    parser.add_argument("--schedule", default=None, choices=["quick", "paper"],
                        help="the schedule the run was made with (config.yaml's schedule)")
    parser.add_argument("--out", required=True,
                        help="results/metrics/{dataset}/{method}/seed{seed}.json")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate and write the JSON record; return it."""
    record = evaluate(args.data, args.labels, args.history, args.schedule)
    write_json(args.out, record)
    m = record["metrics"]
    log.info("%s %s seed %d: ACC %.4f NMI(sqrt) %.4f ARI %.4f -> %s", record["dataset"],
             record["method"], record["seed"], m["acc"], m["nmi_sqrt"], m["ari"], args.out)
    return record


if __name__ == "__main__":
    main_for(build_parser, run)
