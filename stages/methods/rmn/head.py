"""RMN-GMM's third stage (Wang & Jiang, Neurocomputing 2021, Sect. 3 and 4.3) and DeepGMM (η = 0).

Maximises Eq. 5, batch mean: ``mean_b log p(y_b | λ) + η Σ_k Σ_{j∈n(k)} dis(μ_k, μ_j)``,
y = f_θ(x). The encoder by autograd on ``−mean_b log p(y_b | λ)`` (Eq. 8; SGD, batch 128 [paper],
momentum 0.9, lr ``encoder_lr`` 1e-5 [default]); the Λ layer :class:`RMN` (μ, σ² (K, D), ω (K,)
and momentum buffers, not autograd parameters) by Eqs. 10-12 (:func:`gmm_directions`, Eq. 11 as
written) as manual ascent steps on the same batch, lr 0.01 [paper], the same lr steps and
momentum [default, methods.md §5.2]. [default]s: variances clamped to ``min_variance`` 0.01,
weights to ``min_weight`` 1e-8 and renormalised; n(k) the ⌊K/2⌋ nearest other centres [paper],
Euclidean, every iteration; dis = |μ_k − μ_j|² / its mean over all centre pairs
(``separation_distance: normalized``; ``euclidean``: Eq. 5's plain squared distance [paper]);
with ``standardise`` the code is first rescaled to unit mean per-dimension variance, the GMM with
it; η ``auto`` = 0.01 for K ≤ 10, else 0.001, or ``auto_beta``: the η that makes the
separation-to-shrink ratio β (:func:`stability`) equal ``target_beta`` (default 1) at the start
of stage 3, so that η follows the code's scale (DeepGMM: η = 0 [paper]); prediction argmax
p(c_k | y). Each monitor row records β, the largest centre-detachment number κ and the
between/within ratio R of :func:`stability` (docs/audits/rmn.md §1.4, §5 in ../shared). A
fixed number of iterations (50k [paper]); the decoder unused [paper] unless
``reconstruction_weight`` > 0 (beyond the paper, as IDEC). The measurements behind the
defaults: docs/notes/rmn.md; the stage-3 grid and its criteria: docs/reproduction/rmn-stage3.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from stages.methods.shared.common import (
    FinetuneResult,
    gradient_shares,
    reconstruction_mse,
    target_update_row,
    to_device,
)
from stages.nets.autoencoder import Autoencoder
from stages.plumbing.errors import DataFileError
from stages.runtime.train import (
    Checkpointer,
    LoopConfig,
    PeriodicHook,
    loop_settings,
    make_optimizer,
    map_batches,
    phase_steps,
    run_loop,
    steps_per_epoch,
)

log = logging.getLogger("stages.methods.rmn")
_LOG_2PI = math.log(2.0 * math.pi)
#: how the separation term is weighted against the log-likelihood: ``sample`` (Eqs. 5 and 10:
#: eta S per sample) or ``dataset`` (Eq. 4: eta S once against the N samples' sum)
SEPARATION_WEIGHTINGS = ("sample", "dataset")
#: the factor of β = BETA_FACTOR η S / D: at the GMM's stationary point under Eq. 10 the
#: separation term's cross term against a uniform shrink of the code is ≈ −1.1 η S per sample
#: (2 × 0.56, measured on random 10-centre 10-d configurations; ../shared/docs/audits/rmn.md §1.4)
BETA_FACTOR = 1.1

# --------------------------------------------------------------------------- pure functions


def log_gaussians(y: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """The G layer in log space: ``log g(y_b | μ_k, diag σ²_k)`` (Eq. 2).

    Args:
        y: representations (B, D); means, variances: (K, D).
    Returns:
        (B, K).
    """
    diff2 = (y.unsqueeze(1) - means.unsqueeze(0)).pow(2)                  # (B, K, D)
    mahalanobis = (diff2 / variances.unsqueeze(0)).sum(dim=2)            # (B, K)
    log_det = variances.log().sum(dim=1)                                 # (K,)
    return -0.5 * (y.shape[1] * _LOG_2PI + log_det.unsqueeze(0) + mahalanobis)


def log_joint(y: torch.Tensor, means: torch.Tensor, variances: torch.Tensor,
              weights: torch.Tensor) -> torch.Tensor:
    """``log ω_k + log g(y_b | μ_k, σ²_k)``: (B, K) for y (B, D), means/variances (K, D),
    weights (K,)."""
    return weights.log().unsqueeze(0) + log_gaussians(y, means, variances)


def log_likelihood(y: torch.Tensor, means: torch.Tensor, variances: torch.Tensor,
                   weights: torch.Tensor) -> torch.Tensor:
    """``log p(y_b | λ) = log Σ_k ω_k g(y_b | μ_k, σ²_k)`` (Eq. 1) by logsumexp: (B,)."""
    return torch.logsumexp(log_joint(y, means, variances, weights), dim=1)


def posteriors(y: torch.Tensor, means: torch.Tensor, variances: torch.Tensor,
               weights: torch.Tensor) -> torch.Tensor:
    """Responsibilities ``p(c_k | y_b)`` (Eq. 9): (B, K), rows summing to one."""
    return torch.softmax(log_joint(y, means, variances, weights), dim=1)


def neighbour_sets(means: torch.Tensor, n_neighbours: int) -> torch.Tensor:
    """n(k): indices of the ``n_neighbours`` nearest other centres of each centre.

    Args:
        means: (K, D).
    Returns:
        (K, n_neighbours) int64, nearest first; never contains k itself.
    """
    k = means.shape[0]
    if not 0 <= n_neighbours < k:
        raise ValueError(f"n_neighbours must lie in [0, {k - 1}] for {k} centres; "
                         f"got {n_neighbours}")
    dist = torch.cdist(means, means)
    dist = dist + torch.diag(torch.full((k,), math.inf, device=means.device, dtype=means.dtype))
    return dist.topk(n_neighbours, dim=1, largest=False).indices


def distance_scale(means: torch.Tensor, distance: str) -> torch.Tensor:
    """The divisor of dis(μ_k, μ_j) = |μ_k − μ_j|² / scale: a scalar tensor.

    ``euclidean`` (Eq. 5 as written): 1. ``normalized`` (Eq. 4's "normalized distance"): the
    mean squared distance over all pairs of distinct centres, so that S(μ) no longer grows when
    the whole code space is stretched. The scale is treated as a constant in the updates.

    Args:
        means: (K, D).
    """
    if distance == "euclidean":
        return torch.ones((), device=means.device, dtype=means.dtype)
    if distance == "normalized":
        k = means.shape[0]
        if k < 2:
            return torch.ones((), device=means.device, dtype=means.dtype)
        pair_sum = torch.cdist(means, means).pow(2).sum()
        return (pair_sum / (k * (k - 1))).detach().clamp_min(torch.finfo(means.dtype).tiny)
    raise ValueError(f"separation distance must be 'euclidean' or 'normalized'; got {distance!r}")


def separation(means: torch.Tensor, neighbours: torch.Tensor,
               scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """S(μ) = Σ_k Σ_{j∈n(k)} |μ_k − μ_j|² / scale (the second term of Eq. 4/5 without η): scalar.

    Args:
        means: (K, D); neighbours: (K, J) from :func:`neighbour_sets`;
        scale: from :func:`distance_scale` (1 = Eq. 5's squared Euclidean distance).
    """
    return (means.unsqueeze(1) - means[neighbours]).pow(2).sum() / scale


def gmm_directions(y: torch.Tensor, means: torch.Tensor, variances: torch.Tensor,
                   weights: torch.Tensor, neighbours: torch.Tensor, eta: float,
                   scale: torch.Tensor | float = 1.0,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's ascent directions for λ, averaged over a batch.

    * Eq. 10: ``p(c_k|y) (y_d − μ_kd) / σ²_kd + 2η Σ_{j∈n(k)} (μ_kd − μ_jd) / scale``
      (the η term is the same for every sample: only k's own neighbours, as written; scale from
      :func:`distance_scale`, 1 for Eq. 10 as printed);
    * Eq. 11: ``p(c_k|y) [(y_d − μ_kd)² / σ²_kd − 1]``;
    * Eq. 12: ``p(c_k|y) − ω_k``.

    Args:
        y: representations (B, D); means, variances: (K, D); weights: (K,);
        neighbours: (K, J); eta: weight of the separation term; scale: divisor of the
        squared distances (a constant here).
    Returns:
        (d_means (K, D), d_variances (K, D), d_weights (K,)).
    """
    post = posteriors(y, means, variances, weights)                    # (B, K)
    diff = y.unsqueeze(1) - means.unsqueeze(0)                          # (B, K, D)
    p = post.unsqueeze(2)
    d_means = (p * diff).mean(dim=0) / variances
    if eta != 0.0 and neighbours.shape[1] > 0:
        d_means = d_means + (2.0 * eta / scale) * (means.unsqueeze(1)
                                                   - means[neighbours]).sum(dim=1)
    d_variances = (p * (diff.pow(2) / variances.unsqueeze(0) - 1.0)).mean(dim=0)
    d_weights = post.mean(dim=0) - weights
    return d_means, d_variances, d_weights


def stability(means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor, eta: float,
              n_neighbours: int, distance: str) -> dict[str, float]:
    """Three label-free numbers of the mixture's state (../shared/docs/audits/rmn.md §1.4, §5).

    With S = :func:`separation` (the squared distances divided by :func:`distance_scale`, as
    stage 3 uses them), D the code dimension and η the per-sample weight of the term (η/N for
    ``separation_weighting: dataset``):

    * ``beta`` = 1.1 η S / D, the separation-to-shrink ratio: the log-likelihood gains D per
      sample per unit of log-shrink of the code, the separation term (at Eq. 10's stationary
      point) pushes back by ≈ 1.1 η S; the code shrinks while β < 1 and grows while β > 1.
    * ``kappa_max`` = max_kd 2 η |n(k)| σ²_kd / (ω_k · scale), the centre-detachment number:
      at Eq. 10's equilibrium with its neighbours fixed, a centre sits 1/(1 − κ) times farther
      from them than its points' mean for κ < 1 and runs off for κ ≥ 1.
    * ``separation_ratio`` R = mean_{k≠j} |μ_k − μ_j|² / Σ_k ω_k Σ_d σ²_kd, the mean squared
      distance between centres over the mean squared distance of a point from its own centre
      (the weighted trace of the covariances): scale-free, so a uniform shrink or growth of the
      code leaves it unchanged, and it rises as the components become "compact and separable".

    Args:
        means, variances: (K, D); weights: (K,); eta: the per-sample η; n_neighbours: |n(k)|;
        distance: ``euclidean`` or ``normalized``.
    Returns:
        ``{"beta", "kappa_max", "separation_ratio"}`` as floats.
    """
    k, dim = means.shape
    scale = distance_scale(means, distance)
    neighbours = neighbour_sets(means, n_neighbours)
    beta = BETA_FACTOR * eta * float(separation(means, neighbours, scale)) / dim
    kappa = 2.0 * eta * n_neighbours * variances / (weights.unsqueeze(1) * scale)   # (K, D)
    pairs = torch.cdist(means, means).pow(2).sum() / max(1, k * (k - 1))
    within = (weights.unsqueeze(1) * variances).sum()
    return {"beta": beta, "kappa_max": float(kappa.max()),
            "separation_ratio": float(pairs / within)}


def eta_for_beta(target_beta: float, means: torch.Tensor, n_neighbours: int,
                 distance: str) -> float:
    """The per-sample η that makes :func:`stability`'s β equal ``target_beta`` for these
    centres: η = target_beta · D / (1.1 S), S = :func:`separation` with ``distance``.

    Args:
        target_beta: > 0; means: (K, D), the centres at the start of stage 3;
        n_neighbours: |n(k)| >= 1; distance: ``euclidean`` or ``normalized``.
    Raises:
        ValueError when the centres give no separation to scale (S = 0: one component, no
        neighbours, or coinciding centres).
    """
    if not target_beta > 0:
        raise ValueError(f"target_beta must be > 0; got {target_beta}")
    s0 = float(separation(means, neighbour_sets(means, n_neighbours),
                          distance_scale(means, distance))) if n_neighbours > 0 else 0.0
    if not s0 > 0:
        raise ValueError("eta: auto_beta needs centres that are apart (the separation term S is "
                         f"{s0} at the start: K = {means.shape[0]} components, {n_neighbours} "
                         "neighbours each); give eta a number instead")
    return target_beta * means.shape[1] / (BETA_FACTOR * s0)


def project_gmm(variances: torch.Tensor, weights: torch.Tensor, min_variance: float,
                min_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep λ valid: variances (K, D) clamped to ``>= min_variance``; weights (K,) clipped to
    ``>= min_weight`` and renormalised to sum to one."""
    weights = weights.clamp_min(min_weight)
    return variances.clamp_min(min_variance), weights / weights.sum()


# --------------------------------------------------------------------------- the Λ layer


class RMN(nn.Module):
    """The representation modelling network's Λ layer: K diagonal Gaussians and their weights.

    Args:
        means, variances: (K, D); weights: (K,), e.g. from the ``gmm`` init.
        min_variance, min_weight: the clamps of :func:`project_gmm`.
    """

    def __init__(self, means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor,
                 min_variance: float = 0.01, min_weight: float = 1e-8):
        super().__init__()
        self.min_variance, self.min_weight = float(min_variance), float(min_weight)
        variances, weights = project_gmm(variances.float(), weights.float(), self.min_variance,
                                         self.min_weight)
        self.register_buffer("means", means.clone().float())
        self.register_buffer("variances", variances.clone())
        self.register_buffer("weights", weights.clone())
        for name in ("means", "variances", "weights"):  # momentum of the manual updates
            self.register_buffer(f"{name}_velocity", torch.zeros_like(getattr(self, name)))

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    def parameters_now(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Copies of (means, variances, weights), safe to use in a graph while they are updated."""
        return self.means.clone(), self.variances.clone(), self.weights.clone()

    @torch.no_grad()
    def ascend(self, directions: tuple[torch.Tensor, torch.Tensor, torch.Tensor], lr: float,
               momentum: float) -> None:
        """One manual ascent step ``v = momentum v + d; λ += lr v`` (PyTorch's SGD momentum,
        ascending), then :func:`project_gmm`."""
        for name, direction in zip(("means", "variances", "weights"), directions, strict=True):
            velocity = getattr(self, f"{name}_velocity")
            velocity.mul_(momentum).add_(direction)
            getattr(self, name).add_(velocity, alpha=lr)
        variances, weights = project_gmm(self.variances, self.weights, self.min_variance,
                                         self.min_weight)
        self.variances.copy_(variances)
        self.weights.copy_(weights)

    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """argmax_k p(c_k | y): (B, D) -> (B,) int64."""
        return log_joint(y, self.means, self.variances, self.weights).argmax(dim=1)


class RMNClusterer(nn.Module):
    """An autoencoder's encoder f_θ with the RMN on its representations (the decoder is used only
    with ``reconstruction_weight`` > 0)."""

    def __init__(self, autoencoder: nn.Module, rmn: RMN):
        super().__init__()
        self.autoencoder, self.rmn = autoencoder, rmn

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, ...) -> cluster indices (B,)."""
        return self.rmn.predict(self.autoencoder.encode(x))


class ClusteringHook(PeriodicHook):
    """Once per ``period`` steps: labels and mean log-likelihood of all points, for the history,
    with the component weights, the smallest variance, the largest centre norm, the centre
    separation (mean squared distance between centres), the code scale (mean per-dimension
    standard deviation of the codes), :func:`stability`'s ``beta``, ``kappa_max`` and
    ``separation_ratio`` (for the per-sample ``eta``, ``n_neighbours`` and ``distance`` stage 3
    uses) and the encoder's learning rate now (``encoder_lr``, from ``lr_now``).

    Adds rows (``kind='target'``, as the figures expect) with the label change and, for
    monitoring only, ACC/NMI against the true labels; never used for any decision, never stops.
    """

    def __init__(self, model: RMNClusterer, x: torch.Tensor, y_true: np.ndarray | None,
                 period: int, eval_batch: int = 4096, *, eta: float = 0.0,
                 n_neighbours: int = 0, distance: str = "normalized",
                 lr_now: Callable[[], float] | None = None):
        self.model, self.x, self.y_true = model, x, y_true
        self.period, self.eval_batch = period, eval_batch
        self.eta, self.n_neighbours, self.distance = eta, n_neighbours, distance
        self.lr_now = lr_now
        self.labels: torch.Tensor | None = None
        self.rows: list[dict[str, Any]] = []

    def __call__(self, step: int) -> bool:
        self.model.eval()
        y = map_batches(self.model.autoencoder.encode, self.x, self.eval_batch)
        self.model.train()
        rmn = self.model.rmn
        with torch.inference_mode():
            post = posteriors(y, rmn.means, rmn.variances, rmn.weights)
            labels = post.argmax(dim=1)
            ll = log_likelihood(y, rmn.means, rmn.variances, rmn.weights).mean()
        row = target_update_row(step, labels, self.labels, self.y_true, "max",
                                probabilities=post)
        row.update({f"weight_{k}": w for k, w in enumerate(rmn.weights.tolist())})
        k = rmn.means.shape[0]
        centre_d2 = torch.cdist(rmn.means, rmn.means).pow(2)
        row.update(log_likelihood_all=float(ll), min_variance=float(rmn.variances.min()),
                   max_centre_norm=float(rmn.means.norm(dim=1).max()),
                   centre_separation=float(centre_d2.sum() / max(1, k * (k - 1))),
                   code_std=float(y.std(dim=0).mean()))
        row.update(stability(rmn.means, rmn.variances, rmn.weights, self.eta, self.n_neighbours,
                             self.distance))
        if self.lr_now is not None:
            row["encoder_lr"] = float(self.lr_now())
        self.labels = labels
        self.rows.append(row)
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        (self.labels,) = to_device(self.x.device, state["labels"])
        self.rows = list(state["rows"])


def resolve_eta(eta: float | str, n_clusters: int) -> float:
    """``auto``: 0.01 for K <= 10, else 0.001 [default, methods.md §5.3]; numbers pass through
    (``auto_beta`` depends on the centres: :func:`resolve_eta_step`)."""
    if eta == "auto":
        return 0.01 if n_clusters <= 10 else 0.001
    try:
        value = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"eta must be a number >= 0, 'auto' or 'auto_beta'; got {eta!r}") \
            from None
    if value < 0:
        raise ValueError(f"eta must be >= 0 or 'auto'; got {eta}")
    return value


def resolve_eta_step(params: dict[str, Any], means: torch.Tensor, n_neighbours: int,
                     distance: str, weighting: str, n_samples: int,
                     ) -> tuple[float, float, float | None]:
    """(η as the recipe means it, η per sample, target β or None) for a recipe's ``eta``.

    A number or ``auto`` (:func:`resolve_eta`) is η in the units of ``separation_weighting``:
    per sample (``sample``, Eqs. 5 and 10) or once against the N log-likelihoods (``dataset``,
    Eq. 4: η/N per sample). ``auto_beta`` picks the per-sample η of :func:`eta_for_beta` for the
    centres ``means`` (K, D) at the start of stage 3 and ``target_beta`` (default 1.0), so that
    β = 1.1 η S / D (:func:`stability`) starts at ``target_beta`` whatever the code's scale;
    η is then that value times N for ``dataset``. With any other ``eta`` ``target_beta`` is not
    used (``head_defaults.rmn`` sets it for ``auto_beta``; a method that sets it beside another
    ``eta`` is refused by :mod:`stages.methods.rmn.checks`).
    """
    spec = params.get("eta", "auto")
    target = params.get("target_beta")
    if spec == "auto_beta":
        target = 1.0 if target is None else float(target)
        eta_step = eta_for_beta(target, means, n_neighbours, distance)
        return (eta_step if weighting == "sample" else eta_step * n_samples), eta_step, target
    eta = resolve_eta(spec, means.shape[0])
    # Eqs. 5/10 add eta S to every sample's objective; Eq. 4 counts it once against the sum of
    # the N log-likelihoods, i.e. eta / N per sample
    return eta, (eta if weighting == "sample" else eta / n_samples), None


# --------------------------------------------------------------------------- driver


@torch.no_grad()
def rescale_code(autoencoder: nn.Module, x: torch.Tensor, means: torch.Tensor,
                 variances: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Scale the code to unit mean per-dimension variance, and the GMM with it.

    The last linear layer of ``autoencoder.encoder`` is divided by s, s² the mean over the
    dimensions of the codes' variance over x (the spread within dimensions; the overall std of
    all entries also counts the offsets between the dimensions' means, and left a briefly
    trained RBM stack's within-dimension variances far below ``min_variance``, so that the clamp
    made every component cover every point), and the GMM (fitted on the unscaled codes) becomes
    (μ/s, σ²/s²): the same clustering, the same posteriors, but the paper's fixed learning rates
    and the variance floor now act on a representation of known scale. The first linear layer of
    the decoder is multiplied by s, so the autoencoder still reconstructs as before.
    Returns (s, means (K, D), variances (K, D)).
    """
    last = [m for m in autoencoder.encoder.modules() if isinstance(m, nn.Linear)][-1]
    first_decoder = next(m for m in autoencoder.decoder.modules() if isinstance(m, nn.Linear))
    scale = float(map_batches(autoencoder.encode, x).var(dim=0).mean().sqrt())
    last.weight.div_(scale)
    last.bias.div_(scale)
    first_decoder.weight.mul_(scale)
    return scale, means / scale, variances / scale ** 2



def finetune(autoencoder: Autoencoder, x: torch.Tensor, init: dict[str, np.ndarray],
             params: dict[str, Any], *, seed: int, y_true: np.ndarray | None = None,
             checkpoint: Checkpointer | None = None, log_every: int = 20) -> FinetuneResult:
    """Jointly optimise the encoder and the RMN (stage 3).

    Args:
        autoencoder: pretrained autoencoder with ``encode``, on the device of ``x``.
        x: the whole dataset (N, ...) on the device.
        init: the ``gmm`` init's arrays: ``means``, ``variances`` (K, D), ``weights`` (K,).
        params: the method recipe: ``eta`` (number, ``auto`` or ``auto_beta`` with
            ``target_beta``: :func:`resolve_eta_step`), ``steps`` (or ``epochs``),
            ``lr_step_steps`` (or ``lr_step_epochs``: lrs divided by 10 every so many steps or
            epochs), ``batch_size``, ``lr`` (of the GMM
            parameters, and of the encoder unless ``encoder_lr`` is given), ``encoder_lr``
            (the encoder's SGD lr: 1e-5 [default] or the paper's one base lr 0.01 [paper]),
            ``momentum``, ``min_variance``, ``min_weight``, ``monitor_every_epochs``,
            ``standardise`` (:func:`rescale_code` first; default false),
            ``separation_distance`` (``euclidean`` or ``normalized``, :func:`distance_scale`),
            ``reconstruction_weight`` (default 0 [paper]: the decoder is not used in stage 3;
            w > 0 adds ``w * reconstruction_mse(decode(y), x, reconstruction)`` to the loss
            and trains the decoder with the encoder, as IDEC keeps its autoencoder's loss, an
            option beyond the paper) and ``reconstruction`` (its reduction, default ``sum``
            as stage 1's |x - x_r|²).
    """
    missing = [k for k in ("means", "variances", "weights") if k not in init]
    if missing:
        raise DataFileError(f"head 'rmn' needs the arrays of the 'gmm' init, but the init "
                            f"artifact lacks {missing}; set the method's init to one with "
                            "algorithm: gmm")
    device = x.device
    means, variances, weights = (torch.as_tensor(init[k], device=device)
                                 for k in ("means", "variances", "weights"))
    scale = 1.0
    if params.get("standardise", False):
        autoencoder.eval()
        scale, means, variances = rescale_code(autoencoder, x, means, variances)
    rmn = RMN(means, variances, weights, min_variance=float(params.get("min_variance", 0.01)),
              min_weight=float(params.get("min_weight", 1e-8))).to(device)
    model = RMNClusterer(autoencoder, rmn)
    k = rmn.n_components
    weighting = str(params.get("separation_weighting", "sample"))
    if weighting not in SEPARATION_WEIGHTINGS:
        raise ValueError(f"separation_weighting must be one of "
                         f"{', '.join(SEPARATION_WEIGHTINGS)}; got {weighting!r}")
    n_neighbours = k // 2                                                   # [paper] |n(k)| = K/2
    distance = str(params.get("separation_distance", "normalized"))
    distance_scale(rmn.means, distance)                     # a bad name fails before training
    eta, eta_step, target_beta = resolve_eta_step(params, rmn.means, n_neighbours, distance,
                                                  weighting, x.shape[0])
    start_state = stability(rmn.means, rmn.variances, rmn.weights, eta_step, n_neighbours,
                            distance)
    if start_state["kappa_max"] >= 1:
        log.warning("stage 3 starts with kappa_max = %.3g >= 1 (eta %.3g per sample): Eq. 10's "
                    "separation term pulls some centre away faster than its points hold it, "
                    "so it will detach; lower eta (or target_beta)", start_state["kappa_max"],
                    eta_step)
    momentum = float(params.get("momentum", 0.9))
    encoder_lr = float(params.get("encoder_lr", params["lr"]))
    gmm_lr_scale = float(params["lr"]) / encoder_lr   # the GMM's lr follows the same steps
    w_rec = float(params.get("reconstruction_weight", 0.0))
    reduction = str(params.get("reconstruction", "sum"))
    reconstruction_mse(x[:1], x[:1], reduction)           # a bad reduction fails before training
    trained = autoencoder if w_rec > 0 else autoencoder.encoder
    optimizer = make_optimizer(list(trained.parameters()),
                               {"name": "sgd", "lr": encoder_lr, "momentum": momentum})
    batch = int(params["batch_size"])
    spe = steps_per_epoch(x.shape[0], batch)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=max(1, phase_steps(params, "lr_step", spe, default_epochs=10 ** 9)),
        gamma=0.1)
    every = max(1, int(params.get("monitor_every_epochs", 1)))
    monitor = ClusteringHook(model, x, y_true, period=every * spe, eta=eta_step,
                             n_neighbours=n_neighbours, distance=distance,
                             lr_now=lambda: optimizer.param_groups[0]["lr"])

    first = x[:batch]  # the trained network's gradient shares at the start (GMM steps aside)
    y_first = autoencoder.encode(first)
    parts = {"log_likelihood": -log_likelihood(y_first, rmn.means, rmn.variances,
                                               rmn.weights).mean()}
    if w_rec > 0:
        parts["reconstruction"] = w_rec * reconstruction_mse(autoencoder.decode(y_first), first,
                                                             reduction)
    share_row = gradient_shares(trained, parts)

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb = x[idx]
        y = autoencoder.encode(xb)
        means, variances, weights = rmn.parameters_now()
        ll = log_likelihood(y, means, variances, weights).mean()
        neighbours = neighbour_sets(means, n_neighbours)
        scale = distance_scale(means, distance)
        sep = separation(means, neighbours, scale)
        with torch.no_grad():
            rmn.ascend(gmm_directions(y.detach(), means, variances, weights, neighbours,
                                      eta_step, scale),
                       optimizer.param_groups[0]["lr"] * gmm_lr_scale, momentum)
        terms = {"loss": -ll, "log_likelihood": ll.detach(), "separation": sep,
                 "objective": ll.detach() + eta_step * sep.detach()}
        if w_rec > 0:
            reconstruction = reconstruction_mse(autoencoder.decode(y), xb, reduction)
            terms["reconstruction"] = reconstruction.detach()
            terms["loss"] = terms["loss"] + w_rec * reconstruction
        return terms

    cfg = LoopConfig(batch_size=batch, max_steps=phase_steps(params, "", spe), shuffle=True,
                     seed=seed, log_every=min(log_every, spe),
                     **loop_settings(params))
    result = run_loop(model, optimizer, loss_fn, x.shape[0], cfg, device, hook=monitor,
                      scheduler=scheduler, checkpoint=checkpoint, desc="finetune rmn")
    model.eval()
    z = map_batches(autoencoder.encode, x)
    with torch.inference_mode():
        labels = rmn.predict(z)
    history = [share_row] + sorted(result.history + monitor.rows,
                                   key=lambda r: (r["step"], r["kind"] != "target"))
    return FinetuneResult(
        labels=labels.cpu().numpy().astype(np.int64), embedding=z.cpu().numpy().astype(np.float32),
        history=history, state_dict=model.state_dict(),
        arrays={name: getattr(rmn, name).detach().float().cpu().numpy()
                for name in ("means", "variances", "weights")},
        info={"steps": result.steps, "eta": eta, "eta_per_sample": eta_step,
              "target_beta": target_beta, "encoder_lr": encoder_lr,
              "start": start_state,
              "separation_weighting": weighting,
              "n_neighbours": n_neighbours,
              "separation_distance": distance,
              "reconstruction_weight": w_rec,
              "code_scale": scale,
              "min_variance": float(rmn.variances.min()),
              "max_centre_norm": float(rmn.means.norm(dim=1).max()),
              "weights": [round(float(w), 6) for w in rmn.weights],
              "resumed_from_step": result.resumed_from})
