"""DSCDAN's clustering phase (Yang et al., CVPR 2019, Sect. 3.2, Eq. 20): the deep spectral
clustering network trained jointly with the pretrained dual autoencoder.

:class:`SpectralClusteringNet` (four fully connected ReLU layers [paper], 1024-1024-512-K and a
soft-max [code], then the orthonormalisation of Eqs. 17-18, its last factor W_orth kept for
prediction [code]); :class:`DscdanClusterer` (the dual autoencoder with its MI discriminators,
the spectral net and the cluster means m_k of Eq. 19); :func:`warm_start_head` (the head's start);
:class:`ClusteringHook` (the stop rule); :func:`finetune` (Eq. 20 on
:func:`stages.runtime.train.run_loop`). Each step on a batch of m codes z = mu(x): L_r (Eq. 12) +
beta MI (Eq. 10) + gamma Eq. 19 (the mixture KL, pi(x) = p(y|z)) + L_c (Eq. 16), W the batch's kNN
affinity (Eq. 14), Y = pi W_orth. Choices where the paper is silent:

* [code] Adam lr 1e-3, batch 1024; every ``steps_per_check`` = 10 steps (the code's "epoch" of
  10 random batches) the SUM of their losses is compared with the previous check's sum: stop
  when it changes by less than ``tol`` = 1e-4 (1e-5 on the mean), or after 500 checks
  (``check_statistic: mean`` compares the means instead, 10x looser at the same tol);
* the head's start (``warm_start``): the code loads a trained joint model (``vae_mnist.h5``,
  clustering head and means included) that no script of its repository can produce. The
  label-free equivalent [code]: ``prior``, the head trained alone (until a share
  ``warm_start_agreement`` of the samples take their target's cluster, at most
  ``warm_start_steps``) on
  the assignments of the mixture prior's classifier q(y|mu) (pretraining ``prior: mixture``),
  [default] one-hot at its argmax (``warm_start_targets: hard``; ``soft``: q itself, which can
  be near-uniform after pretraining, and a head distilled from it starts as unsharp as a random
  one), the autoencoder frozen, and m_k the prior's means; when the prior's assignments leave
  a cluster below ``warm_start_min_share`` (1%) of the points, the ``kmeans`` targets instead
  (logged; the ``warm_start`` row's ``warm_start_targets_from``); ``kmeans``: the same on the
  one-hot k-means labels of the init, m_k its centres; ``none`` [paper]: a random head, m_k the
  k-means centres [default]; q(y) uniform;
* [code] gradients pass through W_orth (``orth_gradient: false``: a constant, as SpectralNet
  and the spec's default);
* [code] W from the clean codes mu, built in the graph (``affinity_gradient: true``: L_c reaches
  the encoder through W too; false: W a constant), 4 neighbours excluding self (the code's
  ``n_nbrs = 5`` counts the point; [paper] 3), fixed bandwidth sigma = 2.62
  (``bandwidth: fixed``; ``batch``: the per-batch median rule; ``global``: the init graph's);
* [code] L_c / m, weight 1 (``spectral_normalisation: m2``: Eq. 16's 1/m^2 [paper]);
* [code] both reconstructions x ``reconstruction_scale`` 5, the plain term on the noisy
  reconstruction (``plain_reconstruction: noisy``, weight 1), the relative term 0.5, Eq. 19's
  Gaussian part 1.5 and categorical part 1 (``cat_weight``), MI 0.001 (``head_defaults.dscdan``;
  the paper's values are one line away there);
* [code] prediction argmax pi(x); ``predict: spectral-kmeans``: k-means on Y of all points
  (SpectralNet's rule).

Why the [code] and [default] choices, with the measurements: docs/notes/dscdan.md and
docs/reproduction/dscdan-choices.md.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from stages.methods.dscdan.losses import (
    autoencoder_terms,
    knn_affinity,
    loss_weights,
    mixture_kl_terms,
    orthonormalize,
    spectral_loss,
)
from stages.methods.shared.common import (
    FinetuneResult,
    gradient_shares,
    target_update_row,
    to_device,
)
from stages.nets.autoencoder import Autoencoder
from stages.nets.dec import keras_init_
from stages.runtime.train import (
    Checkpointer,
    LoopConfig,
    PeriodicHook,
    loop_settings,
    make_optimizer,
    map_batches,
    run_loop,
)

log = logging.getLogger("stages.methods.dscdan")

PREDICT_RULES = ("softmax", "spectral-kmeans")
BANDWIDTHS = ("fixed", "batch", "global")
WARM_STARTS = ("prior", "kmeans", "none")
WARM_START_TARGETS = ("hard", "soft")
CHECK_STATISTICS = ("sum", "mean")
#: [code] the fixed bandwidth of the code's clustering-phase affinity (``Conv.py``)
CODE_SIGMA = 2.62


class SpectralClusteringNet(nn.Module):
    """C: z (B, d) -> soft-max pi (B, K), plus the orthonormalisation layer's last W_orth.

    Args:
        latent_dim: d (120).
        n_clusters: K.
        widths: hidden widths (1024, 1024, 512 [code]).
    """

    def __init__(self, latent_dim: int, n_clusters: int,
                 widths: tuple[int, ...] | list[int] = (1024, 1024, 512)):
        super().__init__()
        dims = [int(latent_dim), *(int(w) for w in widths)]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], int(n_clusters)))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("w_orth", torch.eye(int(n_clusters)))
        keras_init_(self)  # [code] Glorot uniform

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """pi = softmax(C(z)): (B, d) -> (B, K)."""
        return F.softmax(self.mlp(z), dim=1)

    def orthonormal(self, pi: torch.Tensor) -> torch.Tensor:
        """Y = pi W_orth with the last batch's factor (prediction): (B, K) -> (B, K)."""
        return pi @ self.w_orth


class DscdanClusterer(nn.Module):
    """The dual autoencoder, the spectral network C and the cluster means m_k (K, d).

    Args:
        autoencoder: a pretrained :class:`stages.nets.dscdan.DualAutoencoder`.
        centres: initial cluster means (K, d).
        widths: hidden widths of C.
    """

    def __init__(self, autoencoder: nn.Module, centres: torch.Tensor,
                 widths: tuple[int, ...] | list[int] = (1024, 1024, 512)):
        super().__init__()
        n_clusters, dim = centres.shape
        self.autoencoder = autoencoder
        self.spectral = SpectralClusteringNet(dim, n_clusters, widths)
        self.means = nn.Parameter(centres.detach().clone().float())

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """pi(x) = C(mu(x)): x (B, C, H, W) -> (B, K)."""
        return self.spectral(self.autoencoder.encode(x))


def batch_affinity(mu: torch.Tensor, params: dict[str, Any],
                   sigma: torch.Tensor | float | None = None) -> torch.Tensor:
    """Eq. 14's W (m, m) of a batch of codes mu (m, d) by the recipe: ``n_neighbors`` (4
    [code]), ``scale_neighbor`` (for a per-batch bandwidth, ``sigma`` None), and
    ``affinity_gradient`` (True [code]: W in the graph, so L_c's gradient reaches the encoder
    through W as well as through pi)."""
    return knn_affinity(mu, int(params.get("n_neighbors", 4)), int(params.get("scale_neighbor", 2)),
                        sigma, detach=not bool(params.get("affinity_gradient", True)))


def eq20_terms(model: DscdanClusterer, xb: torch.Tensor, params: dict[str, Any],
               sigma: torch.Tensor | None = None,
               weighted: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Eq. 20 on a batch xb (B, C, H, W); updates ``model.spectral.w_orth`` with the batch's
    orthonormalisation factor.

    Returns the scalar terms: ``loss`` and ``plain``, ``relative``, ``mi_global``, ``mi_local``
    (those switched on), ``kl`` and ``cat`` (Eq. 19's Gaussian and categorical parts),
    ``spectral`` (Eq. 16), and ``knn_affinity``, the mean of W over its kNN edges (a
    diagnostic, no gradient: with a fixed sigma and W in the graph the encoder could lower L_c
    by spreading the codes until W vanishes). A given ``weighted`` dict is filled with the four
    weighted parts that sum to ``loss``: ``autoencoder`` (reconstruction and MI), ``kl``,
    ``cat`` and ``spectral``.
    """
    weights = loss_weights(params)
    terms, mu, logvar = autoencoder_terms(model.autoencoder, xb, weights,
                                          str(params.get("plain_reconstruction", "clean")))
    loss = terms.pop("partial")
    parts = {"autoencoder": loss}
    pi = model.spectral(mu)
    terms["kl"], terms["cat"] = mixture_kl_terms(mu, logvar, pi, model.means)
    parts["kl"] = weights["kl_weight"] * terms["kl"]
    parts["cat"] = weights["cat_weight"] * terms["cat"]
    loss = loss + parts["kl"] + parts["cat"]
    w = batch_affinity(mu, params, sigma)
    with torch.no_grad():  # label-free signal: a W that fades means the codes spread apart
        edges = w > 0
        terms["knn_affinity"] = w.sum() / edges.sum().clamp_min(1)
    eps = float(params.get("orth_eps", 1e-6))
    if params.get("orth_gradient", True):
        y, w_orth = orthonormalize(pi, eps)
    else:
        _, w_orth = orthonormalize(pi.detach(), eps)
        y = pi @ w_orth
    with torch.no_grad():
        model.spectral.w_orth.copy_(w_orth.detach())
    terms["spectral"] = spectral_loss(w, y, str(params.get("spectral_normalisation", "m")))
    parts["spectral"] = float(params.get("spectral_weight", 1.0)) * terms["spectral"]
    loss = loss + parts["spectral"]
    if weighted is not None:
        weighted.update(parts)
    return {"loss": loss, **terms}


#: a code dimension is active when the variance of mu over the data exceeds this (Burda et
#: al.'s active units)
ACTIVE_VARIANCE = 0.01
#: the Jensen-Shannon MI loss of a discriminator that cannot tell the pairs apart: 2 log 2
MI_CHANCE = 2 * math.log(2)


def code_signals(codes: torch.Tensor) -> dict[str, Any]:
    """Label-free signals of the clean codes mu (N, d): ``active_dims`` (dimensions whose
    variance over the data exceeds :data:`ACTIVE_VARIANCE`), ``code_max_variance`` (the largest
    per-dimension variance) and ``mi_chance`` (:data:`MI_CHANCE`, the level the history's
    ``mi_global`` / ``mi_local`` reach when the MI terms have learnt nothing)."""
    variance = codes.float().var(dim=0)
    return {"active_dims": int((variance > ACTIVE_VARIANCE).sum()),
            "code_max_variance": float(variance.max()), "mi_chance": MI_CHANCE}


class ClusteringHook(PeriodicHook):
    """A :class:`stages.runtime.train.PeriodicHook`: every ``period`` steps, the loss of the last
    ``period`` steps (summed on the device in float64 by :meth:`add`) is compared with the
    previous check's; training stops when they differ by less than ``tol``. ``statistic``:
    ``sum`` [code] compares the sums of the ``period`` losses, as the authors' ``train_vae``
    returns them (``DSCDAN.py``: ``|loss_i - loss_{i-1}| < 1e-4``); ``mean`` compares their
    means (``period`` times looser at the same tol). With ``window`` W > 1 the compared
    quantities are the averages of the last W check values and of the W before them [default
    alternative, ``stop_window``]: one check's value is noisy (on mnist5k the means' rule fired
    by chance while the loss was still falling). Each check adds a history row with the mean
    loss (``check_loss``) and, when ``statistic`` is ``sum``, the sum (``check_loss_sum``);
    every ``predict_every``-th check the row also has the fraction of changed labels and, for
    monitoring only, ACC / NMI. The labels take a pass over all N samples, so :func:`finetune`
    sets ``predict_every`` to about one such pass per pass of training data (every check on
    mnist5k with batch 1024, every 7th on 70,000 images).
    """

    def __init__(self, model: DscdanClusterer, x: torch.Tensor, y_true: np.ndarray | None,
                 period: int, tol: float, eval_batch: int = 2048, predict_every: int = 1,
                 window: int = 1, statistic: str = "sum"):
        if int(window) < 1:
            raise ValueError(f"stop_window must be at least 1, got {window}")
        if statistic not in CHECK_STATISTICS:
            raise ValueError(f"unknown check_statistic '{statistic}'; valid choices: "
                             f"{', '.join(CHECK_STATISTICS)}")
        self.model, self.x, self.y_true = model, x, y_true
        self.period, self.tol, self.eval_batch = period, tol, eval_batch
        self.window, self.statistic = int(window), statistic
        self.values: list[float] = []
        self.predict_every = max(1, int(predict_every))
        self.checks = 0
        self.total = torch.zeros((), dtype=torch.float64, device=x.device)
        self.count = 0
        self.labels: torch.Tensor | None = None
        self.rows: list[dict[str, Any]] = []

    def add(self, loss: torch.Tensor) -> None:
        """Accumulate one step's loss (no host sync; float64, so that a sum of ten losses of
        ~70 still resolves the code's tol of 1e-4)."""
        self.total = self.total + loss.detach().double()
        self.count += 1

    def predict(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """argmax pi(x) of every sample (N,), pi(x) (N, K) and the clean codes mu(x) (N, d)."""
        was_training = self.model.training
        self.model.eval()
        codes = map_batches(self.model.autoencoder.encode, self.x, self.eval_batch)
        probabilities = map_batches(self.model.spectral, codes, self.eval_batch)
        self.model.train(was_training)
        return probabilities.argmax(dim=1), probabilities, codes

    def __call__(self, step: int) -> bool:
        if self.checks % self.predict_every == 0:
            labels, probabilities, codes = self.predict()
            row = target_update_row(step, labels, self.labels, self.y_true, "max",
                                    probabilities=probabilities)
            row.update(code_signals(codes))
            self.labels = labels
        else:
            row = {"step": step}
        row["kind"] = "check"
        self.checks += 1
        stop = False
        if self.count:
            total = float(self.total)
            row["check_loss"] = total / self.count
            if self.statistic == "sum":
                row["check_loss_sum"] = total
            value = total if self.statistic == "sum" else total / self.count
            self.values = (self.values + [value])[-2 * self.window:]
            if len(self.values) == 2 * self.window:
                w = self.window
                change = sum(self.values[w:]) / w - sum(self.values[:w]) / w
                row["check_loss_change"] = change
                stop = abs(change) < self.tol
        self.total, self.count = torch.zeros_like(self.total), 0
        self.rows.append(row)
        return stop

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "count": self.count, "labels": self.labels,
                "rows": self.rows, "checks": self.checks, "values": self.values,
                "statistic": self.statistic}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total, self.labels = to_device(self.x.device, state["total"], state["labels"])
        self.total = self.total.double()
        self.count = int(state["count"])
        self.rows = list(state["rows"])
        self.checks = int(state.get("checks", len(self.rows)))
        saved = state.get("statistic", "mean")  # checkpoints before check_statistic: means
        if saved != self.statistic:
            raise ValueError(f"the checkpoint's stop rule compares {saved}s, this run's "
                             f"{self.statistic}s: resume with check_statistic: {saved}, or "
                             "delete the checkpoint to start over")
        if "values" in state:
            self.values = list(state["values"])
        elif "means" in state:
            self.values = list(state["means"])
        else:  # a checkpoint from before stop_window kept only the last check's mean
            self.values = [] if state.get("previous") is None else [float(state["previous"])]


def resolve_sigma(params: dict[str, Any], init: dict[str, np.ndarray],
                  device: torch.device) -> torch.Tensor | None:
    """The affinity's bandwidth by ``bandwidth``: ``fixed`` the recipe's ``sigma`` ([code]
    2.62), ``global`` the knn-graph init's ``sigma``, ``batch`` None (per-batch median)."""
    bandwidth = str(params.get("bandwidth", "fixed"))
    if bandwidth not in BANDWIDTHS:
        raise ValueError(f"unknown bandwidth '{bandwidth}'; valid choices: "
                         f"{', '.join(BANDWIDTHS)}")
    if bandwidth == "fixed":
        sigma = float(params.get("sigma", CODE_SIGMA))
        if not sigma > 0:
            raise ValueError(f"bandwidth 'fixed' needs a positive sigma, got {sigma}")
        return torch.tensor(sigma, device=device)
    if bandwidth == "global":
        if "sigma" not in init:
            raise ValueError("bandwidth 'global' needs the knn-graph init's 'sigma'")
        return torch.as_tensor(init["sigma"], device=device, dtype=torch.float32).reshape(())
    return None


def predict(model: DscdanClusterer, x: torch.Tensor, rule: str, n_clusters: int, seed: int,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) by ``rule`` and the clean codes mu (N, d) of x (N, C, H, W)."""
    if rule not in PREDICT_RULES:
        raise ValueError(f"unknown predict rule '{rule}'; valid choices: "
                         f"{', '.join(PREDICT_RULES)}")
    model.eval()
    z = map_batches(model.autoencoder.encode, x, 2048)
    pi = map_batches(model.spectral, z, 2048)
    if rule == "softmax":
        labels = pi.argmax(dim=1).cpu().numpy()
    else:
        y = map_batches(model.spectral.orthonormal, pi, 2048).cpu().numpy()
        labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(y).labels_
    return labels.astype(np.int64), z.cpu().numpy().astype(np.float32)


class AgreementHook(PeriodicHook):
    """The warm start's stop rule: every ``period`` steps, the share of the N samples whose
    argmax pi(codes) is their target's argmax (``agreement``, a ``kind='warm_start_check'``
    row); stop when it reaches ``agreement``."""

    def __init__(self, spectral: SpectralClusteringNet, codes: torch.Tensor,
                 target_labels: torch.Tensor, period: int, agreement: float):
        self.spectral, self.codes, self.target_labels = spectral, codes, target_labels
        self.period, self.agreement = int(period), float(agreement)
        self.rows: list[dict[str, Any]] = []

    def __call__(self, step: int) -> bool:
        with torch.no_grad():
            labels = map_batches(self.spectral, self.codes, 4096).argmax(dim=1)
        value = float((labels == self.target_labels).float().mean())
        self.rows.append({"kind": "warm_start_check", "step": step, "agreement": value})
        return value >= self.agreement

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])


def warm_start_head(spectral: SpectralClusteringNet, codes: torch.Tensor, targets: torch.Tensor,
                    *, steps: int, batch_size: int, lr: float, seed: int,
                    agreement: float = 1.0, check_every: int = 100,
                    loop: dict[str, Any] | None = None,
                    checkpoint: Checkpointer | None = None) -> list[dict[str, Any]]:
    """Train the clustering net alone to reproduce given assignments: the label-free stand-in
    for the code's trained head (``vae_mnist.h5``).

    Minimises the cross-entropy ``-Σ_k t_k log pi_k`` of its soft-max pi(codes) to ``targets``
    (soft or one-hot) with Adam, shuffled batches, for at most ``steps`` steps; every
    ``check_every`` steps (:class:`AgreementHook`) it stops once ``agreement`` of the samples
    have the target's argmax (1.0: never before ``steps``). The codes are fixed (the
    autoencoder frozen), so one pass of the encoder serves the whole warm start.

    Args:
        spectral: the clustering net C (trained in place).
        codes: mu of every sample (N, d), no gradient.
        targets: assignments (N, K), rows summing to one.
        loop: extra :class:`stages.runtime.train.LoopConfig` fields (precision, compile).
        checkpoint: the warm start's own checkpoint (the fine-tuning's ``warmstart`` phase):
            a job restarted after the warm start finished loads its weights and rows from it
            instead of training it again.
    Returns:
        history rows: the loop's rows (``kind='warm_start_train'``), the checks'
        (``warm_start_check``) and one ``kind='warm_start'`` row at the end with ``agreement``,
        the cluster diagnostics of argmax pi (shares, populated, sharpness), the final loss and
        ``converged`` (the agreement was reached).
    """
    if codes.shape[0] != targets.shape[0]:
        raise ValueError(f"{codes.shape[0]} codes but {targets.shape[0]} target rows")
    if not 0.0 < float(agreement) <= 1.0:
        raise ValueError(f"warm_start_agreement must lie in (0, 1]; got {agreement}")
    codes, targets = codes.detach(), targets.detach().to(codes.dtype)
    target_labels = targets.argmax(dim=1)

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        log_pi = F.log_softmax(spectral.mlp(codes[idx]), dim=1)
        return {"loss": -(targets[idx] * log_pi).sum(dim=1).mean()}

    batch = min(int(batch_size), codes.shape[0])
    hook = AgreementHook(spectral, codes, target_labels, max(1, int(check_every)), agreement)
    cfg = LoopConfig(batch_size=batch, max_steps=int(steps), shuffle=True, seed=seed,
                     log_every=max(1, min(20, int(steps))), **(loop or {}))
    optimizer = make_optimizer(list(spectral.parameters()), {"name": "adam", "lr": float(lr)})
    result = run_loop(spectral, optimizer, loss_fn, codes.shape[0], cfg, codes.device,
                      hook=hook, checkpoint=checkpoint,
                      desc="warm start dscdan") if steps > 0 else None
    with torch.no_grad():
        pi = map_batches(spectral, codes, 4096)
    labels = pi.argmax(dim=1)
    row = target_update_row(result.steps if result else 0, labels, None, None, "max",
                            probabilities=pi)
    reached = float((labels == target_labels).float().mean())
    row.update(kind="warm_start", agreement=reached, converged=reached >= float(agreement),
               loss=float(-(targets * pi.clamp_min(1e-12).log()).sum(dim=1).mean()))
    row.pop("delta_label", None)
    loop_rows = [{**r, "kind": "warm_start_train"} for r in (result.history if result else [])]
    return sorted(loop_rows + hook.rows, key=lambda r: r["step"]) + [row]


def start_targets(autoencoder: nn.Module, codes: torch.Tensor, init: dict[str, np.ndarray],
                  rule: str, n_clusters: int, hard: bool = True,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The warm start's targets (N, K) and the means m_k (K, d) it starts Eq. 19 from.

    ``prior``: q(y|mu) of the mixture prior's classifier, one-hot at its argmax when ``hard``
    (else soft), and its means (the autoencoder must have been pretrained with ``prior:
    mixture``); ``kmeans``: one-hot init ``labels`` and the init ``centres``."""
    device = codes.device
    if rule == "prior":
        clusters = int(getattr(autoencoder, "prior_clusters", 0))
        if clusters != n_clusters:
            raise ValueError(f"warm_start 'prior' needs an autoencoder pretrained with a mixture "
                             f"prior of {n_clusters} clusters (prior: mixture); this one has "
                             f"{clusters}. Use warm_start: kmeans or none, or pretrain with "
                             "prior: mixture")
        with torch.no_grad():
            targets = map_batches(autoencoder.prior_probabilities, codes, 4096)
        if hard:
            targets = F.one_hot(targets.argmax(dim=1), n_clusters).to(codes.dtype)
        return targets, autoencoder.prior_means.detach().clone()
    if "labels" not in init:
        raise ValueError("warm_start 'kmeans' needs the init stage's k-means 'labels'")
    labels = torch.as_tensor(init["labels"], device=device, dtype=torch.int64)
    targets = F.one_hot(labels, n_clusters).to(codes.dtype)
    return targets, torch.as_tensor(init["centres"], device=device, dtype=torch.float32)


def finetune(autoencoder: Autoencoder, x: torch.Tensor, init: dict[str, np.ndarray],
             params: dict[str, Any], *, seed: int, y_true: np.ndarray | None = None,
             checkpoint: Checkpointer | None = None, log_every: int = 20) -> FinetuneResult:
    """DSCDAN's clustering phase (Eq. 20) on a pretrained dual autoencoder.

    Args:
        autoencoder: pretrained :class:`~stages.nets.dscdan.DualAutoencoder` on x's device.
        x: the whole dataset (N, C, H, W) in [0, 1] on the device.
        init: the init stage's arrays: ``centres`` (K, d) start the means m_k (unless the
            ``prior`` warm start takes the mixture's), ``labels`` (N,) are the ``kmeans`` warm
            start's targets; ``sigma`` (1,), the global graph's bandwidth, is read with
            ``bandwidth: global``.
        params: the method recipe: ``batch_size``, ``lr``, ``max_epochs`` (checks),
            ``steps_per_check``, ``tol``, ``stop_window``, ``check_statistic`` (sum | mean),
            the loss weights (``mi_weight``, ``kl_weight``, ``cat_weight``,
            ``relative_weight``, ``plain_weight``, ``reconstruction_scale``,
            ``spectral_weight``), ``plain_reconstruction`` (clean | noisy), ``n_neighbors``,
            ``scale_neighbor``, ``bandwidth`` (fixed | batch | global), ``sigma``,
            ``affinity_gradient``, ``warm_start`` (prior | kmeans | none),
            ``warm_start_targets`` (hard | soft), ``warm_start_steps``,
            ``warm_start_agreement``, ``warm_start_min_share``,
            ``spectral_normalisation``, ``orth_eps``, ``orth_gradient``, ``widths``, ``predict``.
    """
    device = x.device
    if "centres" not in init:
        raise ValueError("the dscdan head needs the init stage's k-means 'centres' (init "
                         "algorithms kmeans or knn-graph)")
    centres = torch.as_tensor(init["centres"], device=device, dtype=torch.float32)
    n_clusters = centres.shape[0]
    batch = min(int(params["batch_size"]), x.shape[0])
    if batch < n_clusters:
        raise ValueError(f"batch_size {batch} is below the number of clusters {n_clusters}: "
                         "the orthonormalisation layer needs at least one row per cluster")
    sigma = resolve_sigma(params, init, device)
    rule = str(params.get("warm_start", "prior"))
    if rule not in WARM_STARTS:
        raise ValueError(f"unknown warm_start '{rule}'; valid choices: {', '.join(WARM_STARTS)}")
    warm_rows: list[dict[str, Any]] = []
    if rule != "none":
        autoencoder.eval()
        codes = map_batches(autoencoder.encode, x, 2048)
        autoencoder.train()
        hard = str(params.get("warm_start_targets", "hard"))
        if hard not in WARM_START_TARGETS:
            raise ValueError(f"unknown warm_start_targets '{hard}'; valid choices: "
                             f"{', '.join(WARM_START_TARGETS)}")
        targets, centres = start_targets(autoencoder, codes, init, rule, n_clusters,
                                         hard=hard == "hard")
        used = rule
        if rule == "prior":
            min_share = float(params.get("warm_start_min_share", 0.01))
            shares = torch.bincount(targets.argmax(dim=1), minlength=n_clusters) / x.shape[0]
            if float(shares.min()) < min_share:
                log.warning("warm start: the mixture prior's assignments leave a cluster with "
                            "%.2f%% of the points (below %.2f%%): the head warm-starts from "
                            "the k-means labels instead", 100 * float(shares.min()),
                            100 * min_share)
                targets, centres = start_targets(autoencoder, codes, init, "kmeans", n_clusters)
                used = "kmeans"
    model = DscdanClusterer(autoencoder, centres, tuple(params.get("widths", (1024, 1024, 512))))
    model.to(device)
    if rule != "none":
        warm_rows = warm_start_head(model.spectral, codes, targets,
                                    steps=int(params.get("warm_start_steps", 2000)),
                                    batch_size=batch, lr=float(params["lr"]), seed=seed,
                                    agreement=float(params.get("warm_start_agreement", 0.75)),
                                    loop={k: v for k, v in loop_settings(params).items()
                                          if k != "checkpoint_every"},
                                    checkpoint=(checkpoint or Checkpointer(None))
                                    .phase("warmstart"))
        warm_rows[-1]["warm_start_targets_from"] = used
        del codes, targets
    period = int(params.get("steps_per_check", 10))
    samples_per_check = period * batch
    hook = ClusteringHook(model, x, y_true, period=period, tol=float(params.get("tol", 1e-4)),
                          predict_every=math.ceil(x.shape[0] / samples_per_check),
                          window=int(params.get("stop_window", 1)),
                          statistic=str(params.get("check_statistic", "sum")))

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = eq20_terms(model, x[idx], params, sigma)
        hook.add(terms["loss"])
        return terms

    cfg = LoopConfig(batch_size=batch, max_steps=int(params["max_epochs"]) * period,
                     shuffle=True, seed=seed, log_every=min(log_every, period),
                     **loop_settings(params))
    optimizer = make_optimizer(list(model.parameters()),
                               {"name": "adam", "lr": float(params["lr"])})
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        w_orth = model.spectral.w_orth.clone()
        parts: dict[str, torch.Tensor] = {}
        eq20_terms(model, x[:batch], params, sigma, weighted=parts)
        share_row = gradient_shares(model, parts)
        # the same terms' shares of the clustering net's gradient alone (the autoencoder terms
        # do not reach it)
        spectral_share = gradient_shares(model.spectral, {k: v for k, v in parts.items()
                                                          if k != "autoencoder"})
        share_row.update({key.replace("grad_", "grad_clustering_net_", 1): value
                          for key, value in spectral_share.items()
                          if key.startswith("grad_")})
        model.spectral.w_orth.copy_(w_orth)  # the first step sets it as it would have
    result = run_loop(model, optimizer, loss_fn, x.shape[0], cfg, device, hook=hook,
                      checkpoint=checkpoint, desc="finetune dscdan")
    labels, z = predict(model, x, str(params.get("predict", "softmax")), n_clusters, seed)
    history = warm_rows + [share_row] + sorted(result.history + hook.rows,
                                               key=lambda r: (r["step"], r["kind"] != "check"))
    return FinetuneResult(
        labels=labels, embedding=z, history=history, state_dict=model.state_dict(),
        info={"steps": result.steps, "checks": len(hook.rows),
              "converged": result.stopped_by_hook, "resumed_from_step": result.resumed_from,
              "clusters_used": int(np.unique(labels).size),
              "epochs": result.steps * batch / x.shape[0] if x.shape[0] else math.nan})
