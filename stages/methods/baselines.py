"""Shallow baselines on raw inputs: k-means, diagonal GMM and spectral clustering (scikit-learn)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.mixture import GaussianMixture

from stages.errors import ConfigError


def cluster_raw(x: np.ndarray, n_clusters: int, algorithm: str, params: dict[str, Any],
                seed: int) -> np.ndarray:
    """Cluster flattened inputs.

    Args:
        x: samples (N, ...), flattened to (N, D).
        algorithm: ``kmeans`` (``n_init``), ``gmm`` (diagonal covariances, ``reg_covar``,
            ``n_init``) or ``spectral`` (kNN affinity, ``n_neighbors``).
    Returns:
        labels (N,) int64.
    """
    flat = x.reshape(x.shape[0], -1).astype(np.float64 if algorithm == "gmm" else np.float32)
    if algorithm == "kmeans":
        model = KMeans(n_clusters, n_init=int(params.get("n_init", 10)), random_state=seed)
        labels = model.fit_predict(flat)
    elif algorithm == "gmm":
        model = GaussianMixture(n_clusters, covariance_type="diag",
                                reg_covar=float(params.get("reg_covar", 1e-3)),
                                n_init=int(params.get("n_init", 1)), init_params="kmeans",
                                random_state=seed)
        labels = model.fit_predict(flat)
    elif algorithm == "spectral":
        model = SpectralClustering(n_clusters, affinity="nearest_neighbors",
                                   n_neighbors=int(params.get("n_neighbors", 10)),
                                   assign_labels=str(params.get("assign_labels", "cluster_qr")),
                                   random_state=seed, n_jobs=1)
        labels = model.fit_predict(flat)
    else:
        raise ConfigError(f"unknown baseline algorithm '{algorithm}'; valid choices: "
                          "kmeans, gmm, spectral")
    return np.asarray(labels, dtype=np.int64)
