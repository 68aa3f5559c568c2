"""Saving and loading trained networks with the information needed to rebuild them."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from stages.artifacts import atomic_path
from stages.errors import DataFileError
from stages.nets import build_network


def save_model(path: str | os.PathLike, net: str, input_shape: tuple[int, ...],
               arch: dict[str, Any], state_dict: dict[str, Any], meta: dict[str, Any]) -> None:
    """Save a network's weights with its name, architecture and provenance, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"net": net, "input_shape": list(input_shape), "arch": arch,
                    "state_dict": state_dict, "meta": meta}, tmp)


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network saved by :func:`save_model`; returns (module on device, file payload)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        model = build_network(payload["net"], payload["input_shape"], payload["arch"])
        model.load_state_dict(payload["state_dict"])
    except FileNotFoundError as err:
        raise DataFileError(f"{path}: model file not found; rerun the pretrain stage.") from err
    except (KeyError, RuntimeError, EOFError, OSError) as err:
        raise DataFileError(f"{path}: not a valid model file ({err}); delete it and rerun the "
                            "pretrain stage.") from err
    return model.to(device), payload
