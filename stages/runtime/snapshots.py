"""Embedding snapshots during training, for the papers' figures of embeddings over epochs.

A stage makes a :class:`SnapshotRecorder` for its autoencoder and a fixed random subset of the
data, and trains inside :func:`stages.runtime.train.recording`; the loop
(:func:`~stages.runtime.train.run_loop`) then calls :meth:`SnapshotRecorder.maybe_take` before
every step and :meth:`SnapshotRecorder.take` after the last one, so every loop of the stage (each
phase of a multi-phase pretraining, DEPICT's warm start and joint phase) records the embedding of
the subset before its first step, after epochs 1, 2, 4, 8, ... and after its last step. The
recorder's state travels in the loop's checkpoints, so a resumed stage keeps the snapshots taken
before the interruption.

The stage writes them with :func:`write_snapshots` (``snapshots.h5``: ``index`` (n,) int64 into
the dataset's rows, ``embeddings`` (S, n, d) float32, ``step`` (S,) int64 and ``epoch`` (S,)
float64, one per snapshot in the order taken, and the attribute ``phases``: the loop (its
``desc``) of each snapshot). DEPICT Fig. 4's initial stage is pretraining's first snapshot and
RMN-GMM Fig. 5's epochs are fine-tuning's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stages.plumbing.artifacts import read_arrays, write_arrays
from stages.plumbing.errors import DataFileError
from stages.plumbing.sampling import subset_indices
from stages.runtime.train import map_batches

#: rows of the data a recorder embeds (a seeded random subset when there are more)
DEFAULT_POINTS = 2000


def due(step: int, steps_per_epoch: int) -> bool:
    """Whether a snapshot is due before ``step``: step 0 and the first step of every epoch
    whose number is a power of two (epochs 1, 2, 4, ... done)."""
    if step == 0:
        return True
    if step % steps_per_epoch:
        return False
    epoch = step // steps_per_epoch
    return epoch & (epoch - 1) == 0


class SnapshotRecorder:
    """A :class:`stages.runtime.train.StepRecorder`: embeds ``x`` (n, ...) with ``encode`` when
    :func:`stages.runtime.train.run_loop` asks.

    Args:
        net: the module ``encode`` belongs to; put in eval mode while embedding (dropout off:
            DEPICT's clean pathway) and back in the mode it was in.
        encode: (B, ...) -> (B, d).
        x: the subset's inputs (n, ...) on the training device.
        index: the subset's row indices in the dataset (n,).
    """

    def __init__(self, net: nn.Module, encode: Callable[[torch.Tensor], torch.Tensor],
                 x: torch.Tensor, index: np.ndarray):
        self.net, self.encode, self.x = net, encode, x
        self.index = np.asarray(index, dtype=np.int64)
        self.entries: list[tuple[str, int, float, torch.Tensor]] = []

    def take(self, phase: str, step: int, steps_per_epoch: int) -> None:
        """Record the embedding now as ``phase``'s snapshot at ``step`` (once per step)."""
        if self.entries and self.entries[-1][:2] == (phase, step):
            return
        was_training = self.net.training
        self.net.eval()
        try:
            z = map_batches(self.encode, self.x, 1024).float().cpu().clone()
        finally:
            self.net.train(was_training)
        self.entries.append((phase, int(step), step / steps_per_epoch, z))

    def maybe_take(self, phase: str, step: int, steps_per_epoch: int) -> None:
        """:meth:`take` when :func:`due`."""
        if due(step, steps_per_epoch):
            self.take(phase, step, steps_per_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"entries": list(self.entries)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = list(state["entries"])

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays and attributes :func:`write_snapshots` stores."""
        d = self.entries[0][3].shape[1] if self.entries else 0
        emb = (np.stack([e[3].numpy() for e in self.entries]).astype(np.float32)
               if self.entries else np.zeros((0, self.index.shape[0], d), np.float32))
        return ({"index": self.index, "embeddings": emb,
                 "step": np.array([e[1] for e in self.entries], dtype=np.int64),
                 "epoch": np.array([e[2] for e in self.entries], dtype=np.float64)},
                {"phases": [e[0] for e in self.entries]})


def recorder_for(net: nn.Module, encode: Callable[[torch.Tensor], torch.Tensor],
                 x_all: np.ndarray, seed: int, device: torch.device,
                 n_points: int = DEFAULT_POINTS) -> SnapshotRecorder:
    """A recorder of ``encode`` on a seeded subset of the dataset's rows ``x_all`` (N, ...)."""
    index = subset_indices(x_all.shape[0], n_points, seed)
    return SnapshotRecorder(net, encode, torch.as_tensor(x_all[index], device=device), index)


def no_snapshots(n_rows: int, seed: int, n_points: int = DEFAULT_POINTS) -> SnapshotRecorder:
    """A recorder that has taken nothing, of the subset :func:`recorder_for` would draw (the
    ``snapshots.h5`` of a stage that trains nothing)."""
    index = subset_indices(n_rows, n_points, seed)
    return SnapshotRecorder(nn.Identity(), lambda batch: batch, torch.zeros(0), index)


def write_snapshots(path: str | Path, recorder: SnapshotRecorder,
                    attrs: dict[str, Any] | None = None) -> None:
    """Write ``recorder``'s snapshots to ``path`` (layout: the module docstring)."""
    arrays, own = recorder.arrays()
    write_arrays(path, arrays, {**(attrs or {}), **own})


def read_snapshots(path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays of a ``snapshots.h5`` and the phase of each snapshot.

    Only numbers and strings are accepted (HDF5 runs no code, but a file from elsewhere may hold
    anything): an array of another dtype, or phases that are not strings, are a
    :class:`DataFileError`."""
    arrays, attrs = read_arrays(path, required=["index", "embeddings", "step", "epoch"])
    odd = [f"{name} ({array.dtype})" for name, array in arrays.items()
           if not np.issubdtype(array.dtype, np.number)]
    phases = attrs.get("phases", [])
    if odd or not isinstance(phases, list) or not all(isinstance(p, str) for p in phases):
        what = (f"array(s) {', '.join(odd)} hold no numbers" if odd
                else f"its phases are {type(phases).__name__}, not a list of names")
        raise DataFileError(f"{path}: not a snapshots file of this workflow ({what}); delete it "
                            "and rerun its stage")
    if len(phases) != arrays["embeddings"].shape[0]:
        raise DataFileError(f"{path}: {arrays['embeddings'].shape[0]} snapshots but "
                            f"{len(phases)} phases; the file is damaged: delete it and rerun "
                            "its stage")
    return arrays, phases
