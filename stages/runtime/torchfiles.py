"""Loading the workflow's torch files (``model.pt``, ``checkpoint*.pt``) without running code.

``torch.load`` unpickles, and a pickle may call any importable function while it is read: a
crafted ``model.pt`` from a shared folder or a download would run a command the moment a stage
loads it. Every torch file is therefore read with ``weights_only=True``: torch's unpickler
rebuilds tensors, dtypes and plain Python values (dict, list, tuple, str, int, float, bool,
None, bytes) and refuses every other global. What this workflow saves needs nothing more (the
RNG state is a tensor, history rows hold Python numbers), so :data:`SAFE_GLOBALS`, the names
allowed beyond torch's own, is empty; a file that asks for another global is refused by
:func:`load_torch` with :class:`UnsafeFileError` naming it, before anything it names is called.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

import torch

from stages.plumbing.errors import DataFileError

#: globals allowed beyond torch's ``weights_only`` defaults (``torch.serialization.safe_globals``):
#: none are needed by the files this workflow writes
SAFE_GLOBALS: list[Any] = []


class UnsafeFileError(DataFileError):
    """A torch file asks for a global outside the allowlist: loading it could run code."""


def unsafe_globals(path: str | os.PathLike) -> list[str]:
    """The globals (``module.name``) the pickle in ``path`` asks for beyond the allowlist, read
    from its opcodes without unpickling anything; [] when the file cannot be scanned."""
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - a truncated or foreign file: torch.load's error says so
        return []


def load_torch(path: str | os.PathLike) -> Any:
    """``torch.load(path)`` onto the CPU with ``weights_only=True`` and :data:`SAFE_GLOBALS`.

    Raises :class:`UnsafeFileError` (one line naming the globals, not torch's advice to load the
    file again unsafely) when the file asks for a global outside the allowlist: a
    crafted file, or one this workflow never wrote. Any other refusal of the unpickler (an
    instruction it does not run, bytes that are no pickle) is a ``pickle.UnpicklingError`` with
    torch's reason alone. Other failures (missing, truncated, not a torch file) propagate
    as ``torch.load`` raises them.
    """
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _reason(err)
        names = unsafe_globals(path) or re.findall(r"GLOBAL ([\w.]+)", reason)
        if not names:  # not a global: an opcode torch does not run, or bytes that are no pickle
            raise pickle.UnpicklingError(reason) from err
        raise UnsafeFileError(
            f"it asks to import {', '.join(dict.fromkeys(names))} while it loads, which no file "
            "this workflow writes does (a crafted file, or one written by other code): loading "
            "it could run code, so it was not loaded") from err


def _reason(err: pickle.UnpicklingError) -> str:
    """torch's own reason for refusing a pickle, without its advice to retry unsafely."""
    advice = ("Weights only load failed", "Please file an issue", "Check the documentation",
              "(1) ", "(2) ")
    lines = [line.strip() for line in str(err).splitlines()
             if line.strip() and not line.strip().startswith(advice)]
    return " ".join(lines) or type(err).__name__
