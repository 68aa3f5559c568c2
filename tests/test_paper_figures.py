"""The papers' figures drawn from small files of the workflow's formats, and their errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from stages.paper_figures import run
from stages.plumbing.artifacts import write_arrays
from stages.plumbing.errors import DataFileError
from stages.reporting.paper_figures import make_paper_figure
from stages.runtime.snapshots import SnapshotRecorder, write_snapshots

N, K = 120, 3


@pytest.fixture()
def files(tmp_path):
    """Three well-separated clusters as 8x8 images, with every file a figure reads."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(K), N // K)
    centres = rng.normal(size=(K, 4)) * 5
    z = (centres[y] + rng.normal(size=(N, 4))).astype(np.float32)
    x = rng.random((N, 1, 8, 8)).astype(np.float32)
    x[:, 0, y, :] += 2.0  # a bright row per class
    paths = {name: str(tmp_path / f"{name}.h5") for name in
             ("data", "embed", "init", "labels", "kmeans", "snapshots")}
    write_arrays(paths["data"], {"X": x, "y": y})
    write_arrays(paths["embed"], {"Z": z})
    write_arrays(paths["init"], {"labels": y})
    write_arrays(paths["kmeans"], {"labels": (y + 1) % K})
    write_arrays(paths["labels"], {"labels": y, "embedding": z, "means": centres[[0, 1, 2]]})
    recorder = SnapshotRecorder(torch.nn.Identity(), lambda b: b, torch.as_tensor(z[::2]),
                                np.arange(0, N, 2))
    for step in range(6):
        recorder.take("finetune rmn", step, 2)
    write_snapshots(paths["snapshots"], recorder)
    history = pd.DataFrame({"kind": ["train", "target", "target", "target"],
                            "step": [1, 0, 5, 10], "acc": [None, 0.5, 0.7, 0.8],
                            "disagreement": [None, 0.3, 0.2, 0.1]})
    paths["history"] = str(tmp_path / "history.csv")
    history.to_csv(paths["history"], index=False)
    sweeps = pd.DataFrame({
        "sweep": "eta", "method": ["rmn-gmm", "rmn-gmm@eta=0.1", "rmn-gmm@eta=1.0"],
        "base": "rmn-gmm", "point": ["base", "grid", "grid"], "dataset": "mnist5k",
        "n_seeds": 1, "value:eta": [0.5, 0.1, 1.0], "acc_mean": [0.7, 0.6, 0.8],
        "acc_std": [np.nan] * 3, "nmi_max_mean": [0.6, 0.5, 0.7], "nmi_max_std": [np.nan] * 3,
        "nmi_sqrt_mean": [0.6, 0.5, 0.7], "nmi_sqrt_std": [np.nan] * 3})
    paths["sweeps"] = str(tmp_path / "sweeps.csv")
    sweeps.to_csv(paths["sweeps"], index=False)
    for stage, seconds in (("pretrain", 12.5), ("finetune", 3.0)):
        path = tmp_path / f"{stage}.tsv"
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:12\t100\n")
        paths[f"bench_{stage}"] = str(path)
    return paths


def _drawn(tmp_path, kind, inputs, spec) -> np.ndarray:
    out = make_paper_figure(kind, inputs, spec, tmp_path / f"{kind}.png")
    image = imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image[..., :3].std() > 0.01  # not a blank canvas
    return image


def test_every_kind_draws(files, tmp_path):
    panels = [{"title": "Raw", "features": ["data", "X"], "labels": ["kmeans", "labels"]},
              {"title": "AE", "features": ["embed", "Z"], "labels": ["init", "labels"]},
              {"title": "Method", "features": ["method", "embedding"],
               "labels": ["method", "labels"]},
              {"title": "Truth", "features": ["embed", "Z"], "labels": None}]
    _drawn(tmp_path, "embeddings", {"data": files["data"], "kmeans": files["kmeans"],
                                    "embed": files["embed"], "init": files["init"],
                                    "method": files["labels"]},
           {"panels": panels, "seed": 0, "dataset": "toy", "not_run": ["DEC (dec)"]})
    _drawn(tmp_path, "stages", {"data": files["data"], "initial": files["snapshots"],
                                "intermediate": files["embed"], "final": files["labels"]}, {})
    _drawn(tmp_path, "running_time", {"toy|dec|pretrain": files["bench_pretrain"],
                                      "toy|dec|finetune": files["bench_finetune"],
                                      "toy|kmeans|baseline": files["bench_finetune"]},
           {"datasets": ["toy"]})
    _drawn(tmp_path, "agreement", {"history": files["history"]}, {"dataset": "toy"})
    _drawn(tmp_path, "sensitivity", {"sweeps": files["sweeps"]},
           {"sweep": "eta", "paper": "rmn-gmm"})
    _drawn(tmp_path, "snapshots", {"data": files["data"], "snapshots": files["snapshots"]}, {})
    _drawn(tmp_path, "covariances", {"data": files["data"], "embedding": files["embed"]}, {})
    _drawn(tmp_path, "nearest_farthest", {"data": files["data"], "labels": files["labels"]}, {})


def test_a_two_key_sweep_is_drawn_as_heat_maps(files, tmp_path):
    table = pd.read_csv(files["sweeps"])
    grid = pd.concat([table.assign(**{"value:b": b}) for b in (1, 2)], ignore_index=True)
    grid.to_csv(files["sweeps"], index=False)
    _drawn(tmp_path, "sensitivity", {"sweeps": files["sweeps"]}, {"sweep": "eta"})


def test_the_command_line_writes_the_figure(files, tmp_path):
    import argparse

    out = tmp_path / "cli.png"
    args = argparse.Namespace(kind="agreement", inputs={"history": files["history"]},
                              spec={}, threads=1, out=str(out))
    assert run(args) == out and out.stat().st_size > 1000


def test_bad_inputs_say_what_is_wrong(files, tmp_path):
    pd.DataFrame({"kind": ["target"], "acc": [0.5]}).to_csv(files["history"], index=False)
    with pytest.raises(DataFileError, match="no per-epoch rows with 'disagreement'"):
        make_paper_figure("agreement", {"history": files["history"]}, {}, tmp_path / "a.png")
    with pytest.raises(DataFileError, match="names input 'nope'"):
        make_paper_figure("embeddings", {"data": files["data"]},
                          {"panels": [{"title": "x", "features": ["nope", "Z"]}]},
                          tmp_path / "b.png")
    with pytest.raises(DataFileError, match="no rows of sweep 'other'"):
        make_paper_figure("sensitivity", {"sweeps": files["sweeps"]}, {"sweep": "other"},
                          tmp_path / "c.png")
    (tmp_path / "bad.tsv").write_text("nothing here\n")
    with pytest.raises(DataFileError, match="no 's' column"):
        make_paper_figure("running_time", {"toy|dec|finetune": str(tmp_path / "bad.tsv")}, {},
                          tmp_path / "d.png")
    write_arrays(files["embed"], {"Z": np.zeros((5, 4), np.float32)})
    with pytest.raises(DataFileError, match="another dataset"):
        make_paper_figure("embeddings", {"data": files["data"], "e": files["embed"]},
                          {"panels": [{"title": "x", "features": ["e", "Z"]}]},
                          tmp_path / "e.png")
    assert not list(tmp_path.glob("*.png"))  # nothing half-written
