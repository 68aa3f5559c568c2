"""The GPU check (``bench/gpu_check.sh``): everything worth knowing from a first hour on a GPU,
in one run, one CSV.

1. The CUDA-marked tests (``pytest -m cuda``; skipped, and recorded as skipped, without a GPU).
2. Every bench workload (``bench_training.py``) on mnist5k and fashion at ``32`` and
   ``bf16-mixed``, with FLOPs and the matmul throughput of each dtype.
3. ``schedule: paper`` for ``dcec`` on mnist5k, seed 0, through the workflow (in a copy of it
   in a temporary folder): its ACC, NMI and wall seconds per stage.

Each part's rows go to the one CSV (``--out``, default ``bench/gpu_check.csv``; replaced):
``part, name, dataset, precision, status, seconds`` and the measurements each part has.

``--smoke`` shrinks every part to seconds so that CI runs the script (``--device cpu
--smoke``, from ``tests/test_bench.py``) and it cannot rot before a GPU is at hand: workloads
in this process on the first 256 mnist5k samples for one epoch (fashion left out), and dcec at
the quick schedule on the workflow test's synthetic data (``tests/data/workflow_config.yaml``).
A smoke run measures nothing and leaves out the approximate kNN graph (30 s of numba
compilation). Workloads that train no network (the kNN graphs) run once.

    bash bench/gpu_check.sh                        # on a GPU node: under 8 minutes on an H200
    bash bench/gpu_check.sh --device cpu --smoke   # what CI runs
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]  # stages, and bench_training beside this file
COLUMNS = ["part", "name", "dataset", "precision", "status", "seconds", "samples_per_s",
           "s_per_epoch", "achieved_gflops", "matmul_gflops", "of_matmul", "peak_gpu_mb",
           "acc", "nmi", "detail", "device", "commit"]


def _commit() -> str:
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return proc.stdout.strip()


def cuda_tests(device: str) -> list[dict]:
    """``pytest -m cuda``: one row with the counts of its summary line."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p",
                           "no:cacheprovider", str(REPO / "tests")], cwd=REPO,
                          capture_output=True, text=True)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)",
                                                     summary))
    # 5: nothing collected; every CUDA test skipped is also a pass without a GPU
    ok = proc.returncode == 0 and not counts.get("failed") and not counts.get("error")
    status = ("skipped" if ok and not counts.get("passed") else "ok" if ok else "failed")
    return [{"part": "tests", "name": "pytest -m cuda", "status": status,
             "seconds": round(time.perf_counter() - t0, 1), "device": device,
             "detail": summary.strip()[-300:]}]


def prepared(dataset: str) -> Path:
    """``results/data/{dataset}.h5`` of this checkout, fetched and prepared once if missing
    (the bench reads it from there instead of preparing it in every subprocess)."""
    from stages.data.manifest import fetch_raw
    from stages.data.preparation import prepare

    out = REPO / "results" / "data" / f"{dataset}.h5"
    if not out.exists():
        raw = REPO / "data" / "raw" / dataset
        fetch_raw(dataset, raw)
        prepare(dataset, raw / "manifest.json", out)
    return out


def workloads(device: str, smoke: bool) -> list[dict]:
    """Every bench workload at both precisions on mnist5k and (not in a smoke run) fashion,
    where its files are at hand; a failed workload is a row, not an exit."""
    from bench_training import WORKLOADS, precisions_of

    datasets = ["mnist5k"] if smoke else ["mnist5k", "fashion"]
    rows: list[dict] = []
    for dataset in list(datasets):
        try:
            prepared(dataset)
        except Exception as err:  # noqa: BLE001 - a dataset that cannot be had is a row
            datasets.remove(dataset)
            rows.append({"part": "bench", "name": "prepare", "dataset": dataset,
                         "status": "skipped", "device": device,
                         "detail": " ".join(str(err).split())[:300]})
    for dataset in datasets:
        # ClustPy's schedule is 250 epochs: on mnist5k only, where its comparison is made
        names = [w for w in WORKLOADS if dataset == "mnist5k" or w != "dec-clustpy"]
        if smoke:  # pynndescent's numba compilation alone takes 30 s; tests/ cover the graph
            names.remove("knn-approx")
        for workload in names:
            for precision in precisions_of(workload, ["32", "bf16-mixed"]):
                t0 = time.perf_counter()
                row = {"part": "bench", "name": workload, "dataset": dataset,
                       "precision": precision, "device": device}
                try:
                    measured = (_smoke_run(workload, dataset, device, precision) if smoke
                                else _measured_run(workload, dataset, device, precision))
                    row.update({k: measured[k] for k in COLUMNS if k in measured
                                and k not in ("precision", "commit")}, status="ok")
                except Exception as err:  # noqa: BLE001 - a failed workload is a row
                    row.update(status="failed", detail=" ".join(str(err).split())[-300:])
                row.setdefault("seconds", round(time.perf_counter() - t0, 1))  # failed: wall
                rows.append(row)
                print(f"bench {dataset} {workload} {precision}: {row['status']} "
                      f"{row['seconds']} s", flush=True)
    return rows


def _measured_run(workload: str, dataset: str, device: str, precision: str) -> dict:
    """One epoch of ``workload`` in a fresh subprocess (its own peak memory), FLOPs counted."""
    from bench_training import run_in_subprocess

    return run_in_subprocess(workload, dataset, device=device, threads=2, epochs=1,
                             precision=precision, flops=True)


def _smoke_run(workload: str, dataset: str, device: str, precision: str) -> dict:
    """One epoch of ``workload`` on 256 samples, in this process (seconds, not a measurement)."""
    from bench_training import run_one

    return run_one(workload, dataset, device, 2, 1, precision=precision, clustpy_epochs=(1, 1),
                   limit=256, warmup=False)


def dcec_paper(device: str, smoke: bool) -> list[dict]:
    """The workflow's dcec on mnist5k at ``schedule: paper``, seed 0 (smoke: the test config's
    synthetic data at the quick schedule), in a copy of the workflow."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        wd = Path(tmp)
        for name in ("Snakefile", "workflow", "stages", "profiles", "envs"):
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, wd / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, wd / name)
        config = REPO / ("tests/data/workflow_config.yaml" if smoke else "config.yaml")
        shutil.copy(config, wd / "config.yaml")
        dataset = "synthetic" if smoke else "mnist5k"
        schedule = "quick" if smoke else "paper"
        target = f"results/metrics/{dataset}/dcec/seed0.json"
        cmd = [sys.executable, "-m", "snakemake", "--cores", "all", target, "--config",
               f"schedule={schedule}", f"device={device}", "seeds=[0]",
               f"run_datasets=[{dataset}]"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True)
        row = {"part": "workflow", "name": f"dcec schedule={schedule}", "dataset": dataset,
               "precision": "32", "device": device,
               "seconds": round(time.perf_counter() - t0, 1)}
        if proc.returncode != 0:
            return [{**row, "status": "failed", "detail": proc.stderr.strip()[-300:]}]
        record = json.loads((wd / target).read_text())
        walls = {k: round(float(v), 1) for k, v in record["timings"].items()}
        return [{**row, "status": "ok", "acc": round(record["metrics"]["acc"], 4),
                 "nmi": round(record["metrics"]["nmi_max"], 4), "device": record["device"],
                 "detail": "wall s per stage " + json.dumps(walls, sort_keys=True)}]


def write_rows(rows: list[dict], out: Path) -> Path:
    """The check's rows as one CSV at ``out`` (replaced), each with this checkout's commit."""
    commit = _commit()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**r, "commit": commit} for r in rows)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) | cpu")
    p.add_argument("--smoke", action="store_true", help="seconds per part; measures nothing")
    p.add_argument("--out", default=str(REPO / "bench" / "gpu_check.csv"))
    args = p.parse_args()
    t0 = time.perf_counter()
    rows = cuda_tests(args.device)
    rows += workloads(args.device, args.smoke)
    rows += dcec_paper(args.device, args.smoke)
    out = write_rows(rows, Path(args.out))
    failed = [f"{r['part']} {r['name']} {r.get('dataset', '')} {r.get('precision', '')}"
              for r in rows if r["status"] == "failed"]
    print(f"{len(rows)} rows in {out} after {time.perf_counter() - t0:.0f} s; "
          f"{len(failed)} failed" + (": " + "; ".join(failed) if failed else ""), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
