"""Shallow baselines on raw inputs (k-means, diagonal GMM, spectral): ``python -m stages.baseline``.

Writes ``labels.h5`` with ``labels`` (N,) int64 and the same attributes as the finetune stage
(no ``embedding``: the method works on raw inputs).
"""

from __future__ import annotations

import argparse
import time

from stages.data import read_dataset
from stages.methods.shared.baselines import cluster_raw
from stages.plumbing.artifacts import write_arrays
from stages.plumbing.cli import json_arg, limit_threads, main_for
from stages.plumbing.provenance import provenance


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.baseline", description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--params", required=True, type=json_arg, help="resolved method recipe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="finetune/D/M/seedS/labels.h5")
    p.add_argument("--threads", type=int, default=None)
    return p


def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    limit_threads(args.threads)
    recipe = args.params
    data = read_dataset(args.data)
    labels = cluster_raw(data.X, data.n_clusters, recipe["algorithm"], recipe, args.seed)
    write_arrays(args.out, {"labels": labels},
                 {"stage": "baseline", "dataset": data.name, "method": recipe["name"],
                  "family": recipe["family"], "seed": args.seed, "n_clusters": data.n_clusters,
                  "timings": {"baseline": time.perf_counter() - t0},
                  "device": f"cpu ({args.threads or 'all'} threads)",
                  "provenance": provenance(recipe, args.seed)})


if __name__ == "__main__":
    main_for(build_parser, run)
