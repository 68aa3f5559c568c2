"""Stage ``prepare``: turn verified raw files into ``results/data/NAME.h5``.

    python -m stages.prepare --dataset NAME --manifest data/raw/NAME/manifest.json \
        --out results/data/NAME.h5 [--params JSON]

Writes ``X`` float32 (N,C,H,W), ``y`` int64 (N,) and ``source_index`` int64 (N,) with attributes
``name``, ``n_clusters``, ``source``, ``raw_sha256``, ``preprocessing``, ``input_shape``,
``n_samples``, ``kind``, ``order_seed``, ``params`` and ``provenance``. Every raw file is re-hashed
against the manifest first. The samples are stored in a fixed random order (a permutation drawn
from ``order_seed``), so that the order of the file does not encode the label; sample ``i`` is
sample ``source_index[i]`` of the loader's (file) order.

A loader may return X as a scipy.sparse matrix (the Reuters tf-idf, 685,071 x 2,000): it is then
never densified whole; ``X`` is written as dense float32 rows in blocks of ``chunk_rows``, taken
in the fixed order (:func:`sparse_rows`), with the same attributes.
"""

from __future__ import annotations

import argparse
import logging

from stages.data.preparation import prepare
from stages.plumbing.cli import json_arg, main_for

log = logging.getLogger("stages.prepare")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="dataset name (see stages.data.registry)")
    parser.add_argument("--manifest", required=True, help="manifest.json written by stages.fetch")
    parser.add_argument("--out", required=True, help="output HDF5, e.g. results/data/NAME.h5")
    parser.add_argument("--params", type=json_arg, default=None,
                        help='dataset options as JSON, e.g. \'{"n_per_cluster": 50}\' (synthetic) '
                             'or \'{"scaling": "unit"}\' (usps)')
    return parser


def run(args: argparse.Namespace) -> None:
    prepare(args.dataset, args.manifest, args.out, args.params)


if __name__ == "__main__":
    main_for(build_parser, run)
