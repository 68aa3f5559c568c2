"""The label-free measures that choose the quick recipes (docs/reproduction/quick-recipes.md):
``python -m stages.methods.shared.quick_criteria RESULTS BENCHMARKS [--dataset D] [--seed S]``.

For every pretrained autoencoder under ``RESULTS/pretrain/D/*/seedS/`` it prints one row: the
held-out reconstruction at the end of its schedule (``val_mse``: per-pixel MSE of the clean
reconstruction; DEPICT's MdA: its best held-out loss, what it early-stops on; DSCDAN: the
held-out ``eval_plain`` divided by the pixels), the participation ratio of the held-out codes'
covariance, the smallest over the largest per-dimension standard deviation, the steps, and the
wall seconds of the pretraining job (from its Snakemake benchmark). No labels are read.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from stages.data import read_dataset
from stages.methods.shared.codes import min_std_ratio, participation_ratio
from stages.plumbing.cli import main_for, print_table
from stages.plumbing.errors import DataFileError
from stages.runtime.models import load_model
from stages.runtime.train import map_batches, validation_split


def final_held_out(history: pd.DataFrame, n_pixels: int) -> tuple[str, float]:
    """(what, value) of the last held-out reconstruction in a pretraining ``history`` table:
    ``val_mse`` rows; else DEPICT's ``validation`` rows (best ``loss``, the weights it keeps);
    else DSCDAN's held-out ``monitor`` rows (``eval_plain`` / ``n_pixels``). NaN when none."""
    kinds = history.get("kind", pd.Series(dtype=str))
    if "val_mse" in history.columns and history["val_mse"].notna().any():
        return "val_mse", float(history["val_mse"].dropna().iloc[-1])
    val = history[kinds == "validation"]
    if "loss" in val.columns and val["loss"].notna().any():
        return "mda_loss_best", float(val["loss"].min())
    mon = history[kinds == "monitor"]
    if "eval_plain" in mon.columns and "held_out" in mon.columns:
        held = mon[mon["held_out"].astype(str).str.lower() == "true"]
        if len(held):
            return "plain_mse", float(held["eval_plain"].iloc[-1]) / n_pixels
    return "none", math.nan


def measure(ae_dir: Path, x: torch.Tensor, seed: int, benchmarks: Path | None,
            fraction: float = 0.1) -> dict[str, Any]:
    """The row of one pretrained autoencoder folder ``ae_dir`` (model.pt, history.csv) on data
    ``x`` (N, ...): codes of the held-out split of ``fraction`` (the split the pretraining used
    when it held one out); the code measures of :mod:`stages.methods.shared.codes`."""
    model, _ = load_model(ae_dir / "model.pt", torch.device("cpu"))
    model.eval()
    _, val_idx = validation_split(x.shape[0], fraction, seed)
    with torch.no_grad():
        z = map_batches(model.encode, x[val_idx]).float().flatten(1)
    history = pd.read_csv(ae_dir / "history.csv")
    what, value = final_held_out(history, int(np.prod(x.shape[1:])))
    row: dict[str, Any] = {"ae": ae_dir.parent.name, "held_out": what, "value": value,
                           "participation_ratio": participation_ratio(z), "code_dims": z.shape[1],
                           "std_ratio": min_std_ratio(z),
                           "steps": int(history["step"].max()) if "step" in history else None}
    bench = None if benchmarks is None else benchmarks / ae_dir.parent.name / ae_dir.name
    bench_file = None if bench is None else bench.with_suffix(".tsv")
    row["wall_s"] = (float(pd.read_csv(bench_file, sep="\t")["s"].iloc[-1])
                     if bench_file is not None and bench_file.exists() else math.nan)
    return row


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.methods.shared.quick_criteria",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="the run's results/ folder")
    p.add_argument("benchmarks", type=Path, nargs="?", default=None,
                   help="the run's benchmarks/ folder (for the wall seconds)")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    return p


def run(args: argparse.Namespace) -> None:
    data = read_dataset(args.results / "data" / f"{args.dataset}.h5")
    x = torch.as_tensor(data.X)
    folders = sorted(p for p in (args.results / "pretrain" / args.dataset).glob(
        f"*/seed{args.seed}") if (p / "model.pt").exists() and (p / "history.csv").exists())
    if not folders:
        raise DataFileError(f"no finished pretraining under {args.results}/pretrain/{args.dataset}/"
                         f"*/seed{args.seed}: run the selection's pretrain targets first")
    bench = None if args.benchmarks is None else args.benchmarks / "pretrain" / args.dataset
    table = pd.DataFrame([measure(f, x, args.seed, bench) for f in folders])
    print_table(table, digits=5, index=False)
    if args.out is not None:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main_for(build_parser, run)
