"""Saving and loading trained networks with the information needed to rebuild them."""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch
from torch import nn

from stages.nets import build_network
from stages.plumbing.artifacts import atomic_path
from stages.plumbing.errors import DataFileError
from stages.runtime.torchfiles import UnsafeFileError, load_torch


def save_model(path: str | os.PathLike, net: str, input_shape: tuple[int, ...],
               arch: dict[str, Any], state_dict: dict[str, Any], meta: dict[str, Any]) -> None:
    """Save a network's weights with its name, architecture and provenance, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"net": net, "input_shape": list(input_shape), "arch": arch,
                    "state_dict": state_dict, "meta": meta}, tmp)


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network saved by :func:`save_model`; returns (module on device, file payload).

    The file is read with :func:`stages.runtime.torchfiles.load_torch` (``weights_only``): a model
    from someone else cannot run code here; one that would is refused with :class:`DataFileError`.
    """
    try:
        payload = load_torch(path)
        model = build_network(payload["net"], payload["input_shape"], payload["arch"])
        model.load_state_dict(payload["state_dict"])
    except FileNotFoundError as err:
        raise DataFileError(f"{path}: model file not found; rerun the pretrain stage.") from err
    except UnsafeFileError as err:
        raise DataFileError(f"{path}: refused: {err}. Delete it and rerun the pretrain stage, or "
                            "ask its author for a model.pt written by this workflow.") from err
    except (KeyError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise DataFileError(f"{path}: not a valid model file ({err}); delete it and rerun the "
                            "pretrain stage.") from err
    return model.to(device), payload
