"""DEPICT's reconstruction-only training (Ghasedi Dizaji et al., ICCV 2017, Sect. 3.3 and
Table 3), as pretraining objectives of the pretrain stage:

* :func:`pretrain_mda`: DEPICT's own phase "without clustering loss": the corrupted pathway's
  embedding is decoded and every decoder layer reconstructs the clean encoder layer it mirrors
  (the second term of Eq. 12);
* :func:`pretrain_sda`: greedy layer-wise denoising pretraining (SdA);
* :func:`pretrain_rda`: SdA, then the whole network retrained on clean-input reconstruction (RdA).

Every phase uses Adam (lr 1e-4 [paper], batch 100 [code]) on a random training split and stops
early when the clean reconstruction loss of the held-out split (10 %, drawn without labels; the
authors' code stratifies by label) has not improved for ``patience`` epochs, keeping the best
weights [code: patience 100, at most 4,000 epochs]. SdA's per-layer denoising drops each layer's
input with rate ``noise`` (0.1, the paper's dropout rate) [default]. Multi-phase objectives
checkpoint each phase separately, so a restarted job skips finished phases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stages.methods.depict.losses import layerwise_reconstruction
from stages.runtime.train import (
    Checkpointer,
    EarlyStopping,
    LoopConfig,
    LoopResult,
    chain_results,
    loop_settings,
    make_optimizer,
    run_loop,
    steps_per_epoch,
    validation_split,
)


def _mean_over_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       batch_size: int = 1000) -> torch.Tensor:
    """Sample-weighted mean of the batch-mean loss ``fn`` over x (N, ...): scalar."""
    total = torch.zeros((), device=x.device)
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        total = total + fn(xb) * xb.shape[0]
    return total / x.shape[0]


def _fit_early_stopped(params: list[nn.Parameter], model: nn.Module, x: torch.Tensor,
                       loss_fn: Callable[[torch.Tensor], torch.Tensor],
                       val_loss_fn: Callable[[torch.Tensor], torch.Tensor], recipe: dict[str, Any],
                       epochs: int, *, seed: int, log_every: int, checkpoint: Checkpointer,
                       phase: str, step_offset: int) -> LoopResult:
    """Adam on ``loss_fn`` over a random training split, early-stopped on ``val_loss_fn``.

    ``loss_fn(xb) -> scalar`` takes a training batch, ``val_loss_fn(xb) -> scalar`` a validation
    batch. The best weights (by validation loss) are loaded at the end. History rows get
    ``phase`` and steps shifted by ``step_offset`` so that phases follow one another.
    """
    train_idx, val_idx = validation_split(x.shape[0], float(recipe["validation_fraction"]), seed,
                                          x.device)
    x_val = x[val_idx]
    batch = int(recipe["batch_size"])
    spe = steps_per_epoch(train_idx.shape[0], batch)
    stopper = EarlyStopping(model, lambda: _mean_over_batches(val_loss_fn, x_val), period=spe,
                            patience=int(recipe["patience"]))
    optimizer = make_optimizer(list(params), {"name": "adam",
                                              "lr": float(recipe["optimizer"]["lr"])})
    cfg = LoopConfig(batch_size=batch, max_steps=epochs * spe, shuffle=True, seed=seed,
                     log_every=min(log_every, spe),
                     **loop_settings(recipe))
    result = run_loop(model, optimizer, lambda idx: {"loss": loss_fn(x[train_idx[idx]])},
                      train_idx.shape[0], cfg, x.device, hook=stopper, checkpoint=checkpoint,
                      desc=f"pretrain {phase}")
    stopper.finish(result.steps)
    rows = sorted(result.history + stopper.rows, key=lambda r: (r["step"], r["kind"]))
    for row in rows:  # validation rows: epoch = epochs completed when it was measured
        row.update(phase=phase, step=row["step"] + step_offset,
                   epoch=row.get("epoch", row["step"] // spe))
    return LoopResult(result.steps, result.stopped_by_hook, rows, result.resumed_from)


def pretrain_mda(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                 log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """DEPICT's reconstruction-only phase (MdA): Eq. 12 without the clustering term.

    The corrupted pathway's embedding is decoded and every decoder layer is compared with the
    clean encoder layer it mirrors. Validation loss: the same with the clean pathway.
    ``recipe``: ``epochs``, ``batch_size``, ``optimizer.lr``, ``patience``,
    ``validation_fraction``, ``hidden_weight``.
    """
    hidden_weight = float(recipe.get("hidden_weight", 1.0))

    def loss(xb: torch.Tensor) -> torch.Tensor:
        clean = model.encoder_activations(xb, corrupt=False)
        noisy = model.encoder_activations(xb, corrupt=True)
        return layerwise_reconstruction(clean[:-1], model.decoder_activations(noisy[-1]),
                                        hidden_weight)

    def val_loss(xb: torch.Tensor) -> torch.Tensor:
        clean = model.encoder_activations(xb)
        return layerwise_reconstruction(clean[:-1], model.decoder_activations(clean[-1]),
                                        hidden_weight)

    checkpoint = checkpoint or Checkpointer(None)
    return _fit_early_stopped(list(model.parameters()), model, x, loss, val_loss, recipe,
                              int(recipe["epochs"]), seed=seed, log_every=log_every,
                              checkpoint=checkpoint.phase("mda"), phase="mda", step_offset=0)


def pretrain_sda(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                 log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Greedy layer-wise denoising pretraining (SdA): layer l learns to reconstruct its clean
    input (the output of the frozen layers below) from a dropout-corrupted copy.

    ``recipe``: ``layer_epochs`` (per layer), ``noise`` (dropout rate of each layer's input),
    and those of :func:`pretrain_mda`.
    """
    checkpoint = checkpoint or Checkpointer(None)
    noise = float(recipe.get("noise", 0.1))
    results: list[LoopResult] = []

    for level in (1, 2, 3):
        def below(xb: torch.Tensor, level: int = level) -> torch.Tensor:
            with torch.no_grad():
                h = model.scale_input(xb)
                for lower in range(1, level):
                    h = model.encoder_layer(lower, h)
            return h

        def loss(xb: torch.Tensor, level: int = level) -> torch.Tensor:
            h = below(xb)
            code = model.encoder_layer(level, F.dropout(h, noise, training=True))
            return F.mse_loss(model.decoder_layer(level, code), h)

        def val_loss(xb: torch.Tensor, level: int = level) -> torch.Tensor:
            h = below(xb)
            return F.mse_loss(model.decoder_layer(level, model.encoder_layer(level, h)), h)

        offset = sum(r.steps for r in results)
        results.append(_fit_early_stopped(
            model.layer_parameters(level), model, x, loss, val_loss, recipe,
            int(recipe["layer_epochs"]), seed=seed, log_every=log_every,
            checkpoint=checkpoint.phase(f"sda{level}"), phase=f"sda-layer{level}",
            step_offset=offset))
    return chain_results(results)


def pretrain_rda(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                 log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """RdA: :func:`pretrain_sda`, then the whole network retrained to reconstruct the clean
    input from the clean input (no corruption, input-layer loss only) for ``epochs``."""
    checkpoint = checkpoint or Checkpointer(None)
    sda = pretrain_sda(model, x, recipe, seed=seed, log_every=log_every, checkpoint=checkpoint)

    def loss(xb: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(model.decode(model.encode(xb)), model.scale_input(xb))

    retrain = _fit_early_stopped(list(model.parameters()), model, x, loss, loss, recipe,
                                 int(recipe["epochs"]), seed=seed, log_every=log_every,
                                 checkpoint=checkpoint.phase("rda"), phase="rda-retrain",
                                 step_offset=sda.steps)
    return chain_results([sda, retrain])
