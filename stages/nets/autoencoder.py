"""The interface every network offers the heads: :class:`Autoencoder`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn


@runtime_checkable
class Autoencoder(Protocol):
    """What a head may use of its pretrained network.

    ``encoder`` / ``decoder``: the modules holding the encoding / decoding parameters (a head
    that trains only the encoder optimises ``encoder.parameters()``); ``encode``: x (B, ...) ->
    z (B, d); ``decode``: z (B, d) -> x_hat (B, ...); ``forward``: x -> (z, x_hat).
    """

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
