"""DEPICT's pure functions (Ghasedi Dizaji et al., ICCV 2017): the target of Eq. 7, the
cross-entropy of Eq. 8, the layer-wise reconstruction of Eq. 12 and the change of Q that the stop
rule reads. Shared by the pretraining objectives and the joint phase."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from stages.methods.shared.common import target_distribution

#: target rule -> (power, frequency exponent) of :func:`target_distribution`
TARGET_RULES: dict[str, tuple[float, float]] = {
    "sqrt": (1.0, 0.5),  # Eq. 7 [paper]
    "dec": (2.0, 1.0),   # the authors' code (DEC's target)
}


def depict_target(p: torch.Tensor, rule: str = "sqrt") -> torch.Tensor:
    """Target Q from the clean predictions P (N, K) over the whole dataset: Eq. 7.

    ``sqrt``: ``q_ik ∝ p_ik / (Σ_i' p_i'k)^(1/2)``; ``dec``: ``q_ik ∝ p_ik^2 / Σ_i' p_i'k``.
    Returns Q (N, K), rows summing to one.
    """
    if rule not in TARGET_RULES:
        raise ValueError(f"unknown DEPICT target rule '{rule}'; valid choices: "
                         f"{', '.join(TARGET_RULES)}")
    power, freq_exponent = TARGET_RULES[rule]
    return target_distribution(p, power=power, freq_exponent=freq_exponent)


def soft_cross_entropy(q: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``-(1/B) Σ_i Σ_k q_ik log softmax(logits)_ik`` for q, logits (B, K): Eq. 8 / Eq. 12."""
    return -(q * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def layerwise_reconstruction(clean: Sequence[torch.Tensor], reconstructed: Sequence[torch.Tensor],
                             hidden_weight: float = 1.0) -> torch.Tensor:
    """Second term of Eq. 12: ``Σ_l w_l mean_i (1/|z^l|) ||z_i^l - ẑ_i^l||²``.

    Args:
        clean: clean encoder layers [z^0 (B, ...), z^1, ..., z^{L-1}] (z^0 = the input).
        reconstructed: the decoder's reconstructions of the same layers, same order and shapes.
        hidden_weight: w_l for l >= 1 (w_0 = 1); the paper uses 1, the authors' code 0.1.
    Returns:
        scalar: each layer's per-element mean squared error, weighted and summed.
    """
    if len(clean) != len(reconstructed):
        raise ValueError(f"{len(clean)} clean layers but {len(reconstructed)} reconstructions")
    total = torch.zeros((), device=clean[0].device)
    for level, (z, z_hat) in enumerate(zip(clean, reconstructed, strict=True)):
        weight = 1.0 if level == 0 else hidden_weight
        if weight:
            total = total + weight * F.mse_loss(z_hat, z)
    return total


def q_change(q_new: torch.Tensor, q_old: torch.Tensor) -> torch.Tensor:
    """Mean squared change of the target between two epochs (the stop rule): scalar."""
    return (q_new - q_old).pow(2).mean()
