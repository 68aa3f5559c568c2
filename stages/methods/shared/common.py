"""Shared by several methods: target distributions, the KL clustering loss, the reconstruction
error, and :class:`FinetuneResult`, what every fine-tuning driver returns."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stages.reporting.metrics import cluster_acc, cluster_shares, nmi

log = logging.getLogger("stages.methods")

_EPS = 1e-12


def target_distribution(q: torch.Tensor, power: float = 2.0,
                        freq_exponent: float = 1.0) -> torch.Tensor:
    """Sharpened, frequency-normalised target ``p_ij ∝ q_ij^power / f_j^freq_exponent``.

    ``f_j = Σ_i q_ij`` over the rows given. DEC/DCEC (Eq. 8): power 2, freq_exponent 1;
    DEPICT's Eq. 7 is power 1, freq_exponent 0.5.

    Args:
        q: soft assignments (N, K), rows summing to one.
    Returns:
        p: (N, K), rows summing to one.
    """
    f = q.sum(dim=0).clamp_min(_EPS)
    weight = q.pow(power) / f.pow(freq_exponent)
    return weight / weight.sum(dim=1, keepdim=True).clamp_min(_EPS)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``mean_i Σ_j p_ij log(p_ij / q_ij)`` (Keras 'kld': per-sample sum, batch mean).

    Args:
        p: target (B, K); q: prediction (B, K). Both are clipped to [eps, 1] as Keras does.
    Returns:
        scalar tensor.
    """
    p = p.clamp(eps, 1.0)
    q = q.clamp(eps, 1.0)
    return (p * (p.log() - q.log())).sum(dim=1).mean()


def reconstruction_mse(x_hat: torch.Tensor, x: torch.Tensor,
                       reduction: str = "mean") -> torch.Tensor:
    """Squared reconstruction error of x_hat, x (B, ...): scalar.

    ``mean``: per-element mean (Keras 'mse', the DCEC code's fine-tuning loss).
    ``sum``: summed over the elements of a sample, mean over the batch (DCEC Eq. 4 as written;
    with it the paper's SGD lr 0.01 for the SAE trains, while with ``mean`` it stalls).
    """
    squared = (x_hat - x) ** 2
    if reduction == "mean":
        return squared.mean()
    if reduction == "sum":
        return squared.flatten(1).sum(dim=1).mean()
    raise ValueError(f"unknown reduction '{reduction}'; valid choices: mean, sum")


@dataclass
class FinetuneResult:
    """What every fine-tuning driver returns."""

    labels: np.ndarray           # (N,) int64
    embedding: np.ndarray        # (N, d) float32
    history: list[dict[str, Any]]
    state_dict: dict[str, Any]   # the fine-tuned model's weights
    info: dict[str, Any]
    #: further arrays for labels.h5 (RMN-GMM: the GMM's ``means``, ``variances`` (K, d) and
    #: ``weights`` (K,), which its Fig. 7 measures distances to)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def assignment_diagnostics(labels: torch.Tensor, n_clusters: int,
                           probabilities: torch.Tensor | None = None) -> dict[str, Any]:
    """:func:`stages.reporting.metrics.cluster_shares` of the hard assignments (N,) and, given the
    soft assignments (N, K), their sharpness (mean of each row's largest probability)."""
    row: dict[str, Any] = cluster_shares(labels.cpu().numpy(), n_clusters)
    if probabilities is not None:
        row["sharpness"] = float(probabilities.float().max(dim=1).values.mean())
    return row


def gradient_shares(model: torch.nn.Module,
                    weighted_terms: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Each weighted loss term's share of the gradient norm on the trainable parameters.

    ``weighted_terms``: name -> scalar term as it enters the loss (weight included), all on one
    autograd graph. Returns a history row (``kind='gradient_share'``) with ``grad_norm_<name>``
    (L2 norm over all trainable parameters) and ``grad_share_<name>`` (that norm over the sum of
    the terms' norms). The graph is kept, so the caller may still back-propagate the sum.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    norms: dict[str, float] = {}
    for name, term in weighted_terms.items():
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        norms[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads
                                           if g is not None)))
    total = sum(norms.values()) or 1.0
    row: dict[str, Any] = {"kind": "gradient_share", "step": 0}
    for name, value in norms.items():
        row[f"grad_norm_{name}"] = value
        row[f"grad_share_{name}"] = value / total
    return row


def target_update_row(step: int, labels: torch.Tensor, previous: torch.Tensor | None,
                      y_true: np.ndarray | None, nmi_variant: str, *,
                      n_clusters: int | None = None,
                      probabilities: torch.Tensor | None = None) -> dict[str, Any]:
    """History row of a target update or monitor step.

    Label-free: the fraction of labels (N,) that changed since ``previous`` (NaN at the first
    update) and :func:`assignment_diagnostics` (K from ``n_clusters`` or the width of
    ``probabilities`` (N, K)); a collapse is logged as a warning naming the step. For
    monitoring only, ACC and NMI against the true labels when given (never used for any
    decision).
    """
    delta = math.nan if previous is None else float((labels != previous).float().mean())
    row: dict[str, Any] = {"kind": "target", "step": step, "delta_label": delta}
    k = n_clusters if n_clusters is not None else (
        None if probabilities is None else int(probabilities.shape[1]))
    if k is not None:
        row.update(assignment_diagnostics(labels, k, probabilities))
        if row["collapsed"]:
            log.warning("step %d: the assignments collapsed: largest cluster %.1f%% of the "
                        "points, %d of %d clusters populated", step,
                        100 * row["largest_share"], row["populated"], k)
    if y_true is not None:
        pred = labels.cpu().numpy()
        row.update(acc=cluster_acc(y_true, pred), nmi=nmi(y_true, pred, nmi_variant))
    return row


def to_device(device: torch.device, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Tensors of a checkpointed hook state (loaded on the CPU) moved to ``device``."""
    return [None if t is None else t.to(device) for t in tensors]
