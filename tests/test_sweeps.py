"""Sweeps: a recipe expanded over a grid, each point a method named by its values."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stages.plumbing.config import method_recipe, validate
from stages.plumbing.errors import ConfigError
from stages.reporting.sweeps import expand_sweeps, format_value, sweep_index, sweep_points
from stages.reporting.tables import sweep_table

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _with(base_config: dict, sweeps: dict) -> dict:
    config = copy.deepcopy(base_config)
    config["sweeps"] = sweeps
    return config


def test_head_option_points_share_the_base_pretraining_and_init(base_config):
    config = _with(base_config, {"gamma": {"method": "dcec",
                                           "grid": {"clustering_weight": [0.01, 1.0]}}})
    points = expand_sweeps(config)
    assert [p.method for p in points] == ["dcec@clustering_weight=0.01",
                                          "dcec@clustering_weight=1.0"]
    for point, gamma in zip(points, (0.01, 1.0), strict=True):
        recipe = config["methods"][point.method]
        assert recipe == {**base_config["methods"]["dcec"], "clustering_weight": gamma}
        assert point.ae is None and point.init is None
    # added where the base runs, after it; the config stays valid
    for dataset, entry in config["datasets"].items():
        has_base = "dcec" in base_config["datasets"][dataset]["methods"]
        assert (points[0].method in entry["methods"]) == has_base
    validate(config)
    assert method_recipe(config, points[0].method)["clustering_weight"] == 0.01


def test_autoencoder_and_init_options_derive_their_own_shared_by_equal_values(base_config):
    config = _with(base_config, {"dims": {
        "method": "dec", "datasets": ["mnist5k"],
        "grid": {"ae.arch.hidden": [[500, 500, 2000, 20]], "lr": [0.001, 0.01],
                 "init.n_init": [5]}}})
    points = expand_sweeps(config)
    assert [p.method for p in points] == [
        "dec@ae.arch.hidden=500-500-2000-20@lr=0.001@init.n_init=5",
        "dec@ae.arch.hidden=500-500-2000-20@lr=0.01@init.n_init=5"]
    base_ae, base_init = base_config["methods"]["dec"]["ae"], base_config["methods"]["dec"]["init"]
    assert {p.ae for p in points} == {f"{base_ae}@arch.hidden=500-500-2000-20"}
    assert {p.init for p in points} == {f"{base_init}@n_init=5"}
    derived = config["autoencoders"][points[0].ae]
    assert derived["arch"]["hidden"] == [500, 500, 2000, 20]
    assert {k: v for k, v in derived.items() if k != "arch"} == {
        k: v for k, v in base_config["autoencoders"][base_ae].items() if k != "arch"}
    assert config["inits"][points[0].init]["n_init"] == 5
    assert config["methods"][points[1].method]["ae"] == points[1].ae
    assert config["datasets"]["mnist5k"]["methods"][-2:] == [p.method for p in points]
    assert points[0].method not in config["datasets"]["digits"]["methods"]
    validate(config)


def test_expanding_twice_adds_nothing(base_config):
    config = _with(base_config, {"gamma": {"method": "dcec",
                                           "grid": {"clustering_weight": [0.5]}}})
    expand_sweeps(config)
    once = copy.deepcopy(config)
    expand_sweeps(config)
    assert config == once


def test_names_are_unique_for_distinct_values():
    assert format_value(0.1, "w") != format_value(0.1000001, "w")
    assert format_value(1e-5, "w") == "1e-05"
    assert format_value(True, "w") == "true"
    assert format_value([500, 10], "w") == "500-10"


@pytest.mark.parametrize(("sweeps", "message"), [
    ({"s": {"method": "decc", "grid": {"lr": [1]}}}, "unknown method 'decc'; valid choices:"),
    ({"s": {"method": "dec", "grid": {"learning_rate": [1]}}},
     "'learning_rate' is not an option of methods; valid options:"),
    ({"s": {"method": "dec", "grid": {"ae.optimiser.lr": [1]}}},
     "'optimiser' is not an option of autoencoders"),
    ({"s": {"method": "dec", "grid": {"lr": []}}}, "expected a non-empty list of values"),
    ({"s": {"method": "dec", "grid": {}}}, "expected a mapping of option -> list of values"),
    ({"s": {"method": "dec", "grid": {"tol": ["a b"]}}}, "cannot name a grid point"),
    ({"s": {"method": "dec", "grid": {"optimizer": [{"name": "sgd"}]}}},
     "a nested option: a dotted key"),
    ({"s": {"method": "kmeans", "grid": {"ae.epochs": [1]}}}, "has no autoencoder or init"),
    ({"s": {"method": "dec", "grid": {"lr": [1]}, "datasets": ["cifar"]}},
     "sweeps.s.datasets: 'cifar' not in datasets"),
    ({"s@1": {"method": "dec", "grid": {"lr": [1]}}}, "may not contain '@'"),
    ({"s": {"method": "dec", "grid": {"lr": [1]}, "dataset": ["mnist5k"]}},
     "unknown option(s) ['dataset']"),
])
def test_bad_sweeps_name_the_sweep_and_the_fix(base_config, sweeps, message):
    with pytest.raises(ConfigError, match="sweeps.s") as err:
        expand_sweeps(_with(base_config, sweeps))
    assert message in str(err.value)


def test_a_point_may_not_replace_another_recipe(base_config):
    config = _with(base_config, {"s": {"method": "dec", "grid": {"lr": [0.5]}}})
    config["methods"]["dec@lr=0.5"] = copy.deepcopy(config["methods"]["idec"])
    with pytest.raises(ConfigError, match="already defined with another recipe"):
        expand_sweeps(config)


def test_index_gives_the_base_its_resolved_values(base_config):
    config = _with(base_config, {"s": {"method": "dec",
                                       "grid": {"batch_size": [64], "ae.epochs": [3]}}})
    points = expand_sweeps(config)
    rows = sweep_index(config, points)
    assert [r["point"] for r in rows] == ["base", "grid"]
    ae = base_config["autoencoders"][base_config["methods"]["dec"]["ae"]]
    epochs = ae["epochs"][config["schedule"]] if isinstance(ae["epochs"], dict) else ae["epochs"]
    assert rows[0]["values"] == {"batch_size": method_recipe(config, "dec")["batch_size"],
                                 "ae.epochs": epochs}
    assert rows[1] == {"sweep": "s", "method": points[0].method, "base": "dec", "point": "grid",
                       "values": {"batch_size": 64, "ae.epochs": 3}}
    assert sweep_points({"sweeps": {}}) == []


def test_sweep_table_joins_the_summary_and_skips_points_not_run():
    index = [{"sweep": "g", "method": "dcec", "base": "dcec", "point": "base",
              "values": {"clustering_weight": 0.1, "ae.arch.hidden": [8, 4]}},
             {"sweep": "g", "method": "dcec@clustering_weight=1.0", "base": "dcec",
              "point": "grid", "values": {"clustering_weight": 1.0, "ae.arch.hidden": [8, 4]}},
             {"sweep": "g", "method": "dcec@clustering_weight=9.0", "base": "dcec",
              "point": "grid", "values": {"clustering_weight": 9.0, "ae.arch.hidden": [8, 4]}}]
    from stages.reporting.metrics import METRIC_KEYS
    summary = pd.DataFrame([
        {"dataset": "d", "method": m, "n_seeds": 2,
         **{f"{k}_{s}": v for k in METRIC_KEYS for s in ("mean", "std")}}
        for m, v in (("dcec", 0.5), ("dcec@clustering_weight=1.0", 0.7), ("other", 0.1))])
    table = sweep_table(summary, index)
    assert list(table["method"]) == ["dcec", "dcec@clustering_weight=1.0"]
    assert list(table["value:clustering_weight"]) == [0.1, 1.0]
    assert list(table["value:ae.arch.hidden"]) == ["8-4", "8-4"]
    assert list(table["acc_mean"]) == [0.5, 0.7] and list(table["n_seeds"]) == [2, 2]
    assert sweep_table(summary, []).empty
