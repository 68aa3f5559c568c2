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
from stages.methods.shared.reconstruction import train_epochs
from stages.train import Checkpointer, LoopResult

PRIORS = ("mixture", "standard")


def prior_of(recipe: dict[str, Any]) -> str:
    """The recipe's ``prior`` ([code] ``mixture`` when unset); ValueError for an unknown one."""
    prior = str(recipe.get("prior", "mixture"))
    if prior not in PRIORS:
        raise ValueError(f"unknown prior '{prior}'; valid choices: {', '.join(PRIORS)}")
    return prior


def pretrain_dscdan(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                    log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Eq. 13 on a :class:`stages.nets.dscdan.DualAutoencoder`: encoder, decoder and both
    discriminators minimise L_r + L_e together (no min-max [paper]).

    ``recipe``: ``epochs``, ``batch_size``, ``optimizer``, ``prior`` (``mixture`` [code] |
    ``standard`` [paper]; the mixture needs a net with ``prior_clusters`` > 0) and the weights
    of :data:`~stages.methods.dscdan.losses.DEFAULT_WEIGHTS`. With ``kl_weight`` 0 no KL term is
    computed (the ConvAE ablation). History terms: ``loss``, ``plain``, ``relative``,
    ``mi_global``, ``mi_local``, ``kl`` and, with the mixture, ``cat`` (those switched on).
    """
    weights = loss_weights(recipe)
    plain_target = str(recipe.get("plain_reconstruction", "clean"))
    prior = prior_of(recipe)
    if prior == "mixture" and weights["kl_weight"] > 0 and getattr(model, "prior_clusters", 0) < 1:
        raise ValueError("prior 'mixture' needs a dual autoencoder with a mixture prior "
                         "(arch prior_clusters > 0; the pretrain stage sets it to the number "
                         "of clusters); or set prior: standard")

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        terms, mu, logvar = autoencoder_terms(model, x[idx], weights, plain_target)
        loss = terms.pop("partial")
        if weights["kl_weight"] > 0 and prior == "mixture":
            pi = model.prior_probabilities(mu)
            terms["kl"], terms["cat"] = mixture_kl_terms(mu, logvar, pi, model.prior_means)
            loss = loss + weights["kl_weight"] * terms["kl"] + weights["cat_weight"] * terms["cat"]
        elif weights["kl_weight"] > 0:
            terms["kl"] = gaussian_kl(mu, logvar)
            loss = loss + weights["kl_weight"] * terms["kl"]
        return {"loss": loss, **terms}

    return train_epochs(model, loss_fn, x.shape[0], x.device, recipe, seed=seed,
                        log_every=log_every, checkpoint=checkpoint,
                        desc=f"pretrain {recipe.get('name', 'dscdan')}")

