"""Write a verified dataset into the prepared HDF5 file (the ``prepare`` stage,
``python -m stages.prepare``): fixed random order, dense or block-written rows."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import issparse

from stages.data.dataset import validate_arrays
from stages.data.manifest import verify_manifest
from stages.data.registry import get_dataset_spec
from stages.data.sources import load_arrays, resolve_params
from stages.plumbing.artifacts import ChunkedArray, write_arrays
from stages.plumbing.provenance import provenance

log = logging.getLogger("stages.data.preparation")

#: seed of the fixed permutation every prepared dataset is stored in (recorded as ``order_seed``)
ORDER_SEED = 0
#: rows of a sparse X densified and written at a time (2,000 features: 33 MB of float32)
CHUNK_ROWS = 4096


def sample_order(n_samples: int, seed: int = ORDER_SEED) -> np.ndarray:
    """The fixed permutation (n_samples,) int64 of the loader's order a dataset is stored in."""
    return np.random.default_rng(seed).permutation(n_samples).astype(np.int64)


def sparse_rows(X: Any, order: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> ChunkedArray:
    """Rows ``order`` of the sparse matrix ``X`` (N, D) as dense float32 blocks of at most
    ``chunk_rows`` rows: one block in memory at a time, never the dense (N, D) array."""
    X = X.tocsr()
    n = len(order)

    def blocks():
        for start in range(0, n, chunk_rows):
            yield X[order[start:start + chunk_rows]].toarray().astype(np.float32, copy=False)

    return ChunkedArray(shape=tuple(X.shape), dtype="float32", blocks=blocks,
                        description=f"dense float32 rows of a sparse matrix ({X.nnz:,} non-zeros), "
                                    f"written {chunk_rows} rows at a time")


def prepare(dataset: str, manifest: str | os.PathLike, out: str | os.PathLike,
            params: Mapping[str, Any] | None = None, *, chunk_rows: int = CHUNK_ROWS) -> Path:
    """Verify the manifest, build X and y, validate them and write the HDF5 atomically.

    A sparse X (scipy.sparse) is written in blocks of ``chunk_rows`` rows (:func:`sparse_rows`).
    """
    spec = get_dataset_spec(dataset)
    resolved = resolve_params(spec, params)
    record, files = verify_manifest(manifest, dataset)
    loaded = load_arrays(spec, files, resolved)
    is_sparse = issparse(loaded.X)
    X = (loaded.X.tocsr().astype(np.float32, copy=False) if is_sparse
         else np.ascontiguousarray(loaded.X, dtype=np.float32))
    y = np.ascontiguousarray(loaded.y, dtype=np.int64)
    validate_arrays(X, y, loaded.n_clusters, f"{dataset} (built from {manifest})")
    order = sample_order(X.shape[0])
    y = np.ascontiguousarray(y[order])
    if not is_sparse:
        X = np.ascontiguousarray(X[order])
    attrs = {
        "name": dataset,
        "n_clusters": int(loaded.n_clusters),
        "source": str(record.get("source", "")),
        "raw_sha256": {entry["name"]: entry["sha256"] for entry in record["files"]},
        "preprocessing": f"{loaded.preprocessing}; samples stored in a fixed random order "
                         f"(permutation of seed {ORDER_SEED}, source_index = file position)",
        "input_shape": list(X.shape[1:]),
        "n_samples": int(X.shape[0]),
        "kind": str(record.get("kind", spec.kind)),
        "order_seed": ORDER_SEED,
        "params": resolved,
        "provenance": provenance({"dataset": dataset, "params": resolved,
                                  "manifest": str(manifest)}, seed=resolved.get("seed")),
    }
    # loaded.extra (e.g. X_unlabelled): written block by block, in its own order, never read as X
    if is_sparse:  # X dense only block by block, in the fixed order
        write_arrays(out, {"y": y, "source_index": order}, attrs,
                     chunked={"X": sparse_rows(X, order, chunk_rows), **loaded.extra})
    else:
        write_arrays(out, {"X": X, "y": y, "source_index": order}, attrs, chunked=loaded.extra)
    log.info("%s: wrote %s, X %s, %d clusters", dataset, out, X.shape, loaded.n_clusters)
    return Path(out)
