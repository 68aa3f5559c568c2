"""The papers' figures, drawn from files the workflow wrote (the ``paper_figure`` jobs).

:func:`make_paper_figure` draws one :class:`stages.reporting.figure_plan.FigureJob` (the plan
says which files and what to draw) of a kind of :data:`stages.reporting.figure_plan.KINDS`:

* ``embeddings``: a t-SNE panel (``init="pca"``, a seeded subset of 1,000 samples, the same in
  every panel) per ``spec["panels"]`` entry: raw inputs, a pretrained embedding or a fine-tuned
  one, coloured by that panel's clusters matched to the classes (Hungarian), so one colour is
  one class in every panel; raw data coloured by k-means on raw data when it ran, else by class;
* ``stages``: the first two principal components of three embeddings (initial: pretraining's
  first snapshot; intermediate: after pretraining; final: after fine-tuning) of the snapshot
  subset, coloured by class;
* ``running_time``: stacked bars of wall seconds per stage (pretraining, embedding, init,
  fine-tuning, or a baseline's one job) per dataset and method, the total above each bar;
* ``agreement``: the fraction of samples whose P1 and P2 assignments differ (left axis) and ACC
  (right axis) at every epoch of a SAIP run;
* ``sensitivity``: a sweep's ACC and NMI against its values (a line per dataset; a heat map
  per dataset for a two-key grid);
* ``snapshots``: t-SNE of four fine-tuning snapshots (the first, the last and two between),
  coloured by class;
* ``covariances``: the covariance matrix of the pretrained embedding within each class, with
  the share of its squared entries off the diagonal;
* ``nearest_farthest``: per cluster (a column, ordered by matched class) the samples nearest
  to and farthest from the cluster's centre (the GMM's mean when labels.h5 holds ``means``,
  else the mean of its members' embeddings), by Euclidean distance in the embedding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment

from stages.plumbing.artifacts import atomic_path, read_arrays
from stages.plumbing.errors import DataFileError
from stages.plumbing.sampling import subset_indices
from stages.reporting.figure_plan import KINDS
from stages.reporting.metrics import cluster_acc, contingency
from stages.reporting.plots import matched_colours, palette, read_history, scatter_map, tsne_2d
from stages.reporting.tables import nmi_variant
from stages.runtime.snapshots import read_snapshots

#: samples in each t-SNE panel (DCEC Fig. 3 shows a random subset of 1,000)
TSNE_POINTS = 1000
#: samples per cluster in each half of the nearest/farthest figure
N_SHOWN = 4


def _array(inputs: Mapping[str, str], ref: Sequence[str]) -> np.ndarray:
    """The array ``ref[1]`` of the input file named ``ref[0]``."""
    name, array = ref
    if name not in inputs:
        raise DataFileError(f"the figure's spec names input '{name}', which its job does not "
                            f"list ({', '.join(sorted(inputs))}); rerun snakemake")
    arrays, _ = read_arrays(inputs[name], required=[array])
    return arrays[array]


def _labels(inputs: Mapping[str, str]) -> np.ndarray:
    return _array(inputs, ("data", "y")).astype(np.int64)


def _grid(n_panels: int, width: float = 3.2) -> tuple[Figure, list[Any]]:
    cols = min(n_panels, 4)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(width * cols, width * rows + 0.6), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def draw_embeddings(inputs: Mapping[str, str], spec: Mapping[str, Any]) -> Figure:
    """DCEC Fig. 3 / DSCDAN Fig. 6: a t-SNE panel per ``spec['panels']`` entry."""
    y = _labels(inputs)
    seed = int(spec.get("seed", 0))
    idx = subset_indices(y.shape[0], TSNE_POINTS, seed)
    panels = list(spec["panels"])
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        features = _array(inputs, panel["features"])
        if features.shape[0] != y.shape[0]:
            raise DataFileError(f"{inputs[panel['features'][0]]}: {features.shape[0]} rows, the "
                                f"dataset {y.shape[0]}: it belongs to another dataset; rerun")
        title = panel["title"]
        if panel.get("labels"):
            clusters = _array(inputs, panel["labels"]).astype(np.int64)
            _, colour = matched_colours(y, clusters)
            title += f" (ACC {100 * cluster_acc(y, clusters):.1f}%)"
        else:
            colour = np.unique(y, return_inverse=True)[1]
            title += " (true classes)"
        scatter_map(ax, tsne_2d(features[idx], seed), colour[idx],
                    palette(int(colour.max()) + 1), title, size=3)
    note = f"{spec.get('dataset', '')}, seed {seed}: t-SNE of {idx.size} samples"
    if spec.get("not_run"):
        note += "; not run: " + ", ".join(spec["not_run"])
    fig.suptitle(note, fontsize=9)
    return fig


def _pca_2d(features: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    x = np.asarray(features, dtype=np.float64).reshape(features.shape[0], -1)
    if x.shape[1] < 2 or float(x.std(axis=0).max()) < 1e-12:
        return np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1]))))
    return PCA(n_components=2).fit_transform(x)


def draw_stages(inputs: Mapping[str, str], spec: Mapping[str, Any]) -> Figure:
    """DEPICT Figs. 4/5: the first two principal components at three stages."""
    y = _labels(inputs)
    snaps, phases = read_snapshots(inputs["initial"])
    if not phases:
        raise DataFileError(f"{inputs['initial']}: no snapshots; rerun the pretraining job")
    idx = snaps["index"]
    stages = [("Initial stage (untrained network)", snaps["embeddings"][0]),
              ("Intermediate stage (pretrained, before the clustering loss)",
               _array(inputs, ("intermediate", "Z"))[idx]),
              ("Final stage (after fine-tuning)", _array(inputs, ("final", "embedding"))[idx])]
    fig, axes = _grid(3, width=3.6)
    classes = np.unique(y, return_inverse=True)[1][idx]
    colours = palette(int(classes.max()) + 1)
    for ax, (title, z) in zip(axes, stages, strict=True):
        scatter_map(ax, _pca_2d(z), classes, colours, title, size=3)
    fig.suptitle(f"{spec.get('dataset', '')}, {spec.get('method', '')}, seed "
                 f"{spec.get('seed', 0)}: first two principal components of the embedding of "
                 f"{idx.size} samples, coloured by class", fontsize=9)
    return fig


#: the stages of a run in the order they are stacked
TIMED_STAGES = ("pretrain", "embed", "init", "finetune", "baseline")


def _seconds(path: str) -> float:
    """The wall seconds (column ``s``) of a Snakemake benchmark file."""
    try:
        table = pd.read_csv(path, sep="\t")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataFileError(f"{path}: not a readable benchmark file ({err}); rerun its job "
                            "(snakemake --forcerun)") from err
    if "s" not in table or table.empty:
        raise DataFileError(f"{path}: no 's' column; not a Snakemake benchmark file")
    return float(table["s"].iloc[-1])


def draw_running_time(inputs: Mapping[str, str], spec: Mapping[str, Any]) -> Figure:
    """DEPICT Fig. 3: wall seconds per stage, dataset and method (inputs named
    ``dataset|method|stage``)."""
    seconds: dict[tuple[str, str], dict[str, float]] = {}
    for key, path in inputs.items():
        dataset, method, stage = key.split("|")
        seconds.setdefault((dataset, method), {})[stage] = _seconds(path)
    order = {dataset: i for i, dataset in enumerate(spec.get("datasets", []))}
    runs = sorted(seconds, key=lambda r: (order.get(r[0], len(order)), r[1]))
    fig = Figure(figsize=(max(6.0, 0.32 * len(runs) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    colours = palette(len(TIMED_STAGES))
    bottom = np.zeros(len(runs))
    for i, stage in enumerate(TIMED_STAGES):
        values = np.array([seconds[r].get(stage, 0.0) for r in runs])
        if values.any():
            ax.bar(range(len(runs)), values, bottom=bottom, color=colours[i], label=stage)
            bottom += values
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:.0f}", ha="center", va="bottom", fontsize=6)
    several = len({dataset for dataset, _ in runs}) > 1
    ax.set_xticks(range(len(runs)), [f"{m} ({d})" if several else m for d, m in runs],
                  rotation=90, fontsize=7)
    ax.set_ylabel("wall seconds")
    ax.legend(fontsize=8)
    ax.set_title("Running time per method (a shared autoencoder counted in each method)",
                 fontsize=9)
    return fig


def draw_agreement(inputs: Mapping[str, str], spec: Mapping[str, Any]) -> Figure:
    """SAIP Fig. 1(a): the P1/P2 disagreement and ACC over epochs."""
    hist = read_history(inputs["history"], "fine-tuning")
    rows = hist[hist["kind"] == "target"] if hist is not None and "kind" in hist else None
    if rows is None or rows.empty or "disagreement" not in rows:
        raise DataFileError(f"{inputs['history']}: no per-epoch rows with 'disagreement' (a "
                            "SAIP fine-tuning history has one per epoch); rerun the job")
    epochs = np.arange(len(rows))
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, 100 * rows["disagreement"], color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("P1 / P2 disagreement (% of samples)", color="tab:blue")
    if "acc" in rows and rows["acc"].notna().any():
        right = ax.twinx()
        right.plot(epochs, 100 * rows["acc"], color="tab:red")
        right.set_ylabel("ACC (%)", color="tab:red")
    ax.set_title(f"{spec.get('dataset', '')}, {spec.get('method', '')}, seed "
                 f"{spec.get('seed', 0)}", fontsize=9)
    return fig


def draw_sensitivity(inputs: Mapping[str, str], spec: Mapping[str, Any]) -> Figure:
    """A sweep's ACC and NMI against its grid values."""
    table = pd.read_csv(inputs["sweeps"])
    rows = table[table["sweep"] == spec["sweep"]]
    if rows.empty:
        raise DataFileError(f"{inputs['sweeps']}: no rows of sweep '{spec['sweep']}'; rerun "
                            "the aggregate job")
    keys = [c for c in table.columns if c.startswith("value:") and rows[c].notna().any()]
    nmi = nmi_variant("", spec.get("paper"))  # the NMI normalisation of the sweep's paper
    metrics = [("acc", "ACC"), (nmi, f"NMI ({nmi.removeprefix('nmi_')})")]
    datasets = list(dict.fromkeys(rows["dataset"]))
    if len(keys) == 2:
        fig, axes = _grid(len(datasets) * 2, width=3.4)
        for i, (dataset, (col, label)) in enumerate(
                (d, m) for d in datasets for m in metrics):
            mine = rows[rows["dataset"] == dataset]
            grid = mine.pivot_table(index=keys[0], columns=keys[1], values=f"{col}_mean")
            ax = axes[i]
            image = ax.imshow(100 * grid.to_numpy(), cmap="viridis", origin="lower")
            ax.set_xticks(range(grid.shape[1]), [str(v) for v in grid.columns], fontsize=7)
            ax.set_yticks(range(grid.shape[0]), [str(v) for v in grid.index], fontsize=7)
            ax.set_xlabel(keys[1].removeprefix("value:"))
            ax.set_ylabel(keys[0].removeprefix("value:"))
            ax.set_title(f"{dataset}: {label} (%)", fontsize=9)
            fig.colorbar(image, ax=ax, shrink=0.8)
    else:
        fig, axes = _grid(2, width=4.0)
        for ax, (col, label) in zip(axes, metrics, strict=True):
            for dataset in datasets:
                mine = rows[rows["dataset"] == dataset]
                if len(keys) == 1 and pd.api.types.is_numeric_dtype(mine[keys[0]]):
                    mine = mine.sort_values(keys[0])
                    x = mine[keys[0]].to_numpy(dtype=float)
                else:
                    x = np.arange(len(mine))
                    ax.set_xticks(x, [", ".join(str(r[k]) for k in keys)
                                      for _, r in mine.iterrows()], rotation=45, fontsize=7)
                std = mine[f"{col}_std"].fillna(0).to_numpy()
                ax.errorbar(x, 100 * mine[f"{col}_mean"], yerr=100 * std, marker="o",
                            capsize=3, label=dataset)
                base = mine["point"] == "base"
                ax.scatter(x[base.to_numpy()], 100 * mine.loc[base, f"{col}_mean"], s=80,
                           facecolors="none", edgecolors="k", zorder=3)
            ax.set_xlabel(", ".join(k.removeprefix("value:") for k in keys))
            ax.set_ylabel(f"{label} (%)")
            ax.legend(fontsize=7)
    seeds = sorted({int(n) for n in rows["n_seeds"]})
    fig.suptitle(f"Sweep {spec['sweep']} (base method {rows['base'].iloc[0]}, circled; mean ± "
                 f"std over {', '.join(map(str, seeds))} seed(s))", fontsize=9)
    return fig


def draw_snapshots(inputs: Mapping[str, str], spec: Mapping[str, Any]) -> Figure:
    """RMN-GMM Fig. 5: t-SNE of the representation at four epochs of fine-tuning."""
    y = _labels(inputs)
    snaps, phases = read_snapshots(inputs["snapshots"])
    if not phases:
        raise DataFileError(f"{inputs['snapshots']}: no snapshots (the method trained "
                            "nothing); rerun the fine-tuning job")
    last_phase = phases[-1]
    mine = [i for i, p in enumerate(phases) if p == last_phase]
    picks = sorted({mine[round(j * (len(mine) - 1) / 3)] for j in range(4)})
    seed = int(spec.get("seed", 0))
    idx = snaps["index"]
    sub = subset_indices(idx.size, TSNE_POINTS, seed)
    classes = np.unique(y, return_inverse=True)[1][idx][sub]
    fig, axes = _grid(len(picks))
    colours = palette(int(classes.max()) + 1)
    for ax, i in zip(axes, picks, strict=True):
        scatter_map(ax, tsne_2d(snaps["embeddings"][i][sub], seed), classes, colours,
                    f"epoch {snaps['epoch'][i]:g} (step {snaps['step'][i]})", size=3)
    fig.suptitle(f"{spec.get('dataset', '')}, {spec.get('method', '')}, seed {seed}: t-SNE of "
                 f"the representation of {sub.size} samples during fine-tuning, coloured by "
                 "class", fontsize=9)
    return fig


def draw_covariances(inputs: Mapping[str, str], spec: Mapping[str, Any]) -> Figure:
    """RMN-GMM Fig. 6: the within-class covariance of the pretrained embedding."""
    y = _labels(inputs)
    z = _array(inputs, ("embedding", "Z")).astype(np.float64)
    classes = np.unique(y)
    fig, axes = _grid(classes.size, width=2.6)
    for ax, c in zip(axes, classes, strict=True):
        cov = np.cov(z[y == c], rowvar=False)
        cov = np.atleast_2d(cov)
        off = float((cov ** 2).sum() - (np.diag(cov) ** 2).sum()) / max(float((cov ** 2).sum()),
                                                                          1e-300)
        limit = float(np.abs(cov).max()) or 1.0
        ax.imshow(cov, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"class {c}: off-diagonal {100 * off:.0f}%", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{spec.get('dataset', '')}, seed {spec.get('seed', 0)}: covariance of the "
                 "autoencoder's features\nwithin each class (before GMM training); share of the "
                 "squared entries off the diagonal", fontsize=9)
    return fig


def _images(x: np.ndarray) -> np.ndarray:
    """(n, C, H, W) or (n, D) inputs as (n, H, W) or (n, H, W, 3) images in [0, 1]."""
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise DataFileError(f"samples of {x.shape[1]} features are not square images")
        x = x.reshape(-1, 1, side, side)
    out = x.transpose(0, 2, 3, 1)
    out = out[..., 0] if out.shape[-1] == 1 else out
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo) if hi > lo else out


def draw_nearest_farthest(inputs: Mapping[str, str], spec: Mapping[str, Any]) -> Figure:
    """RMN-GMM Fig. 7: per cluster, the samples nearest to and farthest from its centre."""
    y = _labels(inputs)
    arrays, _ = read_arrays(inputs["labels"], required=["labels", "embedding"],
                            optional=["means"])
    labels, z = arrays["labels"].astype(np.int64), arrays["embedding"].astype(np.float64)
    images = _images(_array(inputs, ("data", "X")))
    rows, cols = linear_sum_assignment(contingency(y, labels), maximize=True)
    clusters = [int(np.unique(labels)[c]) for _, c in sorted(zip(rows, cols, strict=True))]
    means = arrays.get("means")
    fig = Figure(figsize=(max(7.0, 1.0 * len(clusters) + 0.6), 2.2 * N_SHOWN + 0.8),
                 layout="constrained")
    halves = fig.subfigures(2, 1)
    for half, (title, far) in zip(halves, (("(a) nearest to their centres", False),
                                           ("(b) farthest from their centres", True)),
                                  strict=True):
        axes = half.subplots(N_SHOWN, len(clusters), squeeze=False)
        half.suptitle(title, fontsize=9)
        for j, cluster in enumerate(clusters):
            members = np.flatnonzero(labels == cluster)
            centre = means[cluster] if means is not None else z[members].mean(axis=0)
            order = members[np.argsort(np.linalg.norm(z[members] - centre, axis=1))]
            shown = order[::-1][:N_SHOWN] if far else order[:N_SHOWN]
            for i in range(N_SHOWN):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if i < shown.size:
                    ax.imshow(images[shown[i]], cmap="gray")
                    ax.set_xlabel(f"class {y[shown[i]]}", fontsize=6)
                if i == 0:
                    ax.set_title(f"cluster {cluster}", fontsize=7)
    fig.suptitle(f"{spec.get('dataset', '')}, {spec.get('method', '')}, seed "
                 f"{spec.get('seed', 0)}:\nEuclidean distance to "
                 f"{'the GMM means' if means is not None else 'the members mean'}; columns in "
                 "the order of their matched classes", fontsize=9)
    return fig


DRAW = {"embeddings": draw_embeddings, "stages": draw_stages,
        "running_time": draw_running_time, "agreement": draw_agreement,
        "sensitivity": draw_sensitivity, "snapshots": draw_snapshots,
        "covariances": draw_covariances, "nearest_farthest": draw_nearest_farthest}
assert set(DRAW) == set(KINDS)


def make_paper_figure(kind: str, inputs: Mapping[str, str], spec: Mapping[str, Any],
                      out_path: str | Path) -> Path:
    """Draw figure ``kind`` and write it to ``out_path`` (PNG, atomically)."""
    if kind not in DRAW:
        raise DataFileError(f"unknown figure kind '{kind}'; valid kinds: {', '.join(KINDS)}")
    fig = DRAW[kind](inputs, spec)
    out = Path(out_path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return out
