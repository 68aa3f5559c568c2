"""The per-run figure of the ``figures`` stage (``python -m stages.figures``): t-SNE maps
coloured by class and by matched cluster, training curves and label-free diagnostics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment

from stages.plumbing.artifacts import atomic_path
from stages.plumbing.errors import ConfigError, DataFileError
from stages.plumbing.sampling import subset_indices
from stages.reporting.metrics import all_metrics, contingency
from stages.reporting.runs import load_run
from stages.reporting.tables import nmi_variant

log = logging.getLogger("stages.reporting.plots")

#: Features wider than this are reduced by PCA before t-SNE (standard practice, and fast).
PCA_DIM = 50
TSNE_MAX_ITER = 500


def read_history(path: str | Path | None, what: str) -> pd.DataFrame | None:
    """Read a history CSV; ``None`` when no path was given. A given path must exist."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{p}: {what} history not found; leave out the option for runs "
                            "without that stage, or rerun the stage that writes it.")
    try:
        return pd.read_csv(p)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataFileError(f"{p}: not a readable CSV ({err}); delete it and rerun.") from err


def degenerate(features: np.ndarray) -> str | None:
    """Why (n, D) features cannot be mapped by t-SNE (non-finite values, or every sample the
    same: a collapsed embedding), or None when they can."""
    x = np.asarray(features, dtype=np.float64).reshape(features.shape[0], -1)
    if not np.isfinite(x).all():
        return "non-finite values"
    if x.shape[0] > 1 and float(x.std(axis=0).max()) < 1e-8:
        return "every sample has the same embedding"
    return None


def tsne_2d(features: np.ndarray, seed: int) -> np.ndarray:
    """(n, D) features -> (n, 2) t-SNE map (PCA to :data:`PCA_DIM` first when D is larger).
    Degenerate features (:func:`degenerate`) are plotted as their first two coordinates (zeros
    where not finite): t-SNE would divide by their zero variance."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32).reshape(features.shape[0], -1)
    n, dim = x.shape
    if n < 5 or dim <= 2 or degenerate(x):  # plot the (padded) coordinates themselves
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        return np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - dim))))
    if dim > PCA_DIM and n > PCA_DIM:
        x = PCA(n_components=PCA_DIM, random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, (n - 1) / 3.0))
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, max_iter=TSNE_MAX_ITER,
                random_state=seed)
    return tsne.fit_transform(x)


def matched_colours(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour indices for true labels and predicted clusters.

    Classes get 0..K-1 in sorted order; each predicted cluster gets the index of the class
    it is matched to by the Hungarian assignment, unmatched clusters K, K+1, ...
    """
    classes, true_idx = np.unique(y_true, return_inverse=True)
    clusters, pred_idx = np.unique(y_pred, return_inverse=True)
    rows, cols = linear_sum_assignment(contingency(y_true, y_pred), maximize=True)
    colour = np.full(clusters.size, -1, dtype=np.int64)
    colour[cols] = rows
    unmatched = np.flatnonzero(colour < 0)
    colour[unmatched] = classes.size + np.arange(unmatched.size)
    return true_idx, colour[pred_idx]


def palette(n_colours: int) -> np.ndarray:
    """(n_colours, 4) RGBA colours: tab10 first (the classes), then Dark2, Set1, Set2; turbo
    samples when more are needed."""
    import matplotlib as mpl

    colours: list[Any] = []
    for name in ("tab10", "Dark2", "Set1", "Set2"):
        colours += list(mpl.colormaps[name].colors)
    rgba = mpl.colors.to_rgba_array(colours)
    if n_colours > len(rgba):
        return mpl.colormaps["turbo"](np.linspace(0.0, 1.0, n_colours))
    return rgba[:n_colours]


def scatter_map(ax: Any, xy: np.ndarray, colour: np.ndarray, colours: np.ndarray,
                title: str, size: float = 4) -> None:
    """A 2-D map without ticks: points ``xy`` (n, 2) in ``colours[colour]`` ((K, 4) RGBA
    indexed by (n,) ints)."""
    ax.scatter(xy[:, 0], xy[:, 1], c=colours[colour], s=size, linewidths=0)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_finetune(ax: Any, hist: pd.DataFrame) -> None:
    x = hist["step"] if "step" in hist else pd.Series(np.arange(len(hist)))
    has_loss = hist["loss"].notna()  # target-update rows carry no loss: skip them, no gaps
    ax.plot(x[has_loss], hist["loss"][has_loss], color="tab:blue", lw=1, label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("fine-tuning loss", color="tab:blue")
    scores = [c for c in ("acc", "nmi") if c in hist and hist[c].notna().any()]
    if scores:
        ax2 = ax.twinx()
        for col, colour in zip(scores, ("tab:red", "tab:green"), strict=False):
            keep = hist[col].notna()
            ax2.plot(x[keep], hist.loc[keep, col], marker="o", ms=3, lw=1, color=colour,
                     label=col.upper())
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("ACC / NMI at target updates")
        ax2.legend(loc="lower right", fontsize=8)
    ax.set_title("fine-tuning", fontsize=9)


#: label-free diagnostics of a fine-tuning history drawn in the diagnostics panel
DIAGNOSTICS: tuple[tuple[str, str], ...] = (
    ("sharpness", "sharpness (mean max p)"), ("smallest_share", "smallest cluster share"),
    ("largest_share", "largest cluster share"), ("delta_label", "labels changed"),
    ("disagreement", "P1/P2 argmax disagreement"),
    ("clipped_share", "loss share from clipped entries"))


def has_diagnostics(hist: pd.DataFrame | None) -> bool:
    """Whether a fine-tuning history holds any of :data:`DIAGNOSTICS`."""
    return hist is not None and any(c in hist and hist[c].notna().any() for c, _ in DIAGNOSTICS)


def _plot_diagnostics(ax: Any, hist: pd.DataFrame) -> None:
    """The label-free signals at each target update / monitor step, and the loss terms' shares
    of the gradient norm at the start of fine-tuning (in the title)."""
    for (col, label), colour in zip(DIAGNOSTICS, ("tab:red", "tab:green", "tab:olive",
                                                  "tab:grey", "tab:cyan", "tab:brown"),
                                    strict=True):
        if col in hist and hist[col].notna().any():
            keep = hist[col].notna()
            ax.plot(hist.loc[keep, "step"], hist.loc[keep, col], marker="o", ms=2, lw=1,
                    color=colour, label=label)
    if "collapsed" in hist:
        flagged = hist[hist["collapsed"].astype(str).str.lower() == "true"]
        if len(flagged):
            ax.axvline(flagged["step"].iloc[0], color="black", lw=1, ls="--",
                       label="collapsed")
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.legend(loc="upper right", fontsize=7)
    title = "label-free diagnostics"
    if "kind" in hist:
        share = hist[hist["kind"] == "gradient_share"]
        cols = [c for c in share.columns if c.startswith("grad_share_") and share[c].notna().any()]
        if len(share) and cols:
            title += ("; gradient shares at start: " + ", ".join(
                f"{c.removeprefix('grad_share_')} {100 * share[c].iloc[0]:.0f}%" for c in cols))
    ax.set_title(title, fontsize=9)


def _plot_pretrain(ax: Any, hist: pd.DataFrame) -> None:
    """Training loss (and validation loss where early stopping kept one) against the step;
    multi-phase objectives (DEPICT's SdA layers, RdA) mark where each phase starts."""
    x_name = "step" if "step" in hist else "epoch" if "epoch" in hist else None
    kind = hist["kind"] if "kind" in hist else pd.Series(["train"] * len(hist), index=hist.index)
    for name, colour, style in (("train", "tab:purple", "-"), ("validation", "tab:orange", "--")):
        part = hist[kind == name]
        if part.empty:
            continue
        x = part[x_name] if x_name else pd.Series(np.arange(len(part)))
        if "loss" in part and part["loss"].notna().any():
            ax.plot(x, part["loss"], color=colour, lw=1, ls=style, label=name)
    held_out = hist[(kind == "validation") & hist["val_mse"].notna()] if "val_mse" in hist \
        else hist.iloc[:0]
    if len(held_out) and x_name:  # per-pixel MSE of a held-out split, on its own scale
        ax2 = ax.twinx()
        ax2.plot(held_out[x_name], held_out["val_mse"], color="tab:orange", lw=1, ls="--")
        ax2.set_ylabel("held-out per-pixel MSE", color="tab:orange")
    if "phase" in hist and hist["phase"].nunique() > 1 and x_name:
        for start in hist.groupby("phase", sort=False)[x_name].min().iloc[1:]:
            ax.axvline(start, color="grey", lw=0.5, ls=":")
    if (hist["loss"].dropna() > 0).all():
        ax.set_yscale("log")
    if (kind == "validation").any():
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel(x_name or "row")
    ax.set_ylabel("reconstruction loss")
    ax.set_title("pretraining", fontsize=9)


def build_figure(data_path: str | Path, labels_path: str | Path,
                 history_path: str | Path | None = None,
                 pretrain_history_path: str | Path | None = None,
                 n_points: int = 1000, seed: int = 0) -> Figure:
    """Draw the run's figure (see the module docstring for its rows) and return it unsaved."""
    if n_points < 1:
        raise ConfigError(f"--n-points must be at least 1, got {n_points}")
    run = load_run(data_path, labels_path, embedding=True, raw_if_no_embedding=True)
    finetune = read_history(history_path, "fine-tuning")
    pretrain = read_history(pretrain_history_path, "pretraining")
    for hist, path in ((finetune, history_path), (pretrain, pretrain_history_path)):
        if hist is not None and len(hist) and "loss" not in hist:
            raise DataFileError(f"{path}: no 'loss' column (columns: {list(hist.columns)}); "
                                "it is not a training history.")
    curves = [(f, h) for f, h in ((_plot_finetune, finetune), (_plot_pretrain, pretrain))
              if h is not None and len(h)]
    diagnostics = finetune if has_diagnostics(finetune) else None

    scores = all_metrics(run.y_true, run.y_pred)
    family = str(run.attrs.get("family", "unknown"))
    var = nmi_variant(family)
    source = "embedding" if run.embedding is not None else "raw inputs"
    features = run.embedding if run.embedding is not None else run.X
    idx = subset_indices(run.y_true.shape[0], n_points, seed)
    xy = tsne_2d(np.asarray(features)[idx], seed)
    problem = degenerate(np.asarray(features)[idx])
    if problem:
        log.warning("%s: %s of the %s: no t-SNE, its first two coordinates are drawn",
                    labels_path, problem, "embedding" if run.embedding is not None else "inputs")
    true_c, pred_c = matched_colours(run.y_true, run.y_pred)
    colours = palette(int(max(true_c.max(), pred_c.max()) + 1))

    n_rows = 1 + bool(curves) + (diagnostics is not None)
    fig = Figure(figsize=(10, 4.5 * n_rows), layout="constrained")
    grid = fig.add_gridspec(n_rows, 2 * max(1, len(curves)))
    half = max(1, len(curves))
    ax_true = fig.add_subplot(grid[0, :half])
    ax_pred = fig.add_subplot(grid[0, half:])
    scatter_map(ax_true, xy, true_c[idx], colours,
             f"t-SNE of {source} (n={idx.size}): true labels" if not problem
             else f"{source} ({problem}: no t-SNE): true labels")
    scatter_map(ax_pred, xy, pred_c[idx], colours,
             f"predicted clusters ({np.unique(run.y_pred).size}; colour = matched class)")
    for i, (plot, hist) in enumerate(curves):
        width = 2 * max(1, len(curves)) // len(curves)
        plot(fig.add_subplot(grid[1, i * width:(i + 1) * width]), hist)
    if diagnostics is not None:
        _plot_diagnostics(fig.add_subplot(grid[2, :]), diagnostics)
    fig.suptitle(f"{run.name} / {run.attrs['method']} / seed {run.attrs['seed']}: "
                 f"ACC {100 * scores['acc']:.1f}%, NMI ({var.removeprefix('nmi_')}) "
                 f"{100 * scores[var]:.1f}%", fontsize=11)
    return fig


def make_figure(data_path: str | Path, labels_path: str | Path, out_path: str | Path,
                history_path: str | Path | None = None,
                pretrain_history_path: str | Path | None = None,
                n_points: int = 1000, seed: int = 0) -> Path:
    """Draw the run's figure (:func:`build_figure`) and write it to ``out_path`` (PNG,
    atomically)."""
    fig = build_figure(data_path, labels_path, history_path, pretrain_history_path,
                       n_points=n_points, seed=seed)
    out = Path(out_path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return out
