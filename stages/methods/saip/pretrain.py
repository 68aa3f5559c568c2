"""SAIP's denoising autoencoder pretraining (Peng et al., TNNLS 2020, Sect. III-C).

The autoencoder (m-500-500-2000-d, or HOE(CNN)'s conv net) reconstructs the clean input from a
corrupted copy; noise ratio 0.3, SGD with momentum 0.9 and weight decay [paper]. Choices where
the paper is silent or garbled (methods.md §4.3):

* [default] additive Gaussian noise of standard deviation ``noise`` (0.3); ``noise_type:
  masking`` zeroes a ``noise`` fraction of the inputs instead, for comparison.
* [default] end-to-end training (not layer-wise), batch 256, 200 epochs, lr 0.003.
* [recon] weight decay 1e-9 (the OCR reads "1079").
* [default] the DAE's embedding and output layers are linear and its inputs mean-centred
  (``arch.centre_input``, the paper's "decentralization"), the spec's alternative reading.
* [default] HOE(CNN)'s autoencoder (sigmoid embedding [paper]): Adam lr 1e-3 on the
  per-element mean error.
* [default] the corrupted input is not clipped to [0, 1]; the reconstruction error is the
  squared error summed over a sample's elements, mean over the batch (``reconstruction: sum``).

Why these defaults, with the measurements: docs/notes/saip.md.
"""

from __future__ import annotations

import torch
from torch import nn

from stages.methods.shared.common import reconstruction_mse
from stages.methods.shared.noise import corrupt
from stages.methods.shared.reconstruction import held_out_split, train_epochs
from stages.runtime.train import Checkpointer, LoopResult


def pretrain_denoising(model: nn.Module, x: torch.Tensor, recipe: dict, *, seed: int,
                       log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Train autoencoder ``model`` to reconstruct x (N, ...) from a corrupted copy.

    ``recipe``: ``epochs``, ``batch_size``, ``optimizer`` ({name, lr, momentum, weight_decay}),
    ``noise`` (default 0.3), ``noise_type`` (default gaussian), ``reconstruction`` (sum | mean,
    default sum), ``checkpoint_every`` and, optionally, ``validation_fraction``: train (and take
    the input mean) on a random split of the rest only and record the clean reconstruction of
    the held-out samples once per epoch, as the plain autoencoders do
    (:func:`~stages.methods.shared.reconstruction.held_out_reconstruction`).
    """
    noise = float(recipe.get("noise", 0.3))
    noise_type = recipe.get("noise_type", "gaussian")
    corrupt(x[:1], noise, noise_type)  # a bad noise_type fails before any training
    reduction = recipe.get("reconstruction", "sum")
    x_train, x_val = held_out_split(x, recipe, seed)
    if hasattr(model, "set_input_mean"):  # deterministic (the split is), so a resumed run sets
        model.set_input_mean(x_train)     # the same

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb = x_train[idx]
        _, x_hat = model(corrupt(xb, noise, noise_type))
        return {"loss": reconstruction_mse(x_hat, xb, reduction)}

    return train_epochs(model, loss_fn, x_train.shape[0], x.device, recipe, seed=seed,
                        log_every=log_every, checkpoint=checkpoint,
                        desc=f"pretrain {recipe.get('name', '')} (denoising)", x_val=x_val)
