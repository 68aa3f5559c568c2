"""DSCDAN's pretraining objective, Eq. 13 = Eq. 12 + Eq. 10 (Yang et al., CVPR 2019, Sect. 3.1).

The per-batch terms shared with the clustering phase, the dual reconstruction (Eq. 12) and the
two MI estimates of Eq. 10, are :func:`stages.methods.dscdan.losses.autoencoder_terms`;
pretraining adds a KL term on q(z|x) = N(mu, sigma^2), by ``prior``:

* ``mixture`` [code] (``vaeConv2d.py``, the clustering VAE the authors' pretraining is):
  ``kl_weight`` x Σ_k q(y=k|mu) KL(q(z|x) || N(m_k, I)) + ``cat_weight`` x Σ_k q(y=k|mu)
  log(K q(y=k|mu)), q(y|mu) the network's 256-K soft-max classifier on mu and m_k its learnable
  means starting at zero (``prior_clusters`` of the net, set to the dataset's K); both weights 1
  [code]. It is the mixture KL of the clustering phase (Eq. 19), already in pretraining.
* ``standard`` [paper] (Eq. 10): ``kl_weight`` x KL(q(z|x) || N(0, I)).
Table 4's ablations switch terms off by their weights in the autoencoder recipe: ``mi_weight``
(beta, 0.01 [paper]), ``kl_weight`` (gamma, 1 [paper]), ``relative_weight`` (1 [paper]),
``plain_weight`` (delta, 0.5 [paper]), ``reconstruction_scale`` (on both reconstruction terms).
ConvAE: plain reconstruction only (deterministic code); +MI: Eq. 10 in full, MI and KL; +RS: the
relative term and [default] the KL term; +MI+RS: Eq. 13. [code] Adam lr 1e-3, batch 100, 100
epochs, ``reconstruction_scale`` = 5 (the code's ``lamb``; [paper] 1); the MI pairs use the
sampled z_hat [code]; negatives pair x_i with z_pi(i), pi a random permutation [paper]. Why the
scale and the KL in +RS, measured: docs/notes/dscdan.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stages.methods.dscdan.losses import (
    autoencoder_terms,
    gaussian_kl,
    loss_weights,
    mixture_kl_terms,
)
from stages.methods.shared.common import assignment_diagnostics
from stages.methods.shared.reconstruction import train_epochs
from stages.runtime.train import (
    Checkpointer,
    LoopResult,
    RowMonitor,
    map_batches,
    steps_per_epoch,
    validation_split,
)

#: samples of the training data the monitor reads when no split is held out
MONITOR_SAMPLES = 2000
#: a code dimension is active when the variance of mu over the data exceeds this (Burda et
#: al.'s active units)
ACTIVE_VARIANCE = 0.01

PRIORS = ("mixture", "standard")


def prior_of(recipe: dict[str, Any]) -> str:
    """The recipe's ``prior`` ([code] ``mixture`` when unset); ValueError for an unknown one."""
    prior = str(recipe.get("prior", "mixture"))
    if prior not in PRIORS:
        raise ValueError(f"unknown prior '{prior}'; valid choices: {', '.join(PRIORS)}")
    return prior


class PretrainMonitor(RowMonitor):
    """A :class:`stages.runtime.train.PeriodicHook` (never stops training): every ``period`` steps
    and at the end (:meth:`finish`), label-free signals of ``x_eval`` (M, C, H, W) as a
    ``kind='monitor'`` row: ``eval_plain`` (per-sample SSE of the clean reconstruction D(mu),
    no scale), ``active_dims`` (dimensions of mu whose variance exceeds
    :data:`ACTIVE_VARIANCE`), ``code_max_variance`` and, with a mixture prior, the cluster
    shares and sharpness of its classifier q(y|mu) (``prior_`` + the names of
    :func:`stages.methods.shared.common.assignment_diagnostics`). ``held_out``: whether x_eval
    was held out of training."""

    def __init__(self, model: nn.Module, x_eval: torch.Tensor, period: int, mixture: bool,
                 held_out: bool):
        self.model, self.x_eval, self.period = model, x_eval, int(period)
        self.mixture, self.held_out = mixture, held_out
        self.rows: list[dict[str, Any]] = []

    def __call__(self, step: int) -> bool:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            mu = map_batches(self.model.encode, self.x_eval, 1000)
            sse = torch.cat([(self.model.decode(mu[i:i + 1000]) - self.x_eval[i:i + 1000])
                             .pow(2).flatten(1).sum(dim=1) for i in range(0, mu.shape[0], 1000)])
            variance = mu.float().var(dim=0)
            row: dict[str, Any] = {"kind": "monitor", "step": step, "held_out": self.held_out,
                                   "eval_plain": float(sse.mean()),
                                   "active_dims": int((variance > ACTIVE_VARIANCE).sum()),
                                   "code_max_variance": float(variance.max())}
            if self.mixture:
                pi = self.model.prior_probabilities(mu)
                diagnostics = assignment_diagnostics(pi.argmax(dim=1), pi.shape[1], pi)
                row.update({f"prior_{k}": v for k, v in diagnostics.items()})
        self.model.train(was_training)
        self.rows.append(row)
        return False


def pretrain_dscdan(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                    log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Eq. 13 on a :class:`stages.nets.dscdan.DualAutoencoder`: encoder, decoder and both
    discriminators minimise L_r + L_e together (no min-max [paper]).

    ``recipe``: ``epochs``, ``batch_size``, ``optimizer``, ``prior`` (``mixture`` [code] |
    ``standard`` [paper]; the mixture needs a net with ``prior_clusters`` > 0) and the weights
    of :data:`~stages.methods.dscdan.losses.DEFAULT_WEIGHTS`. With ``kl_weight`` 0 no KL term is
    computed (the ConvAE ablation). ``validation_fraction``: train on a random split of the
    rest only; the :class:`PretrainMonitor` reads the held-out split once per epoch (without
    it, a fixed random subset of :data:`MONITOR_SAMPLES` training samples). History terms:
    ``loss``, ``plain``, ``relative``, ``mi_global``, ``mi_local``, ``kl`` and, with the
    mixture, ``cat`` (those switched on), plus the monitor rows.
    """
    weights = loss_weights(recipe)
    plain_target = str(recipe.get("plain_reconstruction", "clean"))
    prior = prior_of(recipe)
    if prior == "mixture" and weights["kl_weight"] > 0 and getattr(model, "prior_clusters", 0) < 1:
        raise ValueError("prior 'mixture' needs a dual autoencoder with a mixture prior "
                         "(arch prior_clusters > 0; the pretrain stage sets it to the number "
                         "of clusters); or set prior: standard")

    mixture = prior == "mixture" and weights["kl_weight"] > 0
    rows = torch.arange(x.shape[0], device=x.device)
    if recipe.get("validation_fraction"):
        rows, eval_idx = validation_split(x.shape[0], float(recipe["validation_fraction"]), seed,
                                          x.device)
    else:
        gen = torch.Generator().manual_seed(seed + 104729)
        eval_idx = torch.randperm(x.shape[0], generator=gen)[:MONITOR_SAMPLES].to(x.device)
    monitor = PretrainMonitor(model, x[eval_idx], steps_per_epoch(rows.shape[0],
                                                                  recipe["batch_size"]),
                              mixture, held_out=bool(recipe.get("validation_fraction")))

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        terms, mu, logvar = autoencoder_terms(model, x[rows[idx]], weights, plain_target)
        loss = terms.pop("partial")
        if mixture:
            pi = model.prior_probabilities(mu)
            terms["kl"], terms["cat"] = mixture_kl_terms(mu, logvar, pi, model.prior_means)
            loss = loss + weights["kl_weight"] * terms["kl"] + weights["cat_weight"] * terms["cat"]
        elif weights["kl_weight"] > 0:
            terms["kl"] = gaussian_kl(mu, logvar)
            loss = loss + weights["kl_weight"] * terms["kl"]
        return {"loss": loss, **terms}

    result = train_epochs(model, loss_fn, rows.shape[0], x.device, recipe, seed=seed,
                          log_every=log_every, checkpoint=checkpoint,
                          desc=f"pretrain {recipe.get('name', 'dscdan')}", hook=monitor)
    return monitor.merge_into(result)

