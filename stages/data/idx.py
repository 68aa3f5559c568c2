"""Reading and writing IDX files (the MNIST / Fashion-MNIST format), optionally gzipped.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from stages.plumbing.errors import DataFileError

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise DataFileError(f"{path}: IDX file not found.") from err
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"{path}: corrupt or truncated gzip data ({err}); delete it and "
                            "fetch it again.") from err


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzipped, detected from its first bytes).

    Returns an array with the file's shape, e.g. ``(N, 28, 28)`` uint8 for images or ``(N,)``
    uint8 for labels, in native byte order. Raises :class:`DataFileError` on a bad magic number
    or a file shorter or longer than its header says.
    """
    p = Path(path)
    data = _read_bytes(p)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataFileError(f"{p}: not an IDX file (bad magic number {data[:4].hex() or 'empty'}; "
                            "expected 0000<type><ndim>). The file is corrupt or of another format.")
    dtype, ndim = _DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{p}: truncated IDX header ({len(data)} bytes, need {header}).")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataFileError(f"{p}: truncated or padded IDX file: header says shape {shape} "
                            f"({expected} data bytes) but it holds {len(data) - header} bytes. "
                            "Delete it and fetch it again.")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (uint8, int8, int16, int32, float32 or float64) as IDX; gzip if ``.gz``."""
    a = np.ascontiguousarray(array)
    code = _CODES.get(a.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {a.dtype}")
    header = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    payload = header + a.astype(_DTYPES[code], copy=False).tobytes()
    p = Path(path)
    p.write_bytes(gzip.compress(payload) if p.suffix == ".gz" else payload)
