"""Tests of the evaluate, aggregate and figures stages on small files written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages import aggregate, evaluate, figures
from stages.data.registry import dataset_names
from stages.plumbing.artifacts import read_json, write_arrays, write_json
from stages.plumbing.errors import DataFileError
from stages.reporting import plots, runs, tables
from stages.reporting.metrics import METRIC_KEYS, all_metrics

REPO = Path(__file__).resolve().parents[1]
N, K = 120, 4
TIMINGS = {"pretrain": 12.5, "embed": 0.5, "init": 2.0, "finetune": 30.0}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _stage(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"stages.{name}", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    """A tiny image dataset named mnist-test: K blobs of 8x8 images."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(K), N // K).astype(np.int64)
    X = (rng.normal(size=(N, 1, 8, 8)) + y[:, None, None, None] * 2.0).astype(np.float32)
    path = tmp_path / "data" / "mnist-test.h5"
    write_arrays(path, {"X": X, "y": y}, {"name": "mnist-test", "n_clusters": K})
    return path


def _labels_file(tmp_path: Path, y: np.ndarray, *, method: str = "dcec", seed: int = 0,
                 family: str = "dec", embedding: bool = True, dataset: str = "mnist-test",
                 flip: int = 10, n_pred: int = K) -> Path:
    rng = np.random.default_rng(seed)
    labels = (y + 1) % n_pred  # a relabelled copy of y ...
    labels[:flip] = rng.integers(0, n_pred, size=flip)  # ... with a few errors
    arrays = {"labels": labels.astype(np.int64)}
    if embedding:
        arrays["embedding"] = (rng.normal(size=(y.size, 10)) + y[:, None]).astype(np.float32)
    path = tmp_path / "finetune" / dataset / method / f"seed{seed}" / "labels.h5"
    write_arrays(path, arrays, {
        "dataset": dataset, "method": method, "seed": seed, "family": family, "device": "cpu",
        "precision": "bf16-mixed", "timings": TIMINGS if embedding else {"fit": 1.5},
        "provenance": {"config_hash": "abc123", "versions": {"numpy": np.__version__}},
        "n_clusters": K,
    })
    return path


def _y(data_file: Path) -> np.ndarray:
    from stages.plumbing.artifacts import read_arrays
    return read_arrays(data_file, required=["y"])[0]["y"]


def _predicted(labels_file: Path) -> np.ndarray:
    from stages.plumbing.artifacts import read_arrays
    return read_arrays(labels_file, required=["labels"])[0]["labels"]


# --------------------------------------------------------------------------- evaluate


def test_evaluate_writes_json(tmp_path: Path, data_file: Path) -> None:
    y = _y(data_file)
    labels = _labels_file(tmp_path, y)
    out = tmp_path / "metrics" / "mnist-test" / "dcec" / "seed0.json"
    evaluate.run(evaluate.build_parser().parse_args(
        ["--data", str(data_file), "--labels", str(labels), "--out", str(out)]))
    record = read_json(out)
    from stages.plumbing.artifacts import read_arrays
    y_pred = read_arrays(labels, required=["labels"])[0]["labels"]
    assert record["dataset"] == "mnist-test"
    assert record["method"] == "dcec" and record["seed"] == 0 and record["family"] == "dec"
    assert record["n"] == N and record["n_clusters"] == K
    assert record["n_predicted_clusters"] == K
    assert record["metrics"] == pytest.approx(all_metrics(y, y_pred))
    assert set(record["metrics"]) == set(METRIC_KEYS)
    assert record["timings"] == TIMINGS
    assert record["device"] == "cpu" and record["config_hash"] == "abc123"
    assert record["precision"] == "bf16-mixed"
    assert record["versions"] == {"numpy": np.__version__}
    assert record["warnings"] == []


def test_evaluate_records_extra_clusters(tmp_path: Path, data_file: Path) -> None:
    y = _y(data_file)
    labels = _labels_file(tmp_path, y, n_pred=K + 2, flip=60)
    record = runs.evaluate(data_file, labels)
    assert record["n_predicted_clusters"] == K + 2 > record["n_clusters"]
    assert record["warnings"]


@pytest.mark.parametrize("problem", ["length", "dataset", "missing", "attrs", "float"])
def test_evaluate_errors_write_nothing(tmp_path: Path, data_file: Path, problem: str) -> None:
    y = _y(data_file)
    labels = tmp_path / "bad" / "labels.h5"
    attrs = {"dataset": "mnist-test", "method": "dcec", "seed": 0}
    if problem == "length":
        write_arrays(labels, {"labels": y[:-3]}, attrs)
    elif problem == "dataset":
        write_arrays(labels, {"labels": y}, {**attrs, "dataset": "usps"})
    elif problem == "attrs":
        write_arrays(labels, {"labels": y}, {"dataset": "mnist-test"})
    elif problem == "float":
        write_arrays(labels, {"labels": y.astype(np.float64)}, attrs)
    out = tmp_path / "metrics" / "out.json"
    with pytest.raises(DataFileError):
        evaluate.run(evaluate.build_parser().parse_args(
            ["--data", str(data_file), "--labels", str(labels), "--out", str(out)]))
    assert not out.exists()
    assert not list(out.parent.glob("*")) if out.parent.exists() else True


def test_history_diagnostics_first_and_last_sharpness(tmp_path: Path) -> None:
    """``sharpness`` from the first and last target/check row that has it; SAIP's two
    assignments (``sharpness_p1``, ``sharpness_p2``) each with its own start and end."""
    path = tmp_path / "history.csv"
    pd.DataFrame([
        {"kind": "target", "step": 0, "sharpness": 0.40, "sharpness_p1": 0.98,
         "sharpness_p2": 0.40},
        {"kind": "train", "step": 4, "sharpness": 0.10, "sharpness_p2": 0.10},
        {"kind": "target", "step": 8, "sharpness": 0.55, "sharpness_p1": 0.97,
         "sharpness_p2": 0.55},
    ]).to_csv(path, index=False)
    out = runs.history_diagnostics(path)
    assert out == {"sharpness_start": 0.40, "sharpness_end": 0.55, "sharper_than_start": True,
                   "sharpness_p1_start": 0.98, "sharpness_p1_end": 0.97,
                   "sharpness_p2_start": 0.40, "sharpness_p2_end": 0.55}
    pd.DataFrame([{"kind": "check", "step": 0, "sharpness": 0.5},
                  {"kind": "check", "step": 3, "sharpness": 0.6}]).to_csv(path, index=False)
    assert runs.history_diagnostics(path) == {"sharpness_start": 0.5, "sharpness_end": 0.6,
                                              "sharper_than_start": True}
    assert runs.history_diagnostics(tmp_path / "missing.csv") == {}


# --------------------------------------------------------------------------- aggregate


def _metrics_json(tmp_path: Path, dataset: str, method: str, family: str, seed: int,
                  acc: float, nmi: float, timings: dict[str, float] | None = None,
                  schedule: str = "paper") -> Path:
    path = tmp_path / "metrics" / dataset / method / f"seed{seed}.json"
    write_json(path, {
        "dataset": dataset, "method": method, "seed": seed, "family": family, "n": 10000,
        "n_clusters": 10, "n_predicted_clusters": 10,
        "metrics": {"acc": acc, "nmi_max": nmi - 0.01, "nmi_sqrt": nmi,
                    "nmi_arithmetic": nmi - 0.005, "ari": acc - 0.1, "pair_precision": 0.7},
        "timings": timings if timings is not None else TIMINGS, "device": "cpu",
        "config_hash": "abc123", "versions": {}, "schedule": schedule, "commit": "0" * 40,
        "diagnostics": {"smallest_share": 0.08, "largest_share": 0.12, "populated": 10,
                        "collapsed": False, "sharpness_start": 0.3, "sharpness_end": 0.6,
                        "sharper_than_start": True},
    })
    return path


@pytest.fixture()
def metric_files(tmp_path: Path) -> list[Path]:
    return [
        _metrics_json(tmp_path, "mnist-test", "dcec", "dec", 0, 0.86, 0.84),
        _metrics_json(tmp_path, "mnist-test", "dcec", "dec", 1, 0.84, 0.82),
        _metrics_json(tmp_path, "mnist-test", "kmeans", "baseline", 0, 0.55, 0.50,
                      {"fit": 3.0}),
        _metrics_json(tmp_path, "mnist-test", "kmeans", "baseline", 1, 0.53, 0.52,
                      {"fit": 5.0}),
        _metrics_json(tmp_path, "toy", "dcec", "dec", 0, 0.9, 0.8),
    ]


def test_aggregate_tables(tmp_path: Path, metric_files: list[Path]) -> None:
    out = tmp_path / "tables"
    aggregate.run(aggregate.build_parser().parse_args(
        ["--metrics", *map(str, metric_files), "--out-dir", str(out)]))
    runs = pd.read_csv(out / "all.csv")
    assert list(runs.columns) == [
        "dataset", "method", "family", "seed", "schedule", *METRIC_KEYS,
        *tables.DIAGNOSTIC_COLUMNS, "wall_s_pretrain", "wall_s_embed",
        "wall_s_init", "wall_s_finetune", "wall_s_fit", "wall_s_total", "device", "precision",
        "n", "n_clusters", "n_predicted_clusters", "config_hash", "commit"]
    assert runs.schedule.tolist() == ["paper"] * 5 and runs.sharper_than_start.all()
    assert len(runs) == 5
    dcec = runs[(runs.dataset == "mnist-test") & (runs.method == "dcec")]
    assert dcec.seed.tolist() == [0, 1]
    assert dcec.wall_s_total.tolist() == pytest.approx([45.0, 45.0])
    km = runs[runs.method == "kmeans"]
    assert km.wall_s_pretrain.isna().all() and km.wall_s_total.tolist() == [3.0, 5.0]

    summary = pd.read_csv(out / "summary.csv").set_index(["dataset", "method"])
    row = summary.loc[("mnist-test", "dcec")]
    assert row["n_seeds"] == 2
    assert row["acc_mean"] == pytest.approx(0.85)
    assert row["acc_std"] == pytest.approx(np.std([0.86, 0.84], ddof=1))
    assert row["nmi_sqrt_mean"] == pytest.approx(0.83)
    assert summary.loc[("mnist-test", "kmeans"), "wall_s_fit_mean"] == pytest.approx(4.0)
    assert np.isnan(summary.loc[("toy", "dcec"), "acc_std"])  # one seed: no std

    md = (out / "paper_vs_ours.md").read_text()
    dcec_line = next(line for line in md.splitlines() if line.startswith("| dcec |"))
    # ours 85.0 ± 1.4, NMI (sqrt) 83.0 ± 1.4, beside the paper's 85.29 / 83.61 (MNIST-test).
    assert "85.0 ± 1.4" in dcec_line and "83.0 ± 1.4" in dcec_line
    assert "| 85.3 | 83.6 |" in dcec_line and "MNIST-test" in dcec_line
    assert "| -0.3 | -0.6 |" in dcec_line
    km_line = next(line for line in md.splitlines() if line.startswith("| kmeans |"))
    assert "54.6" in km_line and "50.2" in km_line
    # Paper rows we did not run are listed for context; unknown datasets get no paper columns.
    assert any(line.startswith("| dec-conv |") and "84.8" in line for line in md.splitlines())
    toy = md.split("## toy")[1]
    assert "No published numbers" in toy and "paper" not in toy.split("\n|---")[0]


def test_aggregate_mnist5k_note(tmp_path: Path) -> None:
    path = _metrics_json(tmp_path, "mnist5k", "dcec", "dec", 0, 0.8, 0.7)
    paths = tables.aggregate([path], tmp_path / "tables")
    md = paths["paper_vs_ours"].read_text()
    assert "## mnist5k (paper column: MNIST-test)" in md and "5,000-image" in md


def test_paper_vs_ours_compares_ari_and_precision_where_published(tmp_path: Path) -> None:
    # ari = acc - 0.1 = 0.7, pair precision 0.7 (see _metrics_json)
    path = _metrics_json(tmp_path, "mnist5k", "saip-hoe", "saip", 0, 0.8, 0.7)
    md = tables.aggregate([path], tmp_path / "tables")["paper_vs_ours"].read_text()
    line = next(x for x in md.splitlines() if x.startswith("| saip-hoe | saip | 1 | 70.0 |"))
    # SAIP Table III, mnist-test: ARI 64.93, precision 67.82
    assert "| 70.0 | 64.9 | +5.1 | 70.0 | 67.8 | +2.2 |" in line
    # methods whose paper reports neither get no such row
    assert not any(x.startswith("| dcec | dcec | 0 | — | — | — |") for x in md.splitlines())


def test_quick_rows_show_no_delta_and_say_so(tmp_path: Path) -> None:
    paths = [_metrics_json(tmp_path, "mnist5k", "dcec", "dec", 0, 0.8, 0.7, schedule="quick"),
             _metrics_json(tmp_path, "mnist5k", "dec", "dec", 0, 0.7, 0.6)]
    md = tables.aggregate(paths, tmp_path / "tables")["paper_vs_ours"].read_text()
    head = "\n".join(md.splitlines()[:4])
    assert "schedule quick are not comparable with the papers" in head
    dcec = next(x for x in md.splitlines() if x.startswith("| dcec | dec | quick | 1 |"))
    assert dcec.endswith("| 85.3 | 83.6 | — | — |")  # the paper's numbers, no difference
    dec = next(x for x in md.splitlines() if x.startswith("| dec | dec | paper | 1 |"))
    assert "| -0.3 |" not in dec and dec.split("|")[-3].strip().startswith(("+", "-"))
    alone = tables.aggregate(paths[1:], tmp_path / "paper")["paper_vs_ours"].read_text()
    assert "not comparable with the papers" not in alone


def test_aggregate_rejects_duplicates(tmp_path: Path, metric_files: list[Path]) -> None:
    with pytest.raises(DataFileError, match="same run"):
        tables.aggregate([metric_files[0], metric_files[0]], tmp_path / "tables")
    assert not (tmp_path / "tables" / "all.csv").exists()


def test_aggregate_rejects_incomplete_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"dataset": "mnist", "method": "dec", "seed": 0,
                                "metrics": {"acc": 0.5}}))
    with pytest.raises(DataFileError, match="nmi_max"):
        tables.aggregate([path], tmp_path / "tables")


def test_reference_file() -> None:
    ref = tables.load_reference(tables.DEFAULT_REFERENCE)
    assert list(ref.columns) == list(tables.REFERENCE_COLUMNS)
    assert set(ref.paper) == {"dcec", "depict", "dscdan", "saip", "rmn-gmm"}
    assert set(ref.metric) == {"acc", "nmi", "ari", "pair_precision"}
    assert {"MNIST-full", "MNIST-test", "USPS", "Fashion-MNIST"} <= set(ref.dataset)
    assert {"kmeans", "dec-public", "sae-kmeans", "dec", "idec", "cae-kmeans", "dec-conv",
            "dcec"} <= set(ref.method)
    assert {"depict", "depict-sda", "depict-rda", "depict-convae-acpic"} <= set(ref.method)
    depict = ref[ref.paper == "depict"].set_index(["method", "dataset", "metric"])["value"]
    assert depict[("depict", "MNIST-test", "acc")] == 96.3
    assert depict[("depict", "MNIST-test", "nmi")] == 91.5
    assert depict[("depict-rda", "MNIST-test", "acc")] == 95.0
    assert depict[("depict-sda", "MNIST-test", "nmi")] == 35.3
    assert depict[("depict-convae-acpic", "MNIST-test", "acc")] == 94.2
    digits = depict[depict.index.get_level_values("dataset").isin(["MNIST-full", "MNIST-test",
                                                                    "USPS-11k"])]
    assert len(digits) == 7 * 6  # seven methods x (3 digit datasets x ACC, NMI)
    # the shallow rows on raw MNIST-test beside the deep ones (issue 43): DEPICT Table 2's
    # AC-PIC, SAIP Table III's k-means and SC, DSCDAN Table 3's k-means
    assert (depict[("acpic", "MNIST-test", "acc")], depict[("acpic", "MNIST-test", "nmi")]) == \
        (92.0, 85.3)
    test = ref[ref.dataset == "MNIST-test"].set_index(["paper", "method", "metric"])["value"]
    assert test[("saip", "kmeans", "acc")] == 56.07 and test[("saip", "spectral", "nmi")] == 70.97
    assert test[("dscdan", "kmeans", "acc")] == 54.6
    fashion = ref[ref.dataset == "Fashion-MNIST"].set_index(["paper", "method", "metric"])
    assert fashion.loc[("rmn-gmm", "dec", "acc"), "value"] == 58.7      # issue: DEC family
    assert fashion.loc[("dscdan", "idec", "nmi"), "value"] == 55.7
    assert fashion.loc[("dscdan", "kmeans", "acc"), "value"] == 47.4
    # USPS: 9,298 images in DCEC and DSCDAN, Roweis' 11,000 in DEPICT and RMN-GMM
    assert set(ref[ref.dataset == "USPS"].paper) == {"dcec", "dscdan"}
    assert set(ref[ref.dataset == "USPS-11k"].paper) == {"depict", "rmn-gmm"}
    # issue 19's datasets: every dataset a paper reports has a column our datasets map to
    assert set(tables.DATASET_TO_PAPER.values()) <= set(ref.dataset)
    assert set(dataset_names()) - set(tables.DATASET_TO_PAPER) == {"digits", "synthetic"}
    keyed = ref.set_index(["paper", "method", "dataset", "metric"])["value"]
    assert keyed[("saip", "saip-hoe", "CIFAR-10", "acc")] == 22.06           # Table IV
    assert keyed[("saip", "saip-hit", "CIFAR-100-aquatic", "nmi")] == 13.85  # Table V
    assert ("saip", "lrr", "CIFAR-10", "acc") not in keyed.index            # copy error
    assert keyed[("rmn-gmm", "rmn-gmm", "COIL-20", "acc")] == 94.6           # Table 3
    assert keyed[("rmn-gmm", "deepgmm", "COIL-100", "nmi")] == 51.0          # Table 4
    assert len(keyed.xs("COIL-20", level="dataset")) == 22 * 2               # 22 rows x ACC, NMI
    ref = ref[ref.paper == "dcec"]
    value = ref.set_index(["method", "dataset", "metric"])["value"]
    assert value[("dcec", "MNIST-test", "acc")] == 85.29
    assert value[("dcec", "USPS", "nmi")] == 82.57
    assert value[("kmeans", "MNIST-full", "acc")] == 54.24
    assert value[("idec", "MNIST-test", "nmi")] == 69.40
    assert len(ref) == 8 * 6 + 1  # eight methods x 6 numbers, plus SEC's one


def test_reference_validation(tmp_path: Path) -> None:
    bad = tmp_path / "ref.csv"
    bad.write_text("paper,method,dataset,metric,value,source\n"
                   "x,m,D,acc,—,T1\n")
    with pytest.raises(DataFileError, match="non-numeric"):
        tables.load_reference(bad)
    bad.write_text("paper,method,dataset,metric,value,source\n"
                   "x,m,D,acc,1,T1\nx,m,D,acc,2,T1\n")
    with pytest.raises(DataFileError, match="duplicated"):
        tables.load_reference(bad)
    bad.write_text("paper,method,value\nx,m,1\n")
    with pytest.raises(DataFileError, match="missing column"):
        tables.load_reference(bad)


# --------------------------------------------------------------------------- figures


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _built(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every Figure that plots.build_figure returns from now on (make_figure and the CLI
    draw through it), so a test can look inside the figure that was saved."""
    built: list = []
    original = plots.build_figure

    def recording(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(plots, "build_figure", recording)
    return built


def _axes_by_title(fig) -> dict[str, object]:
    """The figure's titled axes by title (twin axes have none)."""
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def _twins(fig, ax) -> list:
    """The twinx axes sharing ``ax``'s x axis."""
    return [other for other in fig.axes
            if other is not ax and ax.get_shared_x_axes().joined(ax, other)]


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _n_colours(scatter) -> int:
    return len(np.unique(np.round(scatter.get_facecolors(), 6), axis=0))


def test_figure_with_embedding_and_histories(tmp_path: Path, data_file: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    y = _y(data_file)
    labels = _labels_file(tmp_path, y)
    hist = tmp_path / "history.csv"
    acc = [0.5 + 0.02 * i if i % 4 == 0 else np.nan for i in range(20)]
    nmi = [0.4 + 0.02 * i if i % 4 == 0 else np.nan for i in range(20)]
    pd.DataFrame({"step": np.arange(0, 700, 35), "loss": np.linspace(1, 0.1, 20),
                  "acc": acc, "nmi": nmi, "delta_label": np.nan}).to_csv(hist, index=False)
    pre = tmp_path / "pretrain.csv"
    pd.DataFrame({"epoch": np.arange(10), "step": np.arange(10) * 5,
                  "loss": np.geomspace(1, 0.01, 10)}).to_csv(pre, index=False)
    out = tmp_path / "figures" / "run.png"
    built = _built(monkeypatch)
    figures.run(figures.build_parser().parse_args(
        ["--data", str(data_file), "--labels", str(labels), "--history", str(hist),
         "--pretrain-history", str(pre), "--out", str(out), "--n-points", "100",
         "--threads", "1"]))
    assert _is_png(out)
    (fig,) = built
    assert _png_size(out) == (1000, 900)  # 10 x 4.5 in per row at 100 dpi: two rows

    # two t-SNE maps, the fine-tuning curve with its ACC/NMI twin axis, the pretraining curve
    assert len(fig.axes) == 5
    assert _twins(fig, fig.axes[0]) == []
    axes = _axes_by_title(fig)
    pred_labels = _predicted(labels)
    assert set(axes) == {"t-SNE of embedding (n=100): true labels",
                         "predicted clusters (4; colour = matched class)",
                         "fine-tuning", "pretraining"}
    score = all_metrics(y, pred_labels)
    assert fig.get_suptitle() == (f"mnist-test / dcec / seed 0: ACC {100 * score['acc']:.1f}%, "
                                  f"NMI (sqrt) {100 * score['nmi_sqrt']:.1f}%")

    true_map = axes["t-SNE of embedding (n=100): true labels"].collections[0]
    pred_map = axes["predicted clusters (4; colour = matched class)"].collections[0]
    assert true_map.get_offsets().shape == pred_map.get_offsets().shape == (100, 2)
    np.testing.assert_array_equal(true_map.get_offsets(), pred_map.get_offsets())
    assert _n_colours(true_map) == K
    # labels are y + 1 (mod K) but for the first few: the matched colour of a point's cluster is
    # its class's colour exactly where it was predicted right
    idx = plots.subset_indices(y.size, 100, 0)
    same = (np.abs(true_map.get_facecolors() - pred_map.get_facecolors()).sum(1) == 0)
    np.testing.assert_array_equal(same, pred_labels[idx] == (y[idx] + 1) % K)

    ft = axes["fine-tuning"]
    assert (ft.get_xlabel(), ft.get_ylabel()) == ("step", "fine-tuning loss")
    (loss,) = ft.get_lines()
    np.testing.assert_allclose(loss.get_xdata(), np.arange(0, 700, 35))
    np.testing.assert_allclose(loss.get_ydata(), np.linspace(1, 0.1, 20))
    (scores,) = _twins(fig, ft)
    assert scores.get_ylabel() == "ACC / NMI at target updates" and scores.get_ylim() == (0, 1)
    assert [line.get_label() for line in scores.get_lines()] == ["ACC", "NMI"] == _legend(scores)
    for line, values in zip(scores.get_lines(), (acc, nmi), strict=True):
        np.testing.assert_allclose(line.get_ydata(), [v for v in values if not np.isnan(v)])
        np.testing.assert_allclose(line.get_xdata(), np.arange(0, 700, 35)[::4])

    pt = axes["pretraining"]
    assert (pt.get_xlabel(), pt.get_ylabel(), pt.get_yscale()) == (
        "step", "reconstruction loss", "log")
    (train,) = pt.get_lines()
    assert train.get_label() == "train" and pt.get_legend() is None  # no validation rows
    np.testing.assert_allclose(train.get_ydata(), np.geomspace(1, 0.01, 10))


def test_figure_diagnostics_and_validation_panels(tmp_path: Path, data_file: Path) -> None:
    """The third row draws one line per label-free diagnostic present (and the collapse step);
    the pretraining panel a validation curve, the held-out MSE on a twin axis, phase starts."""
    labels = _labels_file(tmp_path, _y(data_file), method="depict", family="depict")
    steps = np.arange(0, 100, 10)
    hist = tmp_path / "history.csv"
    pd.DataFrame({
        "kind": ["gradient_share"] + ["train"] * 9, "step": steps,
        "loss": [np.nan, *np.linspace(1, 0.2, 9)],
        "sharpness": np.linspace(0.2, 0.9, 10), "smallest_share": np.linspace(0.2, 0.0, 10),
        "largest_share": np.linspace(0.3, 0.95, 10), "delta_label": [np.nan] * 5 + [0.1] * 5,
        "disagreement": np.nan,  # a column with no value draws no line
        "collapsed": [False] * 6 + [True] * 4,
        "grad_share_clustering": [0.7] + [np.nan] * 9,
        "grad_share_reconstruction": [0.3] + [np.nan] * 9,
    }).to_csv(hist, index=False)
    pre = tmp_path / "pretrain.csv"
    pd.DataFrame({
        "kind": ["train", "validation"] * 6, "phase": ["sda"] * 6 + ["rda"] * 6,
        "step": np.repeat(np.arange(6) * 10, 2), "loss": np.geomspace(1, 0.1, 12),
        "val_mse": [np.nan, 0.05] * 6,
    }).to_csv(pre, index=False)
    # 4 points: t-SNE is skipped (too few), the maps show the embedding's first two coordinates
    fig = plots.build_figure(data_file, labels, history_path=hist, pretrain_history_path=pre,
                               n_points=4, seed=0)
    assert tuple(fig.get_size_inches()) == (10, 13.5)  # three rows of 4.5 in
    # maps; fine-tuning (no ACC/NMI columns: no twin); pretraining + held-out twin; diagnostics
    assert len(fig.axes) == 2 + 1 + 2 + 1
    assert fig.get_suptitle().startswith("mnist-test / depict / seed 0: ")
    assert "NMI (max)" in fig.get_suptitle()  # the DEPICT family's variant
    axes = _axes_by_title(fig)
    title = ("label-free diagnostics; gradient shares at start: clustering 70%, "
             "reconstruction 30%")
    assert title in axes
    diag = axes[title]
    labels_drawn = [line.get_label() for line in diag.get_lines()]
    assert labels_drawn == ["sharpness (mean max p)", "smallest cluster share",
                            "largest cluster share", "labels changed", "collapsed"]
    assert _legend(diag) == labels_drawn
    assert list(diag.get_lines()[-1].get_xdata()) == [60, 60]  # the first collapsed step
    np.testing.assert_allclose(diag.get_lines()[3].get_xdata(), steps[5:])

    pt = axes["pretraining"]
    assert _legend(pt) == ["train", "validation"]
    train, validation, phase_start = pt.get_lines()
    np.testing.assert_allclose(train.get_ydata(), np.geomspace(1, 0.1, 12)[::2])
    np.testing.assert_allclose(validation.get_ydata(), np.geomspace(1, 0.1, 12)[1::2])
    assert validation.get_linestyle() == "--" and list(phase_start.get_xdata()) == [30, 30]
    (held_out,) = _twins(fig, pt)
    assert held_out.get_ylabel() == "held-out per-pixel MSE"
    np.testing.assert_allclose(held_out.get_lines()[0].get_ydata(), [0.05] * 6)
    maps = [ax for ax in fig.axes if "true labels" in ax.get_title()]
    assert maps[0].get_title() == "t-SNE of embedding (n=4): true labels"
    assert maps[0].collections[0].get_offsets().shape == (4, 2)


def test_figure_raw_baseline(tmp_path: Path, data_file: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    labels = _labels_file(tmp_path, _y(data_file), method="kmeans", family="baseline",
                          embedding=False)
    empty = tmp_path / "empty_history.csv"
    empty.write_text("step,loss,acc,nmi,delta_label\n")  # a method without fine-tuning
    out = tmp_path / "figures" / "raw.png"
    built = _built(monkeypatch)
    plots.make_figure(data_file, labels, out, history_path=empty, n_points=80, seed=1)
    assert _is_png(out) and _png_size(out) == (1000, 450)  # one row: no curves to draw
    (fig,) = built
    assert [ax.get_title() for ax in fig.axes] == [
        "t-SNE of raw inputs (n=80): true labels",
        "predicted clusters (4; colour = matched class)"]
    assert fig.get_suptitle().startswith("mnist-test / kmeans / seed 0: ACC ")  # the run's seed
    assert all(ax.collections[0].get_offsets().shape == (80, 2) for ax in fig.axes)


@pytest.mark.parametrize(("value", "problem"), [(0.5, "every sample has the same embedding"),
                                                (np.nan, "non-finite values")])
def test_figure_of_a_collapsed_embedding_is_drawn_not_crashed(
        tmp_path: Path, data_file: Path, monkeypatch: pytest.MonkeyPatch, value: float,
        problem: str) -> None:
    """A constant (or NaN) embedding made t-SNE divide by zero variance and segfault."""
    from stages.plumbing.artifacts import read_arrays

    labels = _labels_file(tmp_path, _y(data_file))
    arrays, attrs = read_arrays(labels, required=["labels", "embedding"])
    arrays["embedding"] = np.full_like(arrays["embedding"], value)
    write_arrays(labels, arrays, attrs)
    out = tmp_path / "figures" / "collapsed.png"
    built = _built(monkeypatch)
    plots.make_figure(data_file, labels, out, n_points=60, seed=0)
    assert _is_png(out)
    (fig,) = built
    assert fig.axes[0].get_title() == f"embedding ({problem}: no t-SNE): true labels"
    # drawn as the first two coordinates, zeros where not finite
    np.testing.assert_array_equal(fig.axes[0].collections[0].get_offsets(),
                                  np.full((60, 2), 0.5 if value == 0.5 else 0.0))
    assert plots.degenerate(arrays["embedding"]) is not None
    assert plots.degenerate(np.arange(12.0).reshape(6, 2)) is None


def test_figure_missing_history_is_an_error(tmp_path: Path, data_file: Path) -> None:
    labels = _labels_file(tmp_path, _y(data_file))
    out = tmp_path / "figures" / "x.png"
    with pytest.raises(DataFileError, match="history not found"):
        plots.make_figure(data_file, labels, out, history_path=tmp_path / "nope.csv")
    assert not out.exists()


def test_matched_colours() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    c = np.array([5, 5, 3, 3, 9, 7])
    true_c, pred_c = plots.matched_colours(y, c)
    assert true_c.tolist() == [0, 0, 1, 1, 2, 2]
    assert pred_c[:4].tolist() == [0, 0, 1, 1]
    assert sorted(pred_c[4:].tolist()) == [2, 3]  # one cluster matched to class 2, one extra


# --------------------------------------------------------------------------- CLI


def test_cli_evaluate_runs(tmp_path: Path, data_file: Path) -> None:
    labels = _labels_file(tmp_path, _y(data_file))
    out = tmp_path / "cli.json"
    proc = _stage("evaluate", "--data", str(data_file), "--labels", str(labels),
                  "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert read_json(out)["method"] == "dcec"


@pytest.mark.parametrize("stage", ["evaluate", "aggregate", "figures"])
def test_cli_bad_input_exits_2(tmp_path: Path, data_file: Path, stage: str) -> None:
    missing = str(tmp_path / "missing.h5")
    args = {
        "evaluate": ["--data", str(data_file), "--labels", missing,
                     "--out", str(tmp_path / "o.json")],
        "aggregate": ["--metrics", str(tmp_path / "missing.json"),
                      "--out-dir", str(tmp_path / "tables")],
        "figures": ["--data", str(data_file), "--labels", missing,
                    "--out", str(tmp_path / "o.png")],
    }[stage]
    proc = _stage(stage, *args)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "missing" in proc.stderr
    assert not list(tmp_path.glob("o.*")) and not (tmp_path / "tables").exists()


def test_precision_names_of_the_records() -> None:
    """The record names a stage's effective precision so that CSV readers keep it a string."""
    from stages.reporting.runs import precision_name
    assert precision_name("32") == precision_name(32) == "fp32"
    assert precision_name("bf16-mixed") == "bf16-mixed"
    assert precision_name(None) is None  # a baseline: no network
