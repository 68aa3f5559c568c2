"""Pretrain an autoencoder on reconstruction: ``python -m stages.pretrain``.

Writes ``model.pt`` (weights, architecture, provenance, wall seconds) and ``history.csv``
(one row per ``log_every`` steps) into ``--out-dir``. A ``checkpoint.pt`` there is resumed from
when the job restarts, and removed when the stage finishes.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

import numpy as np
import torch

from stages.artifacts import write_csv
from stages.cli import add_training_args, json_arg, main_for
from stages.data import read_dataset
from stages.data.dataset import pretraining_inputs
from stages.device import configure_torch, describe, resolve_device, seed_everything
from stages.errors import ConfigError
from stages.methods import pretrain_objective
from stages.methods.common import reconstruction_mse
from stages.models import save_model
from stages.nets import EMBEDDING_IS_N_CLUSTERS, UNIT_INPUT, build_network
from stages.provenance import provenance
from stages.train import (
    Checkpointer,
    LoopConfig,
    LoopResult,
    LossFn,
    PeriodicHook,
    StageClock,
    ValidationMonitor,
    loop_settings,
    make_optimizer,
    run_loop,
    steps_per_epoch,
    validation_split,
)

log = logging.getLogger("stages.pretrain")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.pretrain", description=__doc__)
    p.add_argument("--data", required=True, help="prepared dataset (results/data/D.h5)")
    p.add_argument("--params", required=True, type=json_arg, help="resolved autoencoder recipe")
    add_training_args(p)
    return p


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


def run(args: argparse.Namespace) -> None:
    clock = StageClock()
    recipe = {**args.params, "checkpoint_every": args.checkpoint_every}
    device = resolve_device(args.device)
    configure_torch(args.threads, device)
    seed_everything(args.seed)
    data = read_dataset(args.data)
    x_train = pretraining_inputs(args.data, data)  # X, then X_unlabelled when the file has it
    check_unit_range(recipe["net"], x_train, args.data)
    arch = dict(recipe.get("arch", {}))
    if recipe["net"] in EMBEDDING_IS_N_CLUSTERS:
        arch.setdefault("embedding_dim", data.n_clusters)  # [paper] embedding = #clusters
    model = build_network(recipe["net"], data.input_shape, arch).to(device)
    x = torch.as_tensor(x_train, device=device)
    out = Path(args.out_dir)
    checkpoint = Checkpointer(out / "checkpoint.pt", clock, key=args.job_key)
    module, function = pretrain_objective(recipe.get("objective", "reconstruction"))
    pretrain = getattr(importlib.import_module(module), function)
    result = pretrain(model, x, recipe, seed=args.seed, log_every=args.log_every,
                      checkpoint=checkpoint)
    wall = clock.elapsed()  # resumed runs included
    meta = {"stage": "pretrain", "wall_s": wall, "device": describe(device),
            "dataset": data.name, "n_train": int(x.shape[0]), "steps": result.steps,
            "resumed_from_step": result.resumed_from,
            "provenance": provenance(recipe, args.seed)}
    save_model(out / "model.pt", recipe["net"], data.input_shape, arch, model.state_dict(), meta)
    write_csv(out / "history.csv", result.history,
              columns=() if result.history else ["kind", "step", "epoch", "loss"])
    checkpoint.remove()
    log.info("pretrained %s on %s: %d steps in %.1f s on %s", recipe["name"], data.name,
             result.steps, wall, describe(device))


if __name__ == "__main__":
    main_for(build_parser, run)
