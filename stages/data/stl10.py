"""STL-10 as HOG + 8x8 colour map features (``stl10-hog``, the RMN-GMM paper's STL-10).

RMN-GMM (Wang & Jiang, Neurocomputing 2021, Sect. 4.1) clusters DEC's "STL-HOG" (Xie et al.
2016, Table 1: 13,000 points, 10 classes, 1,428 dims); this module computes it as ``load_stl``
in DEC's code (piiswrong/dec, dec/dec.py) does [code], in NumPy: Felzenszwalb's HOG with 8-pixel
cells (:func:`hog_features`, 10 x 10 interior cells x 13 = 1,300), then the Cr and Cb channels of
an 8x8 bilinear thumbnail (:func:`colour_map`, 128), scaled ``(hog - 0.2) * 10`` and
``(crcb - 128) / 10`` (:func:`stl_features`). From ``stl10_binary.tar.gz``: X (13,000, 1,428)
float32, train (5,000) then test (8,000), labels 1..10 -> 0..9. Param ``unlabelled`` (default
off) adds ``X_unlabelled`` (100,000, 1,428) float32, the unlabelled images' features computed
and written block by block, for autoencoder training only
(:func:`stages.data.dataset.pretraining_inputs`); no evaluation reads them.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from stages.data.archives import tar_members
from stages.data.loading import Files, Loaded, mismatch, need_file
from stages.data.registry import DatasetSpec
from stages.plumbing.artifacts import ChunkedArray
from stages.plumbing.errors import ConfigError, DataFileError

ARCHIVE = "stl10_binary.tar.gz"
FOLDER = "stl10_binary"
#: one image: 3 colour planes of 96 x 96 bytes
SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE
#: the labelled splits in the order they are concatenated (5,000 and 8,000 images)
SPLITS = ("train", "test")
UNLABELLED_MEMBER = "unlabeled_X.bin"
UNLABELLED_COUNT = 100_000
#: name of the array of unlabelled features in the prepared file
UNLABELLED_ARRAY = "X_unlabelled"
#: images whose features are computed at once (bounds the memory: about 130 MB at a time)
CHUNK = 128

#: HOG cell size in pixels (DEC calls features.hog with its default, sbin = 8)
SBIN = 8
#: the 9 orientations' unit vectors (cos, sin of 0, 20, ..., 160 degrees), as features.cc has them
_UU = np.array([1.0000, 0.9397, 0.7660, 0.500, 0.1736, -0.1736, -0.5000, -0.7660, -0.9397])
_VV = np.array([0.0000, 0.3420, 0.6428, 0.8660, 0.9848, 0.9848, 0.8660, 0.6428, 0.3420])
_EPS = 0.0001
_CLIP = 0.2
_TEXTURE = 0.2357
#: colour map size and OpenCV's 14-bit RGB -> YCrCb coefficients (R2Y, G2Y, B2Y, Cr, Cb)
CMAP = 8
_YCC = (4899, 9617, 1868, 11682, 9241)
_YCC_SHIFT = 14


# --------------------------------------------------------------------------- features


def decode_images(raw: bytes | np.ndarray) -> np.ndarray:
    """STL-10 records (n x 27,648 bytes) -> images (n, 96, 96, 3) uint8, (row, column, RGB).

    A record (``{train,test}_X.bin``, ``unlabeled_X.bin``) is 3 x 96 x 96 bytes: the red, green
    and blue planes, each stored column-major; ``{train,test}_y.bin`` hold uint8 labels 1..10.
    """
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3, SIDE, SIDE)  # (n, c, col, row)
    return planes.transpose(0, 3, 2, 1)


def hog_features(images: np.ndarray, sbin: int = SBIN) -> np.ndarray:
    """Felzenszwalb HOG with 13 features per cell, as ``features.hog`` computes it.

    DEC calls ``features.hog(image)`` with its default ``sbin = 8``, a Cython port of
    Felzenszwalb's ``features.cc`` (built by dec/setup_features.py from a ``features.pyx`` DEC
    does not ship; the public port with this exact output is cvondrick/pyvision,
    vision/features.pyx). Per pixel, the colour channel with the largest gradient (centred
    differences) votes with its magnitude for one of 9 contrast-insensitive orientations (0, 20,
    ..., 160 degrees), bilinearly into the 4 nearest cells. Each interior cell is normalised by
    the energy of each of the 4 2x2-cell blocks around it, clipped at 0.2, and gives 13 numbers:
    the 9 orientations summed over the 4 normalisations x 0.5, and 4 texture energies (each
    normalisation summed over orientations x 0.2357). A 96x96 image has 12x12 cells, 10x10
    interior ones: 10 x 10 x 13 = 1,300 numbers, in (row, column, feature) order.

    Args:
        images: (n, H, W, 3) uint8 (or any real dtype), (row, column, channel).
        sbin: cell size in pixels.

    Returns:
        (n, H // sbin - 2, W // sbin - 2, 13) float64: per interior cell the 9 orientation
        features, then the 4 texture features.
    """
    n, height, width, _ = images.shape
    b0, b1 = height // sbin, width // sbin
    data = images[:, :b0 * sbin, :b1 * sbin].astype(np.float64)
    hist = _orientation_histograms(data, sbin, b0, b1)          # (n, 9, b0, b1)
    energy = (hist * hist).sum(axis=1)                          # (n, b0, b1)
    blocks = (energy[:, :-1, :-1] + energy[:, 1:, :-1] + energy[:, :-1, 1:]
              + energy[:, 1:, 1:])                              # 2x2 blocks, (n, b0-1, b1-1)
    inv = 1.0 / np.sqrt(blocks + _EPS)
    # the 4 blocks around interior cell (y+1, x+1): bottom-right, top-right, bottom-left, top-left
    norms = (inv[:, 1:, 1:], inv[:, :-1, 1:], inv[:, 1:, :-1], inv[:, :-1, :-1])
    cells = hist[:, :, 1:-1, 1:-1]                              # (n, 9, b0-2, b1-2)
    clipped = [np.minimum(cells * norm[:, None], _CLIP) for norm in norms]
    orientations = 0.5 * (clipped[0] + clipped[1] + clipped[2] + clipped[3])
    texture = [_TEXTURE * c.sum(axis=1) for c in clipped]
    out = np.concatenate([orientations, np.stack(texture, axis=1)], axis=1)
    return out.transpose(0, 2, 3, 1)


def _orientation_histograms(data: np.ndarray, sbin: int, b0: int, b1: int) -> np.ndarray:
    """(n, b0*sbin, b1*sbin, 3) float64 -> per-cell orientation histograms (n, 9, b0, b1)."""
    n = data.shape[0]
    dy = data[:, 2:, 1:-1] - data[:, :-2, 1:-1]                 # pixels 1..end-2 both ways
    dx = data[:, 1:-1, 2:] - data[:, 1:-1, :-2]
    v = dx * dx + dy * dy
    best = v.argmax(axis=-1)[..., None]                         # strongest channel, first on ties
    dx = np.take_along_axis(dx, best, axis=-1)[..., 0]
    dy = np.take_along_axis(dy, best, axis=-1)[..., 0]
    magnitude = np.sqrt(np.take_along_axis(v, best, axis=-1)[..., 0])
    orientation = _snap_orientation(dx, dy)
    # bilinear votes into the 4 nearest cells: separable, (cell rows x pixel rows) x (pixel
    # columns x cell columns); votes that fall outside the grid are dropped
    wy, wx = _vote_weights(b0 * sbin - 2, sbin, b0), _vote_weights(b1 * sbin - 2, sbin, b1)
    votes = np.zeros((n, 9, *magnitude.shape[1:]))
    np.put_along_axis(votes, orientation[:, None], magnitude[:, None], axis=1)
    return wy.T @ (votes @ wx)                                  # (n, 9, b0, b1)


def _vote_weights(pixels: int, sbin: int, cells: int) -> np.ndarray:
    """(pixels, cells) float64: the share of pixel ``i + 1``'s vote that goes to each cell.

    Pixel ``p`` sits at ``(p + 0.5) / sbin - 0.5`` in cell units; it gives ``1 - frac`` to the
    cell below that position and ``frac`` to the one above, inside ``0..cells-1``.
    """
    pos = (np.arange(1, pixels + 1) + 0.5) / sbin - 0.5
    low = np.floor(pos).astype(np.int64)
    frac = pos - low
    weights = np.zeros((pixels, cells + 2))                     # a ring for votes outside
    rows = np.arange(pixels)
    weights[rows, low + 1] += 1.0 - frac
    weights[rows, low + 2] += frac
    return weights[:, 1:-1]


def _snap_orientation(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Index (same shape, int64) of the orientation with the largest |<u_o, (dx, dy)>|; the first
    one on ties and 0 for a zero gradient, as the loop of ``features.hog`` picks it."""
    best = np.zeros_like(dx)
    orientation = np.zeros(dx.shape, dtype=np.int64)
    for o in range(len(_UU)):
        dot = np.abs(_UU[o] * dx + _VV[o] * dy)
        better = dot > best
        best = np.where(better, dot, best)
        orientation[better] = o
    return orientation


def colour_map(images: np.ndarray) -> np.ndarray:
    """The 8x8 Cr, Cb map of ``cv2.resize`` (bilinear) then ``cvtColor(CV_RGB2YCrCb)``.

    As DEC's ``cv2.resize(image, (8, 8))``: for 96 -> 8 each pixel is the mean of the 2x2 pixels
    at the centre of its 12x12 block, rounded half up; then OpenCV's 8-bit integer YCrCb formula.
    The Cr and Cb channels are kept: 8 x 8 x 2 = 128 numbers, in (row, column, channel) order.

    Args:
        images: (n, 96, 96, 3) uint8 RGB.

    Returns:
        (n, 8, 8, 2) int64 in 0..255: Cr, Cb.
    """
    n, height, width, _ = images.shape
    step_y, step_x = height // CMAP, width // CMAP
    if height != step_y * CMAP or width != step_x * CMAP or step_y % 2 or step_x % 2:
        raise ValueError(f"colour_map needs sides that are even multiples of {CMAP}, got "
                         f"{height}x{width}")
    # bilinear sampling at (i + 0.5) * step - 0.5 falls halfway between pixels step*i + step/2 - 1
    # and step*i + step/2: OpenCV's fixed-point result is their mean, rounded half up
    ys = np.arange(CMAP) * step_y + step_y // 2 - 1
    xs = np.arange(CMAP) * step_x + step_x // 2 - 1
    total = sum(images[:, ys + a][:, :, xs + b].astype(np.int64) for a in (0, 1) for b in (0, 1))
    small = (total + 2) >> 2                                    # (n, 8, 8, 3)
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    c_r2y, c_g2y, c_b2y, c_cr, c_cb = _YCC
    half, delta = 1 << (_YCC_SHIFT - 1), 128 << _YCC_SHIFT
    y = (r * c_r2y + g * c_g2y + b * c_b2y + half) >> _YCC_SHIFT
    cr = np.clip(((r - y) * c_cr + delta + half) >> _YCC_SHIFT, 0, 255)
    cb = np.clip(((b - y) * c_cb + delta + half) >> _YCC_SHIFT, 0, 255)
    return np.stack([cr, cb], axis=-1)


def stl_features(images: np.ndarray) -> np.ndarray:
    """DEC's STL-HOG feature of each image: (n, 96, 96, 3) uint8 -> (n, 1,428) float32.

    ``(hog - 0.2) * 10`` (1,300) then ``(crcb - 128) / 10`` (128), computed :data:`CHUNK` images
    at a time.
    """
    parts = []
    for start in range(0, images.shape[0], CHUNK):
        block = images[start:start + CHUNK]
        hog = hog_features(block).reshape(block.shape[0], -1)
        crcb = colour_map(block).reshape(block.shape[0], -1)
        parts.append(np.concatenate([(hog - 0.2) * 10.0, (crcb - 128.0) / 10.0],
                                    axis=1).astype(np.float32))
    if not parts:
        return np.empty((0, feature_dim()), dtype=np.float32)
    return np.concatenate(parts)


def feature_dim(side: int = SIDE) -> int:
    """Length of the feature of a side x side image: 13 per interior HOG cell + 2 x 8 x 8."""
    cells = side // SBIN - 2
    return cells * cells * 13 + 2 * CMAP * CMAP


# --------------------------------------------------------------------------- raw files


def _member_name(name: str) -> str:
    return f"{FOLDER}/{name}"


def _read_records(handle: IO[bytes], size: int, spec: DatasetSpec, path: Path,
                  member: str) -> Iterator[np.ndarray]:
    """Images (k, 96, 96, 3) uint8 of the ``size``-byte member, :data:`CHUNK` at a time."""
    if size % IMAGE_BYTES:
        raise mismatch(spec, path, f"{member} of {size:,} bytes, not a whole number of "
                                    f"{IMAGE_BYTES:,}-byte (3 x 96 x 96) images")
    left = size // IMAGE_BYTES
    while left:
        count = min(CHUNK, left)
        raw = handle.read(count * IMAGE_BYTES)
        if len(raw) != count * IMAGE_BYTES:
            raise mismatch(spec, path, f"{member} truncated")
        yield decode_images(raw)
        left -= count


def _labelled_members(spec: DatasetSpec, path: Path) -> dict[str, np.ndarray]:
    """One pass over the archive: features of ``{split}_X.bin`` and labels of ``{split}_y.bin``."""
    wanted = {_member_name(f"{split}_{kind}.bin") for split in SPLITS for kind in "Xy"}
    found: dict[str, np.ndarray] = {}
    try:
        for info, handle in tar_members(path, wanted):
            with handle:
                if info.name.endswith("_y.bin"):
                    found[info.name] = np.frombuffer(handle.read(), dtype=np.uint8)
                else:
                    blocks = _read_records(handle, info.size, spec, path, info.name)
                    found[info.name] = stl_features_of(blocks)
    except (tarfile.TarError, OSError, EOFError) as err:
        reason = " ".join(str(err).split())
        raise DataFileError(f"{path}: unreadable ({type(err).__name__}: {reason}); expected "
                            f"{spec.expected}.") from err
    missing = sorted(wanted - set(found))
    if missing:
        raise mismatch(spec, path, f"no member {', '.join(missing)}")
    return found


def stl_features_of(blocks: Iterator[np.ndarray]) -> np.ndarray:
    """Features (n, 1,428) float32 of a stream of image blocks (k, 96, 96, 3) uint8."""
    parts = [stl_features(block) for block in blocks]
    return np.concatenate(parts) if parts else np.empty((0, feature_dim()), np.float32)


def _split_arrays(spec: DatasetSpec, path: Path,
                  members: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Check each split's images against its labels; X (N, 1,428), y (N,) 0..9, split sizes."""
    xs, ys, counts = [], [], []
    for split in SPLITS:
        x = members[_member_name(f"{split}_X.bin")]
        labels = members[_member_name(f"{split}_y.bin")]
        if len(labels) != len(x):
            raise mismatch(spec, path, f"{split}_X.bin with {len(x):,} images but {split}_y.bin "
                                        f"with {len(labels):,} labels")
        if labels.size and (labels.min() < 1 or labels.max() > spec.n_clusters):
            raise mismatch(spec, path, f"{split}_y.bin labels {labels.min()}..{labels.max()}")
        xs.append(x)
        ys.append(labels.astype(np.int64) - 1)
        counts.append(len(x))
    n = sum(counts)
    if spec.n_samples is not None and n != spec.n_samples:
        sizes = " + ".join(f"{c:,}" for c in counts)
        raise mismatch(spec, path, f"{sizes} = {n:,} labelled images instead of "
                                    f"{spec.n_samples:,}")
    return np.concatenate(xs), np.concatenate(ys), counts


def unlabelled_features(spec: DatasetSpec, path: Path) -> ChunkedArray:
    """``X_unlabelled``: the features of ``unlabeled_X.bin``, (100,000, 1,428) float32, read,
    computed and yielded :data:`CHUNK` images at a time (the archive is re-read when written)."""

    def blocks() -> Iterator[np.ndarray]:
        member = _member_name(UNLABELLED_MEMBER)
        try:
            found = False
            for info, handle in tar_members(path, [member]):
                found = True
                if info.size != UNLABELLED_COUNT * IMAGE_BYTES:
                    raise mismatch(spec, path, f"{member} of {info.size:,} bytes instead of "
                                                f"{UNLABELLED_COUNT:,} images x {IMAGE_BYTES:,}")
                with handle:
                    for images in _read_records(handle, info.size, spec, path, member):
                        yield stl_features(images)
            if not found:
                raise mismatch(spec, path, f"no member {member}")
        except (tarfile.TarError, OSError, EOFError) as err:
            reason = " ".join(str(err).split())
            raise DataFileError(f"{path}: unreadable ({type(err).__name__}: {reason}); "
                                f"expected {spec.expected}.") from err

    return ChunkedArray(shape=(UNLABELLED_COUNT, feature_dim()), dtype="float32", blocks=blocks,
                        description=f"{UNLABELLED_MEMBER}: {UNLABELLED_COUNT:,} unlabelled "
                                    "images as the same features as X, in file order; for "
                                    "autoencoder training only")


def load_stl10_hog(spec: DatasetSpec, files: Files, params: Mapping[str, Any]) -> Loaded:
    """The loader of ``stl10-hog``: X (13,000, 1,428) float32, y 0..9 (train then test)."""
    if not isinstance(params["unlabelled"], bool):
        raise ConfigError(f"{spec.name}: param unlabelled must be true or false, got "
                          f"{params['unlabelled']!r}")
    path = need_file(files, ARCHIVE)
    x, y, counts = _split_arrays(spec, path, _labelled_members(spec, path))
    if x.shape[1:] != spec.input_shape:
        raise mismatch(spec, path, f"features of {x.shape[1]} dims")
    extra = {UNLABELLED_ARRAY: unlabelled_features(spec, path)} if params["unlabelled"] else {}
    unlabelled = (f"; {UNLABELLED_ARRAY}: the {UNLABELLED_COUNT:,} images of "
                  f"{UNLABELLED_MEMBER} as the same features, in file order, for autoencoder "
                  "training only" if extra else f"; {UNLABELLED_MEMBER} not used (param "
                  "unlabelled: false)")
    return Loaded(x, y, spec.n_clusters,
                  f"{ARCHIVE}: train_X.bin ({counts[0]:,}) then test_X.bin ({counts[1]:,}) in "
                  "file order, labels 1..10 -> 0..9; each 3x96x96 image (RGB planes, "
                  "column-major) -> DEC's STL-HOG feature [code]: Felzenszwalb HOG (sbin 8, 9 "
                  "contrast-insensitive orientations + 4 texture energies, clip 0.2) of the 10x10 "
                  "interior cells (1,300), (hog - 0.2) * 10, then the Cr, Cb channels of the "
                  "8x8 bilinear thumbnail (OpenCV RGB->YCrCb, 128), (crcb - 128) / 10; float32 "
                  f"(N,{x.shape[1]}){unlabelled}", extra=extra)
