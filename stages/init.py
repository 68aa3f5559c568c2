"""Initialise a clustering head on the embeddings: ``python -m stages.init``.

The recipe's ``algorithm`` names a function in ``stages.methods.INIT_ALGORITHMS``; its arrays
are written to ``--out`` with the upstream timings. ``kmeans``: scikit-learn k-means with
``n_init`` restarts (DCEC's code: 20) on Z (N, d); writes ``centres`` (K, d) float32 and
``labels`` (N,) int64. The other algorithms live with their methods (``gmm``, ``knn-graph``,
``acpic``: :mod:`stages.methods`).
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from stages.artifacts import read_arrays, write_arrays
from stages.cli import json_arg, limit_threads, main_for
from stages.errors import DataFileError
from stages.methods import init_algorithm
from stages.provenance import provenance


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.init", description=__doc__)
    p.add_argument("--embedding", required=True, help="embed/.../seedS.h5")
    p.add_argument("--params", required=True, type=json_arg, help="resolved init recipe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=None)
    return p


def kmeans_init(z: np.ndarray, n_clusters: int, n_init: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means on z (N, d) -> (centres (K, d) float32, labels (N,) int64)."""
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(z)
    return km.cluster_centers_.astype(np.float32), km.labels_.astype(np.int64)


def kmeans_arrays(z: np.ndarray, n_clusters: int, recipe: dict[str, Any],
                  seed: int) -> dict[str, np.ndarray]:
    """The ``kmeans`` init: ``centres`` (K, d) and ``labels`` (N,) of :func:`kmeans_init`."""
    centres, labels = kmeans_init(z, n_clusters, int(recipe.get("n_init", 20)), seed)
    return {"centres": centres, "labels": labels}


def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    limit_threads(args.threads)
    arrays, attrs = read_arrays(args.embedding, required=["Z"])
    recipe = args.params
    module, function = init_algorithm(recipe["algorithm"])
    init = getattr(importlib.import_module(module), function)
    result = init(arrays["Z"], int(attrs["n_clusters"]), recipe, args.seed)
    if "labels" not in result or result["labels"].shape != (arrays["Z"].shape[0],):
        raise DataFileError(f"init algorithm '{recipe['algorithm']}' returned no labels for the "
                            f"{arrays['Z'].shape[0]} rows of {args.embedding}")
    timings = {**attrs["timings"], "init": time.perf_counter() - t0}
    write_arrays(args.out, result,
                 {"stage": "init", "dataset": attrs["dataset"], "n_clusters": attrs["n_clusters"],
                  "timings": timings, "device": attrs["device"],
                  "provenance": provenance(recipe, args.seed)})


if __name__ == "__main__":
    main_for(build_parser, run)
