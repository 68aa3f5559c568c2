"""What a dataset loader returns and the checks every loader shares.

A loader (:data:`Loader`) takes the dataset's spec, its raw files (name -> path, already checked
against the manifest: :data:`Files`) and the resolved ``--params`` and returns :class:`Loaded`.
:func:`need_file`, :func:`mismatch` and :func:`check_count` turn a missing or wrong raw file into
a :class:`DataFileError` that says what was expected and how to replace it. The loaders live in
:mod:`stages.data.sources` and, for the larger datasets, in modules of their own
(:mod:`stages.data.faces`, :mod:`stages.data.reuters`, :mod:`stages.data.stl10`), which import
from here and are registered in :data:`stages.data.sources.LOADERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.data.registry import DatasetSpec
from stages.plumbing.artifacts import ChunkedArray
from stages.plumbing.errors import DataFileError

Files = Mapping[str, Path]


@dataclass(frozen=True)
class Loaded:
    """Arrays made from the raw files: X float32 (N, C, H, W), y int64 (N,). X may be a
    scipy.sparse matrix (N, D) (the Reuters tf-idf): prepare writes it in dense row blocks.

    ``extra``: arrays stored beside them block by block, in their own order and never read as X
    (e.g. ``X_unlabelled``, samples for autoencoder training only).
    """

    X: np.ndarray
    y: np.ndarray
    n_clusters: int
    preprocessing: str
    extra: Mapping[str, ChunkedArray] = field(default_factory=dict)


Loader = Callable[[DatasetSpec, Files, Mapping[str, Any]], Loaded]


def need_file(files: Files, name: str) -> Path:
    """The path of raw file ``name``; a :class:`DataFileError` when the manifest lists none."""
    try:
        return files[name]
    except KeyError:
        raise DataFileError(f"the manifest lists no raw file {name!r} (it has {sorted(files)}); "
                            "rerun fetch for this dataset.") from None


def replace_advice(spec: DatasetSpec, path: Path) -> str:
    """How to replace the wrong raw file ``path`` of ``spec``: by hand if user-supplied."""
    if spec.kind == "local-folder" and not all(f.pinned for f in spec.files):
        return (f"Replace it with the right file (from {spec.files[0].url}) in {path.parent}, "
                f"or set datasets.{spec.name}.source_dir to the folder holding it, then rerun "
                "fetch.")
    return f"Delete it and rerun stages.fetch --dataset {spec.name}."


def mismatch(spec: DatasetSpec, path: Path, found: str) -> DataFileError:
    """The error for raw files whose content is not the dataset's: what was expected, where."""
    return DataFileError(f"{path}: not the {spec.name} raw file: expected {spec.expected}; "
                         f"found {found}. {replace_advice(spec, path)}")


def check_count(spec: DatasetSpec, path: Path, n: int, what: str) -> None:
    """A :func:`mismatch` unless ``n`` (of ``what``) is the spec's ``n_samples`` (when set)."""
    if spec.n_samples is not None and n != spec.n_samples:
        raise mismatch(spec, path, f"{n:,} {what} instead of {spec.n_samples:,}")
