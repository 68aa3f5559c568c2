"""Fine-tune a clustering method on a pretrained autoencoder: ``python -m stages.finetune``.

Reads the prepared data, the pretrained model, its embeddings and the init artifact; runs the
recipe's head (``stages.methods.HEADS``) and writes into ``--out-dir``. A head's module defines
``finetune(autoencoder, x, init, params, *, seed, y_true, checkpoint, log_every) ->
FinetuneResult``, where ``init`` holds every array of the init artifact (``labels`` always).
It writes:

* ``labels.h5``: ``labels`` (N,) int64, ``embedding`` (N, d) float32, a head's further
  arrays (``FinetuneResult.arrays``: RMN-GMM's GMM), attributes ``dataset``,
  ``method``, ``family``, ``seed``, ``device``, ``timings`` (seconds per stage), ``provenance``;
* ``history.csv``: loss terms every ``log_every`` steps and a row per target update (with the
  label change and, for monitoring only, ACC/NMI); no rows for heads without fine-tuning;
* ``model.pt`` for heads that train;
* ``snapshots.h5`` (:mod:`stages.runtime.snapshots`): the autoencoder's embedding of a fixed subset
  of the data before fine-tuning and after epochs 1, 2, 4, ... and the last of each training loop
  (none for heads without fine-tuning).

A ``checkpoint.pt`` in the folder is resumed from when the job restarts, then removed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

import torch

from stages.data import read_dataset
from stages.methods import head_module
from stages.plumbing.artifacts import read_arrays, write_arrays, write_csv
from stages.plumbing.cli import add_training_args, json_arg, main_for
from stages.plumbing.errors import DataFileError
from stages.plumbing.provenance import provenance
from stages.runtime.device import configure_torch, describe, resolve_device, seed_everything
from stages.runtime.models import load_model, save_model
from stages.runtime.precision import effective_precision, use_precision
from stages.runtime.snapshots import no_snapshots, recorder_for, write_snapshots
from stages.runtime.train import Checkpointer, StageClock, recording

log = logging.getLogger("stages.finetune")

HISTORY_COLUMNS = ["kind", "step", "epoch", "loss", "delta_label", "acc", "nmi"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.finetune", description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True, help="pretrain/.../model.pt")
    p.add_argument("--embedding", required=True, help="embed/.../seedS.h5")
    p.add_argument("--init", required=True, help="init/.../INIT.h5")
    p.add_argument("--params", required=True, type=json_arg, help="resolved method recipe")
    add_training_args(p)
    return p


def run(args: argparse.Namespace) -> None:
    clock = StageClock()
    recipe = {**args.params, "checkpoint_every": args.checkpoint_every}
    out = Path(args.out_dir)
    data = read_dataset(args.data)
    init, init_attrs = read_arrays(args.init, required=["labels"], read_all=True)
    emb, _ = read_arrays(args.embedding, required=["Z"])
    if init["labels"].shape[0] != data.X.shape[0] or emb["Z"].shape[0] != data.X.shape[0]:
        raise DataFileError(f"{args.init} / {args.embedding} have {init['labels'].shape[0]} / "
                            f"{emb['Z'].shape[0]} rows but {args.data} has {data.X.shape[0]}: "
                            "they come from another dataset; delete them and rerun")
    timings = dict(init_attrs["timings"])
    module = head_module(recipe["head"])
    attrs = {"stage": "finetune", "dataset": data.name, "method": recipe["name"],
             "family": recipe["family"], "seed": args.seed, "n_clusters": data.n_clusters,
             "provenance": provenance(recipe, args.seed)}
    if module is None:  # k-means on the pretrained embedding: nothing to fine-tune
        timings["finetune"] = clock.elapsed()
        write_csv(out / "history.csv", [], columns=HISTORY_COLUMNS)
        write_arrays(out / "labels.h5", {"labels": init["labels"], "embedding": emb["Z"]},
                     {**attrs, "timings": timings, "device": init_attrs["device"],
                      "precision": init_attrs.get("precision", "unknown")})
        write_snapshots(out / "snapshots.h5", no_snapshots(data.X.shape[0], args.seed), attrs)
        return

    device = resolve_device(args.device)
    configure_torch(args.threads, device)
    seed_everything(args.seed)
    autoencoder, payload = load_model(args.model, device)
    precision = effective_precision(recipe.get("precision", "32"), device)
    use_precision(autoencoder, precision, device)
    x = torch.as_tensor(data.X, device=device)
    recorder = recorder_for(autoencoder, autoencoder.encode, data.X, args.seed, device)
    with recording(recorder):
        result = importlib.import_module(module).finetune(
            autoencoder, x, init, {**recipe, "precision": precision}, seed=args.seed, y_true=data.y,
            checkpoint=Checkpointer(out / "checkpoint.pt", clock, key=args.job_key),
            log_every=args.log_every)
    timings["finetune"] = clock.elapsed()  # resumed runs included
    save_model(out / "model.pt", payload["net"], data.input_shape, payload["arch"],
               result.state_dict, {**attrs, "info": result.info})
    write_csv(out / "history.csv", result.history,
              columns=HISTORY_COLUMNS if not result.history else ())
    write_arrays(out / "labels.h5", {**result.arrays, "labels": result.labels,
                                     "embedding": result.embedding},
                 {**attrs, "timings": timings, "device": describe(device), "precision": precision,
                  "info": result.info})
    write_snapshots(out / "snapshots.h5", recorder, attrs)
    Checkpointer(out / "checkpoint.pt").remove()
    log.info("%s on %s: %s in %.1f s", recipe["name"], data.name, result.info, timings["finetune"])


if __name__ == "__main__":
    main_for(build_parser, run)
