"""The ``kmeans`` init algorithm: scikit-learn k-means on the embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans


def kmeans_init(z: np.ndarray, n_clusters: int, n_init: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means on z (N, d) -> (centres (K, d) float32, labels (N,) int64)."""
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(z)
    return km.cluster_centers_.astype(np.float32), km.labels_.astype(np.int64)


def kmeans_arrays(z: np.ndarray, n_clusters: int, recipe: dict[str, Any],
                  seed: int) -> dict[str, np.ndarray]:
    """The ``kmeans`` init: ``centres`` (K, d) and ``labels`` (N,) of :func:`kmeans_init`."""
    centres, labels = kmeans_init(z, n_clusters, int(recipe.get("n_init", 20)), seed)
    return {"centres": centres, "labels": labels}
