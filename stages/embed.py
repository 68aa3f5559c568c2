"""Embed a dataset with a pretrained encoder: ``python -m stages.embed``.

Writes an HDF5 file with ``Z`` float32 (N, d) and attributes (timings of pretrain and embed,
device, provenance).
"""

from __future__ import annotations

import argparse
import time

import torch

from stages.data import read_dataset
from stages.plumbing.artifacts import write_arrays
from stages.plumbing.cli import main_for
from stages.runtime.device import configure_torch, describe, resolve_device
from stages.runtime.models import load_model
from stages.runtime.precision import effective_precision, use_precision
from stages.runtime.train import map_batches


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.embed", description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True, help="pretrain/.../model.pt")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    return p


def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    device = resolve_device(args.device)
    configure_torch(args.threads, device)
    data = read_dataset(args.data)
    model, payload = load_model(args.model, device)
    model.eval()
    # the autoencoder embeds at the precision it was pretrained at (as recorded; files from
    # before that was recorded: their recipe's, 32 where it names none)
    meta = payload["meta"]
    recipe = meta.get("provenance", {}).get("config", {})
    precision = meta.get("precision") or effective_precision(recipe.get("precision", "32"), device)
    use_precision(model, precision, device)
    z = map_batches(model.encode, torch.as_tensor(data.X, device=device))
    timings = {"pretrain": meta["wall_s"], "embed": time.perf_counter() - t0}
    write_arrays(args.out, {"Z": z.float().cpu().numpy()},
                 {"stage": "embed", "dataset": data.name, "n_clusters": data.n_clusters,
                  "timings": timings, "device": describe(device),
                  "precision": precision,
                  "provenance": meta["provenance"]})


if __name__ == "__main__":
    main_for(build_parser, run)
