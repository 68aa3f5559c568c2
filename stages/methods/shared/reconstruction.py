"""The plain pretraining objectives every family may use: reconstruction (``objective:
reconstruction``) and the shared epoch schedule other objectives train with."""

from __future__ import annotations

import numpy as np
import torch

from stages.methods.shared.codes import code_spread
from stages.methods.shared.common import reconstruction_mse
from stages.nets import UNIT_INPUT
from stages.plumbing.errors import ConfigError
from stages.runtime.train import (
    Checkpointer,
    LoopConfig,
    LoopResult,
    LossFn,
    PeriodicHook,
    ValidationMonitor,
    loop_settings,
    make_optimizer,
    run_loop,
    steps_per_epoch,
    validation_split,
)


def pretrain_autoencoder(model: torch.nn.Module, x: torch.Tensor, recipe: dict, *, seed: int,
                         log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Train autoencoder ``model`` to reconstruct x (N, ...) with the squared error of
    ``recipe['reconstruction']`` (``mean`` per element, or ``sum`` per sample).

    ``recipe``: ``epochs``, ``batch_size``, ``optimizer`` ({name, lr, ...}), ``checkpoint_every``
    and, optionally, ``validation_fraction``: train on a random split of the rest only and
    record the held-out reconstruction once per epoch (:func:`held_out_split`,
    :func:`held_out_reconstruction`), a label-free measure to compare recipes by.
    """
    x_train, x_val = held_out_split(x, recipe, seed)

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb = x_train[idx]
        _, x_hat = model(xb)
        return {"loss": reconstruction_mse(x_hat, xb, recipe.get("reconstruction", "mean"))}

    return train_epochs(model, loss_fn, x_train.shape[0], x.device, recipe, seed=seed,
                        log_every=log_every, checkpoint=checkpoint,
                        desc=f"pretrain {recipe.get('name', '')}", x_val=x_val)


def held_out_split(x: torch.Tensor, recipe: dict,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The samples to train on and the held-out ones: with ``recipe['validation_fraction']``,
    (x_train (N - V, ...), x_val (V, ...)) of :func:`stages.runtime.train.validation_split`
    (random, no labels); without it, (x, None)."""
    if not recipe.get("validation_fraction"):
        return x, None
    train_idx, val_idx = validation_split(x.shape[0], float(recipe["validation_fraction"]), seed,
                                          x.device)
    return x[train_idx], x[val_idx]


def held_out_reconstruction(model: torch.nn.Module, x_val: torch.Tensor,
                            batch_size: int = 1000) -> dict[str, float]:
    """The clean (uncorrupted) reconstruction of held-out samples x_val (V, ...) by autoencoder
    ``model`` (x -> (z (B, d), x_hat)), without gradients, in ``model``'s current mode:
    ``val_mse``, the squared error per element, and :func:`~stages.methods.shared.codes.
    code_spread` of the codes (V, d): how many of their dimensions they use."""
    sse: torch.Tensor | float = 0.0
    codes = []
    with torch.no_grad():
        for i in range(0, x_val.shape[0], batch_size):
            chunk = x_val[i:i + batch_size]
            z, x_hat = model(chunk)
            sse = sse + ((x_hat - chunk) ** 2).sum()
            codes.append(z.flatten(1))
    return {"val_mse": float(sse / x_val.numel()), **code_spread(torch.cat(codes))}


def held_out_monitor(model: torch.nn.Module, x_val: torch.Tensor,
                     period: int) -> ValidationMonitor:
    """A :class:`~stages.runtime.train.ValidationMonitor` recording :func:`held_out_reconstruction`
    of x_val (V, ...) in eval mode every ``period`` steps (``kind='validation'`` rows)."""
    return ValidationMonitor(model, lambda: held_out_reconstruction(model, x_val), period)


def train_epochs(model: torch.nn.Module, loss_fn: LossFn, n_samples: int, device: torch.device,
                 recipe: dict, *, seed: int, log_every: int = 20,
                 checkpoint: Checkpointer | None = None, desc: str = "pretrain",
                 hook: PeriodicHook | None = None,
                 x_val: torch.Tensor | None = None) -> LoopResult:
    """Minimise ``loss_fn`` over all of ``model``'s parameters for ``recipe['epochs']`` epochs
    of shuffled batches of ``recipe['batch_size']``, with the optimizer of
    ``recipe['optimizer']``: the plain pretraining schedule the objectives share.

    With held-out samples ``x_val`` (V, ...) (none of the ``n_samples`` that ``loss_fn``
    draws), :func:`held_out_reconstruction` of ``model`` once per epoch and at the end, as
    ``kind='validation'`` rows (instead of a ``hook``).
    """
    spe = steps_per_epoch(n_samples, recipe["batch_size"])
    monitor = None
    if x_val is not None:
        if hook is not None:
            raise ValueError("train_epochs records the held-out rows of x_val with its own "
                             "hook; pass x_val or a hook, not both")
        hook = monitor = held_out_monitor(model, x_val, spe)
    cfg = LoopConfig(batch_size=recipe["batch_size"], max_steps=recipe["epochs"] * spe,
                     shuffle=True, seed=seed, log_every=min(log_every, spe),
                     **loop_settings(recipe))
    result = run_loop(model, make_optimizer(list(model.parameters()), recipe["optimizer"]),
                      loss_fn, n_samples, cfg, device, hook=hook, checkpoint=checkpoint,
                      desc=desc)
    return monitor.merge_into(result) if monitor is not None else result


def check_unit_range(net: str, x: np.ndarray, source: str) -> None:
    """ConfigError when network ``net`` needs inputs in [0, 1] and ``x`` leaves that range."""
    if net not in UNIT_INPUT:
        return
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ConfigError(f"{source}: values span [{low:.3g}, {high:.3g}] but network '{net}' "
                          "maps inputs from [0, 1] to its own range; prepare the dataset with "
                          "values in [0, 1] (for usps: datasets.usps.params.scaling: unit)")
