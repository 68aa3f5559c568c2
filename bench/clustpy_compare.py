"""ClustPy's DEC and ours, on the same data, threads and schedule, one after the other in one run.

Times ``clustpy.deep.DEC`` with its defaults (a 784-500-500-2000-10 autoencoder, 100
pretraining epochs with Adam at 1e-3, 150 clustering epochs, batch 256, k-means start) and our
``dec-clustpy`` bench workload (the same schedule, ``bench_training.py``) at each requested
precision, each in a fresh subprocess on ``--threads`` threads, and prints and appends the
ratios to ``bench/clustpy.csv``.

ClustPy is not a dependency: install it beside the package (``pip install --no-deps clustpy``;
its DEC needs only torch, NumPy, scikit-learn and tqdm). Where it is not installed, the script
says so and times ours only. ClustPy imports torchvision when ``clustpy.deep`` loads (for
type annotations) but its DEC never calls it; where torchvision cannot be imported (beside
the CPU torch wheel of this project's machines), empty stand-in modules take its place in the
ClustPy subprocess only.

    python bench/clustpy_compare.py --threads 2
    python bench/clustpy_compare.py --threads 2 --precisions bf16-mixed --pretrain-epochs 10 \\
        --clustering-epochs 15   # a shorter check (ours and ClustPy's at the same schedule)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLUMNS = ["date", "cpu", "threads", "dataset", "n_samples", "pretrain_epochs", "clustering_epochs",
           "clustpy_version", "clustpy_s", "precision", "ours_s", "clustpy_over_ours", "torch",
           "commit"]


def clustpy_version() -> str | None:
    """ClustPy's version where it is installed, else None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clustpy")
    except PackageNotFoundError:
        return None


def _stand_in_torchvision(types) -> None:
    """Empty ``torchvision``, ``torchvision.models`` and ``torchvision.models._api`` modules:
    ClustPy 0.0.3 imports the package and its ``Weights``/``WeightsEnum`` classes (type
    annotations of its convolutional and ResNet autoencoders) when ``clustpy.deep`` loads; DEC
    with its default fully connected autoencoder calls none of it."""
    root = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    api = types.ModuleType("torchvision.models._api")
    api.Weights = type("Weights", (), {})
    api.WeightsEnum = type("WeightsEnum", (), {})
    root.models, models._api = models, api
    sys.modules.update({"torchvision": root, "torchvision.models": models,
                        "torchvision.models._api": api})


def time_clustpy(dataset: str, threads: int, pretrain_epochs: int, clustering_epochs: int,
                 ) -> float:
    """Wall seconds of ``clustpy.deep.DEC(...).fit(X)`` on the dataset's (N, D) samples, in this
    process (k-means start and final predictions included, as ClustPy's ``fit`` does them)."""
    import importlib
    import types

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - any import failure: ClustPy's DEC does not use it
        _stand_in_torchvision(types)
    from bench_training import load_dataset
    from clustpy.deep import DEC
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    data = load_dataset(dataset)
    x = np.ascontiguousarray(data.X.reshape(data.X.shape[0], -1), dtype=np.float32)
    dec = DEC(n_clusters=data.n_clusters, batch_size=256, pretrain_epochs=pretrain_epochs,
              clustering_epochs=clustering_epochs, device=torch.device("cpu"), random_state=0)
    t0 = time.perf_counter()
    dec.fit(x)
    return time.perf_counter() - t0


def time_ours(dataset: str, threads: int, precision: str, pretrain_epochs: int,
              clustering_epochs: int) -> float:
    """Wall seconds of our ``dec-clustpy`` workload at ``precision`` (a fresh subprocess)."""
    from bench_training import run_in_subprocess

    row = run_in_subprocess("dec-clustpy", dataset, device="cpu", threads=threads,
                            precision=precision, warmup=False,  # ClustPy's run is cold too
                            clustpy_epochs=(pretrain_epochs, clustering_epochs))
    return float(row["seconds"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precisions", nargs="+", default=["32", "bf16-mixed"],
                   choices=["32", "bf16-mixed"])
    p.add_argument("--pretrain-epochs", type=int, default=100)
    p.add_argument("--clustering-epochs", type=int, default=150)
    p.add_argument("--out", default=str(REPO / "bench" / "clustpy.csv"))
    p.add_argument("--clustpy-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.clustpy_only:
        print(time_clustpy(args.dataset, args.threads, args.pretrain_epochs,
                           args.clustering_epochs))
        return

    import torch
    from bench_training import _commit, appending, cpu_model, load_dataset

    version = clustpy_version()
    clustpy_s = None
    if version is None:
        print("ClustPy is not installed (pip install --no-deps clustpy): timing ours only",
              flush=True)
    else:
        cmd = [sys.executable, __file__, "--clustpy-only", "--dataset", args.dataset,
               "--threads", str(args.threads), "--pretrain-epochs", str(args.pretrain_epochs),
               "--clustering-epochs", str(args.clustering_epochs)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        clustpy_s = float(proc.stdout.strip().splitlines()[-1])
        print(f"ClustPy {version} DEC: {clustpy_s:.1f} s", flush=True)
    n = int(load_dataset(args.dataset).X.shape[0])
    with appending(args.out, COLUMNS) as (f, writer):
        for precision in args.precisions:
            ours = time_ours(args.dataset, args.threads, precision, args.pretrain_epochs,
                             args.clustering_epochs)
            ratio = round(clustpy_s / ours, 2) if clustpy_s else ""
            writer.writerow({
                "date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "threads": args.threads,
                "dataset": args.dataset, "n_samples": n,
                "pretrain_epochs": args.pretrain_epochs,
                "clustering_epochs": args.clustering_epochs, "clustpy_version": version or "",
                "clustpy_s": round(clustpy_s, 1) if clustpy_s else "", "precision": precision,
                "ours_s": round(ours, 1), "clustpy_over_ours": ratio,
                "torch": torch.__version__, "commit": _commit()})
            f.flush()
            print(f"ours at {precision}: {ours:.1f} s" + (f", ClustPy / ours = {ratio}"
                                                          if ratio else ""), flush=True)


if __name__ == "__main__":
    main()
