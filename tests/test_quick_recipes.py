"""Issue 44: the label-free measures that choose the quick recipes
(stages.methods.shared.quick_criteria)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from stages.methods.shared import quick_criteria as qc
from stages.nets import build_network
from stages.plumbing.artifacts import write_arrays
from stages.runtime.models import save_model


def test_held_out_reconstruction_reads_each_familys_rows():
    plain = pd.DataFrame({"kind": ["train", "validation", "validation"], "step": [1, 2, 4],
                          "val_mse": [np.nan, 0.05, 0.04]})
    assert qc.final_held_out(plain, 784) == ("val_mse", 0.04)
    mda = pd.DataFrame({"kind": ["train", "validation", "validation"], "step": [1, 2, 4],
                        "loss": [0.3, 0.07, 0.08]})
    assert qc.final_held_out(mda, 784) == ("mda_loss_best", 0.07)
    dscdan = pd.DataFrame({"kind": ["monitor", "monitor"], "step": [0, 50],
                           "held_out": [True, True], "eval_plain": [78.4, 39.2]})
    assert qc.final_held_out(dscdan, 784) == ("plain_mse", pytest.approx(0.05))
    not_held = dscdan.assign(held_out=False)
    what, value = qc.final_held_out(not_held, 784)
    assert what == "none" and math.isnan(value)


def test_the_table_of_a_run_folder(tmp_path, capsys):
    torch.manual_seed(0)
    x = torch.rand(50, 1, 4, 4)
    write_arrays(tmp_path / "results/data/toy.h5",
                 {"X": x.numpy(), "y": np.arange(50) % 2},
                 {"n_clusters": 2, "name": "toy", "input_shape": [1, 4, 4]})
    folder = tmp_path / "results/pretrain/toy/sae-x/seed0"
    folder.mkdir(parents=True)
    net = build_network("sae", (1, 4, 4), {"hidden": [6, 3]})
    save_model(folder / "model.pt", "sae", (1, 4, 4), {"hidden": [6, 3]}, net.state_dict(),
               {"wall_s": 1.0})
    pd.DataFrame({"kind": ["train", "validation"], "step": [3, 3],
                  "val_mse": [np.nan, 0.1]}).to_csv(folder / "history.csv", index=False)
    bench = tmp_path / "benchmarks/pretrain/toy/sae-x"
    bench.mkdir(parents=True)
    (bench / "seed0.tsv").write_text("s\th:m:s\n12.5\t0:00:12\n")
    out = tmp_path / "table.csv"
    qc.main_for(qc.build_parser, qc.run, [str(tmp_path / "results"), str(tmp_path / "benchmarks"),
                                         "--dataset", "toy", "--out", str(out)])
    row = pd.read_csv(out).iloc[0]
    assert row["ae"] == "sae-x" and row["held_out"] == "val_mse" and row["value"] == 0.1
    assert row["wall_s"] == 12.5 and row["code_dims"] == 3 and row["steps"] == 3
    with torch.no_grad():
        _, val_idx = qc.validation_split(50, 0.1, 0)
        z = net.encode(x[val_idx])
    assert row["participation_ratio"] == pytest.approx(qc.participation_ratio(z), rel=1e-5)
    assert "sae-x" in capsys.readouterr().out


def test_an_empty_run_folder_is_a_clear_error(tmp_path, capsys):
    write_arrays(tmp_path / "results/data/toy.h5",
                 {"X": np.zeros((4, 1, 4, 4), np.float32), "y": np.array([0, 1, 0, 1])},
                 {"n_clusters": 2, "name": "toy", "input_shape": [1, 4, 4]})
    with pytest.raises(SystemExit) as exit_:
        qc.main_for(qc.build_parser, qc.run, [str(tmp_path / "results"), "--dataset", "toy"])
    assert exit_.value.code == 2
    assert "no finished pretraining" in capsys.readouterr().err


# --- the default run's table (stages.reporting.quickstart) ---------------------------------

from stages.reporting import quickstart  # noqa: E402

METHODS = {
    "kmeans": {"family": "baseline", "algorithm": "kmeans"},
    "sae-kmeans": {"family": "dec", "ae": "sae", "init": "kmeans", "head": "none"},
    "dec": {"family": "dec", "ae": "sae", "init": "kmeans", "head": "dec"},
    "dscdan": {"family": "dscdan", "ae": "dscdan", "init": "knn3", "head": "dscdan"},
}


def runs_table() -> pd.DataFrame:
    rows = []
    for seed, accs in ((0, {"kmeans": 0.52, "sae-kmeans": 0.60, "dec": 0.65, "dscdan": 0.50}),
                       (1, {"kmeans": 0.53, "sae-kmeans": 0.66, "dec": 0.64, "dscdan": 0.55})):
        for method, acc in accs.items():
            head = METHODS[method].get("head", "none") != "none"
            rows.append({"dataset": "mnist5k", "method": method, "seed": seed, "acc": acc,
                         "nmi_sqrt": acc - 0.1, "schedule": "quick",
                         "family": METHODS[method]["family"], "populated": 10,
                         "n_clusters": 10,
                         "sharpness_start": 0.5 if head else np.nan,
                         "sharpness_end": 0.7 if head else np.nan})
    return pd.DataFrame(rows)


def test_the_partner_is_k_means_on_the_same_autoencoder():
    assert quickstart.embedding_partner(METHODS, "dec") == "sae-kmeans"
    assert quickstart.embedding_partner(METHODS, "sae-kmeans") is None
    assert quickstart.embedding_partner(METHODS, "kmeans") is None
    assert quickstart.embedding_partner(METHODS, "dscdan") is None  # no k-means row on it
    with_mi_rs = {**METHODS, "mi-rs": {"family": "dscdan", "ae": "dscdan", "init": "knn3",
                                       "head": "none"}}
    inits = {"knn3": {"algorithm": "knn-graph"}, "kmeans": {"algorithm": "kmeans"}}
    assert quickstart.embedding_partner(with_mi_rs, "dscdan", inits) == "mi-rs"
    assert quickstart.embedding_partner(with_mi_rs, "dscdan", inits, {"dscdan"}) is None
    assert quickstart.embedding_partner(with_mi_rs, "dscdan") is None  # knn3 unknown: not k-means


def test_the_bar_names_each_seed_a_method_falls_below():
    table = quickstart.check_rows(runs_table(), METHODS).set_index("method")
    assert table.loc["dec", "bar"] == "below sae-kmeans (seed 1)"
    assert table.loc["dscdan", "bar"] == "below kmeans (seed 0)"
    assert table.loc["sae-kmeans", "bar"] == "met" and table.loc["kmeans", "bar"] == ""
    assert table.loc["dec", "acc_seed1"] == pytest.approx(64.0)
    assert table.loc["dec", "sharpness"] == "0.50 → 0.70"
    assert table.loc["dec", "clusters"] == "10/10"


def test_the_command_writes_the_page_and_the_readme_block(tmp_path):
    runs_table().to_csv(tmp_path / "all.csv", index=False)
    (tmp_path / "config.yaml").write_text(
        "datasets: {mnist5k: {methods: [kmeans]}}\nmethods:\n" + "".join(
            f"  {m}: {json.dumps(r)}\n" for m, r in METHODS.items()))
    (tmp_path / "timing.json").write_text(json.dumps(
        {"commit": "abc1234", "date": "2026-12-06", "cpu": "Some CPU", "cores": 2,
         "command1_s": 600.0, "command1_jobs": 106, "command2_s": 1200.0,
         "command2_result": "850 passed"}))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{quickstart.BEGIN}\nold\n{quickstart.END}\nafter\n")
    args = [str(tmp_path / "all.csv"), "--timing", str(tmp_path / "timing.json"),
            "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "page.md"),
            "--readme", str(readme)]
    quickstart.main_for(quickstart.build_parser, quickstart.run, args)
    page = (tmp_path / "page.md").read_text()
    assert "10.0 min" in page and "Some CPU, 2 cores" in page and "abc1234" in page
    assert "| dec | 65.0 | 64.0 |" in page and "below sae-kmeans (seed 1)" in page
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith("after\n") and "old" not in text
    assert "| dscdan | 50.0 | 55.0 |" in text
    # rerun: same result (the block is replaced, not appended)
    quickstart.main_for(quickstart.build_parser, quickstart.run, args)
    assert readme.read_text() == text


def test_a_readme_without_the_markers_is_refused_and_nothing_is_written(tmp_path, capsys):
    runs_table().to_csv(tmp_path / "all.csv", index=False)
    (tmp_path / "config.yaml").write_text("methods: {}\n")
    (tmp_path / "timing.json").write_text(json.dumps(
        {"commit": "abc1234", "date": "d", "cpu": "c", "cores": 2, "command1_s": 1.0,
         "command1_jobs": 1}))
    (tmp_path / "README.md").write_text("# no markers\n")
    with pytest.raises(SystemExit):
        quickstart.main_for(quickstart.build_parser, quickstart.run, [
            str(tmp_path / "all.csv"), "--timing", str(tmp_path / "timing.json"),
            "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "page.md"),
            "--readme", str(tmp_path / "README.md")])
    assert "default-run:begin" in capsys.readouterr().err
    assert not (tmp_path / "page.md").exists()
    assert (tmp_path / "README.md").read_text() == "# no markers\n"
    with pytest.raises(SystemExit):
        quickstart.main_for(quickstart.build_parser, quickstart.run, [
            str(tmp_path / "missing.csv"), "--timing", str(tmp_path / "timing.json"),
            "--config", str(tmp_path / "config.yaml")])
    assert "bench/quickstart.sh" in capsys.readouterr().err
