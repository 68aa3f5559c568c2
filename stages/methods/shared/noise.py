"""Input corruption shared by the denoising objectives (SAIP's DAE, RMN-GMM's stage 1)."""

from __future__ import annotations

import torch

from stages.plumbing.errors import ConfigError

#: corruption types of :func:`corrupt`
NOISE_TYPES = ("gaussian", "masking")


def corrupt(x: torch.Tensor, noise: float, noise_type: str = "gaussian") -> torch.Tensor:
    """A corrupted copy of x (B, ...): ``x + noise * N(0, 1)`` (gaussian) or x with each element
    zeroed with probability ``noise`` (masking, no rescaling). Uses the global torch RNG
    (checkpointed); noise 0 returns x itself."""
    if noise_type not in NOISE_TYPES:
        raise ConfigError(f"unknown noise_type '{noise_type}'; valid choices: "
                          f"{', '.join(NOISE_TYPES)}")
    if noise <= 0:
        return x
    if noise_type == "gaussian":
        return x + noise * torch.randn_like(x)
    return x * (torch.rand_like(x) >= noise).to(x.dtype)
