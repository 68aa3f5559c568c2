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

With ``--profile`` it runs once more under ``torch.profiler`` and the top ops by self time go to
``bench/profiles/<workload>-<dataset>-<threads>t.md`` (where the time goes when a workload is
far below the matmul rate).

With ``--ops`` it runs once more recording every convolution and matmul call by shape, replays
each alone, and writes the time per call shape, its GFLOP/s and the rate ceiling they imply to
``bench/profiles/<workload>-<dataset>-<threads>t-ops.md`` (``bench/op_replay.py``: whether a
workload below the matmul rate is held back by its kernels' shapes or by everything else).

With ``--flops`` each workload also runs once more under PyTorch's FLOP counter (matmuls and
convolutions, forward and backward, inside the measured part only): the row gets ``gflop``, the
achieved ``achieved_gflops`` of the timed run, the square-matmul throughput ``matmul_gflops``
of the run's dtype (fp32 at ``32``, bf16 at ``bf16-mixed``) measured in the same process on the
same threads, and their ratio ``of_matmul``.

Every workload runs at each of ``--precisions`` (default ``32 bf16-mixed``, one after the
other, each in its own subprocess; stages/runtime/precision.py), the kNN graphs, which train no
network, once. ``--limit N`` takes the first N samples (smoke runs); ``--clustpy-epochs P C``
sets ``dec-clustpy``'s schedule. Before its timed run every workload runs once for one epoch,
untimed, in the same process (``warmup_s``: its wall seconds), so that the timed epochs are
the steady state a long stage runs in, not the process's first steps (thread pools, first
allocations, kernel set-up: up to 40% of a 2-epoch run of the MLP workloads); ``--no-warmup``
times the cold run, as rows before the column did. ``--compile on`` (or ``both``: off, then
on) runs the training loops' losses through ``torch.compile`` (LoopConfig.compile); the
warm-up compiles, so the timed run measures compiled steps. ``bench/clustpy_compare.py`` times
ClustPy's DEC beside it; ``bench/gpu_check.sh`` is the first run to make on a GPU.

Rows are appended to ``bench/results.csv``. Run from the repository root:

    python bench/bench_training.py --datasets mnist5k --threads 2
    python bench/bench_training.py --workloads dscdan-pretrain saip-hoe --threads 1 --flops
    python bench/bench_training.py --datasets mnist5k fashion --device cuda   # on a GPU node
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import importlib.util
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PROFILES = REPO / "bench" / "profiles"

BUILTIN_WORKLOADS = ("sae-pretrain", "cae-pretrain", "dec-finetune", "dcec-finetune",
                     "dec-clustpy", "depict-pretrain", "depict-joint")


def _load(path: Path):
    """The module in the file at ``path`` (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _workload_modules() -> dict[str, object]:
    """Workload name -> the ``bench/workloads_*.py`` module that runs it."""
    found: dict[str, object] = {}
    for path in sorted(Path(__file__).resolve().parent.glob("workloads_*.py")):
        module = _load(path)
        found.update({name: module for name in module.WORKLOADS})
    return found


WORKLOAD_MODULES = _workload_modules()
OP_REPLAY = _load(Path(__file__).resolve().parent / "op_replay.py")
WORKLOADS = BUILTIN_WORKLOADS + tuple(WORKLOAD_MODULES)
#: workloads that train no network: ``precision`` does not apply, they run once (at "32")
NO_NETWORK = frozenset(w for w in WORKLOADS if w.startswith("knn"))


def precisions_of(workload: str, precisions: list[str]) -> list[str]:
    """The precisions ``workload`` is run at: all of ``precisions``, or "32" alone for a
    workload that trains no network."""
    return ["32"] if workload in NO_NETWORK else list(precisions)
COLUMNS = ["date", "host", "cpu", "device", "threads", "dataset", "workload", "precision",
           "n_samples", "batch_size", "steps", "epochs", "seconds", "s_per_epoch",
           "samples_per_s", "peak_rss_mb", "peak_gpu_mb", "torch", "gflop", "achieved_gflops",
           "matmul_gflops", "of_matmul", "commit", "compile", "warmup_s"]


def load_dataset(name: str):
    """The prepared dataset from results/data, or fetched and prepared into a temporary folder."""
    from stages.data import read_dataset

    prepared = REPO / "results" / "data" / f"{name}.h5"
    if prepared.exists():
        return read_dataset(prepared)
    from stages.data.manifest import fetch_raw
    from stages.data.preparation import prepare

    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    fetch_raw(name, tmp / "raw")
    prepare(name, tmp / "raw" / "manifest.json", tmp / f"{name}.h5")
    return read_dataset(tmp / f"{name}.h5")


def run_one(workload: str, dataset: str, device_name: str, threads: int, epochs: int,
            flops: bool = False, profile: Path | None = None, ops: Path | None = None,
            precision: str = "32", clustpy_epochs: tuple[int, int] = (100, 150),
            limit: int | None = None, compile: bool = False, warmup: bool = True) -> dict:
    """Run one workload at ``precision`` (``32`` | ``bf16-mixed``, stages/runtime/precision.py) in
    this process and return its measurements (``dec-clustpy``: ``clustpy_epochs`` pretraining
    and clustering epochs; ``limit``: the first ``limit`` samples only, for a smoke run).

    With ``warmup`` a one-epoch run, untimed, comes first (``warmup_s``: its wall seconds,
    compilation included). With ``compile`` the losses run through ``torch.compile``.

    With ``flops`` the workload runs a second time, untimed, under
    :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, forward and
    backward), and the row gets its GFLOP, the achieved GFLOP/s of the timed run and the
    matmul throughput of the precision's dtype (fp32, or bf16 under ``bf16-mixed``) measured in
    this process on the same threads (:func:`matmul_gflops`).
    With ``ops`` a further run records its convolution and matmul calls, replays them
    (``op_replay.py``) and writes the table to that path."""
    import torch

    from stages.runtime.device import configure_torch, resolve_device, seed_everything
    from stages.runtime.device import describe as describe_device

    device = resolve_device(device_name)
    configure_torch(threads, device)
    seed_everything(0)
    data = load_dataset(dataset)
    if limit:
        data = dataclasses.replace(data, X=data.X[:limit], y=data.y[:limit])
    x = torch.as_tensor(data.X, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    warmup_s: float | str = ""
    if warmup:
        warm = Region(device)
        _dispatch(workload, data, x, 1, warm, precision, (1, 1), compile)
        warmup_s = round(warm.seconds, 2)
        seed_everything(0)
    timed = Region(device)
    measured = _dispatch(workload, data, x, epochs, timed, precision, clustpy_epochs, compile)
    row = {**_row(workload, dataset, device, threads, x, *measured, timed.seconds),
           "precision": precision, "compile": int(compile), "warmup_s": warmup_s}
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    if flops:
        seed_everything(0)
        counted = Region(device, count_flops=True)
        _dispatch(workload, data, x, epochs, counted, precision, compile=compile)
        gflop = counted.flops / 1e9
        peak = matmul_gflops(device, dtype)
        achieved = gflop / timed.seconds
        row.update(gflop=round(gflop, 1), achieved_gflops=round(achieved, 1),
                   matmul_gflops=round(peak, 1), of_matmul=round(achieved / peak, 3))
    if profile is not None:
        seed_everything(0)
        profiled = Region(device, profile=True)
        _dispatch(workload, data, x, epochs, profiled, precision, compile=compile)
        profile.parent.mkdir(parents=True, exist_ok=True)
        profile.write_text(
            f"# {workload} on {dataset}, {describe_device(device)}, {epochs} epoch(s), "
            f"commit {row['commit']}, CPU {row['cpu']}\n\nProfiled run: {profiled.seconds:.1f} s "
            f"wall (timed run {timed.seconds:.1f} s; the profiler adds overhead). Self time per "
            f"op, top 15:\n\n"
            + profile_table(profiled.ops, profiled.seconds))
    if ops is not None:
        seed_everything(0)
        recorded = Region(device, record_ops=True)
        _dispatch(workload, data, x, epochs, recorded, precision, compile=compile)
        peak = row.get("matmul_gflops") or matmul_gflops(device, dtype)
        replayed = OP_REPLAY.replay(recorded.calls, lambda: _sync(device))
        ops.parent.mkdir(parents=True, exist_ok=True)
        ops.write_text(
            f"# {workload} on {dataset}: convolutions and matmuls by shape, "
            f"{describe_device(device)}, {epochs} epoch(s), commit {row['commit']}, "
            f"CPU {row['cpu']}\n\n" + OP_REPLAY.ops_table(replayed, timed.seconds, peak))
    return row


def matmul_gflops(device, dtype=None, n: int = 2048, seconds: float = 2.0) -> float:
    """Throughput of square (n, n) matmuls in ``dtype`` (default fp32) on ``device`` with the
    current threads, in GFLOP/s (2 n^3 per product), timed for about ``seconds`` after a
    warm-up."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype or torch.float32)
    b = torch.randn(n, n, device=device, dtype=dtype or torch.float32)
    for _ in range(2):
        a @ b
    _sync(device)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
        if device.type == "cuda":
            _sync(device)
    _sync(device)
    return 2 * n**3 * count / (time.perf_counter() - t0) / 1e9


class Region:
    """The measured part of a workload, entered with ``with region:`` (possibly several times):
    wall seconds, the device synchronised at both ends, and with ``count_flops`` the FLOPs of
    the matmuls and convolutions run inside (``torch.utils.flop_counter``; it slows them, so a
    counting run is not a timed one)."""

    def __init__(self, device, count_flops: bool = False, profile: bool = False,
                 record_ops: bool = False):
        self.device, self.count_flops, self.profile = device, count_flops, profile
        self.record_ops = record_ops
        self.seconds, self.flops = 0.0, 0
        self._counter = self._profiler = self._recorder = None
        #: with ``record_ops``: (op, args, kwargs) signature -> calls (``op_replay.OpRecorder``)
        self.calls: Counter = Counter()
        #: with ``profile``: op name -> [self seconds, calls, FLOPs (where the profiler has them)]
        self.ops: dict[str, list[float]] = {}

    def __enter__(self) -> Region:
        if self.profile:
            import torch

            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self._profiler = torch.profiler.profile(activities=activities, with_flops=True)
            self._profiler.__enter__()
        if self.count_flops:
            from torch.utils.flop_counter import FlopCounterMode

            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        if self.record_ops:
            self._recorder = OP_REPLAY.OpRecorder()
            self._recorder.__enter__()
        _sync(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        _sync(self.device)
        self.seconds += time.perf_counter() - self._t0
        if self._recorder is not None:
            self._recorder.__exit__(*exc)
            self.calls.update(self._recorder.calls)
            self._recorder = None
        if self._counter is not None:
            self._counter.__exit__(*exc)
            self.flops += self._counter.get_total_flops()
            self._counter = None
        if self._profiler is not None:
            self._profiler.__exit__(*exc)
            cuda = self.device.type == "cuda"
            for event in self._profiler.key_averages():
                self_us = (event.self_device_time_total if cuda else event.self_cpu_time_total)
                entry = self.ops.setdefault(event.key, [0.0, 0, 0])
                entry[0] += self_us / 1e6
                entry[1] += event.count
                entry[2] += event.flops or 0
            self._profiler = None


def profile_table(ops: dict[str, list[float]], wall_s: float, top: int = 15) -> str:
    """Markdown table of the ``top`` ops by self time: share of the profiled wall time, calls,
    GFLOP and GFLOP/s where the profiler counts them (matmuls, convolutions forward)."""
    lines = ["| op | self s | share of wall | calls | GFLOP | GFLOP/s |",
             "|---|---|---|---|---|---|"]
    for name, (seconds, calls, flops) in sorted(ops.items(), key=lambda kv: -kv[1][0])[:top]:
        rate = f"{flops / 1e9 / seconds:.1f}" if flops and seconds else ""
        gflop = f"{flops / 1e9:.1f}" if flops else ""
        lines.append(f"| `{name}` | {seconds:.2f} | {100 * seconds / wall_s:.1f}% | {calls} | "
                     f"{gflop} | {rate} |")
    return "\n".join(lines) + "\n"


def _dispatch(workload: str, data, x, epochs: int, region: Region, precision: str = "32",
              clustpy_epochs: tuple[int, int] = (100, 150), compile: bool = False,
              ) -> tuple[int, int, float]:
    """Run ``workload`` once at ``precision`` (its training loops' losses through
    ``torch.compile`` with ``compile``), its measured part inside ``region``:
    (batch_size, steps, epochs)."""
    if workload in WORKLOAD_MODULES:
        return WORKLOAD_MODULES[workload].run(workload, data, x, epochs, region, precision,
                                              compile=compile)
    if workload.startswith("depict"):
        return _run_depict(workload, data, x, epochs, region, precision, compile)
    return _run_dec_family(workload, data, x, epochs, region, precision, clustpy_epochs, compile)


def _run_dec_family(workload: str, data, x, epochs: int, region: Region, precision: str,
                    clustpy_epochs: tuple[int, int] = (100, 150), compile: bool = False,
                    ) -> tuple[int, int, float]:
    """The DEC family's workloads: (batch, steps, epochs); fine-tuning workloads measure the
    fine-tuning only (``dec-clustpy``: the whole of DEC, k-means included)."""
    from stages.methods.dec import head as dec
    from stages.methods.shared.kmeans import kmeans_init
    from stages.methods.shared.reconstruction import pretrain_autoencoder
    from stages.nets import build_network
    from stages.runtime.train import map_batches, steps_per_epoch

    device = x.device
    net = "sae" if workload.startswith("sae") or workload.startswith("dec-") else "cae"
    arch = {"embedding_dim": data.n_clusters} if net == "cae" else {}
    model = build_network(net, data.input_shape, arch).to(device)
    optimizer = ({"name": "sgd", "lr": 0.01, "momentum": 0.9} if net == "sae"
                 else {"name": "adam", "lr": 0.001})
    batch = 256
    spe = steps_per_epoch(x.shape[0], batch)
    loop = {"checkpoint_every": 10**9, "precision": precision, "compile": compile}  # no ckpts
    finetune = {"reconstruction_weight": 0.0 if workload.startswith("dec") else 1.0,
                "clustering_weight": 1.0 if workload.startswith("dec") else 0.1,
                "update_interval": 140, "tol": 0.0, "batch_size": batch, "lr": 0.001,
                "shuffle": False, **loop}
    if workload.endswith("pretrain"):
        with region:
            res = pretrain_autoencoder(model, x, {"epochs": epochs, "batch_size": batch,
                                                  "optimizer": optimizer, **loop}, seed=0,
                                       log_every=spe)
        return batch, res.steps, res.steps / spe

    def clustering(pre_epochs: int, pre_optimizer: dict, clu_epochs: int) -> int:
        pretrain_autoencoder(model, x, {"epochs": pre_epochs, "batch_size": batch,
                                        "optimizer": pre_optimizer, **loop}, seed=0,
                             log_every=spe)
        z = map_batches(model.encode, x).cpu().numpy()
        centres, _ = kmeans_init(z, data.n_clusters, 20, 0)
        res = dec.finetune(model, x, {"centres": centres},
                           {**finetune, "max_iter": clu_epochs * spe}, seed=0, y_true=None,
                           log_every=spe)
        return res.info["steps"]

    if workload == "dec-clustpy":
        pre, clu = clustpy_epochs
        with region:
            steps = clustering(pre, {"name": "adam", "lr": 0.001}, clu)
        return batch, steps + pre * spe, pre + clu
    pretrain_autoencoder(model, x, {"epochs": 1, "batch_size": batch, "optimizer": optimizer,
                                    **loop}, seed=0, log_every=spe)
    z = map_batches(model.encode, x).cpu().numpy()
    centres, _ = kmeans_init(z, data.n_clusters, 20, 0)
    with region:
        res = dec.finetune(model, x, {"centres": centres},
                           {**finetune, "max_iter": epochs * spe}, seed=0, y_true=None,
                           log_every=spe)
    return batch, res.info["steps"], res.info["steps"] / spe


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _run_depict(workload: str, data, x, epochs: int, region: Region, precision: str,
                compile: bool = False) -> tuple[int, int, float]:
    """DEPICT's MdA pretraining or joint phase: (batch, steps, epochs)."""
    import torch

    from stages.methods.depict import head as depict
    from stages.methods.depict import pretrain as depict_pretrain
    from stages.methods.shared.kmeans import kmeans_init
    from stages.nets import build_network
    from stages.runtime.train import map_batches

    device = x.device
    batch = 100
    model = build_network("depict", data.input_shape, {"embedding_dim": data.n_clusters})
    model = model.to(device)
    recipe = {"epochs": epochs, "batch_size": batch, "optimizer": {"lr": 1e-4},
              "patience": 10**9, "validation_fraction": 0.1, "hidden_weight": 1.0,
              "checkpoint_every": 10**9, "precision": precision, "compile": compile}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if workload == "depict-pretrain":
        with region:
            res = depict_pretrain.pretrain_mda(model, x, recipe, seed=0, log_every=10**9)
        return batch, res.steps, epochs
    depict_pretrain.pretrain_mda(model, x, {**recipe, "epochs": 1}, seed=0, log_every=10**9)
    centres, labels = kmeans_init(map_batches(model.encode, x).cpu().numpy(), data.n_clusters,
                                  10, 0)
    params = {"initial_q": "labels", "reconstruction_weight": 1.0, "hidden_weight": 1.0,
              "target": "sqrt", "tol": 0.0,
              "max_epochs": epochs, "batch_size": batch, "lr": 1e-4, "checkpoint_every": 10**9,
              "precision": precision, "compile": compile}
    with region:
        res = depict.finetune(model, x, {"centres": centres, "labels": labels}, params, seed=0,
                              log_every=10**9)
    return batch, res.info["steps"], res.info["epochs"]


def _row(workload: str, dataset: str, device, threads: int, x, batch: int, steps: int,
         epochs: float, seconds: float) -> dict:
    import torch

    from stages.runtime.device import describe

    return {
        "date": time.strftime("%Y-%m-%d"), "host": platform.node(), "cpu": cpu_model(),
        "device": describe(device),
        "threads": threads, "dataset": dataset, "workload": workload,
        "n_samples": int(x.shape[0]), "batch_size": batch, "steps": steps,
        "epochs": round(float(epochs), 2), "seconds": round(seconds, 2),
        "s_per_epoch": round(seconds / epochs, 3),
        # passes over the data per second: a kNN search's "batch" is its block, not its input
        "samples_per_s": round(float(epochs) * int(x.shape[0]) / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mb": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                        if device.type == "cuda" else ""),
        "torch": torch.__version__,
        "commit": _commit(),
    }


def _commit() -> str:
    """The git commit of the code measured (``+dirty`` with uncommitted changes other than to
    the results files and profiles), or ''."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no", "--", ".", ":!bench/results.csv",
                                ":!bench/clustpy.csv", ":!bench/denormals.csv",
                                ":!bench/profiles"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+dirty" if dirty else "")


#: the CPU features that decide the matmul kernels' rates, named in :func:`cpu_model`
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_model() -> str:
    """The CPU's model name and which of :data:`CPU_FEATURES` it has, from ``/proc/cpuinfo``
    (``platform.processor()`` elsewhere), e.g. ``"Intel(R) Xeon(R) Processor [avx2 avx512f
    avx512_bf16 amx_bf16]"``.

    Rates differ by CPU more than by anything this project changes (fp32 matmul on 2 threads:
    about 170-195 GFLOP/s with MKL's AVX2 kernels on one machine, about 410 with AVX-512 on
    another), so every row names the CPU it ran on."""
    from stages.runtime.precision import cpu_flags

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = cpu_flags()
    return f"{model} [{' '.join(f for f in CPU_FEATURES if f in flags)}]"


@contextlib.contextmanager
def appending(path: str | Path, columns: list[str]):
    """``(file, csv.DictWriter)`` appending rows of ``columns`` to the CSV file at ``path``: its
    header upgraded first (:func:`upgrade_header`), or written when the file is new."""
    path = Path(path)
    upgrade_header(path, columns)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        if new:
            writer.writeheader()
        yield f, writer


def upgrade_header(path: Path, columns: list[str] | None = None) -> None:
    """Rewrite an existing results file whose header lacks some of ``columns`` (default
    :data:`COLUMNS`) with the full header (the new columns empty in the old rows), so appended
    rows line up."""
    columns = COLUMNS if columns is None else columns
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
        header = rows[0].keys() if rows else []
    if list(header) == columns or not rows:
        return
    for row in rows:
        if "precision" in columns and "precision" not in row:  # rows before it: all fp32
            row["precision"] = "32"
        if "compile" in columns and not row.get("compile"):  # rows before it: not compiled
            row["compile"] = "0"
        if "compile_warmup_s" in row:  # the column's first name
            row["warmup_s"] = row.pop("compile_warmup_s")
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist5k"])
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5, help="epochs per measurement (not clustpy)")
    p.add_argument("--flops", action="store_true",
                   help="also count each workload's GFLOP (a second, untimed run) and measure "
                        "the matmul throughput of each precision's dtype on the same threads")
    p.add_argument("--profile", action="store_true",
                   help="also profile each workload (a third, untimed run) and write its top ops "
                        "by self time to bench/profiles/<workload>-<dataset>-<threads>t.md")
    p.add_argument("--ops", action="store_true",
                   help="also record each workload's convolution and matmul calls, replay each "
                        "call shape alone and write their times and rates to "
                        "bench/profiles/<workload>-<dataset>-<threads>t-ops.md")
    p.add_argument("--profiles-dir", default=str(PROFILES),
                   help="the folder of --profile and --ops files (default bench/profiles; "
                        "another one keeps another machine's files apart)")
    p.add_argument("--precisions", nargs="+", default=["32", "bf16-mixed"],
                   choices=["32", "bf16-mixed"],
                   help="each workload is run at each, one after the other (default: both)")
    p.add_argument("--compile", choices=["off", "on", "both"], default="off",
                   help="the training losses through torch.compile: off (default), on, or both "
                        "(each workload off, then on)")
    p.add_argument("--out", default=str(REPO / "bench" / "results.csv"))
    p.add_argument("--one", nargs=2, metavar=("WORKLOAD", "DATASET"), help=argparse.SUPPRESS)
    p.add_argument("--precision", default="32", help=argparse.SUPPRESS)
    p.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-warmup", action="store_true",
                   help="time each workload's first run in its process (no untimed epoch first)")
    p.add_argument("--clustpy-epochs", nargs=2, type=int, default=[100, 150],
                   metavar=("PRETRAIN", "CLUSTERING"),
                   help="dec-clustpy's schedule (default ClustPy's: 100 150)")
    p.add_argument("--limit", type=int, default=None,
                   help="the first N samples of each dataset only (a smoke run, not a measurement)")
    args = p.parse_args()
    if args.one:
        suffix = ("" if args.precision == "32" else f"-{args.precision}") + (
            "-compiled" if args.compiled else "")
        stem = Path(args.profiles_dir) / f"{args.one[0]}-{args.one[1]}-{args.threads}t{suffix}"
        profile = stem.with_name(stem.name + ".md") if args.profile else None
        ops = stem.with_name(stem.name + "-ops.md") if args.ops else None
        print(json.dumps(run_one(args.one[0], args.one[1], args.device, args.threads,
                                 args.epochs, flops=args.flops, profile=profile, ops=ops,
                                 precision=args.precision,
                                 clustpy_epochs=tuple(args.clustpy_epochs),
                                 limit=args.limit, compile=args.compiled,
                                 warmup=not args.no_warmup)))
        return
    with appending(args.out, COLUMNS) as (f, writer):
        for dataset in args.datasets:
            for workload in args.workloads:
                for precision in precisions_of(workload, args.precisions):
                    for compile in {"off": [False], "on": [True],
                                    "both": [False, True]}[args.compile]:
                        if compile and workload in NO_NETWORK:
                            continue
                        run_and_print(args, workload, dataset, precision, writer, compile)
                    f.flush()


def run_in_subprocess(workload: str, dataset: str, *, device: str = "auto", threads: int = 2,
                      epochs: int = 5, precision: str = "32", flops: bool = False,
                      profile: bool = False, ops: bool = False,
                      clustpy_epochs: tuple[int, int] = (100, 150),
                      limit: int | None = None, compile: bool = False,
                      warmup: bool = True, profiles_dir: str | Path = "") -> dict:
    """:func:`run_one` in a fresh subprocess (so that its peak memory is its own): its row.
    Raises RuntimeError with the end of the subprocess's stderr when it fails."""
    cmd = [sys.executable, __file__, "--one", workload, dataset, "--device", device,
           "--threads", str(threads), "--epochs", str(epochs), "--precision", precision,
           "--clustpy-epochs", *map(str, clustpy_epochs),
           "--profiles-dir", str(profiles_dir or PROFILES)]
    if limit:
        cmd += ["--limit", str(limit)]
    cmd += [flag for flag, on in (("--flops", flops), ("--profile", profile), ("--ops", ops),
                                  ("--compiled", compile), ("--no-warmup", not warmup)) if on]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{workload} on {dataset} at {precision}: "
                           + " ".join(proc.stderr.strip()[-600:].split()))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_and_print(args: argparse.Namespace, workload: str, dataset: str, precision: str,
                  writer: csv.DictWriter, compile: bool = False) -> None:
    """Run one workload at one precision (compiled or not) in a fresh subprocess, write its
    row, print a line."""
    row = run_in_subprocess(workload, dataset, device=args.device, threads=args.threads,
                            epochs=args.epochs, precision=precision, flops=args.flops,
                            profile=args.profile, ops=args.ops,
                            profiles_dir=args.profiles_dir,
                            clustpy_epochs=tuple(args.clustpy_epochs), limit=args.limit,
                            compile=compile, warmup=not args.no_warmup)
    writer.writerow(row)
    flops = (f"  {row['achieved_gflops']} GFLOP/s = {100 * row['of_matmul']:.0f}% "
             f"of matmul ({row['matmul_gflops']})" if "of_matmul" in row else "")
    compiled = f" compiled (warm-up {row['warmup_s']} s)" if compile else ""
    print(f"{dataset:8s} {workload:15s} {precision:10s}{compiled} {row['seconds']:8.1f} s "
          f"{row['s_per_epoch']:7.2f} s/epoch "
          f"{row['samples_per_s']:9.0f} samples/s  peak {row['peak_rss_mb']} MB RSS "
          f"{row['peak_gpu_mb']} MB GPU{flops}", flush=True)

if __name__ == "__main__":
    main()
