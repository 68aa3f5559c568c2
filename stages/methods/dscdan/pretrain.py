"""DSCDAN's pretraining objective, Eq. 13 = Eq. 12 + Eq. 10 (Yang et al., CVPR 2019, Sect. 3.1).

The per-batch terms that pretraining and the clustering phase share are in
:func:`stages.methods.dscdan.losses.autoencoder_terms`: the dual reconstruction (Eq. 12) and the
two MI estimates of Eq. 10. Pretraining adds KL(p(z|x) || N(0, I)); the clustering phase
replaces it by Eq. 19 (:mod:`stages.methods.dscdan.head`).

The ablations of Table 4 are this objective with terms switched off by their weights in the
autoencoder recipe: ``mi_weight`` (beta, 0.01 [paper]), ``kl_weight`` (gamma, 1 [paper]),
``relative_weight`` (the relative term of Eq. 12, 1 [paper]), ``plain_weight`` (delta,
0.5 [paper]) and ``reconstruction_scale`` (the factor on both reconstruction terms). ConvAE:
plain reconstruction only (the code's mean and log-variance heads are then unused and the code
is deterministic). +MI: Eq. 10 in full, MI and KL. +RS: the relative term and [default] the KL
term, without which the encoder could shrink the noise to nothing and the relative term would
vanish. +MI+RS: Eq. 13.

[code] Adam lr 1e-3, batch 100, 100 epochs; [code] both reconstruction terms times
``reconstruction_scale`` = 5 (the code's ``lamb``; [paper] 1: without it the posterior
collapsed to the prior, KL 0.41 nats and mean sigma^2 0.99 after 250 steps, MI at chance); the
MI pairs use the sampled z_hat [code]; negative pairs pair x_i with z_pi(i) for a random
permutation pi of the batch [paper].
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stages.methods.dscdan.losses import autoencoder_terms, gaussian_kl, loss_weights
from stages.methods.shared.reconstruction import train_epochs
from stages.train import Checkpointer, LoopResult


def pretrain_dscdan(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                    log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Eq. 13 on a :class:`stages.nets.dscdan.DualAutoencoder`: encoder, decoder and both
    discriminators minimise L_r + L_e together (no min-max [paper]).

    ``recipe``: ``epochs``, ``batch_size``, ``optimizer`` and the weights of
    :data:`DEFAULT_WEIGHTS`. History terms: ``loss``, ``plain``, ``relative``, ``mi_global``,
    ``mi_local``, ``kl`` (those switched on).
    """
    weights = loss_weights(recipe)
    plain_target = str(recipe.get("plain_reconstruction", "clean"))

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        terms, mu, logvar = autoencoder_terms(model, x[idx], weights, plain_target)
        loss = terms.pop("partial")
        if weights["kl_weight"] > 0:
            terms["kl"] = gaussian_kl(mu, logvar)
            loss = loss + weights["kl_weight"] * terms["kl"]
        return {"loss": loss, **terms}

    return train_epochs(model, loss_fn, x.shape[0], x.device, recipe, seed=seed,
                        log_every=log_every, checkpoint=checkpoint,
                        desc=f"pretrain {recipe.get('name', 'dscdan')}")
