"""The plain pretraining objectives every family may use: reconstruction (``objective:
reconstruction``) and the shared epoch schedule other objectives train with."""

from __future__ import annotations

import numpy as np
import torch

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
    record the per-element MSE of the held-out split once per epoch (``kind='validation'``
    rows, column ``val_mse``), a label-free measure to compare recipes by.
    """
    rows = torch.arange(x.shape[0], device=x.device)
    monitor = None
    if recipe.get("validation_fraction"):
        rows, val_idx = validation_split(x.shape[0], float(recipe["validation_fraction"]), seed,
                                         x.device)
        x_val = x[val_idx]

        def val_mse() -> torch.Tensor:  # per-element mean over the held-out split
            chunks = (x_val[i:i + 1000] for i in range(0, x_val.shape[0], 1000))
            return sum(((model(c)[1] - c) ** 2).sum() for c in chunks) / x_val.numel()

        monitor = ValidationMonitor(model, val_mse,
                                    steps_per_epoch(rows.shape[0], recipe["batch_size"]),
                                    name="val_mse")

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb = x[rows[idx]]
        _, x_hat = model(xb)
        return {"loss": reconstruction_mse(x_hat, xb, recipe.get("reconstruction", "mean"))}

    result = train_epochs(model, loss_fn, rows.shape[0], x.device, recipe, seed=seed,
                          log_every=log_every, checkpoint=checkpoint,
                          desc=f"pretrain {recipe.get('name', '')}", hook=monitor)
    if monitor is not None:
        monitor.finish(result.steps)
        result.history = sorted(result.history + monitor.rows, key=lambda r: r["step"])
    return result


def train_epochs(model: torch.nn.Module, loss_fn: LossFn, n_samples: int, device: torch.device,
                 recipe: dict, *, seed: int, log_every: int = 20,
                 checkpoint: Checkpointer | None = None, desc: str = "pretrain",
                 hook: PeriodicHook | None = None) -> LoopResult:
    """Minimise ``loss_fn`` over all of ``model``'s parameters for ``recipe['epochs']`` epochs
    of shuffled batches of ``recipe['batch_size']``, with the optimizer of
    ``recipe['optimizer']``: the plain pretraining schedule the objectives share.
    """
    spe = steps_per_epoch(n_samples, recipe["batch_size"])
    cfg = LoopConfig(batch_size=recipe["batch_size"], max_steps=recipe["epochs"] * spe,
                     shuffle=True, seed=seed, log_every=min(log_every, spe),
                     **loop_settings(recipe))
    return run_loop(model, make_optimizer(list(model.parameters()), recipe["optimizer"]), loss_fn,
                    n_samples, cfg, device, hook=hook, checkpoint=checkpoint, desc=desc)


def check_unit_range(net: str, x: np.ndarray, source: str) -> None:
    """ConfigError when network ``net`` needs inputs in [0, 1] and ``x`` leaves that range."""
    if net not in UNIT_INPUT:
        return
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ConfigError(f"{source}: values span [{low:.3g}, {high:.3g}] but network '{net}' "
                          "maps inputs from [0, 1] to its own range; prepare the dataset with "
                          "values in [0, 1] (for usps: datasets.usps.params.scaling: unit)")
