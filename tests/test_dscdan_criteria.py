"""DSCDAN's label-free run report: stages.methods.dscdan.criteria (dscdan-choices.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.methods.dscdan import criteria
from stages.plumbing.artifacts import write_arrays
from stages.plumbing.errors import DataFileError

N, K = 40, 4


def make_run(results: Path, seed: int, labels: np.ndarray, init_labels: np.ndarray, *,
             converged: bool = True, head: str = "dscdan", warm_from: str = "prior") -> Path:
    """A DSCDAN run's files as the workflow writes them: the pretraining history, the init's
    k-means labels and the clustering phase's history and labels (with misleading ``acc``)."""
    pre = results / "pretrain" / "mnist5k" / "dscdan" / f"seed{seed}"
    pre.mkdir(parents=True)
    pd.DataFrame([
        {"kind": "train", "step": 10, "loss": 9.0},
        {"kind": "monitor", "step": 10, "eval_plain": 9.0, "active_dims": 3,
         "prior_sharpness": 0.2, "prior_smallest_share": 0.1, "prior_largest_share": 0.5},
        {"kind": "monitor", "step": 20, "eval_plain": 5.0, "active_dims": 18,
         "prior_sharpness": 0.9, "prior_smallest_share": 0.2, "prior_largest_share": 0.3},
    ]).to_csv(pre / "history.csv", index=False)
    write_arrays(results / "init" / "mnist5k" / "dscdan" / f"seed{seed}" / "knn3.h5",
                 {"labels": init_labels, "centres": np.zeros((K, 2))})
    out = results / "finetune" / "mnist5k" / "dscdan" / f"seed{seed}"
    out.mkdir(parents=True)
    pd.DataFrame([
        {"kind": "warm_start_check", "step": 0, "agreement": 0.1},
        {"kind": "warm_start", "step": 100, "agreement": 0.99, "converged": True,
         "sharpness": 0.98, "warm_start_targets_from": warm_from},
        {"kind": "gradient_share", "step": 0, "grad_clustering_net_share_spectral": 0.95,
         "grad_share_autoencoder": 0.6, "grad_share_kl": 0.3, "grad_share_spectral": 0.1},
        {"kind": "check", "step": 0, "smallest_share": 0.2, "largest_share": 0.3,
         "sharpness": 0.98, "acc": 0.123},
        {"kind": "train", "step": 10, "knn_affinity": 0.40},
        {"kind": "check", "step": 10, "smallest_share": 0.15, "largest_share": 0.35,
         "sharpness": 0.95, "delta_label": 0.04, "acc": 0.123},
        {"kind": "train", "step": 20, "knn_affinity": 0.42},
        {"kind": "check", "step": 20, "smallest_share": 0.18, "largest_share": 0.32,
         "sharpness": 0.90, "delta_label": 0.02, "acc": 0.123},
    ]).to_csv(out / "history.csv", index=False)
    write_arrays(out / "labels.h5", {"labels": labels},
                 {"method": "dscdan", "seed": seed, "n_clusters": K,
                  "info": {"steps": 20, "checks": 2, "converged": converged},
                  "provenance": {"config": {"head": head, "ae": "dscdan", "init": "knn3"}}})
    return out


def test_report_reads_each_phase_and_the_agreement_with_the_init(tmp_path):
    labels = np.repeat(np.arange(K), N // K)
    first = make_run(tmp_path / "results", 0, labels, labels)
    swapped = np.where(labels == 0, 1, np.where(labels == 1, 0, labels))  # the same partition
    mixed = labels.copy()
    mixed[: N // 2] = np.random.default_rng(0).permutation(mixed[: N // 2])
    second = make_run(tmp_path / "results", 1, mixed, swapped, converged=False,
                      warm_from="kmeans")
    table = criteria.report([first, second]).set_index("method")
    one = table.iloc[0]
    assert one["pre_eval_plain"] == 5.0 and one["pre_active_dims"] == 18   # the last monitor row
    assert one["prior_sharpness"] == 0.9
    assert one["ws_from"] == "prior" and one["ws_steps"] == 100 and one["ws_converged"]
    assert one["stopped_by_rule"] and one["steps"] == 20 and one["checks"] == 2
    assert one["label_change_mean"] == pytest.approx(0.03)
    assert one["label_change_max"] == pytest.approx(0.04)
    assert one["smallest_min"] == pytest.approx(0.15) and one["largest_max"] == pytest.approx(0.35)
    assert one["smallest_end"] == pytest.approx(0.25) and one["populated_end"] == K
    assert (one["sharpness_first"], one["sharpness_last"]) == (0.98, 0.90)
    assert (one["knn_affinity_first"], one["knn_affinity_last"]) == (0.40, 0.42)
    assert one["grad_net_spectral"] == 0.95 and one["grad_autoencoder"] == 0.6
    assert one["nmi_init"] == pytest.approx(1.0)
    two = table.iloc[1]
    assert two["ws_from"] == "kmeans" and not two["stopped_by_rule"]
    assert two["nmi_init"] < 0.9                     # half the labels shuffled
    mean = table.loc["mean"]
    assert mean["nmi_init"] == pytest.approx((1.0 + two["nmi_init"]) / 2)
    assert mean["stopped_by_rule"] == 0.5
    assert not any("acc" in c for c in table.columns)   # the true labels are never read


def test_report_command_prints_and_writes_the_table(tmp_path, capsys):
    labels = np.repeat(np.arange(K), N // K)
    folder = make_run(tmp_path / "results", 0, labels, labels)
    out = tmp_path / "report.csv"
    criteria.run(criteria.build_parser().parse_args(["report", str(folder), "--out", str(out)]))
    assert "nmi_init" in capsys.readouterr().out
    assert pd.read_csv(out)["nmi_init"].iloc[0] == pytest.approx(1.0)


def test_report_errors_name_the_folder_and_what_to_pass(tmp_path):
    labels = np.repeat(np.arange(K), N // K)
    with pytest.raises(DataFileError, match="no history.csv: an unfinished run"):
        criteria.read_run(tmp_path / "results" / "finetune" / "mnist5k" / "dscdan" / "seed9")
    other = make_run(tmp_path / "a" / "results", 0, labels, labels, head="none")
    with pytest.raises(DataFileError, match="the head is 'none', not dscdan"):
        criteria.read_run(other)
    folder = make_run(tmp_path / "b" / "results", 0, labels, labels)
    (tmp_path / "b" / "results" / "pretrain" / "mnist5k" / "dscdan" / "seed0" /
     "history.csv").unlink()
    with pytest.raises(DataFileError, match="pretraining history of .* is missing"):
        criteria.read_run(folder)
    folder = make_run(tmp_path / "c" / "results", 0, labels, labels)
    history = pd.read_csv(folder / "history.csv")
    history[history["kind"] != "check"].to_csv(folder / "history.csv", index=False)
    with pytest.raises(DataFileError, match="no check rows"):
        criteria.read_run(folder)
