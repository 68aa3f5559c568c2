"""Clustering metrics: ACC (Hungarian), NMI (max / sqrt / arithmetic), ARI, pair precision.

Pure functions on 1-D integer label arrays (methods.md §0.1). ``y_true`` holds the classes
``l``, ``y_pred`` the predicted clusters ``c``; the two may use different label sets and
different numbers of labels. All metrics are returned as plain floats in [0, 1] (ARI can be
negative).

Degenerate cases, defined here once:

* NMI when both partitions have a single block (one class and one cluster): both entropies
  are zero and I/norm is 0/0. The partitions are identical, so NMI = 1.0 (scikit-learn's
  convention). When only one side has a single block, I = 0 and NMI = 0.0.
* Pair precision when no two samples share a predicted cluster (every cluster a singleton,
  or n = 1): no pair was put together, so none was put together wrongly; precision = 1.0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

NmiVariant = Literal["max", "sqrt", "arithmetic"]

#: Our NMI variant names -> scikit-learn's ``average_method``.
_SKLEARN_AVERAGE = {"max": "max", "sqrt": "geometric", "arithmetic": "arithmetic"}

#: Keys of :func:`all_metrics`, in the order tables show them.
METRIC_KEYS: tuple[str, ...] = (
    "acc", "nmi_max", "nmi_sqrt", "nmi_arithmetic", "ari", "pair_precision",
)


def check_labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two label vectors and return them as 1-D numpy integer arrays.

    Raises ``ValueError`` when either is not 1-D, is empty, holds non-integer values, or
    when their lengths differ.
    """
    out = []
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        arr = np.asarray(labels)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"{name} is empty: metrics need at least one labelled sample")
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}; "
                             "cast cluster ids with .astype(np.int64) first")
        out.append(arr)
    if out[0].shape[0] != out[1].shape[0]:
        raise ValueError(f"y_true and y_pred differ in length: {out[0].shape[0]} true labels "
                         f"vs {out[1].shape[0]} predicted labels")
    return out[0], out[1]


def contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Contingency table ``n_ij``: rows are true classes, columns predicted clusters.

    Shape (number of classes, number of clusters), both in sorted label order, dtype int64.
    """
    y_true, y_pred = check_labels(y_true, y_pred)
    return np.asarray(contingency_matrix(y_true, y_pred), dtype=np.int64)


def cluster_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unsupervised accuracy: the best one-to-one map from clusters to classes (Hungarian).

    ``ACC = max_m (1/n) sum_i 1{l_i = m(c_i)}``. The assignment runs on the rectangular
    contingency table, so the numbers of clusters and classes may differ: clusters (or
    classes) left unmatched count as wrong.
    """
    table = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def nmi(y_true: np.ndarray, y_pred: np.ndarray, variant: NmiVariant = "sqrt") -> float:
    """Normalised mutual information ``I(l; c) / norm``.

    ``variant`` picks the normaliser: ``"max"`` = max(H(l), H(c)), ``"sqrt"`` =
    sqrt(H(l) H(c)) (geometric), ``"arithmetic"`` = (H(l) + H(c)) / 2. One class and one
    cluster gives 1.0 (see the module docstring).
    """
    if variant not in _SKLEARN_AVERAGE:
        raise ValueError(f"unknown NMI variant {variant!r}; choose one of "
                         f"{sorted(_SKLEARN_AVERAGE)}")
    y_true, y_pred = check_labels(y_true, y_pred)
    return float(normalized_mutual_info_score(
        y_true, y_pred, average_method=_SKLEARN_AVERAGE[variant]))


def ari(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Hubert-Arabie adjusted Rand index (scikit-learn's ``adjusted_rand_score``)."""
    y_true, y_pred = check_labels(y_true, y_pred)
    return float(adjusted_rand_score(y_true, y_pred))


def _pairs(counts: np.ndarray) -> float:
    """Number of unordered pairs, sum_k C(counts_k, 2), in float64 (no int overflow)."""
    counts = np.asarray(counts, dtype=np.float64)
    return float((counts * (counts - 1.0) / 2.0).sum())


def pair_precision(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pair-counting precision ``sum_ij C(n_ij, 2) / sum_j C(b_j, 2)``.

    Of all sample pairs put in the same predicted cluster (``b_j`` = cluster sizes), the
    fraction that share a true label (SAIP's "Precision", methods.md §0.1). With no pair in
    any predicted cluster the value is 1.0 (see the module docstring).
    """
    table = contingency(y_true, y_pred)
    together = _pairs(table.sum(axis=0))
    if together == 0.0:
        return 1.0
    return _pairs(table) / together


#: a clustering whose largest cluster holds more than this share of the points has collapsed
COLLAPSE_LARGEST = 0.9


def cluster_shares(y_pred: np.ndarray, n_clusters: int) -> dict[str, float | int | bool]:
    """Label-free sizes of a clustering (N,) into ``n_clusters``: the shares of the smallest and
    largest cluster, the number of populated clusters and whether it collapsed (one cluster
    above :data:`COLLAPSE_LARGEST` of the points, or fewer than K/2 clusters populated)."""
    y = np.asarray(y_pred).reshape(-1).astype(np.int64)
    counts = np.bincount(y, minlength=n_clusters)[:n_clusters]
    shares = counts / max(1, y.size)
    populated = int((counts > 0).sum())
    largest = float(shares.max())
    return {"smallest_share": float(shares.min()), "largest_share": largest,
            "populated": populated,
            "collapsed": bool(largest > COLLAPSE_LARGEST or populated < n_clusters / 2)}


def all_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Every metric, keyed as in :data:`METRIC_KEYS`.

    Raises ``ValueError`` for label vectors of different lengths, empty vectors or
    non-integer labels.
    """
    y_true, y_pred = check_labels(y_true, y_pred)
    return {
        "acc": cluster_acc(y_true, y_pred),
        "nmi_max": nmi(y_true, y_pred, "max"),
        "nmi_sqrt": nmi(y_true, y_pred, "sqrt"),
        "nmi_arithmetic": nmi(y_true, y_pred, "arithmetic"),
        "ari": ari(y_true, y_pred),
        "pair_precision": pair_precision(y_true, y_pred),
    }
