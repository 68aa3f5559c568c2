"""DSCDAN's pretraining objective, Eq. 13 = Eq. 12 + Eq. 10 (Yang et al., CVPR 2019, Sect. 3.1).

The per-batch terms shared with the clustering phase, the dual reconstruction (Eq. 12) and the
two MI estimates of Eq. 10, are :func:`stages.methods.dscdan.losses.autoencoder_terms`;
pretraining adds KL(p(z|x) || N(0, I)), which the clustering phase replaces by Eq. 19.
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
