"""The ``knn-graph`` init: the k-nearest-neighbour graph of the latent codes (DSCDAN, Yang et
al., CVPR 2019, Eq. 14 and Sect. 4.3: "probabilistic K-nearest neighbors ... the number of
neighbors is set to 3").

:func:`knn_graph`: exact neighbours (blockwise ``torch.cdist`` + ``topk``, never the N x N
matrix) up to ``approximate_above`` = 10^5 points [default], pynndescent beyond; a point is never
its own neighbour [default]. :func:`gaussian_affinity`: W_ij = exp(-d_ij^2 / (2 sigma^2)) on the
kNN edges, sigma the median distance to the ``scale_neighbor``-th neighbour excluding the
point ([default] 2; SpectralNet's ``scale_nbr = 2`` counts the point itself, so its rule is our
1st). :func:`knn_graph_arrays`: the init's entry point, adding k-means on the codes: the labels
of the "ConvAE + k-means" ablations and, with the head's ``warm_start: none`` or ``kmeans``, the
start of Eq. 19's cluster means m_k (the code loads trained means with its head; the default
``warm_start: prior`` takes the pretrained mixture's). Fine-tuning builds its affinities per
mini-batch [paper]; ``bandwidth: global`` in the method recipe uses this graph's sigma.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.methods.shared.kmeans import kmeans_init
from stages.methods.shared.knn import APPROXIMATE_ABOVE, approximate_knn, exact_knn


def gaussian_affinity(distances: np.ndarray, n_neighbors: int,
                      scale_neighbor: int) -> tuple[np.ndarray, float]:
    """Eq. 14 on kNN distances (N, k'), k' >= max(n_neighbors, scale_neighbor).

    Returns:
        (affinities (N, n_neighbors) float32, sigma): sigma is the median distance to the
        ``scale_neighbor``-th neighbour.
    """
    sigma = max(float(np.median(distances[:, scale_neighbor - 1])), 1e-12)
    weights = np.exp(-distances[:, :n_neighbors] ** 2 / (2.0 * sigma**2))
    return weights.astype(np.float32), sigma


def knn_graph(z: np.ndarray, n_neighbors: int = 3, scale_neighbor: int = 2,
              approximate_above: int = APPROXIMATE_ABOVE, seed: int = 0,
              ) -> dict[str, np.ndarray]:
    """The kNN graph of z (N, d): exact up to ``approximate_above`` points, approximate beyond.

    Returns:
        ``neighbors`` (N, k) int64, ``distances`` (N, k) float32, ``affinities`` (N, k) float32,
        ``sigma`` (1,) float32.
    """
    if n_neighbors < 1 or scale_neighbor < 1:
        raise ValueError(f"n_neighbors and scale_neighbor must be >= 1; got {n_neighbors}, "
                         f"{scale_neighbor}")
    k = max(n_neighbors, scale_neighbor)
    if z.shape[0] > approximate_above:
        idx, dist = approximate_knn(z, k, seed)
    else:
        idx, dist = exact_knn(z, k)
    affinities, sigma = gaussian_affinity(dist, n_neighbors, scale_neighbor)
    return {"neighbors": idx[:, :n_neighbors], "distances": dist[:, :n_neighbors],
            "affinities": affinities, "sigma": np.array([sigma], dtype=np.float32)}


def knn_graph_arrays(z: np.ndarray, n_clusters: int, recipe: dict[str, Any],
                     seed: int) -> dict[str, np.ndarray]:
    """The ``knn-graph`` init: :func:`knn_graph` of z (N, d) plus k-means ``centres`` (K, d) and
    ``labels`` (N,) with ``n_init`` restarts.

    ``recipe``: ``n_neighbors`` (3 [paper]), ``scale_neighbor`` (2 [default]),
    ``approximate_above`` (10^5 [default]), ``n_init`` (20 [default]).
    """
    graph = knn_graph(z, int(recipe.get("n_neighbors", 3)), int(recipe.get("scale_neighbor", 2)),
                      int(recipe.get("approximate_above", APPROXIMATE_ABOVE)), seed)
    centres, labels = kmeans_init(z, n_clusters, int(recipe.get("n_init", 20)), seed)
    return {**graph, "centres": centres, "labels": labels}
