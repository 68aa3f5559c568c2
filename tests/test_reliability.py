"""Reliability probes replayed: a checkpoint of a changed job is never resumed; operational
settings rerun nothing.

The stages run as subprocesses, as the workflow runs them (see tests/test_resume.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from stages.plumbing import config as stage_config
from stages.plumbing.artifacts import read_arrays
from stages.plumbing.upstream import job_key
from tests.test_resume import (
    CONFIG,
    finetune_args,
    inputs,  # noqa: F401 - the module fixture
    kill_after_checkpoint,
    pretrain_args,
    run_stage,
)


def _with(args: list[str], recipe: dict, key: str) -> list[str]:
    """``args`` with ``--params`` replaced by ``recipe`` and a ``--job-key``."""
    out = list(args)
    out[out.index("--params") + 1] = json.dumps(recipe, sort_keys=True)
    return [*out, "--job-key", key]


def test_a_killed_finetuning_rerun_with_a_changed_recipe_starts_afresh(inputs):  # noqa: F811
    """The probe: DEC killed after a checkpoint at lr 0.001, rerun at lr 0.1. It must not resume
    (the old optimizer state would bring the old lr back); it ends as a clean lr 0.1 run."""
    old = stage_config.method_recipe(CONFIG, "dec")
    new = {**old, "optimizer": {"name": "adam", "lr": 0.1}}
    changed = {**CONFIG, "methods": {**CONFIG["methods"], "dec": {**CONFIG["methods"]["dec"],
                                                                   "optimizer": new["optimizer"]}}}
    old_key = job_key(CONFIG, "finetune", "synthetic", method="dec")
    new_key = job_key(changed, "finetune", "synthetic", method="dec")
    assert old_key != new_key
    out, clean = inputs / "stale-finetune", inputs / "clean-finetune"
    kill_after_checkpoint("finetune", *_with(finetune_args(out.name), old, old_key), cwd=inputs,
                          checkpoint=out / "checkpoint.pt")
    log = run_stage("finetune", *_with(finetune_args(out.name), new, new_key), cwd=inputs).stderr
    assert "written by another job" in log and "discarded, starting afresh" in log
    assert "resumed from" not in log
    run_stage("finetune", *_with(finetune_args(clean.name), new, new_key), cwd=inputs)
    got, attrs = read_arrays(out / "labels.h5", required=["labels"])
    ref, _ = read_arrays(clean / "labels.h5", required=["labels"])
    np.testing.assert_array_equal(got["labels"], ref["labels"])
    assert attrs["info"]["resumed_from_step"] is None
    pd.testing.assert_frame_equal(pd.read_csv(out / "history.csv"),
                                  pd.read_csv(clean / "history.csv"))
    assert not list(out.glob("checkpoint*"))


def test_a_killed_pretraining_resumes_only_under_its_own_key(inputs):  # noqa: F811
    recipe = stage_config.autoencoder_recipe(CONFIG, "sae")
    faster = {**recipe, "optimizer": {**recipe["optimizer"], "lr": recipe["optimizer"]["lr"] * 2}}
    out = inputs / "stale-pretrain"
    kill_after_checkpoint("pretrain", *_with(pretrain_args(out.name), recipe, "old"),
                          cwd=inputs, checkpoint=out / "checkpoint.pt")
    assert torch.load(out / "checkpoint.pt", weights_only=True)["job_key"] == "old"
    log = run_stage("pretrain", *_with(pretrain_args(out.name), faster, "new"),
                    cwd=inputs).stderr
    assert "key old, this job's is new" in log and "resumed from" not in log
    meta = torch.load(out / "model.pt", weights_only=True)["meta"]
    assert meta["resumed_from_step"] is None

    same = inputs / "same-key-pretrain"  # the same key resumes, as before
    kill_after_checkpoint("pretrain", *_with(pretrain_args(same.name), recipe, "k"),
                          cwd=inputs, checkpoint=same / "checkpoint.pt")
    log = run_stage("pretrain", *_with(pretrain_args(same.name), recipe, "k"), cwd=inputs).stderr
    assert "resumed from" in log


def _init_args(out: str) -> list[str]:
    return ["--embedding", "embed.h5", "--params",
            json.dumps(stage_config.init_recipe(CONFIG, "kmeans")), "--seed", "0",
            "--out", out, "--threads", "1"]


def test_an_unwritable_output_folder_is_one_line_naming_it(inputs):  # noqa: F811
    proc = run_stage("init", *_init_args("/sys/dclust-test/init.h5"), cwd=inputs, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write or read /sys/dclust-test") and "rerun" in last
    debug = run_stage("init", *_init_args("/sys/dclust-test/init.h5"), cwd=inputs, check=False,
                      DCLUST_DEBUG="1")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_a_missing_input_is_one_line_naming_it(inputs):  # noqa: F811
    args = _init_args("init-again.h5")
    args[args.index("embed.h5")] = "no-such-embed.h5"
    proc = run_stage("init", *args, cwd=inputs, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no-such-embed.h5" in proc.stderr.strip().splitlines()[-1]
    assert not (inputs / "init-again.h5").exists()


def test_os_errors_name_the_path_and_the_fix():
    import errno

    from stages.plumbing.cli import os_error_message

    full = os_error_message(OSError(errno.ENOSPC, "No space left on device", "results/x.h5"))
    assert "no space left" in full and "results/x.h5" in full and "Free disk space" in full
    missing = os_error_message(FileNotFoundError(errno.ENOENT, "No such file", "a/b.h5"))
    assert missing.startswith("a/b.h5: no such file")
