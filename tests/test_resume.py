"""Kill and resume, locally: a pretrain or finetune stage killed with SIGKILL after it wrote a
checkpoint and started again ends with exactly the outputs of an uninterrupted run (CPU, same
seed), leaves no checkpoint behind, and never leaves a finished-looking output while killed.
Also the device choice of a stage job that was promised a GPU it cannot use (as on the test
SLURM cluster's fake GPU).

The stages run as subprocesses (``python -m stages.<stage>``), as the workflow runs them, on the
tiny synthetic dataset of the workflow test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from stages.plumbing import config as stage_config
from stages.plumbing.artifacts import read_arrays, read_json

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "tests/data/workflow_config.yaml").read_text())
CONFIG["checkpoint_every"] = 20
CONFIG["log_every"] = 5
# long enough that a SIGKILL after the first checkpoint (step 20) lands mid-run
CONFIG["autoencoders"]["sae"]["epochs"] = 60             # 8 steps per epoch: 480 steps
CONFIG["head_defaults"]["dec"].update(max_iter=400, tol=0.0)  # tol 0: never stops early


def stage(name: str, *args: str, cwd: Path) -> list[str]:
    return [sys.executable, "-m", f"stages.{name}", *args]


def run_stage(name: str, *args: str, cwd: Path, check: bool = True,
              **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_vars}
    proc = subprocess.run(stage(name, *args, cwd=cwd), cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"stages.{name} failed:\n{proc.stderr[-3000:]}"
    return proc


def kill_after_checkpoint(name: str, *args: str, cwd: Path, checkpoint: Path) -> None:
    """Start ``stages.<name>``, SIGKILL it as soon as ``checkpoint`` exists; assert it was
    killed mid-run (not finished)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(stage(name, *args, cwd=cwd), cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, f"stages.{name} ended before a checkpoint:\n" \
                                        f"{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the stage finished before it could be killed"


def recipe_arg(recipe: dict) -> str:
    return json.dumps(recipe, sort_keys=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """data.h5, an uninterrupted SAE pretraining (ref/), its embedding and k-means init."""
    wd = tmp_path_factory.mktemp("resume")
    params = json.dumps(CONFIG["datasets"]["synthetic"]["params"])
    run_stage("fetch", "--dataset", "synthetic", "--raw-dir", "raw", cwd=wd)
    run_stage("prepare", "--dataset", "synthetic", "--manifest", "raw/manifest.json",
              "--params", params, "--out", "data.h5", cwd=wd)
    run_stage("pretrain", *pretrain_args("ref"), cwd=wd)
    run_stage("embed", "--data", "data.h5", "--model", "ref/model.pt", "--out", "embed.h5",
              "--device", "cpu", "--threads", "1", cwd=wd)
    run_stage("init", "--embedding", "embed.h5", "--params",
              recipe_arg(stage_config.init_recipe(CONFIG, "kmeans")), "--seed", "0",
              "--out", "init.h5", "--threads", "1", cwd=wd)
    return wd


def pretrain_args(out_dir: str) -> list[str]:
    return ["--data", "data.h5", "--params",
            recipe_arg(stage_config.autoencoder_recipe(CONFIG, "sae")), "--seed", "0",
            "--out-dir", out_dir, "--device", "cpu", "--threads", "1", "--log-every", "5",
            "--checkpoint-every", str(CONFIG["checkpoint_every"])]


def finetune_args(out_dir: str) -> list[str]:
    return ["--data", "data.h5", "--model", "ref/model.pt", "--embedding", "embed.h5",
            "--init", "init.h5", "--params", recipe_arg(stage_config.method_recipe(CONFIG, "dec")),
            "--seed", "0", "--out-dir", out_dir, "--device", "cpu", "--threads", "1",
            "--log-every", "5", "--checkpoint-every", str(CONFIG["checkpoint_every"])]


def test_killed_pretraining_resumes_to_the_uninterrupted_result(inputs):
    out = inputs / "killed-pretrain"
    kill_after_checkpoint("pretrain", *pretrain_args(out.name), cwd=inputs,
                          checkpoint=out / "checkpoint.pt")
    assert not (out / "model.pt").exists() and not (out / "history.csv").exists()
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert step > 0

    log = run_stage("pretrain", *pretrain_args(out.name), cwd=inputs).stderr
    assert f"resumed from {out.name}/checkpoint.pt at step {step}" in log
    ref = torch.load(inputs / "ref/model.pt", weights_only=True)
    got = torch.load(out / "model.pt", weights_only=True)
    assert step < ref["meta"]["steps"] == got["meta"]["steps"]
    assert ref["meta"]["resumed_from_step"] is None and got["meta"]["resumed_from_step"] > 0
    assert ref["state_dict"].keys() == got["state_dict"].keys()
    for key, tensor in ref["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][key]), key
    pd.testing.assert_frame_equal(pd.read_csv(inputs / "ref/history.csv"),
                                  pd.read_csv(out / "history.csv"))
    assert not list(out.glob("checkpoint*"))


def test_killed_finetuning_resumes_to_the_uninterrupted_result(inputs):
    ref, out = inputs / "ref-finetune", inputs / "killed-finetune"
    run_stage("finetune", *finetune_args(ref.name), cwd=inputs)
    kill_after_checkpoint("finetune", *finetune_args(out.name), cwd=inputs,
                          checkpoint=out / "checkpoint.pt")
    assert not (out / "labels.h5").exists()
    run_stage("finetune", *finetune_args(out.name), cwd=inputs)

    ref_labels, _ = read_arrays(ref / "labels.h5", required=["labels", "embedding"])
    got_labels, _ = read_arrays(out / "labels.h5", required=["labels", "embedding"])
    np.testing.assert_array_equal(ref_labels["labels"], got_labels["labels"])
    np.testing.assert_array_equal(ref_labels["embedding"], got_labels["embedding"])
    pd.testing.assert_frame_equal(pd.read_csv(ref / "history.csv"),
                                  pd.read_csv(out / "history.csv"))
    metrics = {}
    for folder in (ref, out):
        run_stage("evaluate", "--data", "data.h5", "--labels", str(folder / "labels.h5"),
                  "--out", str(folder / "metrics.json"), cwd=inputs)
        metrics[folder.name] = read_json(folder / "metrics.json")["metrics"]
    assert metrics[ref.name] == metrics[out.name]
    assert not list(out.glob("checkpoint*"))


def test_a_promised_but_unusable_gpu_falls_back_to_the_cpu_and_says_so(inputs):
    # torch here has no usable GPU; CUDA_VISIBLE_DEVICES=0 is what a SLURM GPU job sees
    proc = run_stage("embed", "--data", "data.h5", "--model", "ref/model.pt", "--out",
                     "embed-auto.h5", "--device", "auto", "--threads", "1", cwd=inputs,
                     CUDA_VISIBLE_DEVICES="0")
    assert "CUDA_VISIBLE_DEVICES=0 but torch sees no usable GPU: running on the CPU" in proc.stderr
    _, attrs = read_arrays(inputs / "embed-auto.h5", required=["Z"])
    assert attrs["device"].startswith("cpu")


def test_device_cuda_without_a_gpu_fails_clearly(inputs):
    args = pretrain_args("cuda")
    args[args.index("--device") + 1] = "cuda"
    proc = run_stage("pretrain", *args, cwd=inputs, check=False, CUDA_VISIBLE_DEVICES="0")
    assert proc.returncode == 2
    assert "device 'cuda' was set in the config but torch sees no usable GPU" in proc.stderr
    assert "device: auto" in proc.stderr and "Traceback" not in proc.stderr
    assert not (inputs / "cuda").exists() or not list((inputs / "cuda").iterdir())
