"""The shallow baselines on raw inputs (stages.methods.shared.baselines, run by stages.baseline) on
small separable data: labels, clusters used, accuracy, determinism, bad options; AC-PIC on raw
inputs is DEPICT's init algorithm on the flattened pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages import baseline
from stages.methods.shared.baselines import cluster_raw
from stages.plumbing import config as stage_config
from stages.plumbing.artifacts import read_arrays, write_arrays
from stages.plumbing.cli import main_for
from stages.plumbing.errors import ConfigError
from stages.reporting.metrics import cluster_acc

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
METHODS = ("kmeans", "gmm", "spectral", "acpic")
K, PER = 4, 15
#: separated blobs give a kNN graph with one component per blob: what spectral clustering wants
pytestmark = pytest.mark.filterwarnings("ignore:Graph is not fully connected:UserWarning")


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """K well-separated blobs of PER 2x3 'images' (centres 8 apart, noise 0.3), shuffled."""
    rng = np.random.default_rng(seed)
    centres = 8.0 * np.eye(K, 6)
    y = rng.permutation(np.repeat(np.arange(K), PER))
    x = centres[y] + 0.3 * rng.normal(size=(y.size, 6))
    return x.reshape(-1, 1, 2, 3).astype(np.float32), y.astype(np.int64)


def _recipe(method: str) -> dict:
    """The recipe the workflow passes for ``method`` (config.yaml, resolved)."""
    return stage_config.method_recipe(CONFIG, method)


@pytest.mark.parametrize("method", METHODS)
def test_baseline_recovers_separated_blobs_deterministically(method: str) -> None:
    x, y = _blobs()
    recipe = _recipe(method)
    labels = cluster_raw(x, K, recipe["algorithm"], recipe, seed=0)
    assert labels.shape == (K * PER,) and labels.dtype == np.int64
    assert sorted(np.unique(labels).tolist()) == list(range(K))  # every cluster used
    assert cluster_acc(y, labels) == 1.0
    np.testing.assert_array_equal(cluster_raw(x, K, recipe["algorithm"], recipe, seed=0), labels)


def test_spectral_follows_the_knn_graph_where_kmeans_cannot() -> None:
    """Two interleaved half moons: the kNN graph keeps each moon connected (spectral gets them),
    k-means' convex cells cut across both."""
    from sklearn.datasets import make_moons

    x, y = make_moons(80, noise=0.05, random_state=0)
    spectral = cluster_raw(x, 2, "spectral", _recipe("spectral"), seed=0)
    kmeans = cluster_raw(x, 2, "kmeans", _recipe("kmeans"), seed=0)
    assert cluster_acc(y, spectral) >= 0.95
    assert cluster_acc(y, kmeans) < 0.8


def _data_file(tmp_path: Path) -> Path:
    x, y = _blobs(1)
    path = tmp_path / "data" / "blobs.h5"
    write_arrays(path, {"X": x, "y": y}, {"name": "blobs", "n_clusters": K,
                                          "input_shape": [1, 2, 3]})
    return path


def test_acpic_baseline_is_the_depict_init_on_flattened_inputs() -> None:
    """The raw-input baseline and DEPICT's init run the same algorithm with the same options:
    on 2x3 'images' and on their flattened rows as codes, the same labels; and the recipe's
    K, a and z reach it (another K gives other labels on overlapping blobs)."""
    from stages.methods.depict.acpic import acpic_arrays

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 30)
    x = (2.0 * np.eye(3, 6)[y] + 0.8 * rng.normal(size=(y.size, 6))).astype(np.float32)
    recipe = _recipe("acpic")
    assert {k: recipe[k] for k in ("n_neighbors", "a", "zeta")} == \
        {"n_neighbors": 20, "a": 1.0, "zeta": 0.01}      # DEPICT's gacCluster options
    labels = cluster_raw(x.reshape(-1, 1, 2, 3), 3, "acpic", recipe, seed=0)
    init = acpic_arrays(x, 3, {"algorithm": "acpic", **recipe}, seed=0)["labels"]
    np.testing.assert_array_equal(labels, init)
    other = cluster_raw(x, 3, "acpic", {**recipe, "n_neighbors": 4}, seed=0)
    assert not np.array_equal(other, labels)


@pytest.mark.parametrize("method", ["gmm", "spectral", "acpic"])
def test_baseline_stage_writes_the_labels_of_the_recipe(tmp_path: Path, method: str) -> None:
    data = _data_file(tmp_path)
    out = tmp_path / "finetune" / "blobs" / method / "seed3" / "labels.h5"
    recipe = _recipe(method)
    baseline.run(baseline.build_parser().parse_args(
        ["--data", str(data), "--params", json.dumps(recipe), "--seed", "3", "--out", str(out),
         "--threads", "1"]))
    arrays, attrs = read_arrays(out, required=["labels"])
    x, y = _blobs(1)
    np.testing.assert_array_equal(arrays["labels"],
                                  cluster_raw(x, K, recipe["algorithm"], recipe, seed=3))
    assert cluster_acc(y, arrays["labels"]) == 1.0
    assert {k: attrs[k] for k in ("stage", "dataset", "method", "family", "seed", "n_clusters")} \
        == {"stage": "baseline", "dataset": "blobs", "method": method, "family": "baseline",
            "seed": 3, "n_clusters": K}
    assert "embedding" not in arrays and attrs["provenance"]["config"] == recipe


@pytest.mark.parametrize(("algorithm", "options", "message"), [
    ("dbscan", {}, "unknown baseline algorithm 'dbscan'; valid choices: kmeans, gmm, spectral, "
                   "acpic"),
    ("acpic", {"n_init": 3}, "baseline 'acpic': unknown option(s) 'n_init'; valid options: "
                             "n_neighbors, a, zeta"),
    ("acpic", {"a": 0}, "a (the kernel width, sigma^2 = a x the mean squared neighbour "
                        "distance) must be a number > 0, got 0"),
    ("acpic", {"zeta": 1.0}, "zeta must be a number in (0, 1), got 1.0"),
    ("acpic", {"n_neighbors": 61}, "n_neighbors 61 is more than the 60 samples"),
    ("gmm", {"n_neighbors": 5}, "baseline 'gmm': unknown option(s) 'n_neighbors'; valid "
                                "options: n_init, reg_covar"),
    ("spectral", {"n_neighbours": 5}, "unknown option(s) 'n_neighbours'; valid options: "
                                      "n_neighbors, assign_labels"),
    ("kmeans", {"n_init": 0}, "n_init must be a whole number of at least 1, got 0"),
    ("gmm", {"n_init": 2.5}, "n_init must be a whole number of at least 1, got 2.5"),
    ("gmm", {"reg_covar": -1e-3}, "reg_covar must be a number >= 0, got -0.001"),
    ("spectral", {"n_neighbors": 61}, "n_neighbors 61 is more than the 60 samples"),
    ("spectral", {"assign_labels": "qr"}, "unknown assign_labels 'qr'; valid choices: "
                                          "cluster_qr, discretize, kmeans"),
])
def test_bad_baseline_option_is_a_clear_error(algorithm: str, options: dict,
                                              message: str) -> None:
    x, _ = _blobs()
    recipe = {"name": "m", "family": "baseline", "algorithm": algorithm, **options}
    with pytest.raises(ConfigError) as err:
        cluster_raw(x, K, algorithm, recipe, seed=0)
    assert message in str(err.value)


def test_baseline_stage_bad_option_is_one_line_and_writes_nothing(tmp_path: Path,
                                                                  capsys) -> None:
    data = _data_file(tmp_path)
    out = tmp_path / "out" / "labels.h5"
    recipe = {**_recipe("spectral"), "n_init": 3}
    with pytest.raises(SystemExit) as exit_:
        main_for(baseline.build_parser, baseline.run,
                 ["--data", str(data), "--params", json.dumps(recipe), "--out", str(out)])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "unknown option(s) 'n_init'" in last
    assert not out.exists()


@pytest.mark.parametrize(("options", "message"), [
    ({"zeta": 2.0}, "methods.acpic.zeta: 2.0 is greater than or equal to the maximum of 1"),
    ({"a": -1.0}, "methods.acpic.a: -1.0 is less than or equal to the minimum of 0"),
])
def test_acpic_recipe_with_a_bad_option_is_refused_by_the_config_check(options: dict,
                                                                      message: str) -> None:
    import copy

    config = copy.deepcopy(CONFIG)
    config["methods"]["acpic"].update(options)
    with pytest.raises(ConfigError) as err:
        stage_config.check_recipe_options(config)
    assert message in str(err.value)
