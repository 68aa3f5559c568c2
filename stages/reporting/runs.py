"""One run's predictions scored against the true labels: :func:`evaluate` builds the record
the ``evaluate`` stage writes (``python -m stages.evaluate``).

The record is one JSON with the run's identity (dataset, method, seed, family), sizes, every metric
of :func:`stages.reporting.metrics.all_metrics`, the stage timings, device, config hash and package
versions taken from the labels file. Inconsistent inputs raise :class:`DataFileError` and
write nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.plumbing.artifacts import read_arrays
from stages.plumbing.errors import DataFileError
from stages.reporting.metrics import all_metrics, cluster_shares

log = logging.getLogger("stages.reporting.runs")

#: Attributes a labels file must carry.
REQUIRED_LABEL_ATTRS = ("dataset", "method", "seed")


def precision_name(precision: Any) -> str | None:
    """The record's name of a stage's effective precision: ``fp32`` for ``32`` (a string that
    CSV readers do not take for a number), ``bf16-mixed`` as it is; None where the labels carry
    none (a raw-input baseline, or a file written before precisions were recorded)."""
    if precision is None:
        return None
    return "fp32" if str(precision) == "32" else str(precision)


def dataset_name(data_path: str | Path, data_attrs: dict[str, Any]) -> str:
    """The dataset's name: the data file's ``name`` attribute, else its file stem."""
    return str(data_attrs.get("name") or Path(data_path).stem)


@dataclass
class Run:
    """One run's inputs, checked against each other by :func:`load_run`."""

    name: str                          #: dataset name (data file's ``name`` attribute)
    y_true: np.ndarray                 #: (N,) int true classes
    y_pred: np.ndarray                 #: (N,) int predicted clusters
    data_attrs: dict[str, Any]         #: attributes of the data file
    attrs: dict[str, Any]              #: attributes of the labels file
    embedding: np.ndarray | None = None  #: (N, d) float, when the labels file has one
    X: np.ndarray | None = None        #: (N, ...) raw inputs, when asked for


def load_run(data_path: str | Path, labels_path: str | Path, *,
             embedding: bool = False, raw_if_no_embedding: bool = False) -> Run:
    """Read a data file and a labels file and check that they belong together.

    ``embedding`` also reads the labels file's optional ``embedding``;
    ``raw_if_no_embedding`` reads the data file's ``X`` when there is no embedding (shallow
    baselines). Raises :class:`DataFileError` when a file is missing or incomplete, when the
    labels file names another dataset, or when the numbers of samples differ.
    """
    runs, attrs = read_arrays(labels_path, required=["labels"],
                              optional=["embedding"] if embedding else [])
    need_x = raw_if_no_embedding and "embedding" not in runs
    data, data_attrs = read_arrays(data_path, required=["y", "X"] if need_x else ["y"])
    y_true = np.asarray(data["y"])
    y_pred = np.asarray(runs["labels"])

    missing = [key for key in REQUIRED_LABEL_ATTRS if key not in attrs]
    if missing:
        raise DataFileError(f"{labels_path}: missing attribute(s) {missing}; the fine-tuning "
                            "stage writes them. Delete the file and rerun that stage.")
    name = dataset_name(data_path, data_attrs)
    if str(attrs["dataset"]) != name:
        raise DataFileError(f"{labels_path}: labels are for dataset {attrs['dataset']!r} but "
                            f"{data_path} holds dataset {name!r}; check the two paths.")
    if y_pred.ndim != 1 or y_pred.shape[0] != y_true.shape[0]:
        raise DataFileError(f"{labels_path}: 'labels' has shape {y_pred.shape} but {data_path} "
                            f"has {y_true.shape[0]} samples; the labels file is stale or from "
                            "another data file: delete it and rerun the fine-tuning stage.")
    for path, arr, what in ((data_path, y_true, "y"), (labels_path, y_pred, "labels")):
        if arr.dtype.kind not in "iu":
            raise DataFileError(f"{path}: '{what}' must hold integer labels, got dtype "
                                f"{arr.dtype}; regenerate the file.")
    emb = runs.get("embedding")
    if emb is not None and (emb.ndim != 2 or emb.shape[0] != y_true.shape[0]):
        raise DataFileError(f"{labels_path}: 'embedding' has shape {emb.shape}, expected "
                            f"({y_true.shape[0]}, d); delete the file and rerun fine-tuning.")
    return Run(name=name, y_true=y_true, y_pred=y_pred, data_attrs=data_attrs, attrs=attrs,
               embedding=emb, X=data.get("X"))


def history_diagnostics(history_path: str | Path | None) -> dict[str, Any]:
    """Label-free learning signals from a fine-tuning ``history.csv``: the sharpness (mean
    largest soft-assignment probability) of the first and last target/monitor row that has one,
    whether the head ended sharper than it started, and the first step whose assignments
    collapsed (None when none did). SAIP's history also gives the start and end of each of its
    two assignments (``sharpness_p1_start`` ... ``sharpness_p2_end``); its ``sharpness`` is the
    trained one's (``stages.methods.saip.head.trained_assignment``: P2 under the default
    ``detach: p1``, while the labels are argmax P1). Empty when there is no history or no such
    column."""
    if history_path is None or not Path(history_path).exists():
        return {}
    import pandas as pd

    try:
        table = pd.read_csv(history_path)
    except pd.errors.EmptyDataError:
        return {}
    if "kind" not in table.columns:
        return {}
    rows = table[table["kind"].isin(["target", "check"])]
    out: dict[str, Any] = {}
    if "sharpness" in rows.columns:
        sharp = rows["sharpness"].dropna()
        if len(sharp):
            out.update(sharpness_start=float(sharp.iloc[0]), sharpness_end=float(sharp.iloc[-1]),
                       sharper_than_start=bool(sharp.iloc[-1] > sharp.iloc[0]))
    for column in ("sharpness_p1", "sharpness_p2"):  # SAIP's two assignments
        sharp = rows[column].dropna() if column in rows.columns else ()
        if len(sharp):
            out.update({f"{column}_start": float(sharp.iloc[0]),
                        f"{column}_end": float(sharp.iloc[-1])})
    if "collapsed" in rows.columns:
        flagged = rows[rows["collapsed"].astype(str).str.lower() == "true"]
        out["collapse_step"] = int(flagged["step"].iloc[0]) if len(flagged) else None
    return out


def evaluate(data_path: str | Path, labels_path: str | Path,
             history_path: str | Path | None = None,
             schedule: str | None = None) -> dict[str, Any]:
    """Score the labels file against the data file's ``y``; return the metrics record.

    Besides the metrics the record holds label-free diagnostics: the shares of the smallest
    and largest predicted cluster, whether the final labels collapsed, and, from the optional
    fine-tuning history, :func:`history_diagnostics`. ``schedule`` (quick|paper) and the git
    commit of the code that made the labels are recorded with the run.

    Raises :class:`DataFileError` when a file is missing or incomplete, when the labels file
    names another dataset, or when the numbers of labels differ (see :func:`load_run`).
    """
    run_ = load_run(data_path, labels_path)
    y_true, y_pred = run_.y_true, run_.y_pred
    data_attrs, attrs, name = run_.data_attrs, run_.attrs, run_.name

    n_clusters = int(data_attrs.get("n_clusters") or attrs.get("n_clusters")
                     or np.unique(y_true).size)
    n_predicted = int(np.unique(y_pred).size)
    warnings: list[str] = []
    if n_predicted > n_clusters:
        warnings.append(f"{n_predicted} predicted clusters for {n_clusters} classes")
        log.warning("%s: %s", labels_path, warnings[-1])

    prov = attrs.get("provenance") or {}
    if not isinstance(prov, dict):
        prov = {}
    timings = attrs.get("timings") or {}
    if not isinstance(timings, dict):
        raise DataFileError(f"{labels_path}: attribute 'timings' should be a mapping of stage "
                            f"name to seconds, got {timings!r}")
    try:
        stage_seconds = {str(k): float(v) for k, v in timings.items()}
    except (TypeError, ValueError) as err:
        raise DataFileError(f"{labels_path}: attribute 'timings' holds a non-numeric value "
                            f"({timings!r}); regenerate the file.") from err
    diagnostics: dict[str, Any] = cluster_shares(y_pred, n_clusters)
    diagnostics.update(history_diagnostics(history_path))
    if diagnostics["collapsed"]:
        warnings.append(f"the final labels collapsed: largest cluster "
                        f"{100 * diagnostics['largest_share']:.1f}% of the points, "
                        f"{diagnostics['populated']} of {n_clusters} clusters populated")
        log.warning("%s: %s", labels_path, warnings[-1])
    code = prov.get("code") if isinstance(prov.get("code"), dict) else {}
    return {
        "dataset": name,
        "method": str(attrs["method"]),
        "seed": int(attrs["seed"]),
        "family": str(attrs.get("family", "unknown")),
        "n": int(y_true.shape[0]),
        "n_clusters": n_clusters,
        "n_predicted_clusters": n_predicted,
        "metrics": all_metrics(y_true, y_pred),
        "timings": stage_seconds,
        "device": str(attrs.get("device", "unknown")),
        "precision": precision_name(attrs.get("precision")),
        "config_hash": prov.get("config_hash"),
        "schedule": schedule or "unknown",
        "commit": code.get("commit"),
        "commit_dirty": code.get("dirty"),
        "diagnostics": diagnostics,
        "versions": prov.get("versions", {}),
        "warnings": warnings,
        "inputs": {"data": str(data_path), "labels": str(labels_path)},
    }
