"""DSCDAN's pure loss functions (Yang et al., CVPR 2019, Eqs. 10-19): tensors in, tensors out,
shared by pretraining (:mod:`stages.methods.dscdan.pretrain`) and the clustering phase
(:mod:`stages.methods.dscdan.head`). Choices where the paper is silent ([default] unless marked):

* the Jensen-Shannon MI estimator with softplus: -log sigmoid(t) = softplus(-t),
  -log(1 - sigmoid(t)) = softplus(t); positives (x_i, z_i), negatives (x_i, z_pi(i));
* reconstruction terms summed over pixels, mean over the batch (Eq. 12's Frobenius norms per
  sample, the code's ``K.sum(K.mean(., 0))``), x ``reconstruction_scale`` ([code] 5; [paper] 1);
* Eq. 14's mini-batch affinity: each point's ``k`` nearest neighbours excluding itself, a fixed
  bandwidth (the code's 2.62) or SpectralNet's (batch median distance to the
  ``scale_neighbor``-th neighbour), symmetrised, zero diagonal, with or without gradient
  (``detach``; the code's W is built in-graph);
* Eq. 16 divided by m^2 [paper] or by m [code] (``normalise``);
* Eqs. 17-18's K x K Cholesky in float64 with a trace-relative jitter (:func:`orthonormalize`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SPECTRAL_NORMALISATIONS = ("m2", "m")


def jsd_mi_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Minus the Jensen-Shannon MI lower bound of Eq. 10 (up to constants):
    ``-(E_pos[log sigmoid(T)] + E_neg[log(1 - sigmoid(T))])``.

    Args:
        pos_logits: discriminator logits of positive pairs, any shape (B, ...).
        neg_logits: logits of negative pairs, any shape.
    Returns:
        scalar; lower when the discriminator separates the pairs.
    """
    return F.softplus(-pos_logits).mean() + F.softplus(neg_logits).mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) summed over dimensions, mean over the batch.

    Args:
        mu, logvar: (B, d).
    Returns:
        scalar.
    """
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(dim=1).mean()


def mixture_kl_terms(mu: torch.Tensor, logvar: torch.Tensor, pi: torch.Tensor,
                     means: torch.Tensor, eps: float = 1e-10,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two parts of Eq. 19, KL(p(y, z | x) || q(y, z)) with q(z | y=k) = N(m_k, I) and
    uniform q(y), which the authors' code weights apart (``kl_loss`` and ``cat_loss``).

    Gaussian part ``Σ_k π_k ½ Σ_d (σ_d² + (μ_d − m_kd)² − 1 − log σ_d²)`` and categorical part
    ``Σ_k π_k log(K π_k)`` (the code's ``Σ_k π_k log π_k`` plus the constant log K), batch means.

    Args:
        mu, logvar: encoder outputs (B, d).
        pi: cluster probabilities p(y | z) (B, K), rows summing to one.
        means: cluster means m_k (K, d).
    Returns:
        (gaussian, categorical) scalars.
    """
    var_term = (logvar.exp() - 1.0 - logvar).sum(dim=1, keepdim=True)          # (B, 1)
    sq = (mu.pow(2).sum(dim=1, keepdim=True) + means.pow(2).sum(dim=1)[None, :]
          - 2.0 * mu @ means.T).clamp_min(0)                                    # (B, K)
    gauss = 0.5 * (var_term + sq)                                               # (B, K)
    cat = pi * (pi.clamp_min(eps).log() + math.log(pi.shape[1]))
    return (pi * gauss).sum(dim=1).mean(), cat.sum(dim=1).mean()


def mixture_kl(mu: torch.Tensor, logvar: torch.Tensor, pi: torch.Tensor,
               means: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Eq. 19 as one term: the sum of :func:`mixture_kl_terms` (scalar)."""
    gauss, cat = mixture_kl_terms(mu, logvar, pi, means, eps)
    return gauss + cat


def squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``‖a − b‖²_F`` per sample, mean over the batch: a, b (B, ...) -> scalar."""
    return (a - b).pow(2).flatten(1).sum(dim=1).mean()


PLAIN_TARGETS = ("clean", "noisy")


def dual_reconstruction(x: torch.Tensor, x_clean: torch.Tensor, x_noisy: torch.Tensor | None,
                        relative_weight: float, plain_weight: float, scale: float = 1.0,
                        plain_target: str = "clean") -> dict[str, torch.Tensor]:
    """Eq. 12 times ``scale``: ``scale (relative_weight ‖x̃_ẑ − x̃_z‖² + plain_weight ‖x − x̃‖²)``.

    The paper: scale 1, weights 1 and δ = 0.5, plain term on the clean reconstruction x̃_z.
    The authors' code: scale 5 (``lamb``); its clustering phase puts the plain term on the noisy
    reconstruction x̃_ẑ (``plain_target='noisy'``) with weights 0.5 (relative) and 1 (plain).

    Args:
        x: input batch (B, C, H, W); x_clean = D(z), x_noisy = D(z_hat) (B, C, H, W) (may be
            None when neither the relative term nor a noisy plain term needs it).
    Returns:
        ``{"relative": ..., "plain": ..., "reconstruction": weighted, scaled sum}`` (scalars,
        the named terms unweighted; ``relative`` only when its weight is positive).
    """
    if plain_target not in PLAIN_TARGETS:
        raise ValueError(f"unknown plain_reconstruction '{plain_target}'; valid choices: "
                         f"{', '.join(PLAIN_TARGETS)}")
    if x_noisy is None and (relative_weight > 0 or plain_target == "noisy"):
        raise ValueError("the relative (or noisy plain) reconstruction needs the noisy "
                         "reconstruction")
    plain = squared_error(x, x_clean if plain_target == "clean" else x_noisy)
    terms = {"plain": plain}
    weighted = plain_weight * plain
    if relative_weight > 0:
        relative = squared_error(x_noisy, x_clean)
        terms["relative"] = relative
        weighted = weighted + relative_weight * relative
    terms["reconstruction"] = scale * weighted
    return terms


def knn_affinity(z: torch.Tensor, n_neighbors: int = 3, scale_neighbor: int = 2,
                 sigma: torch.Tensor | float | None = None, detach: bool = True) -> torch.Tensor:
    """Eq. 14 on a mini-batch: Gaussian affinities restricted to the k nearest neighbours.

    Args:
        z: codes (m, d).
        n_neighbors: k, neighbours per point excluding the point itself (3 [paper]; the code's
            ``n_nbrs = 5`` counts the point itself, so 4 [code]).
        scale_neighbor: the bandwidth is the median over the batch of the distance to this
            neighbour (SpectralNet's rule), unless ``sigma`` is given.
        sigma: a fixed bandwidth (the code's 2.62, or the global one of the init's graph).
        detach: treat z as constants (no gradient through W); False builds W in the graph,
            as the code does, so that a loss on W reaches whatever made z.
    Returns:
        W (m, m): symmetric, zero diagonal, W_ij = exp(-‖z_i − z_j‖² / (2σ²)) for kNN pairs.
    """
    if detach:
        z = z.detach()
    m = z.shape[0]
    k = min(int(n_neighbors), m - 1)
    if k < 1:
        raise ValueError(f"a batch of {m} sample(s) has no neighbours")
    sq = z.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * z @ z.T).clamp_min(0)
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    d2 = d2.masked_fill(eye, float("inf"))
    k_scale = min(int(scale_neighbor), m - 1)
    dist, idx = torch.topk(d2, max(k, k_scale), dim=1, largest=False)          # (m, k')
    if sigma is None:
        sigma = dist[:, k_scale - 1].clamp_min(0).sqrt().median().clamp_min(1e-12)
    sigma = torch.as_tensor(sigma, dtype=z.dtype, device=z.device)
    weights = torch.exp(-dist[:, :k] / (2 * sigma * sigma))
    w = torch.zeros(m, m, dtype=weights.dtype, device=z.device).scatter(1, idx[:, :k], weights)
    return 0.5 * (w + w.T)


def spectral_loss(w: torch.Tensor, y: torch.Tensor, normalise: str = "m2") -> torch.Tensor:
    """Eq. 16: ``(1/m²) Σ_ij W_ij ‖y_i − y_j‖²`` (``normalise='m'``: 1/m, as the code).

    Args:
        w: affinities (m, m); y: orthonormalised outputs (m, K).
    Returns:
        scalar.
    """
    if normalise not in SPECTRAL_NORMALISATIONS:
        raise ValueError(f"unknown normalisation '{normalise}'; valid choices: "
                         f"{', '.join(SPECTRAL_NORMALISATIONS)}")
    m = y.shape[0]
    sq = y.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * y @ y.T).clamp_min(0)
    return (w * d2).sum() / (m * m if normalise == "m2" else m)


def orthonormalize(y_tilde: torch.Tensor, eps: float = 1e-6, check: bool = False,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 17-18: the linear map that makes ``(1/m) Yᵀ Y = I``.

    ``A = Ỹᵀ Ỹ + ε·(tr(A)/K)·I = L Lᵀ`` (Cholesky, float64), ``W = √m (L⁻¹)ᵀ``, ``Y = Ỹ W``.
    The jitter relative to the trace is the numerical guard: a rank-deficient batch (a cluster
    no sample of the batch uses) gives a finite W rather than a failed factorisation, so the
    training loop needs no host sync. With ``check`` a rank-deficient input raises ValueError.

    Args:
        y_tilde: (m, K) with m >= K.
        eps: relative jitter.
        check: raise when the numerical rank of Ỹ is below K.
    Returns:
        (Y (m, K) = Ỹ W, W (K, K)).
    """
    m, n_clusters = y_tilde.shape
    if check:
        rank = int(torch.linalg.matrix_rank(y_tilde.detach().double()))
        if rank < n_clusters:
            raise ValueError(f"orthonormalisation needs a batch of rank {n_clusters} (one column "
                             f"per cluster); this batch of {m} rows has rank {rank}: some "
                             "cluster is empty or the batch is smaller than the number of "
                             "clusters")
    y64 = y_tilde.double()
    a = y64.T @ y64
    jitter = eps * a.diagonal().sum().clamp_min(1e-12) / n_clusters
    a = a + jitter * torch.eye(n_clusters, dtype=a.dtype, device=a.device)
    chol, _ = torch.linalg.cholesky_ex(a)  # the _ex form never syncs with the host
    eye = torch.eye(n_clusters, dtype=a.dtype, device=a.device)
    l_inv = torch.linalg.solve_triangular(chol, eye, upper=False)
    w = (math.sqrt(m) * l_inv.T).to(y_tilde.dtype)
    return y_tilde @ w, w


#: the loss weights and their paper values (``reconstruction_scale``: the code's ``lamb`` = 5
#: multiplies both reconstruction terms, the paper has none; ``local_mi_weight``: the local MI
#: term's weight next to the global one inside beta, 1 in Eq. 10, 0 in the code, where the local
#: term is commented out; ``cat_weight``: the categorical part of a mixture KL, 1 in the paper's
#: gamma = 1 and in both of the code's phases, whose Gaussian part has ``kl_weight``)
DEFAULT_WEIGHTS = {"mi_weight": 0.01, "kl_weight": 1.0, "relative_weight": 1.0,
                   "plain_weight": 0.5, "reconstruction_scale": 1.0, "local_mi_weight": 1.0,
                   "cat_weight": 1.0}


def loss_weights(recipe: dict[str, Any]) -> dict[str, float]:
    """The weights of a recipe, paper values where it does not set them."""
    return {name: float(recipe.get(name, value)) for name, value in DEFAULT_WEIGHTS.items()}


def autoencoder_terms(model: nn.Module, xb: torch.Tensor, weights: dict[str, float],
                      plain_target: str = "clean",
                      ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Eq. 12 (:func:`dual_reconstruction`, ``plain_target`` as there) and the MI part of
    Eq. 10 on a batch xb (B, C, H, W).

    Returns:
        terms: ``plain``, ``relative`` (when on), ``mi_global``, ``mi_local`` (when on) and
            ``partial`` = reconstruction + mi_weight * (mi_global + local_mi_weight *
            mi_local), all scalars;
        mu, logvar: (B, d), for the KL term of the caller.
    """
    middle, phi, mu, logvar = model.features(xb)
    noisy_plain = plain_target == "noisy"
    noisy = weights["relative_weight"] > 0 or weights["mi_weight"] > 0 or noisy_plain
    z_hat = model.sample(mu, logvar) if noisy else mu
    x_clean = model.decode(mu)
    x_noisy = model.decode(z_hat) if weights["relative_weight"] > 0 or noisy_plain else None
    terms = dual_reconstruction(xb, x_clean, x_noisy, weights["relative_weight"],
                                weights["plain_weight"], weights["reconstruction_scale"],
                                plain_target)
    partial = terms.pop("reconstruction")
    if weights["mi_weight"] > 0:
        perm = torch.randperm(xb.shape[0], device=xb.device)
        shuffled = z_hat[perm]
        terms["mi_global"] = jsd_mi_loss(model.global_logits(phi, z_hat),
                                         model.global_logits(phi, shuffled))
        mi = terms["mi_global"]
        if weights["local_mi_weight"] > 0:
            terms["mi_local"] = jsd_mi_loss(*model.local_logits(middle, z_hat, shuffled))
            mi = mi + weights["local_mi_weight"] * terms["mi_local"]
        partial = partial + weights["mi_weight"] * mi
    terms["partial"] = partial
    return terms, mu, logvar
