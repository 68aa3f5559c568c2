"""Label-free measures of how many of its dimensions a set of codes uses."""

from __future__ import annotations

import torch


def participation_ratio(z: torch.Tensor) -> float:
    """Participation ratio of codes z (N, d): ``(Σ λ)² / Σ λ²`` over the eigenvalues λ of their
    covariance C (d, d), computed as ``trace(C)² / ‖C‖_F²`` (equal for a symmetric C, no
    eigendecomposition needed).

    1 when the codes vary along one direction only, d when their covariance is isotropic, and in
    between the number of directions that carry the variance, in effect. 0 when the codes do not
    vary at all. Scale-free; float64 throughout.
    """
    if z.dim() != 2:
        raise ValueError(f"participation_ratio needs codes (N, d); got shape {tuple(z.shape)}")
    centred = z.double() - z.double().mean(dim=0)
    cov = centred.T @ centred / max(1, z.shape[0])  # (d, d); the scale cancels in the ratio
    frobenius = float(cov.pow(2).sum())
    return float(cov.trace()) ** 2 / frobenius if frobenius > 0 else 0.0


def min_std_ratio(z: torch.Tensor) -> float:
    """Smallest over largest per-dimension standard deviation of codes z (N, d): 1 when every
    dimension varies as much, near 0 when one is almost constant; 0 when none varies."""
    if z.dim() != 2:
        raise ValueError(f"min_std_ratio needs codes (N, d); got shape {tuple(z.shape)}")
    std = z.double().std(dim=0, correction=0)
    largest = float(std.max())
    return float(std.min()) / largest if largest > 0 else 0.0


def code_spread(z: torch.Tensor) -> dict[str, float]:
    """``code_participation_ratio`` (:func:`participation_ratio`) and ``code_min_std_ratio``
    (:func:`min_std_ratio`) of codes z (N, d), the columns of a history row."""
    return {"code_participation_ratio": participation_ratio(z),
            "code_min_std_ratio": min_std_ratio(z)}
