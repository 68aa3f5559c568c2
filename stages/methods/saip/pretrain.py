"""SAIP's denoising autoencoder pretraining (Peng et al., TNNLS 2020, Sect. III-C).

The autoencoder (m-500-500-2000-d, or HOE(CNN)'s conv net) reconstructs the clean input from a
corrupted copy; noise ratio 0.3, SGD with momentum 0.9 and weight decay [paper]. Choices where
the paper is silent or garbled (methods.md §4.3):

* [default] additive Gaussian noise with standard deviation ``noise`` (0.3): Fig. 4 sweeps the
  ratio up to 1.0 with accuracy still 82-87 %, which rules out masking noise (``noise_type:
  masking`` zeroes a ``noise`` fraction of the inputs instead, for comparison).
* [default] end-to-end training (not layer-wise), batch 256, 200 epochs.
* [recon] weight decay 1e-9 (the OCR reads "1079").
* [default, measured] the DAE's embedding and output layers are linear and its inputs
  mean-centred (``arch.centre_input``, the paper's "decentralization"), the spec's alternative
  reading. The literal reading (sigmoid embedding and output, inputs in [0, 1]) saturates the
  embedding with SGD + momentum: on mnist5k after 10 epochs at lr 0.003 the embedding's
  per-dimension standard deviation is 4e-4 and the reconstruction error stays at the mean
  image's (53), while the centred linear DAE reaches 29.6 and still falls; at lr 0.01 both
  readings diverge with the 0.3 noise. Hence lr [default] 0.003, not 0.01.
* [default, measured] HOE(CNN)'s autoencoder keeps the paper's sigmoid embedding, so it is
  pretrained with Adam (lr 1e-3) on the per-element mean error: SGD on the summed error drives
  the sigmoid embedding to a constant (measured on the workflow test's synthetic data).
* [default] the corrupted input is not clipped to [0, 1]; the reconstruction error is the
  squared error summed over a sample's elements, mean over the batch (``reconstruction: sum``,
  as the SAE of the DCEC family: with the per-element mean, SGD at lr 0.01 barely moves).
"""

from __future__ import annotations

import torch
from torch import nn

from stages.methods.shared.common import reconstruction_mse
from stages.methods.shared.noise import corrupt
from stages.methods.shared.reconstruction import train_epochs
from stages.train import Checkpointer, LoopResult


def pretrain_denoising(model: nn.Module, x: torch.Tensor, recipe: dict, *, seed: int,
                       log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Train autoencoder ``model`` to reconstruct x (N, ...) from a corrupted copy.

    ``recipe``: ``epochs``, ``batch_size``, ``optimizer`` ({name, lr, momentum, weight_decay}),
    ``noise`` (default 0.3), ``noise_type`` (default gaussian), ``reconstruction`` (sum | mean,
    default sum), ``checkpoint_every``.
    """
    noise = float(recipe.get("noise", 0.3))
    noise_type = recipe.get("noise_type", "gaussian")
    corrupt(x[:1], noise, noise_type)  # a bad noise_type fails before any training
    reduction = recipe.get("reconstruction", "sum")
    if hasattr(model, "set_input_mean"):  # deterministic, so a resumed run sets the same
        model.set_input_mean(x)

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb = x[idx]
        _, x_hat = model(corrupt(xb, noise, noise_type))
        return {"loss": reconstruction_mse(x_hat, xb, reduction)}

    return train_epochs(model, loss_fn, x.shape[0], x.device, recipe, seed=seed,
                        log_every=log_every, checkpoint=checkpoint,
                        desc=f"pretrain {recipe.get('name', '')} (denoising)")
