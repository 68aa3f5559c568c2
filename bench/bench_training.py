"""Speed benchmark (not a test): samples/s and peak memory of pretraining and fine-tuning.

Workloads, each run in a fresh subprocess so its peak memory is its own:

* ``sae-pretrain`` / ``cae-pretrain``: reconstruction training of the DCEC paper's SAE and CAE;
* ``dec-finetune`` / ``dcec-finetune``: DEC (SAE, gamma=1) and DCEC (CAE, L_r + 0.1 L_c)
  fine-tuning with the target updated every T=140 steps, no early stop;
* ``dec-clustpy``: the whole of DEC on ClustPy's schedule (100 pretraining + 150 clustering
  epochs, batch 256), k-means init included, for comparison with ClustPy's DEC;
* ``depict-pretrain``: DEPICT's reconstruction-only (MdA) phase, batch 100, with the per-epoch
  validation pass of its early stopping (which never triggers here);
* ``depict-joint``: DEPICT's joint phase (Algorithm 1: corrupted and clean pathways, layer-wise
  reconstruction, Q refreshed once per epoch), batch 100, after one pretraining epoch.

``s_per_epoch`` is the measured time over the epochs run (one epoch = one pass over the data).

More workloads come from ``bench/workloads_*.py``: each such file defines ``WORKLOADS`` (names)
and ``run(workload, data, x, epochs) -> (batch_size, steps, epochs, seconds)``, where ``data`` is
the prepared dataset and ``x`` its samples as one tensor on the device; the file times only the
work it names, after synchronising the device.

Rows are appended to ``bench/results.csv``. Run from the repository root:

    python bench/bench_training.py --datasets mnist5k --threads 2
    python bench/bench_training.py --datasets mnist5k fashion --device cuda   # on a GPU node
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUILTIN_WORKLOADS = ("sae-pretrain", "cae-pretrain", "dec-finetune", "dcec-finetune",
                     "dec-clustpy", "depict-pretrain", "depict-joint")


def _workload_modules() -> dict[str, object]:
    """Workload name -> the ``bench/workloads_*.py`` module that runs it."""
    found: dict[str, object] = {}
    for path in sorted(Path(__file__).resolve().parent.glob("workloads_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.update({name: module for name in module.WORKLOADS})
    return found


WORKLOAD_MODULES = _workload_modules()
WORKLOADS = BUILTIN_WORKLOADS + tuple(WORKLOAD_MODULES)
COLUMNS = ["date", "host", "device", "threads", "dataset", "workload", "n_samples", "batch_size",
           "steps", "epochs", "seconds", "s_per_epoch", "samples_per_s", "peak_rss_mb",
           "peak_gpu_mb", "torch"]


def load_dataset(name: str):
    """The prepared dataset from results/data, or fetched and prepared into a temporary folder."""
    from stages.data import read_dataset

    prepared = REPO / "results" / "data" / f"{name}.h5"
    if prepared.exists():
        return read_dataset(prepared)
    from stages.data.manifest import fetch_raw
    from stages.prepare import prepare

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    fetch_raw(name, tmp / "raw")
    prepare(name, tmp / "raw" / "manifest.json", tmp / f"{name}.h5")
    return read_dataset(tmp / f"{name}.h5")


def run_one(workload: str, dataset: str, device_name: str, threads: int, epochs: int) -> dict:
    """Run one workload in this process and return its measurements."""
    import torch

    from stages.device import configure_torch, resolve_device, seed_everything
    from stages.init import kmeans_init
    from stages.methods import dec
    from stages.nets import build_network
    from stages.pretrain import pretrain_autoencoder
    from stages.train import map_batches, steps_per_epoch

    device = resolve_device(device_name)
    configure_torch(threads, device)
    seed_everything(0)
    data = load_dataset(dataset)
    x = torch.as_tensor(data.X, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if workload in WORKLOAD_MODULES:
        return _row(workload, dataset, device, threads, x,
                    *WORKLOAD_MODULES[workload].run(workload, data, x, epochs))
    if workload.startswith("depict"):
        return _row(workload, dataset, device, threads, x, *_run_depict(workload, data, x, epochs))
    net = "sae" if workload.startswith("sae") or workload.startswith("dec-") else "cae"
    arch = {"embedding_dim": data.n_clusters} if net == "cae" else {}
    model = build_network(net, data.input_shape, arch).to(device)
    optimizer = ({"name": "sgd", "lr": 0.01, "momentum": 0.9} if net == "sae"
                 else {"name": "adam", "lr": 0.001})
    batch = 256
    spe = steps_per_epoch(x.shape[0], batch)
    finetune = {"reconstruction_weight": 0.0 if workload.startswith("dec") else 1.0,
                "clustering_weight": 1.0 if workload.startswith("dec") else 0.1,
                "update_interval": 140, "tol": 0.0, "batch_size": batch, "lr": 0.001,
                "shuffle": False, "checkpoint_every": 10**9}

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t0 = time.perf_counter()
    if workload.endswith("pretrain"):
        res = pretrain_autoencoder(model, x, {"epochs": epochs, "batch_size": batch,
                                              "optimizer": optimizer}, seed=0, log_every=spe)
        steps = res.steps
    else:
        pre_epochs = 100 if workload == "dec-clustpy" else 1
        clu_epochs = 150 if workload == "dec-clustpy" else epochs
        if workload != "dec-clustpy":
            pretrain_autoencoder(model, x, {"epochs": pre_epochs, "batch_size": batch,
                                            "optimizer": optimizer}, seed=0, log_every=spe)
            _sync(device)
            t0 = time.perf_counter()  # time the fine-tuning only
        else:
            pretrain_autoencoder(model, x, {"epochs": pre_epochs, "batch_size": batch,
                                            "optimizer": {"name": "adam", "lr": 0.001}},
                                 seed=0, log_every=spe)
        z = map_batches(model.encode, x).cpu().numpy()
        centres, _ = kmeans_init(z, data.n_clusters, 20, 0)
        res = dec.finetune(model, x, {"centres": centres},
                           {**finetune, "max_iter": clu_epochs * spe}, seed=0, y_true=None,
                           log_every=spe)
        steps = res.info["steps"] + (pre_epochs * spe if workload == "dec-clustpy" else 0)
    _sync(device)
    seconds = time.perf_counter() - t0
    n_epochs = (100 + 150) if workload == "dec-clustpy" else steps / spe
    return _row(workload, dataset, device, threads, x, batch, steps, n_epochs, seconds)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _run_depict(workload: str, data, x, epochs: int) -> tuple[int, int, float, float]:
    """DEPICT's MdA pretraining or joint phase: (batch, steps, epochs, seconds)."""
    import torch

    from stages.init import kmeans_init
    from stages.methods import depict, depict_pretrain
    from stages.nets import build_network
    from stages.train import map_batches

    device = x.device
    batch = 100
    model = build_network("depict", data.input_shape, {"embedding_dim": data.n_clusters})
    model = model.to(device)
    recipe = {"epochs": epochs, "batch_size": batch, "optimizer": {"lr": 1e-4},
              "patience": 10**9, "validation_fraction": 0.1, "hidden_weight": 1.0,
              "checkpoint_every": 10**9}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if workload == "depict-pretrain":
        _sync(device)
        t0 = time.perf_counter()
        res = depict_pretrain.pretrain_mda(model, x, recipe, seed=0, log_every=10**9)
        _sync(device)
        return batch, res.steps, epochs, time.perf_counter() - t0
    depict_pretrain.pretrain_mda(model, x, {**recipe, "epochs": 1}, seed=0, log_every=10**9)
    centres, labels = kmeans_init(map_batches(model.encode, x).cpu().numpy(), data.n_clusters,
                                  10, 0)
    params = {"initial_q": "labels", "reconstruction_weight": 1.0, "hidden_weight": 1.0,
              "target": "sqrt", "tol": 0.0,
              "max_epochs": epochs, "batch_size": batch, "lr": 1e-4, "checkpoint_every": 10**9}
    _sync(device)
    t0 = time.perf_counter()
    res = depict.finetune(model, x, {"centres": centres, "labels": labels}, params, seed=0,
                          log_every=10**9)
    _sync(device)
    return batch, res.info["steps"], res.info["epochs"], time.perf_counter() - t0


def _row(workload: str, dataset: str, device, threads: int, x, batch: int, steps: int,
         epochs: float, seconds: float) -> dict:
    import torch

    from stages.device import describe

    return {
        "date": time.strftime("%Y-%m-%d"), "host": platform.node(), "device": describe(device),
        "threads": threads, "dataset": dataset, "workload": workload,
        "n_samples": int(x.shape[0]), "batch_size": batch, "steps": steps,
        "epochs": round(float(epochs), 2), "seconds": round(seconds, 2),
        "s_per_epoch": round(seconds / epochs, 3),
        "samples_per_s": round(steps * batch / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mb": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                        if device.type == "cuda" else ""),
        "torch": torch.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist5k"])
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5, help="epochs per measurement (not clustpy)")
    p.add_argument("--out", default=str(REPO / "bench" / "results.csv"))
    p.add_argument("--one", nargs=2, metavar=("WORKLOAD", "DATASET"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.device, args.threads,
                                 args.epochs)))
        return
    out = Path(args.out)
    new = not out.exists()
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            writer.writeheader()
        for dataset in args.datasets:
            for workload in args.workloads:
                cmd = [sys.executable, __file__, "--one", workload, dataset, "--device",
                       args.device, "--threads", str(args.threads), "--epochs", str(args.epochs)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                writer.writerow(row)
                f.flush()
                print(f"{dataset:8s} {workload:15s} {row['seconds']:8.1f} s "
                      f"{row['s_per_epoch']:7.2f} s/epoch "
                      f"{row['samples_per_s']:9.0f} samples/s  peak {row['peak_rss_mb']} MB RSS "
                      f"{row['peak_gpu_mb']} MB GPU", flush=True)


if __name__ == "__main__":
    main()
