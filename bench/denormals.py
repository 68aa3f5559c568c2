"""What denormal floats cost a long training run, with and without flushing them to zero.

Trains the DEC family's SAE (784-500-500-2000-10 and back) on a dataset with Adam at 1e-3,
batch 256 (``dec-clustpy``'s pretraining) for ``--epochs`` epochs through the project's
training loop, at each precision, once with denormals kept (x86's default) and once flushed to
zero (``torch.set_flush_denormal``, set before the thread pool starts, as
:func:`stages.runtime.device.configure_torch` does), each in a fresh subprocess on ``--threads``
threads. Reports the seconds of each block of ``--block`` epochs, the last epoch's mean
training loss, and the share of denormal values in Adam's moments and in the weights at the
end, and appends one row per run to ``bench/denormals.csv``.

    python bench/denormals.py --threads 2 --epochs 60
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

COLUMNS = ["date", "cpu", "threads", "dataset", "precision", "flush", "epochs", "block",
           "block_s", "total_s", "final_loss", "denormal_exp_avg", "denormal_exp_avg_sq",
           "denormal_weights", "torch", "commit"]


#: float dtype -> (the integer dtype of its bits, the bits of its smallest normal number)
_NORMAL_BITS = {"float64": ("int64", 1 << 52), "float32": ("int32", 1 << 23),
                "bfloat16": ("int16", 1 << 7), "float16": ("int16", 1 << 10)}


def denormal_share(tensors: list) -> float:
    """The share of the values of ``tensors`` (float64/32/16, bfloat16) that are denormal:
    nonzero with an all-zero exponent. Read from the bits, so that a process that flushes
    denormals (which then compare as zero) still counts them."""
    import torch

    total = bad = 0
    for t in tensors:
        int_dtype, normal = _NORMAL_BITS[str(t.dtype).removeprefix("torch.")]
        bits = t.detach().contiguous().view(getattr(torch, int_dtype)).to(torch.int64)
        magnitude = bits & ((1 << (8 * t.element_size() - 1)) - 1)   # the sign bit dropped
        bad += int(((magnitude > 0) & (magnitude < normal)).sum())
        total += t.numel()
    return bad / max(total, 1)


class _BlockTimer:
    """A :class:`stages.runtime.train.PeriodicHook` noting the time at the start of every block of
    ``period`` steps (it never stops training)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.times: list[float] = []

    def __call__(self, step: int) -> bool:
        self.times.append(time.perf_counter())
        return False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def train(dataset: str, threads: int, precision: str, flush: bool, epochs: int, block: int,
          limit: int | None = None) -> dict:
    """One run in this process (call first thing in a fresh one: the flush must precede the
    thread pool) through the project's training loop (:func:`stages.runtime.train.run_loop`, as
    ``pretrain_autoencoder`` runs it): per-block seconds, the last epoch's mean training loss,
    denormal shares."""
    import torch

    torch.set_flush_denormal(flush)
    torch.set_num_threads(threads)
    from bench_training import load_dataset

    from stages.methods.shared.common import reconstruction_mse
    from stages.nets import build_network
    from stages.runtime.device import seed_everything
    from stages.runtime.train import LoopConfig, make_optimizer, run_loop, steps_per_epoch

    data = load_dataset(dataset)
    x = torch.as_tensor(data.X[:limit] if limit else data.X)
    seed_everything(0)
    model = build_network("sae", data.input_shape, {})
    optimizer = make_optimizer(list(model.parameters()), {"name": "adam", "lr": 1e-3})
    spe = steps_per_epoch(x.shape[0], 256)

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        _, x_hat = model(x[idx])
        return {"loss": reconstruction_mse(x_hat, x[idx], "mean")}

    timer = _BlockTimer(block * spe)
    cfg = LoopConfig(batch_size=256, max_steps=epochs * spe, seed=0, log_every=spe,
                     checkpoint_every=10**9, precision=precision)
    result = run_loop(model, optimizer, loss_fn, x.shape[0], cfg, torch.device("cpu"),
                      hook=timer, desc="denormals")
    ends = [*timer.times, time.perf_counter()]
    states = [optimizer.state[p] for p in model.parameters()]
    return {"block_s": [round(b - a, 2) for a, b in itertools.pairwise(ends)],
            "final_loss": result.history[-1]["loss"],
            "denormal_exp_avg": denormal_share([s["exp_avg"] for s in states]),
            "denormal_exp_avg_sq": denormal_share([s["exp_avg_sq"] for s in states]),
            "denormal_weights": denormal_share(list(model.parameters()))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--block", type=int, default=10, help="epochs per timed block")
    p.add_argument("--precisions", nargs="+", default=["32", "bf16-mixed"],
                   choices=["32", "bf16-mixed"])
    p.add_argument("--limit", type=int, default=None,
                   help="the first N samples only (a smoke run, not a measurement)")
    p.add_argument("--out", default=str(REPO / "bench" / "denormals.csv"))
    p.add_argument("--one", nargs=2, metavar=("PRECISION", "FLUSH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(train(args.dataset, args.threads, args.one[0], args.one[1] == "on",
                               args.epochs, args.block, args.limit)))
        return

    import torch
    from bench_training import _commit, appending, cpu_model

    with appending(args.out, COLUMNS) as (f, writer):
        for precision in args.precisions:
            for flush in ("off", "on"):
                cmd = [sys.executable, __file__, "--one", precision, flush, "--dataset",
                       args.dataset, "--threads", str(args.threads), "--epochs",
                       str(args.epochs), "--block", str(args.block)]
                if args.limit:
                    cmd += ["--limit", str(args.limit)]
                proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"{precision}, flush {flush}: "
                                     + " ".join(proc.stderr.strip()[-600:].split()))
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                writer.writerow({
                    "date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(),
                    "threads": args.threads, "dataset": args.dataset, "precision": precision,
                    "flush": flush, "epochs": args.epochs, "block": args.block,
                    "block_s": " ".join(map(str, run["block_s"])),
                    "total_s": round(sum(run["block_s"]), 2),
                    "final_loss": round(run["final_loss"], 6),
                    **{k: f"{run[k]:.3g}" for k in ("denormal_exp_avg", "denormal_exp_avg_sq",
                                                   "denormal_weights")},
                    "torch": torch.__version__, "commit": _commit()})
                f.flush()
                print(f"{precision:10s} flush {flush:3s}: {sum(run['block_s']):6.1f} s, blocks "
                      f"{run['block_s']}, loss {run['final_loss']:.5f}, denormal share of "
                      f"Adam's first moments {run['denormal_exp_avg']:.3g}", flush=True)


if __name__ == "__main__":
    main()
