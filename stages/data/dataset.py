"""The prepared dataset that every later stage reads: ``results/data/{dataset}.h5``.

Arrays: ``X`` float32 ``(N, C, H, W)`` or ``(N, D)``; ``y`` int64 ``(N,)`` in ``0..n_clusters-1``.
Attributes: ``name``, ``n_clusters``, ``source``, ``raw_sha256``, ``preprocessing``,
``input_shape`` and a few more (see ``stages.prepare``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from stages.plumbing.artifacts import read_arrays
from stages.plumbing.errors import DataFileError

#: the array of a prepared file that holds extra samples for autoencoder training only
UNLABELLED = "X_unlabelled"
#: rows of X_unlabelled read and checked at a time
_READ_ROWS = 8192


@dataclass(frozen=True)
class Dataset:
    """A prepared dataset: X float32 (N, C, H, W) or (N, D), y int64 (N,), and its attributes."""

    X: np.ndarray
    y: np.ndarray
    name: str
    n_clusters: int
    input_shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])


def validate_arrays(X: np.ndarray, y: np.ndarray, n_clusters: int, where: str) -> None:
    """Check X and y of a dataset; :class:`DataFileError` prefixed with ``where`` otherwise.

    Checks: X is floating with shape (N, C, H, W) or (N, D), N > 0; y is integer (N,); the
    number of distinct labels equals ``n_clusters`` and they lie in ``0..n_clusters-1``; X is
    finite everywhere. X may be a scipy.sparse matrix (N, D) (its stored values are checked).
    """
    if X.ndim not in (2, 4) or not np.issubdtype(X.dtype, np.floating):
        raise DataFileError(f"{where}: X must be a float array (N,C,H,W) or (N,D), found "
                            f"{X.dtype} {X.shape}.")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataFileError(f"{where}: y must be an integer array (N,), found {y.dtype} {y.shape}.")
    if X.shape[0] != y.shape[0]:
        raise DataFileError(f"{where}: X has {X.shape[0]} samples but y has {y.shape[0]} labels.")
    if X.shape[0] == 0:
        raise DataFileError(f"{where}: the dataset is empty.")
    labels = np.unique(y)
    if labels.size != n_clusters:
        shown = labels.tolist() if labels.size <= 20 else f"{labels[:20].tolist()}..."
        raise DataFileError(f"{where}: wrong number of clusters: n_clusters is {n_clusters} but y "
                            f"has {labels.size} distinct labels {shown}.")
    if labels[0] != 0 or labels[-1] != n_clusters - 1:
        raise DataFileError(f"{where}: labels must be 0..{n_clusters - 1} (n_clusters="
                            f"{n_clusters}), found {labels[0]}..{labels[-1]}.")
    values = X.data if hasattr(X, "tocsr") else X  # a sparse matrix: its stored values
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise DataFileError(f"{where}: X holds {bad} non-finite values (NaN or Inf).")


def _int_attr(attrs: dict[str, Any], key: str, where: str) -> int:
    value = attrs.get(key)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DataFileError(f"{where}: attribute {key!r} missing or not an integer ({value!r}); "
                            "the file was not written by stages.prepare: rerun it.")
    return int(value)


def read_dataset(path: str | os.PathLike) -> Dataset:
    """Read and validate a dataset written by ``stages.prepare``.

    Returns a :class:`Dataset` with X as float32 and y as int64. Raises :class:`DataFileError`
    when the file is missing or corrupt, X and y differ in length, the labels do not match
    ``n_clusters`` ("wrong number of clusters", naming both numbers), the attribute
    ``input_shape`` disagrees with X, or X holds NaN/Inf.
    """
    where = str(path)
    arrays, attrs = read_arrays(path, required=("X", "y"))
    X, y = arrays["X"], arrays["y"]
    n_clusters = _int_attr(attrs, "n_clusters", where)
    validate_arrays(X, y, n_clusters, where)
    stored = attrs.get("input_shape", list(X.shape[1:]))
    if not isinstance(stored, list | tuple) or not all(isinstance(d, int) for d in stored):
        raise DataFileError(f"{where}: attribute input_shape must be a list of integers, "
                            f"found {stored!r}.")
    input_shape = tuple(stored)
    if input_shape != X.shape[1:]:
        raise DataFileError(f"{where}: attribute input_shape {list(input_shape)} disagrees with X "
                            f"of shape {X.shape}.")
    return Dataset(X=X.astype(np.float32, copy=False), y=y.astype(np.int64, copy=False),
                   name=str(attrs.get("name", os.path.basename(where))), n_clusters=n_clusters,
                   input_shape=input_shape, attrs=attrs)


def pretraining_inputs(path: str | os.PathLike, data: Dataset) -> np.ndarray:
    """The samples an autoencoder trains on: ``data.X`` (N, ...), followed by the file's
    ``X_unlabelled`` (M, ...) when it has one (e.g. STL-10's unlabelled images): (N + M, ...)
    float32. Only pretraining reads ``X_unlabelled``; every later stage sees X and y alone.

    Raises :class:`DataFileError` when ``X_unlabelled``'s samples differ in shape from X's or
    hold NaN/Inf.
    """
    where = str(path)
    try:
        with h5py.File(path, "r") as f:
            if UNLABELLED not in f:
                return data.X
            extra = f[UNLABELLED]
            if extra.shape[1:] != data.X.shape[1:]:
                raise DataFileError(f"{where}: {UNLABELLED} has samples of shape "
                                    f"{list(extra.shape[1:])}, X of {list(data.X.shape[1:])}; "
                                    "the file was not written by stages.prepare: rerun it.")
            n, m = data.n_samples, extra.shape[0]
            out = np.empty((n + m, *data.X.shape[1:]), dtype=np.float32)
            out[:n] = data.X
            for start in range(0, m, _READ_ROWS):
                block = out[n + start:n + min(m, start + _READ_ROWS)]
                extra.read_direct(block, np.s_[start:start + block.shape[0]])
                if not np.isfinite(block).all():
                    raise DataFileError(f"{where}: {UNLABELLED} holds non-finite values (NaN or "
                                        f"Inf) in rows {start}..{start + block.shape[0] - 1}.")
    except OSError as err:
        raise DataFileError(f"{where}: not a readable HDF5 file ({err}); delete it and rerun "
                            "stages.prepare.") from err
    return out
