"""Pretrain an autoencoder with its recipe's objective: ``python -m stages.pretrain``.

Writes ``model.pt`` (weights, architecture, provenance, wall seconds), ``history.csv``
(one row per ``log_every`` steps) and ``snapshots.h5`` (:mod:`stages.runtime.snapshots`: the
embedding of a fixed subset of the data before training and after epochs 1, 2, 4, ... of each phase)
into ``--out-dir``. A ``checkpoint.pt`` there is resumed from
when the job restarts, and removed when the stage finishes.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

import torch

from stages.data import read_dataset
from stages.data.dataset import pretraining_inputs
from stages.methods import pretrain_objective
from stages.methods.shared.reconstruction import check_unit_range
from stages.nets import EMBEDDING_IS_N_CLUSTERS, N_CLUSTERS_OPTION, build_network
from stages.plumbing.artifacts import write_csv
from stages.plumbing.cli import add_training_args, json_arg, main_for
from stages.plumbing.provenance import provenance
from stages.runtime.device import configure_torch, describe, resolve_device, seed_everything
from stages.runtime.models import save_model
from stages.runtime.precision import effective_precision
from stages.runtime.snapshots import recorder_for, write_snapshots
from stages.runtime.train import Checkpointer, StageClock, recording

log = logging.getLogger("stages.pretrain")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.pretrain", description=__doc__)
    p.add_argument("--data", required=True, help="prepared dataset (results/data/D.h5)")
    p.add_argument("--params", required=True, type=json_arg, help="resolved autoencoder recipe")
    add_training_args(p)
    return p


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
    if recipe["net"] in N_CLUSTERS_OPTION:  # e.g. DSCDAN's mixture prior
        arch.setdefault(N_CLUSTERS_OPTION[recipe["net"]], data.n_clusters)
    model = build_network(recipe["net"], data.input_shape, arch).to(device)
    x = torch.as_tensor(x_train, device=device)
    out = Path(args.out_dir)
    checkpoint = Checkpointer(out / "checkpoint.pt", clock, key=args.job_key)
    module, function = pretrain_objective(recipe.get("objective", "reconstruction"))
    pretrain = getattr(importlib.import_module(module), function)
    precision = effective_precision(recipe.get("precision", "32"), device)  # auto resolved once
    recorder = recorder_for(model, model.encode, data.X, args.seed, device)
    with recording(recorder):
        result = pretrain(model, x, {**recipe, "precision": precision}, seed=args.seed,
                          log_every=args.log_every,
                          checkpoint=checkpoint)
    wall = clock.elapsed()  # resumed runs included
    meta = {"stage": "pretrain", "wall_s": wall, "device": describe(device),
            "precision": precision,
            "dataset": data.name, "n_train": int(x.shape[0]), "steps": result.steps,
            "resumed_from_step": result.resumed_from,
            "provenance": provenance(recipe, args.seed)}
    save_model(out / "model.pt", recipe["net"], data.input_shape, arch, model.state_dict(), meta)
    write_csv(out / "history.csv", result.history,
              columns=() if result.history else ["kind", "step", "epoch", "loss"])
    write_snapshots(out / "snapshots.h5", recorder, {"stage": "pretrain", "dataset": data.name})
    checkpoint.remove()
    log.info("pretrained %s on %s: %d steps in %.1f s on %s", recipe["name"], data.name,
             result.steps, wall, describe(device))


if __name__ == "__main__":
    main_for(build_parser, run)
