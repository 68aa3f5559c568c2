"""Stage ``paper_figure``: one of the papers' figures, drawn from files the workflow wrote.

``python -m stages.paper_figures --kind KIND --inputs JSON --spec JSON --out PNG [--threads N]``
draws one :class:`stages.reporting.figure_plan.FigureJob` (the plan says which files and what to
draw); ``KIND`` is one of :data:`stages.reporting.figure_plan.KINDS` (embeddings, stages,
running_time, agreement, sensitivity, snapshots, covariances, nearest_farthest), each drawn by
:mod:`stages.reporting.paper_figures` (what each kind shows: its docstring).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stages.plumbing.cli import json_arg, main_for
from stages.reporting.figure_plan import KINDS
from stages.reporting.paper_figures import make_paper_figure

log = logging.getLogger("stages.paper_figures")


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the paper_figure jobs."""
    p = argparse.ArgumentParser(prog="python -m stages.paper_figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--inputs", required=True, type=json_arg, help="JSON: input name -> path")
    p.add_argument("--spec", required=True, type=json_arg, help="JSON: what to draw")
    p.add_argument("--threads", type=int, default=None, help="cap on BLAS/OpenMP threads")
    p.add_argument("--out", required=True, help="results/paper/{paper}/{name}.png")
    return p


def run(args: argparse.Namespace) -> Path:
    """Draw the figure under the rule's thread cap."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):
        out = make_paper_figure(args.kind, args.inputs, args.spec, args.out)
    log.info("wrote %s", out)
    return out


if __name__ == "__main__":
    main_for(build_parser, run)
