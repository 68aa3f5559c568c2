"""Which of the papers' figures a configuration plans, from which files."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from stages.plumbing.config import runs
from stages.reporting.figure_plan import KINDS, figure_jobs, missing_figures
from stages.reporting.sweeps import expand_sweeps, sweep_index

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _jobs(config: dict, sweeps: dict | None = None):
    config = copy.deepcopy(config)
    if sweeps:
        config["sweeps"] = sweeps
    points = expand_sweeps(config)
    index = [{**row, "family": config["methods"][row["base"]]["family"]}
             for row in sweep_index(config, points)]
    return figure_jobs(config, runs(config), index)


def test_the_default_run_plans_a_figure_of_every_paper(config):
    jobs = {job.output: job for job in _jobs(config)}
    assert sorted(jobs) == sorted(f"results/paper/{name}.png" for name in (
        "dcec/fig3-mnist5k", "dscdan/fig6-mnist5k", "depict/fig4-mnist5k",
        "depict/fig3-running-time", "saip/fig1a-mnist5k", "rmn-gmm/fig5-mnist5k",
        "rmn-gmm/fig6-mnist5k", "rmn-gmm/fig7-mnist5k"))
    assert {job.kind for job in jobs.values()} <= set(KINDS)
    assert len({job.rule_name for job in jobs.values()}) == len(jobs)
    dcec = jobs["results/paper/dcec/fig3-mnist5k.png"]
    assert [p["title"] for p in dcec.spec["panels"]] == ["Raw data", "CAE: cae", "DEC",
                                                          "DEC-conv", "DCEC"]
    assert dcec.spec["panels"][0]["labels"] == ["kmeans", "labels"]  # raw data: k-means colours
    assert dcec.inputs["dcec"] == "results/finetune/mnist5k/dcec/seed0/labels.h5"
    assert "results/embed/mnist5k/cae/seed0.h5" in dcec.inputs.values()
    dscdan = jobs["results/paper/dscdan/fig6-mnist5k.png"]
    assert "ConvAE (dscdan-convae)" in dscdan.spec["not_run"]  # not in the default run
    depict = jobs["results/paper/depict/fig4-mnist5k.png"]
    assert depict.inputs["initial"] == "results/pretrain/mnist5k/depict/seed0/snapshots.h5"
    timing = jobs["results/paper/depict/fig3-running-time.png"]
    assert timing.inputs["digits|dec|finetune"] == "benchmarks/finetune/digits/dec/seed0.tsv"
    assert timing.inputs["digits|kmeans|baseline"] == "benchmarks/baseline/digits/kmeans/seed0.tsv"
    assert "results/finetune/digits/dec/seed0/labels.h5" in timing.after


def test_a_sweep_adds_its_sensitivity_figure_under_its_paper(config):
    sweeps = {"beta": {"method": "dscdan", "grid": {"kl_weight": [0.5, 1.0]}}}
    jobs = _jobs(config, sweeps)
    sweep = [job for job in jobs if job.kind == "sensitivity"]
    assert [(j.paper, j.name, j.inputs) for j in sweep] == [
        ("dscdan", "sweep-beta", {"sweeps": "results/tables/sweeps.csv"})]
    assert not [line for line in missing_figures(jobs, "dscdan") if "Fig. 5" in line]
    assert [line for line in missing_figures(_jobs(config), "dscdan") if "Fig. 5" in line]


def test_figures_of_methods_not_run_are_named_with_what_they_need(config):
    config = copy.deepcopy(config)
    config["datasets"]["mnist5k"]["methods"] = ["kmeans", "dec"]
    jobs = _jobs(config)
    assert [job.name for job in jobs] == ["fig3-running-time"]
    lines = missing_figures(jobs, "dcec")
    assert lines == ["Fig. 3: not drawn; it needs dcec on a dataset"]
    assert any("Fig. 5" in line and "FRGC" in line for line in missing_figures(jobs, "depict"))
    assert len(missing_figures(jobs, "rmn-gmm")) == 5
