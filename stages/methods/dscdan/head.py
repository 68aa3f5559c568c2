"""DSCDAN's clustering phase (Yang et al., CVPR 2019, Sect. 3.2, Eq. 20): the deep spectral
clustering network trained jointly with the pretrained dual autoencoder.

:class:`SpectralClusteringNet` (four fully connected ReLU layers [paper], 1024-1024-512-K and a
soft-max [code], then the orthonormalisation of Eqs. 17-18, its last factor W_orth kept for
prediction [code]); :class:`DscdanClusterer` (the dual autoencoder with its MI discriminators,
the spectral net and the cluster means m_k of Eq. 19); :class:`ClusteringHook` (the stop rule);
:func:`finetune` (Eq. 20 on :func:`stages.train.run_loop`). Each step on a batch of m codes
z = mu(x): L_r (Eq. 12) + beta MI (Eq. 10) + gamma Eq. 19 (the mixture KL, pi(x) = p(y|z)) + L_c
(Eq. 16), W the batch's kNN affinity (Eq. 14), Y = pi W_orth. Choices where the paper is silent:

* [code] Adam lr 1e-3, batch 1024; every ``steps_per_check`` = 10 steps (the code's "epoch" of
  10 random batches) their mean loss is compared with the previous check's: stop when it
  changes by less than 1e-4, or after 500 checks;
* [default] m_k start at the init stage's k-means ``centres`` (the code: zero); q(y) uniform;
* [code] gradients pass through W_orth (``orth_gradient: false``: a constant, as SpectralNet
  and the spec's default);
* [default] W a constant, from the clean codes mu, 3 neighbours excluding self, per-batch median
  bandwidth (``bandwidth: global``: the init graph's);
* [code] L_c / m, weight 1 (``spectral_normalisation: m2``: Eq. 16's 1/m^2 [paper]);
* [code] both reconstructions x ``reconstruction_scale`` 5, the plain term on the noisy
  reconstruction (``plain_reconstruction: noisy``, weight 1), the relative term 0.5, KL (Eq. 19)
  1.5, MI 0.001 (``head_defaults.dscdan``; the paper's values are one line away there);
* [code] prediction argmax pi(x); ``predict: spectral-kmeans``: k-means on Y of all points
  (SpectralNet's rule).

Why the [code] and [default] choices, with the measurements: docs/notes/dscdan.md.
"""

from __future__ import annotations

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
    mixture_kl,
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
from stages.train import (
    Checkpointer,
    LoopConfig,
    PeriodicHook,
    loop_settings,
    make_optimizer,
    map_batches,
    run_loop,
)

PREDICT_RULES = ("softmax", "spectral-kmeans")
BANDWIDTHS = ("batch", "global")


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


def eq20_terms(model: DscdanClusterer, xb: torch.Tensor, params: dict[str, Any],
               sigma: torch.Tensor | None = None,
               weighted: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Eq. 20 on a batch xb (B, C, H, W); updates ``model.spectral.w_orth`` with the batch's
    orthonormalisation factor.

    Returns the scalar terms: ``loss`` and ``plain``, ``relative``, ``mi_global``, ``mi_local``
    (those switched on), ``kl`` (Eq. 19), ``spectral`` (Eq. 16). A given ``weighted`` dict is
    filled with the three weighted parts that sum to ``loss``: ``autoencoder`` (reconstruction
    and MI), ``kl`` and ``spectral``.
    """
    weights = loss_weights(params)
    terms, mu, logvar = autoencoder_terms(model.autoencoder, xb, weights,
                                          str(params.get("plain_reconstruction", "clean")))
    loss = terms.pop("partial")
    parts = {"autoencoder": loss}
    pi = model.spectral(mu)
    terms["kl"] = mixture_kl(mu, logvar, pi, model.means)
    parts["kl"] = weights["kl_weight"] * terms["kl"]
    loss = loss + parts["kl"]
    w = knn_affinity(mu, int(params.get("n_neighbors", 3)), int(params.get("scale_neighbor", 2)),
                     sigma)
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
    """A :class:`stages.train.PeriodicHook`: every ``period`` steps, the mean loss of the last
    ``period`` steps (summed on the device by :meth:`add`) is compared with the previous mean;
    training stops when they differ by less than ``tol`` [code]. With ``window`` W > 1 the
    compared quantities are the averages of the last W check means and of the W before them
    [default alternative, ``stop_window``]: the code's rule (W = 1) compares two noisy means and
    on mnist5k fired by chance while the loss was still falling. Each check adds a history row
    with that mean; every ``predict_every``-th check the row also has the fraction of changed
    labels and, for monitoring only, ACC / NMI. The labels take a pass over all N samples, so
    :func:`finetune` sets ``predict_every`` to about one such pass per pass of training data
    (every check on mnist5k with batch 1024, every 7th on 70,000 images).
    """

    def __init__(self, model: DscdanClusterer, x: torch.Tensor, y_true: np.ndarray | None,
                 period: int, tol: float, eval_batch: int = 2048, predict_every: int = 1,
                 window: int = 1):
        if int(window) < 1:
            raise ValueError(f"stop_window must be at least 1, got {window}")
        self.model, self.x, self.y_true = model, x, y_true
        self.period, self.tol, self.eval_batch = period, tol, eval_batch
        self.window = int(window)
        self.means: list[float] = []
        self.predict_every = max(1, int(predict_every))
        self.checks = 0
        self.total = torch.zeros((), device=x.device)
        self.count = 0
        self.labels: torch.Tensor | None = None
        self.rows: list[dict[str, Any]] = []

    def add(self, loss: torch.Tensor) -> None:
        """Accumulate one step's loss (no host sync)."""
        self.total = self.total + loss.detach().float()
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
            mean = float(self.total) / self.count
            row["check_loss"] = mean
            self.means = (self.means + [mean])[-2 * self.window:]
            if len(self.means) == 2 * self.window:
                w = self.window
                change = sum(self.means[w:]) / w - sum(self.means[:w]) / w
                row["check_loss_change"] = change
                stop = abs(change) < self.tol
        self.total, self.count = torch.zeros_like(self.total), 0
        self.rows.append(row)
        return stop

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "count": self.count, "labels": self.labels,
                "rows": self.rows, "checks": self.checks, "means": self.means}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total, self.labels = to_device(self.x.device, state["total"], state["labels"])
        self.count = int(state["count"])
        self.rows = list(state["rows"])
        self.checks = int(state.get("checks", len(self.rows)))
        if "means" in state:
            self.means = list(state["means"])
        else:  # a checkpoint from before stop_window kept only the last check's mean
            self.means = [] if state.get("previous") is None else [float(state["previous"])]


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


def finetune(autoencoder: Autoencoder, x: torch.Tensor, init: dict[str, np.ndarray],
             params: dict[str, Any], *, seed: int, y_true: np.ndarray | None = None,
             checkpoint: Checkpointer | None = None, log_every: int = 20) -> FinetuneResult:
    """DSCDAN's clustering phase (Eq. 20) on a pretrained dual autoencoder.

    Args:
        autoencoder: pretrained :class:`~stages.nets.dscdan.DualAutoencoder` on x's device.
        x: the whole dataset (N, C, H, W) in [0, 1] on the device.
        init: the init stage's arrays: ``centres`` (K, d) start the means m_k; ``sigma`` (1,),
            the global graph's bandwidth, is read with ``bandwidth: global``.
        params: the method recipe: ``batch_size``, ``lr``, ``max_epochs`` (checks),
            ``steps_per_check``, ``tol``, ``stop_window``, the loss weights (``mi_weight``,
            ``kl_weight``, ``relative_weight``, ``plain_weight``, ``reconstruction_scale``,
            ``spectral_weight``), ``plain_reconstruction`` (clean | noisy), ``n_neighbors``,
            ``scale_neighbor``, ``bandwidth``, ``spectral_normalisation``, ``orth_eps``,
            ``orth_gradient``, ``widths``, ``predict``.
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
    bandwidth = str(params.get("bandwidth", "batch"))
    if bandwidth not in BANDWIDTHS:
        raise ValueError(f"unknown bandwidth '{bandwidth}'; valid choices: "
                         f"{', '.join(BANDWIDTHS)}")
    sigma = None
    if bandwidth == "global":
        if "sigma" not in init:
            raise ValueError("bandwidth 'global' needs the knn-graph init's 'sigma'")
        sigma = torch.as_tensor(init["sigma"], device=device, dtype=torch.float32).reshape(())
    model = DscdanClusterer(autoencoder, centres, tuple(params.get("widths", (1024, 1024, 512))))
    model.to(device)
    period = int(params.get("steps_per_check", 10))
    samples_per_check = period * batch
    hook = ClusteringHook(model, x, y_true, period=period, tol=float(params.get("tol", 1e-4)),
                      predict_every=math.ceil(x.shape[0] / samples_per_check),
                      window=int(params.get("stop_window", 1)))

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
    history = [share_row] + sorted(result.history + hook.rows,
                                   key=lambda r: (r["step"], r["kind"] != "check"))
    return FinetuneResult(
        labels=labels, embedding=z, history=history, state_dict=model.state_dict(),
        info={"steps": result.steps, "checks": len(hook.rows),
              "converged": result.stopped_by_hook, "resumed_from_step": result.resumed_from,
              "clusters_used": int(np.unique(labels).size),
              "epochs": result.steps * batch / x.shape[0] if x.shape[0] else math.nan})
