"""Initialise a clustering head on the embeddings: ``python -m stages.init``.

The recipe's ``algorithm`` names a function in ``stages.methods.INIT_ALGORITHMS``; its arrays
are written to ``--out`` with the upstream timings.
"""

from __future__ import annotations

import argparse
import importlib
import time

from stages.methods import init_algorithm
from stages.plumbing.artifacts import read_arrays, write_arrays
from stages.plumbing.cli import json_arg, limit_threads, main_for
from stages.plumbing.errors import DataFileError
from stages.plumbing.provenance import provenance


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.init", description=__doc__)
    p.add_argument("--embedding", required=True, help="embed/.../seedS.h5")
    p.add_argument("--params", required=True, type=json_arg, help="resolved init recipe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=None)
    return p


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
                  "precision": attrs.get("precision", "unknown"),
                  "provenance": provenance(recipe, args.seed)})


if __name__ == "__main__":
    main_for(build_parser, run)
