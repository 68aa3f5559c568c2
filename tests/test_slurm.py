"""The workflow on a real one-node SLURM cluster, through ``--profile profiles/slurm``.

``tests/slurm/start-cluster.sh`` installs (apt), configures and starts the cluster (CI runs it
before the tests; this module runs it too, and stops the cluster again if it started it). The
cluster advertises one fake GPU, so GPU-tagged jobs schedule and see ``CUDA_VISIBLE_DEVICES``
without a usable GPU. The profile is used as shipped except for a test override of the
site-specific block (partition, polling, no accounting database) and the job limits.

Checked: every non-local rule is submitted, GPU stages with a GPU request and the others
without; the evaluate jobs of the dataset go as one job; results/tables/all.csv is right; GPU
stages say in their log that they fell back to the CPU; a second run submits nothing; a changed
method parameter resubmits only that method's jobs; a fine-tuning job cancelled with
``scancel`` mid-run and rerun resumes from its checkpoint and ends with exactly the labels and
metrics of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.plumbing import config as stage_config
from stages.plumbing.artifacts import read_arrays, read_json

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests/slurm"
METHODS = ["kmeans", "sae-kmeans", "dec"]   # a CPU baseline and one GPU-tagged chain
GPU_RULES = {"pretrain", "embed", "finetune"}
LOCAL_RULES = {"fetch", "aggregate", "figures"}
PARTITION = os.environ.get("DCLUST_SLURM_PARTITION", "debug")

pytestmark = pytest.mark.slow


def _cannot_run() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root to install and start the test SLURM cluster (tests/slurm)"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "needs apt-get (Debian/Ubuntu) to install SLURM"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e .)"
    return None


@pytest.fixture(scope="module")
def cluster():
    """A running cluster: started here (and stopped at the end) unless it is already up."""
    if reason := _cannot_run():
        pytest.skip(reason)
    was_up = subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout \
        if shutil.which("scontrol") else ""
    proc = subprocess.run(["bash", str(FIXTURES / "start-cluster.sh")], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode == 2:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, f"start-cluster.sh failed:\n{proc.stdout}\n{proc.stderr}"
    yield
    if "UP" not in was_up:
        subprocess.run(["bash", str(FIXTURES / "stop-cluster.sh")], check=False, timeout=120)


def test_config() -> dict:
    """The tiny synthetic workflow config, reduced to METHODS; DEC runs a fixed 2,000 steps
    (tol 0) so that a job can be cancelled mid-run."""
    config = yaml.safe_load((REPO / "tests/data/workflow_config.yaml").read_text())
    config["datasets"]["synthetic"]["methods"] = METHODS
    config["methods"] = {m: config["methods"][m] for m in METHODS}
    config.pop("sweeps", None)  # the workflow test's sweep is of a method not run here
    config["autoencoders"] = {"sae": config["autoencoders"]["sae"]}
    config["head_defaults"]["dec"].update(max_iter=2000, tol=0.0)
    return config


test_config.__test__ = False  # a helper, not a test


def test_profile() -> dict:
    """profiles/slurm with its site-specific block overridden for the test cluster."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    profile.update({
        "jobs": 4, "latency-wait": 5, "retries": 0, "keep-going": False,
        "slurm-status-command": "squeue",        # no accounting database: sacct fails
        "slurm-init-seconds-before-status-checks": 3, "seconds-between-status-checks": 3,
        "slurm-efficiency-report": False, "slurm-no-account": True,
    })
    profile.pop("slurm-efficiency-report-path", None)
    profile["default-resources"].update(slurm_partition=PARTITION, mem_mb=1000, runtime=10)
    for rule in GPU_RULES:
        profile["set-resources"][rule].update(slurm_partition=PARTITION, cpus_per_gpu=1)
    return profile


test_profile.__test__ = False


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm-test", "--verbose",
           *args, "results/tables/all.csv"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    log_run(workdir, proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return proc


def log_run(workdir: Path, text: str) -> None:
    """Keep every run's output (its sbatch lines) in logs/slurm-test/run<N>.log."""
    folder = workdir / "logs/slurm-test"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"run{len(list(folder.iterdir())) + 1}.log").write_text(text)


def submissions(output: str) -> dict[str, str]:
    """``{job: sbatch line without the --wrap payload}`` of every job submitted in ``output``;
    the job is named by the plugin's comment, e.g. ``rule_finetune_wildcards_synthetic_dec_0``
    or ``rule_evaluate-synthetic_evaluate`` for a group."""
    jobs = {}
    for line in output.splitlines():
        if m := re.search(r"sbatch call: (sbatch .*?) --wrap=", line):
            comment = re.search(r"--comment (\S+)", m.group(1)).group(1)
            jobs[comment] = m.group(1)
    return jobs


@pytest.fixture(scope="module")
def workflow(cluster, tmp_path_factory) -> tuple[Path, str]:
    wd = tmp_path_factory.mktemp("slurm")
    for name in ("Snakefile", "workflow", "stages", "profiles", "envs"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(
            src, wd / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                               if src.is_dir() else {}))
    (wd / "config.yaml").write_text(yaml.safe_dump(test_config(), sort_keys=False))
    (wd / "profiles/slurm-test").mkdir()
    (wd / "profiles/slurm-test/config.yaml").write_text(yaml.safe_dump(test_profile(),
                                                                       sort_keys=False))
    proc = snakemake(wd)
    return wd, proc.stdout + proc.stderr


def test_every_job_on_the_cluster_gpu_stages_with_a_gpu(workflow):
    wd, output = workflow
    jobs = submissions(output)
    rules = {re.match(r"rule_([a-z]+)", job).group(1) for job in jobs}
    assert rules == {"prepare", "baseline", "pretrain", "embed", "init", "finetune", "evaluate"}
    assert not rules & LOCAL_RULES
    for job, line in jobs.items():
        rule = re.match(r"rule_([a-z]+)", job).group(1)
        assert f"-p {PARTITION}" in line
        if rule in GPU_RULES:
            assert "--gpus=1" in line and "--cpus-per-gpu=1" in line, line
        else:
            assert "--gpus" not in line and "--gres" not in line, line
    # the dataset's three evaluate jobs went to SLURM as one job
    assert [j for j in jobs if "evaluate" in j] == ["rule_evaluate-synthetic_evaluate"]
    assert len(jobs) == 8
    # GPU jobs saw CUDA_VISIBLE_DEVICES but no usable GPU: they ran on the CPU and said so
    for log in ("pretrain/synthetic/sae/seed0.log", "finetune/synthetic/dec/seed0.log"):
        text = (wd / "logs" / log).read_text()
        assert "CUDA_VISIBLE_DEVICES=0 but torch sees no usable GPU: running on the CPU" in text


def test_results_table(workflow):
    wd, _ = workflow
    runs = pd.read_csv(wd / "results/tables/all.csv")
    assert sorted(runs["method"]) == sorted(METHODS)
    assert set(runs["dataset"]) == {"synthetic"} and set(runs["seed"]) == {0}
    for col in ("acc", "nmi_sqrt", "ari"):
        assert runs[col].between(-1, 1).all() and runs[col].notna().all()
    assert runs.set_index("method").loc["kmeans", "acc"] > 0.9
    assert runs["device"].str.startswith("cpu").all()
    assert not list((wd / "results").rglob("checkpoint*.pt"))


def test_second_run_submits_nothing(workflow):
    wd, _ = workflow
    output = snakemake(wd)
    assert submissions(output.stdout + output.stderr) == {}
    assert "Nothing to be done" in output.stdout + output.stderr


def squeue_job(comment: str) -> str | None:
    """The SLURM id of the pending or running job whose comment is ``comment``."""
    out = subprocess.run(["squeue", "-h", "-t", "PD,R", "-o", "%i %k"], capture_output=True,
                         text=True, check=True).stdout
    ids = [line.split()[0] for line in out.splitlines() if line.split()[1:] == [comment]]
    return ids[0] if ids else None


def test_changed_parameter_then_scancel_resumes_to_the_uninterrupted_result(workflow):
    wd, _ = workflow
    config = yaml.safe_load((wd / "config.yaml").read_text())
    config["methods"]["dec"]["clustering_weight"] = 0.5
    (wd / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = wd / "results/finetune/synthetic/dec/seed0"
    comment = "rule_finetune_wildcards_synthetic_dec_0"

    # 1. the changed parameter resubmits DEC's fine-tuning; cancel it after its first checkpoint
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm-test", "--verbose",
           "results/tables/all.csv"]
    with open(wd / "scancelled-run.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not (out / "checkpoint.pt").exists():
                assert proc.poll() is None, "snakemake ended before DEC wrote a checkpoint"
                assert time.monotonic() < deadline, "no checkpoint after 300 s"
                time.sleep(0.1)
            job_id = squeue_job(comment)
            assert job_id, "the DEC job is not in the queue"
            subprocess.run(["scancel", job_id], check=True)
            assert proc.wait(timeout=300) != 0   # the workflow reports the cancelled job
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    output = (wd / "scancelled-run.log").read_text()
    log_run(wd, output)
    assert list(submissions(output)) == [comment]
    assert not (out / "labels.h5").exists() and (out / "checkpoint.pt").exists()

    # 2. rerun: only DEC's jobs are submitted, and fine-tuning resumes from the checkpoint
    proc = snakemake(wd)
    assert set(submissions(proc.stdout + proc.stderr)) == {
        comment, "rule_evaluate-synthetic_evaluate"}
    assert "resumed from" in (wd / "logs/finetune/synthetic/dec/seed0.log").read_text()
    assert not list(out.glob("checkpoint*"))
    metrics = json.loads((wd / "results/metrics/synthetic/dec/seed0.json").read_text())

    # 3. the same stage, uninterrupted, run directly (CPU, same seed)
    ref = wd / "uninterrupted"
    recipe = json.dumps(stage_config.method_recipe(config, "dec"), sort_keys=True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    stage = [sys.executable, "-m", "stages.finetune", "--data", "results/data/synthetic.h5",
             "--model", "results/pretrain/synthetic/sae/seed0/model.pt",
             "--embedding", "results/embed/synthetic/sae/seed0.h5",
             "--init", "results/init/synthetic/sae/seed0/kmeans.h5", "--params", recipe,
             "--seed", "0", "--out-dir", str(ref), "--device", "auto", "--threads", "1",
             "--log-every", str(config["log_every"])]
    subprocess.run(stage, cwd=wd, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "stages.evaluate", "--data", "results/data/synthetic.h5",
                    "--labels", str(ref / "labels.h5"), "--out", str(ref / "metrics.json")],
                   cwd=wd, check=True, capture_output=True)
    got, _ = read_arrays(out / "labels.h5", required=["labels"])
    want, _ = read_arrays(ref / "labels.h5", required=["labels"])
    np.testing.assert_array_equal(got["labels"], want["labels"])
    pd.testing.assert_frame_equal(pd.read_csv(out / "history.csv"),
                                  pd.read_csv(ref / "history.csv"))
    assert metrics["metrics"] == read_json(ref / "metrics.json")["metrics"]
    runs = pd.read_csv(wd / "results/tables/all.csv").set_index("method")
    assert runs.loc["dec", "acc"] == pytest.approx(metrics["metrics"]["acc"])
