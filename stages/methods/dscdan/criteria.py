"""DSCDAN's label-free run report (docs/reproduction/dscdan-choices.md), read from the runs' files.

    python -m stages.methods.dscdan.criteria report \
        RUN/results/finetune/mnist5k/dscdan/seed{0,1,2} [--out CSV]

prints one row per clustering-phase folder (``results/finetune/D/METHOD/seedS`` with
``history.csv`` and ``labels.h5``) with what the page reads to say where a run ends and why:

* the pretraining it started from (its last ``monitor`` row, found through the labels'
  provenance: ``results/pretrain/D/AE/seedS/history.csv``): the plain reconstruction on the
  fixed monitor images (``eval_plain``), the active code dimensions, and the mixture prior's
  sharpness and cluster shares;
* the warm start (its ``warm_start`` row): the targets it used (``prior`` or the ``kmeans``
  fallback), the step it stopped at, the agreement it reached, whether that is its rule's
  (``converged``) and the head's sharpness then;
* the clustering phase: its steps and checks, whether its stop rule ended it (``stopped_by_rule``;
  otherwise the cap of checks), the share of labels that change per prediction (mean and
  largest), the smallest and largest cluster share over the checks and at the end, the head's
  sharpness at the first and last check, the batch kNN affinity of the first and last logged
  step, and at step 0 the spectral term's share of the clustering net's gradient and the
  autoencoder terms', the KL's and the spectral term's shares over all parameters;
* ``nmi_init``: the agreement (NMI, sqrt) of the final labels with the init's k-means labels on
  the pretrained codes (``results/init/D/AE/seedS/INIT.h5``: what ``dscdan-convae-mi-rs``
  reports), 1 when the clustering phase ends where its pretraining's clusters are.

With several folders a ``mean`` row follows. The true labels, ACC and NMI to them, are never
read (the ``acc`` and ``nmi`` columns of the histories are skipped).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.plumbing.artifacts import read_arrays
from stages.plumbing.cli import main_for, print_table
from stages.plumbing.errors import DataFileError
from stages.reporting.metrics import cluster_shares, nmi

#: the pretraining's monitor-row columns reported, and their names in the report
PRETRAIN_COLUMNS = {"eval_plain": "pre_eval_plain", "active_dims": "pre_active_dims",
                    "prior_sharpness": "prior_sharpness",
                    "prior_smallest_share": "prior_smallest",
                    "prior_largest_share": "prior_largest"}
#: the gradient-share columns of the step-0 ``gradient_share`` row, and their report names
GRADIENT_COLUMNS = {"grad_clustering_net_share_spectral": "grad_net_spectral",
                    "grad_share_autoencoder": "grad_autoencoder",
                    "grad_share_kl": "grad_kl", "grad_share_spectral": "grad_spectral"}


def _rows(history: pd.DataFrame, kind: str) -> pd.DataFrame:
    return history[history["kind"] == kind].sort_values("step", kind="stable")


def _first_last(frame: pd.DataFrame, column: str) -> tuple[float, float]:
    values = frame[column].dropna() if column in frame else pd.Series(dtype=float)
    if values.empty:
        return float("nan"), float("nan")
    return float(values.iloc[0]), float(values.iloc[-1])


def pretraining_row(history: pd.DataFrame) -> dict[str, Any]:
    """The last ``monitor`` row of a DSCDAN pretraining history, in the report's names (NaN for
    a column the history lacks: a pretraining without the mixture prior)."""
    monitor = _rows(history, "monitor")
    if monitor.empty:
        raise DataFileError("no monitor rows: not a DSCDAN pretraining history")
    last = monitor.iloc[-1]
    return {name: float(last[col]) if col in last and pd.notna(last[col]) else float("nan")
            for col, name in PRETRAIN_COLUMNS.items()}


def clustering_row(history: pd.DataFrame, info: dict[str, Any], labels: np.ndarray,
                   n_clusters: int) -> dict[str, Any]:
    """The warm start's and the clustering phase's measures of one DSCDAN fine-tuning.

    Args:
        history: its ``history.csv``.
        info: the ``info`` attribute of its ``labels.h5`` (``steps``, ``checks``,
            ``converged``).
        labels: its final labels (N,).
        n_clusters: K.
    """
    checks = _rows(history, "check")
    if checks.empty:
        raise DataFileError("no check rows: not a DSCDAN clustering phase (a head-less method's "
                            "folder, such as dscdan-convae-mi-rs, has none)")
    row: dict[str, Any] = {"steps": int(info.get("steps", checks["step"].max())),
                           "checks": int(info.get("checks", len(checks))),
                           "stopped_by_rule": bool(info.get("converged", False))}
    warm = _rows(history, "warm_start")
    if warm.empty:
        row.update(ws_from="none", ws_steps=0, ws_agreement=float("nan"), ws_converged=False,
                   ws_sharpness=float("nan"))
    else:
        w = warm.iloc[-1]
        row.update(ws_from=str(w.get("warm_start_targets_from", "")), ws_steps=int(w["step"]),
                   ws_agreement=float(w["agreement"]), ws_converged=bool(w["converged"]),
                   ws_sharpness=float(w["sharpness"]))
    change = checks.get("delta_label", pd.Series(dtype=float)).dropna()
    row["label_change_mean"] = float(change.mean()) if len(change) else float("nan")
    row["label_change_max"] = float(change.max()) if len(change) else float("nan")
    final = cluster_shares(labels, n_clusters)
    row["smallest_min"] = float(min([*checks["smallest_share"].dropna(),
                                     final["smallest_share"]]))
    row["largest_max"] = float(max([*checks["largest_share"].dropna(), final["largest_share"]]))
    row["smallest_end"], row["largest_end"] = final["smallest_share"], final["largest_share"]
    row["populated_end"] = final["populated"]
    row["sharpness_first"], row["sharpness_last"] = _first_last(checks, "sharpness")
    row["knn_affinity_first"], row["knn_affinity_last"] = _first_last(
        _rows(history, "train"), "knn_affinity")
    shares = _rows(history, "gradient_share")
    for col, name in GRADIENT_COLUMNS.items():
        row[name] = (float(shares.iloc[0][col]) if not shares.empty and col in shares
                     and pd.notna(shares.iloc[0][col]) else float("nan"))
    return row


def read_run(folder: str | Path) -> dict[str, Any]:
    """The report's row of one clustering-phase folder ``RESULTS/finetune/D/METHOD/seedS``: its
    own files, the pretraining and init files its provenance names under ``RESULTS``."""
    folder = Path(folder)
    if not (folder / "history.csv").exists():
        raise DataFileError(f"{folder}: no history.csv: an unfinished run (wait for it, or leave "
                            "it out) or not a fine-tuning folder (results/finetune/D/METHOD/seedS)")
    arrays, attrs = read_arrays(folder / "labels.h5", required=["labels"])
    config = attrs.get("provenance", {}).get("config", {})
    if config.get("head") != "dscdan":
        raise DataFileError(f"{folder}: the head is '{config.get('head')}', not dscdan: pass "
                            "the folders of the dscdan methods' clustering phases")
    results, dataset, seed = folder.parents[3], folder.parent.parent.name, folder.name
    labels = np.asarray(arrays["labels"]).reshape(-1)
    n_clusters = int(attrs.get("n_clusters", int(labels.max()) + 1))
    row: dict[str, Any] = {"method": str(attrs.get("method", folder.parent.name)),
                           "seed": int(attrs.get("seed", seed.removeprefix("seed")))}
    pretrain = results / "pretrain" / dataset / str(config.get("ae")) / seed / "history.csv"
    if not pretrain.exists():
        raise DataFileError(f"{pretrain}: the pretraining history of {folder} is missing: pass "
                            "folders inside the run's results/ tree as the workflow wrote it")
    try:
        row.update(pretraining_row(pd.read_csv(pretrain)))
        row.update(clustering_row(pd.read_csv(folder / "history.csv"), attrs.get("info", {}),
                                  labels, n_clusters))
    except DataFileError as err:
        raise DataFileError(f"{folder}: {err}") from err
    init_file = (results / "init" / dataset / str(config.get("ae")) / seed
                 / f"{config.get('init')}.h5")
    init_labels = read_arrays(init_file, required=["labels"])[0]["labels"]
    row["nmi_init"] = nmi(np.asarray(init_labels).reshape(-1), labels, "sqrt")
    return row


def report(folders: Sequence[str | Path]) -> pd.DataFrame:
    """:func:`read_run` of each folder, one row each, and a ``mean`` row over them when there
    are several (numbers averaged, booleans as the share that is true)."""
    rows = [read_run(f) for f in folders]
    table = pd.DataFrame(rows)
    if len(rows) > 1:
        numeric = table.drop(columns=["method", "seed", "ws_from"]).astype(float).mean()
        table = pd.concat([table, pd.DataFrame([{"method": "mean", "seed": "", "ws_from": "",
                                                  **numeric.to_dict()}])], ignore_index=True)
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.methods.dscdan.criteria",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="the label-free measures of DSCDAN clustering phases")
    rep.add_argument("folders", nargs="+", type=Path,
                     help="fine-tuning folders results/finetune/D/METHOD/seedS")
    rep.add_argument("--out", help="also write the table here (CSV)")
    return parser


def run(args: argparse.Namespace) -> None:
    table = report(args.folders)
    print_table(table.set_index(["method", "seed"]).T)
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main_for(build_parser, run)
