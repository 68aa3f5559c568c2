"""Issue 44: the label-free measures that choose the quick recipes
(stages.methods.shared.quick_criteria)."""

from __future__ import annotations

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
    assert qc.held_out_reconstruction(plain, 784) == ("val_mse", 0.04)
    mda = pd.DataFrame({"kind": ["train", "validation", "validation"], "step": [1, 2, 4],
                        "loss": [0.3, 0.07, 0.08]})
    assert qc.held_out_reconstruction(mda, 784) == ("mda_loss_best", 0.07)
    dscdan = pd.DataFrame({"kind": ["monitor", "monitor"], "step": [0, 50],
                           "held_out": [True, True], "eval_plain": [78.4, 39.2]})
    assert qc.held_out_reconstruction(dscdan, 784) == ("plain_mse", pytest.approx(0.05))
    not_held = dscdan.assign(held_out=False)
    what, value = qc.held_out_reconstruction(not_held, 784)
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
