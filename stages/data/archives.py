"""Readers of raw archive formats: pickled batches inside a .tar.gz (CIFAR's python versions),
MATLAB .mat variables, and PNG images inside a zip (COIL).

Each raises :class:`DataFileError` naming the file, what is wrong and what was ``expected``.
Pickles are read with an unpickler that only rebuilds numpy arrays (and the lists, dicts and
strings around them), so a tampered archive cannot run code while it is read.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import numpy as np

from stages.plumbing.errors import DataFileError

#: the only globals a pickle of numpy arrays needs: array and scalar reconstruction (numpy < 2
#: and >= 2 spellings) and, in pickles written by Python 3 at protocol 2, bytes via _codecs.encode
_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
})


class ArrayUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global but numpy array (and scalar) reconstruction: for
    pickles of numpy arrays, lists, dicts and strings from elsewhere (CIFAR's batches, the
    authors' Lasagne weights). ``what`` names the file's kind in the refusal."""

    def __init__(self, file: IO[bytes], *, what: str, encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self.what = what

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (a {self.what} holds "
                                     "only numpy arrays, lists and strings)")


def _decode_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in value.items()}
    return value


def tar_members(path: str | os.PathLike,
                names: Iterable[str]) -> Iterator[tuple[tarfile.TarInfo, IO[bytes]]]:
    """The regular-file members ``names`` of the .tar.gz at ``path``, each once, in archive
    order, as (info, open handle); stops reading once all were found. Tar errors propagate (the
    caller names the file and what was expected)."""
    wanted, seen = set(names), set()
    with tarfile.open(path, "r:gz") as tar:
        for info in tar:
            if info.name not in wanted or info.name in seen or not info.isfile():
                continue
            handle = tar.extractfile(info)
            if handle is None:
                continue
            seen.add(info.name)
            yield info, handle
            if seen == wanted:
                return


def tar_pickles(path: str | os.PathLike, members: Sequence[str],
                expected: str) -> dict[str, dict[str, Any]]:
    """Unpickle the ``members`` of the .tar.gz at ``path``: ``{member: dict}``, bytes keys decoded.

    The pickles are read with ``encoding='bytes'`` (they were written by Python 2).
    """
    found: dict[str, dict[str, Any]] = {}
    try:
        for info, handle in tar_members(path, members):
            with handle:
                unpickler = ArrayUnpickler(handle, what="data batch", encoding="bytes")
                value = _decode_keys(unpickler.load())
            if not isinstance(value, dict):
                raise DataFileError(f"{path}: member {info.name} is a pickled "
                                    f"{type(value).__name__}, not a dict; expected {expected}.")
            found[info.name] = value
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError, ValueError,
            AttributeError, ImportError, IndexError, TypeError) as err:
        reason = " ".join(str(err).split())
        raise DataFileError(f"{path}: unreadable ({type(err).__name__}: {reason}); expected "
                            f"{expected}.") from err
    missing = [m for m in members if m not in found]
    if missing:
        raise DataFileError(f"{path}: has no member {', '.join(missing)}; expected {expected}.")
    return found


def mat_variable(path: str | os.PathLike, variable: str, expected: str) -> np.ndarray:
    """Variable ``variable`` of the MATLAB (v4 to v7.2) file at ``path``."""
    from scipy.io import loadmat  # heavy import, only needed here
    from scipy.io.matlab import MatReadError

    try:
        contents = loadmat(path, variable_names=[variable])
    except NotImplementedError as err:  # scipy's answer to a v7.3 (HDF5) file
        raise DataFileError(f"{path}: a MATLAB v7.3 (HDF5) file, not the v4-v7.2 format of the "
                            f"original; expected {expected}.") from err
    except (MatReadError, OSError, ValueError, TypeError, EOFError) as err:
        reason = " ".join(str(err).split())
        raise DataFileError(f"{path}: not a readable MATLAB file ({type(err).__name__}: "
                            f"{reason}); expected {expected}.") from err
    if variable not in contents:
        raise DataFileError(f"{path}: has no variable {variable!r}; expected {expected}.")
    return np.asarray(contents[variable])


def zip_members(path: str | os.PathLike, pattern: re.Pattern[str],
                expected: str) -> list[tuple[tuple[str, ...], str]]:
    """``(groups, member name)`` of the zip members whose base name matches ``pattern``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [i.filename for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise DataFileError(f"{path}: not a readable zip ({err}); expected {expected}.") from err
    matched = []
    for name in names:
        m = pattern.match(name.rsplit("/", 1)[-1])
        if m:
            matched.append((m.groups(), name))
    return matched


def zip_png_arrays(path: str | os.PathLike, members: Sequence[str], channels: int,
                   size: tuple[int, int], out: np.ndarray, expected: str) -> list[str]:
    """Decode the PNG ``members`` of the zip at ``path`` into ``out`` (N, C, H, W), / 255.

    ``channels`` 1: gray (other modes converted to 8-bit gray); 3: RGB (palette and RGBA
    converted; gray or 16-bit images are refused). Returns the PNG modes met, sorted.
    """
    from PIL import Image, UnidentifiedImageError  # heavy import, only needed here

    h, w = size
    modes: set[str] = set()
    try:
        with zipfile.ZipFile(path) as archive:
            for i, name in enumerate(members):
                with Image.open(io.BytesIO(archive.read(name))) as img:
                    if img.format != "PNG" or img.size != (w, h):
                        raise DataFileError(
                            f"{path}: {name} is a {img.format} image of {img.size[0]}x"
                            f"{img.size[1]}, not a {w}x{h} PNG; expected {expected}.")
                    modes.add(img.mode)
                    if channels == 1:
                        pixels = np.asarray(img if img.mode == "L" else img.convert("L"))[None]
                    elif img.mode in ("RGB", "RGBA", "P"):
                        pixels = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
                    else:
                        raise DataFileError(f"{path}: {name} has PNG mode {img.mode}, not colour "
                                            f"(RGB); expected {expected}.")
                out[i] = pixels.astype(np.float32) / 255.0
    except (zipfile.BadZipFile, OSError, ValueError, UnidentifiedImageError, KeyError) as err:
        reason = " ".join(str(err).split())
        raise DataFileError(f"{path}: unreadable image ({type(err).__name__}: {reason}); "
                            f"expected {expected}.") from err
    return sorted(modes)
