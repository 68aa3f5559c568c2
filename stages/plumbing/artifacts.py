"""Reading and writing the workflow's artifacts: HDF5 arrays with attributes, JSON, CSV.

Every writer is atomic: it writes ``<name>.tmp-<pid>`` beside the target and renames it, so a
killed job never leaves a file that looks finished. The half-written file a killed writer leaves
behind is deleted by the next successful write of the same target.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from stages.plumbing.errors import DataFileError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    After the rename, leftovers of earlier writers of the same target that were killed mid-write
    (``<name>.tmp-<other pid>``) are deleted too.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
        remove_partial_writes(target)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_partial_writes(path: str | os.PathLike) -> None:
    """Delete the ``<name>.tmp-<pid>`` files that killed writers of ``path`` left behind."""
    target = Path(path)
    for leftover in target.parent.glob(f"{glob.escape(target.name)}.tmp-*"):
        leftover.unlink(missing_ok=True)


def _attr_value(value: Any) -> Any:
    """HDF5 attributes hold scalars and strings; anything nested is stored as JSON text."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "null"
    return value


@dataclass(frozen=True)
class ChunkedArray:
    """An array too large to build in memory, written block by block.

    ``shape`` (N, ...) and ``dtype`` describe the whole array; ``blocks()`` yields consecutive
    row blocks (k, ...) whose lengths add up to N. ``description`` becomes the dataset's
    ``description`` attribute.
    """

    shape: tuple[int, ...]
    dtype: str
    blocks: Callable[[], Iterable[np.ndarray]]
    description: str = ""


def write_chunked(f: h5py.File, name: str, array: ChunkedArray) -> None:
    """Write ``array`` as HDF5 dataset ``name`` of ``f``, one block at a time (chunked storage);
    :class:`DataFileError` when the blocks do not add up to its shape."""
    n, row = array.shape[0], tuple(array.shape[1:])
    dset = f.create_dataset(name, shape=array.shape, dtype=array.dtype,
                            chunks=(max(1, min(n, 1024)), *row) if n else None)
    dset.attrs["description"] = array.description
    start = 0
    for block in array.blocks():
        if tuple(block.shape[1:]) != row or start + block.shape[0] > n:
            raise DataFileError(f"{name}: a block of shape {block.shape} at row {start} does not "
                                f"fit an array of shape {array.shape}.")
        dset[start:start + block.shape[0]] = block
        start += block.shape[0]
    if start != n:
        raise DataFileError(f"{name}: the blocks gave {start} rows instead of {n}.")


def write_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                 attrs: Mapping[str, Any] | None = None,
                 chunked: Mapping[str, ChunkedArray] | None = None) -> None:
    """Write named arrays and file attributes to an HDF5 file, atomically.

    Nested attribute values (dicts, lists) are stored as JSON strings; :func:`read_arrays`
    decodes them again. The ``chunked`` arrays are written block by block
    (:func:`write_chunked`) into the same file.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, array in arrays.items():
            f.create_dataset(name, data=np.asarray(array))
        for name, big in (chunked or {}).items():
            write_chunked(f, name, big)
        for key, value in (attrs or {}).items():
            f.attrs[key] = _attr_value(value)


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and (value[:1] in "{[" or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_arrays(path: str | os.PathLike, required: Sequence[str] = (),
                optional: Sequence[str] = (), *,
                read_all: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read arrays and attributes from an HDF5 file written by :func:`write_arrays`.

    Reads ``required`` and those of ``optional`` the file holds, or every array with
    ``read_all``.

    Raises :class:`DataFileError` naming the file when it is missing, unreadable, or lacks a
    required array; the message says which stage produces it so the user knows what to rerun.
    """
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{p}: file not found. It is produced by an earlier stage of the "
                            "workflow; run snakemake for this target, or check the path.")
    try:
        with h5py.File(p, "r") as f:
            missing = [name for name in required if name not in f]
            if missing:
                raise DataFileError(
                    f"{p}: missing array(s) {missing}; it holds {sorted(f.keys())}. The file is "
                    "incomplete or from another stage: delete it and rerun the workflow.")
            names = list(f.keys()) if read_all else (*required, *optional)
            arrays = {name: f[name][()] for name in names if name in f}
            attrs = {key: _decode_attr(value) for key, value in f.attrs.items()}
    except OSError as err:
        raise DataFileError(f"{p}: not a readable HDF5 file ({err}). It is corrupt or truncated: "
                            "delete it and rerun the workflow to regenerate it.") from err
    return arrays, attrs


def write_json(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON artifact, with a clear error when it is missing or malformed."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError as err:
        raise DataFileError(f"{p}: file not found; rerun the stage that produces it.") from err
    except json.JSONDecodeError as err:
        raise DataFileError(f"{p}: malformed JSON ({err}); delete it and rerun.") from err


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]],
              columns: Sequence[str] = ()) -> None:
    """Write rows (dicts) as CSV, atomically; ``columns`` is the header when there are none."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(columns) or None)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
