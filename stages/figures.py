"""Stage ``figures``: one PNG per run with t-SNE maps and training curves.

``python -m stages.figures --data results/data/D.h5 --labels .../labels.h5
[--history .../finetune/.../history.csv] [--pretrain-history .../pretrain/.../history.csv]
--out results/figures/D/M/seedS.png [--n-points 1000] [--seed 0]``

Top row: t-SNE (``init="pca"``, 500 iterations) of a random subset of ``--n-points`` samples
(chosen with ``--seed``) of the run's embedding, or of the raw inputs flattened when the
labels file has no embedding, coloured by true label and by predicted cluster. Predicted
clusters take the colour of the class the Hungarian matching assigns them, so the two maps
compare at a glance. Second row, when given and not empty: the fine-tuning curve (loss; ACC
and NMI at each target update on a second axis) and the pretraining loss (with the held-out
reconstruction where one was kept). Third row, when the fine-tuning history has them: the
label-free diagnostics (sharpness, smallest and largest cluster share, labels changed, the
step of a collapse, the loss terms' gradient shares at the start).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stages.plumbing.cli import main_for
from stages.reporting.plots import make_figure

log = logging.getLogger("stages.figures")


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the figures stage."""
    parser = argparse.ArgumentParser(prog="python -m stages.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="results/data/{dataset}.h5")
    parser.add_argument("--labels", required=True,
                        help="results/finetune/{dataset}/{method}/seed{seed}/labels.h5")
    parser.add_argument("--history", default=None, help="fine-tuning history.csv (optional)")
    parser.add_argument("--pretrain-history", default=None,
                        help="pretraining history.csv (optional)")
    parser.add_argument("--out", required=True,
                        help="results/figures/{dataset}/{method}/seed{seed}.png")
    parser.add_argument("--n-points", type=int, default=1000,
                        help="samples in the t-SNE maps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the subset and of t-SNE (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap on BLAS/OpenMP threads (the rule's threads); default: the "
                             "libraries' own choice")
    return parser


def run(args: argparse.Namespace) -> Path:
    """Draw and write the figure (with at most ``args.threads`` BLAS/OpenMP threads)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):
        out = make_figure(args.data, args.labels, args.out, args.history,
                          args.pretrain_history, n_points=args.n_points, seed=args.seed)
    log.info("wrote %s", out)
    return out


if __name__ == "__main__":
    main_for(build_parser, run)
