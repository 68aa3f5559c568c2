"""The upstream keys that keep jobs below a failed rerun stale (stages/plumbing/upstream.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from stages.plumbing.upstream import results_key, upstream, upstream_key

CONFIG = yaml.safe_load(
    (Path(__file__).resolve().parent / "data/workflow_config.yaml").read_text())
JOBS = [("pretrain", {"ae": "sae"}), ("pretrain", {"ae": "cae"}), ("embed", {"ae": "sae"}),
        ("embed", {"ae": "cae"}), ("init", {"ae": "sae", "init": "kmeans"}),
        ("init", {"ae": "cae", "init": "kmeans"}), ("baseline", {"method": "kmeans"})]
JOBS += [(stage, {"method": m}) for stage in ("finetune", "evaluate", "figures")
         for m in ("dec", "idec", "sae-kmeans", "dcec", "cae-kmeans")]
JOBS += [(stage, {"method": "kmeans"}) for stage in ("evaluate", "figures")]


def changed_jobs(edit) -> set[tuple[str, str]]:
    config = copy.deepcopy(CONFIG)
    edit(config)
    return {(stage, next(iter(names.values())) if stage != "init" else names["ae"])
            for stage, names in JOBS
            if upstream_key(config, stage, "synthetic", **names)
            != upstream_key(CONFIG, stage, "synthetic", **names)}


def test_a_method_recipe_changes_only_that_methods_downstream_jobs():
    jobs = changed_jobs(lambda c: c["methods"]["dcec"].update(clustering_weight=0.2))
    assert jobs == {("evaluate", "dcec"), ("figures", "dcec")}  # finetune: its own params


def test_an_autoencoder_recipe_changes_every_job_below_its_pretraining():
    jobs = changed_jobs(lambda c: c["autoencoders"]["cae"].update(epochs=7))
    below = {"dcec", "cae-kmeans"}
    assert jobs == {("embed", "cae"), ("init", "cae")} | {
        (stage, m) for stage in ("finetune", "evaluate", "figures") for m in below}


def test_dataset_parameters_change_every_job():
    jobs = changed_jobs(lambda c: c["datasets"]["synthetic"]["params"].update(n_per_cluster=81))
    assert len(jobs) == len(JOBS)


def test_shared_defaults_and_results_key():
    jobs = changed_jobs(lambda c: c["head_defaults"]["dec"].update(max_iter=41))
    assert {m for _, m in jobs} == {"dec", "idec", "dcec"}
    edited = copy.deepcopy(CONFIG)
    edited["inits"]["kmeans"]["n_init"] = 6
    assert results_key(edited) != results_key(CONFIG)
    assert results_key(copy.deepcopy(CONFIG)) == results_key(CONFIG)


def test_upstream_names_the_parts_and_rejects_unknown_stages():
    parts = upstream(CONFIG, "evaluate", "synthetic", method="dcec")
    assert [p[0] for p in parts] == ["data", "pretrain", "embed", "init", "finetune"]
    assert [p[0] for p in upstream(CONFIG, "evaluate", "synthetic", method="kmeans")] == [
        "data", "baseline"]
    with pytest.raises(ValueError, match="valid choices: pretrain, embed"):
        upstream(CONFIG, "aggregate", "synthetic")
