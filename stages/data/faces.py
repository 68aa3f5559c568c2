"""Loaders of the face datasets: JULE's CMU-PIE, YTF and FRGC, and RMN-GMM's full CMU-PIE.

All four are user-supplied (licensed face databases; no loader publishes a checksum of a copy,
see :mod:`stages.data.registry`), so each loader checks the file against the spec (layout,
``n_samples``, ``n_clusters``, ``input_shape``, pixel range) and says what was expected.

``cmu-pie``, ``ytf``, ``frgc``: JULE's ``data4torch.h5`` (jwyang/JULE.torch), the files DEPICT's
code reads as well (herandy/DEPICT ``functions.load_dataset``: ``data`` and ``labels`` of an HDF5
file). Their author says he mostly wrote such files from MATLAB as Height x Width x Channel x N
images and 1 x N labels (jwyang/JULE.torch issue #6), which h5py reads as ``(N, C, W, H)`` and
``(N, 1)``. Both JULE's ``train.lua`` and DEPICT's ``load_dataset`` feed the array to their
networks as it is stored, as ``(N, C, H, W)`` [code]; so does this loader (each image is then
likely the transpose of the photograph, which changes nothing for a network that learns its
filters; (N, H, W) is taken for one channel). DEPICT scales ``(x - 127.5) / 127.5`` [code]; here
pixels are divided by 255 and DEPICT's network maps [0, 1] to [-1, 1] itself (the same values).

``cmu-pie-41k``: RMN-GMM's CMU-PIE, "41,368 images of 68 people ... we take the raw data as the
input" [paper]; the user's 32x32 copy in the layout of the usual 32x32 face ``.mat`` files:
``fea`` (N, 1024), one image per row stored column-major (MATLAB order), ``gnd`` (N, 1).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from stages.data.archives import mat_variable
from stages.data.loading import (
    Files,
    Loaded,
    check_count,
    mismatch,
    need_file,
    replace_advice,
)
from stages.data.registry import CMU_PIE_41K_FILE, JULE_FILE, DatasetSpec
from stages.plumbing.errors import DataFileError

#: git blob ids of the files committed in jwyang/JULE.torch (``git ls-tree`` of master at
#: 69bdfd8; added in aad4c75, never changed): a user's copy with the same id is byte-identical to
#: the authors' file. The YTF file is in a Google Drive folder and has none.
JULE_GIT_BLOBS: dict[str, tuple[str, str]] = {
    "cmu-pie": ("datasets/CMU-PIE/data4torch.h5", "a0beb23100aa30180fb677f9a4d643983442d6c9"),
    "frgc": ("datasets/FRGC/data4torch.h5", "91e200768b454a6c238c5cb4abf16e756e6e9649"),
}


def git_blob_sha1(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Git's object id of the file at ``path``: SHA-1 of ``b"blob <size>\\0"`` + its bytes."""
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def h5_arrays(path: str | os.PathLike, keys: Sequence[str], expected: str) -> dict[str, np.ndarray]:
    """The datasets ``keys`` of the HDF5 file at ``path``, read whole into memory."""
    import h5py  # heavy import, only needed here

    try:
        with h5py.File(path, "r") as handle:
            missing = [k for k in keys if not isinstance(handle.get(k), h5py.Dataset)]
            if missing:
                found = ", ".join(sorted(handle.keys())) or "nothing"
                raise DataFileError(f"{path}: has no dataset {', '.join(map(repr, missing))} "
                                    f"(it holds {found}); expected {expected}.")
            return {k: np.asarray(handle[k][()]) for k in keys}
    except (OSError, ValueError, TypeError) as err:
        reason = " ".join(str(err).split())
        raise DataFileError(f"{path}: not a readable HDF5 file ({type(err).__name__}: {reason}); "
                            f"expected {expected}.") from err


T = TypeVar("T")


def _read(spec: DatasetSpec, path: Path, read: Callable[[], T]) -> T:
    """``read()``; a :class:`DataFileError` it raises gets the advice to replace the file."""
    try:
        return read()
    except DataFileError as err:
        raise DataFileError(f"{err} {replace_advice(spec, path)}") from err


def _shape(array: np.ndarray) -> str:
    return f"{array.dtype} {' x '.join(f'{s:,}' for s in array.shape)}"


def _stacked_images(spec: DatasetSpec, path: Path, data: np.ndarray) -> np.ndarray:
    """JULE's 'data' as stored -> (N, C, H, W); (N, H, W) is taken for one channel."""
    c, h, w = spec.input_shape
    images = data[:, None] if data.ndim == 3 and c == 1 else data
    if images.ndim != 4 or images.shape[1:] != (c, h, w):
        raise mismatch(spec, path, f"'data' {_shape(data)}")
    check_count(spec, path, images.shape[0], "images")
    return images


def _unit_pixels(spec: DatasetSpec, path: Path, pixels: np.ndarray, what: str) -> np.ndarray:
    """Pixel values 0..255 (any real dtype) -> float32 in [0, 1]; anything else is refused."""
    if pixels.dtype.kind not in "uif":
        raise mismatch(spec, path, f"{what} {_shape(pixels)} (not numbers)")
    if not np.isfinite(pixels).all():
        raise mismatch(spec, path, f"{what} with NaN or infinite values")
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if low < 0 or high > 255 or high <= 1:
        scaled = " (already scaled or whitened?)" if high <= 1 or low < 0 else ""
        raise mismatch(spec, path, f"{what} values {low:g}..{high:g}{scaled}")
    return pixels.astype(np.float32) / np.float32(255.0)


def _subject_labels(spec: DatasetSpec, path: Path, labels: np.ndarray, n: int,
                    what: str) -> tuple[np.ndarray, np.ndarray]:
    """(N,), (N, 1) or (1, N) subject ids -> (y int64 (N,) in 0..K-1, the K sorted ids)."""
    ok_shape = labels.ndim == 1 or (labels.ndim == 2 and 1 in labels.shape)
    if not ok_shape or labels.size != n or labels.dtype.kind not in "uif":
        raise mismatch(spec, path, f"{what} {_shape(labels)} for {n:,} images")
    flat = labels.reshape(-1)
    if not (np.isfinite(flat).all() and np.array_equal(flat, np.round(flat))):
        raise mismatch(spec, path, f"{what} that are not whole numbers")
    ids, y = np.unique(flat, return_inverse=True)
    if len(ids) != spec.n_clusters:
        raise mismatch(spec, path, f"{len(ids)} distinct {what} instead of {spec.n_clusters}")
    return y.astype(np.int64), ids


def _jule_identity(name: str, path: Path) -> str:
    """Whether the file is byte-identical to the one committed in jwyang/JULE.torch."""
    if name not in JULE_GIT_BLOBS:
        return "no published copy to compare with"
    where, blob = JULE_GIT_BLOBS[name]
    same = git_blob_sha1(path) == blob
    return (f"{'byte-identical to' if same else 'not byte-identical to'} jwyang/JULE.torch "
            f"{where} (git blob {blob[:12]})")


def _id_range(ids: np.ndarray) -> str:
    return f"{ids[0]:g}..{ids[-1]:g}"


def load_jule_h5(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    """JULE's data4torch.h5 -> X float32 (N, C, H, W) in [0, 1], y int64 (N,) in 0..K-1."""
    path = need_file(files, JULE_FILE)
    arrays = _read(spec, path, lambda: h5_arrays(path, ("data", "labels"), spec.expected))
    images = _stacked_images(spec, path, arrays["data"])
    X = _unit_pixels(spec, path, images, "'data'")
    y, ids = _subject_labels(spec, path, arrays["labels"], X.shape[0], "'labels'")
    c, h, w = spec.input_shape
    k = spec.n_clusters
    return Loaded(X, y, k,
                  f"{JULE_FILE} ({_jule_identity(spec.name, path)}): 'data' "
                  f"{_shape(arrays['data'])} taken as (N,{c},{h},{w}) in its stored axis order, "
                  "as JULE's train.lua and DEPICT's load_dataset read it [code]; images in file "
                  f"order; labels: the {k} sorted subject ids {_id_range(ids)} -> 0..{k - 1}; "
                  "pixels 0..255 / 255 -> float32 in [0,1] (DEPICT's (x-127.5)/127.5 [code] is "
                  "applied by its network); no shuffling")


def load_cai_mat(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    """'fea' (N, H*W) column-major rows and 'gnd' of a .mat -> X (N, 1, H, W) in [0, 1], y."""
    path = need_file(files, CMU_PIE_41K_FILE)
    fea = _read(spec, path, lambda: mat_variable(path, "fea", spec.expected))
    c, h, w = spec.input_shape
    if fea.ndim != 2 or fea.shape[1] != c * h * w:
        raise mismatch(spec, path, f"'fea' {_shape(fea)}")
    check_count(spec, path, fea.shape[0], "rows in 'fea'")
    gnd = _read(spec, path, lambda: mat_variable(path, "gnd", spec.expected))
    y, ids = _subject_labels(spec, path, gnd, fea.shape[0], "'gnd' labels")
    # each row is an H x W image stored column-major (MATLAB order): read it as W x H, transpose
    images = fea.reshape(-1, w, h).transpose(0, 2, 1)[:, None]
    X = _unit_pixels(spec, path, images, "'fea'")
    k = spec.n_clusters
    return Loaded(X, y, k,
                  f"{CMU_PIE_41K_FILE}: 'fea' {_shape(fea)}, rows in file order, each reshaped "
                  f"column-major (MATLAB order) to {h}x{w}; labels: the {k} sorted 'gnd' subject "
                  f"ids {_id_range(ids)} -> 0..{k - 1}; raw pixels (RMN-GMM: 'we take the raw "
                  f"data as the input') 0..255 / 255 -> float32 in [0,1]; (N,{c},{h},{w}); no "
                  "shuffling")
