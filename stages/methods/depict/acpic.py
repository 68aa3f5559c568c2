"""The ``acpic`` init algorithm: agglomerative clustering via maximum incremental path integral.

AC-PIC (Zhang, Zhao and Wang, Pattern Recognition 46(11), 2013) is the clustering DEPICT's
authors' code runs on the MdA embeddings of MNIST-test and USPS to start Q (their
``predict_ac_mpi``: the graph-agglomerative-clustering toolbox's ``gacCluster`` with the path
descriptor, K = 20, a = 1, z = 0.01); on MNIST-full, FRGC, YTF and CMU-PIE it runs k-means.
As the toolbox computes it: a K-nearest-neighbour transition matrix P (:func:`transition_graph`),
initial clusters from nearest-neighbour links (:func:`nearest_neighbour_clusters`), then greedy
merges of the pair with the largest path-integral increment (:func:`path_integral`,
:func:`conditional_path_integral`, :func:`acpic`) until K clusters remain. :func:`acpic_arrays`
is the init's entry point: labels (N,) and the clusters' means (K, d).
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from stages.methods.shared.knn import exact_knn

log = logging.getLogger("stages.methods.depict.acpic")


def transition_graph(indices: np.ndarray, distances: np.ndarray, a: float = 1.0) -> sp.csr_matrix:
    """Step 1: the row-normalised K-nearest-neighbour transition matrix P (N, N), CSR.

    A directed graph on the squared Euclidean distances d²: w_ij = exp(-d²_ij / σ²) for j among
    i's K neighbours, w_ii = 1, with σ² = a x the mean of d² over every point's K neighbours,
    doubled until exp(-d²/σ²) >= 1e-5 for every point's nearest neighbour; P = D⁻¹ W.

    Args:
        indices, distances: each point's K nearest neighbours (N, K), nearest first, excluding
            the point itself (:func:`stages.methods.shared.knn.exact_knn`).
        a: σ² = a x mean squared distance to the K neighbours.
    """
    n, k = indices.shape
    d2 = distances.astype(np.float64) ** 2
    sig2 = float(d2.mean()) * float(a)
    if sig2 <= 0:  # every neighbour coincides with its point: all weights are one
        sig2 = 1.0
    while np.any(np.exp(-d2[:, 0] / sig2) < 1e-5):
        sig2 *= 2.0
    rows = np.concatenate([np.repeat(np.arange(n), k), np.arange(n)])
    cols = np.concatenate([indices.ravel(), np.arange(n)])
    vals = np.concatenate([np.exp(-d2.ravel() / sig2), np.ones(n)])
    w = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    return sp.diags(1.0 / np.asarray(w.sum(axis=1)).ravel()) @ w


def nearest_neighbour_clusters(nearest: np.ndarray) -> np.ndarray:
    """Step 2: labels (N,) of the components of the graph joining each point i to its nearest
    neighbour ``nearest[i]``."""
    n = nearest.shape[0]
    graph = sp.coo_matrix((np.ones(n), (np.arange(n), nearest)), shape=(n, n))
    return connected_components(graph, directed=True, connection="weak")[1]


def _solve(p_uu: sp.csr_matrix, b: np.ndarray, zeta: float) -> np.ndarray:
    """(I - zeta P_UU)⁻¹ b for b (|U|, r), by x <- b + zeta P_UU x (zeta ||P|| < 1)."""
    x = b.copy()
    for _ in range(200):
        x_new = b + zeta * (p_uu @ x)
        if np.max(np.abs(x_new - x)) <= 1e-15 * np.max(np.abs(x_new)):
            return x_new
        x = x_new
    return x


def path_integral(p: sp.csr_matrix, cluster: np.ndarray, zeta: float) -> float:
    """S_C = 1ᵀ (I - zeta P_CC)⁻¹ 1 / |C|² for the index array ``cluster`` (the toolbox's
    ``gacPathEntropy``)."""
    sub = p[cluster][:, cluster]
    x = _solve(sub, np.ones((cluster.size, 1)), zeta)
    return float(x.sum()) / cluster.size ** 2


def conditional_path_integral(p: sp.csr_matrix, a: np.ndarray, b: np.ndarray,
                              zeta: float) -> float:
    """S_{a|ab} + S_{b|ab}: each cluster's path integral inside the merged cluster U = a ∪ b,
    the sums over its own rows and columns of (I - zeta P_UU)⁻¹ (``gacPathCondEntropy``)."""
    u = np.concatenate([a, b])
    rhs = np.zeros((u.size, 2))
    rhs[:a.size, 0] = 1.0
    rhs[a.size:, 1] = 1.0
    x = _solve(p[u][:, u], rhs, zeta)
    return float(x[:a.size, 0].sum()) / a.size ** 2 + float(x[a.size:, 1].sum()) / b.size ** 2


def acpic(z: np.ndarray, n_clusters: int, n_neighbors: int = 20, a: float = 1.0,
          zeta: float = 0.01) -> tuple[np.ndarray, int]:
    """AC-PIC labels (N,) int64 in 0..K-1 of the points z (N, d), and the disconnected merges.

    Clusters are merged greedily, the pair with the largest increment
    S_{a|ab} - S_a + S_{b|ab} - S_b first, until K clusters remain. Two things differ from the
    toolbox's Python port in how, not in what, is computed: the increment is exactly zero for
    two clusters without an edge between them (I - z P_UU is then block-diagonal), so only pairs
    joined by an edge are scored, in a heap; and (I - z P_UU)⁻¹ [1_a, 1_b] is computed by the
    fixed-point iteration x <- b + z P_UU x on the sparse graph (converging as zᵏ, z = 0.01)
    instead of a dense inverse of the N x N matrix. If the graph falls apart into more than K
    components, the remaining clusters have no positive increment left; each of those merges
    joins the smallest cluster with the one whose mean is nearest to it, and their number is
    returned (``disconnected_merges`` of :func:`acpic_arrays`).

    Raises:
        ValueError: when K is not between 1 and the number of points.
    """
    z = np.asarray(z, dtype=np.float64)
    n = z.shape[0]
    if not 1 <= n_clusters <= n:
        raise ValueError(f"AC-PIC needs 1 <= n_clusters <= the number of points ({n}), got "
                         f"{n_clusters}")
    if n_clusters == n:
        return np.arange(n, dtype=np.int64), 0
    indices, distances = exact_knn(z, min(int(n_neighbors), n - 1))
    p = transition_graph(indices, distances, a)
    initial = nearest_neighbour_clusters(indices[:, 0])
    members: dict[int, np.ndarray] = {c: np.flatnonzero(initial == c)
                                      for c in range(int(initial.max()) + 1)}
    owner = initial.copy()
    comp = {c: path_integral(p, m, zeta) for c, m in members.items()}
    edges = (p + p.T).tocsr()

    def neighbours(c: int) -> set[int]:
        cols = edges[members[c]].indices
        return set(np.unique(owner[cols]).tolist()) - {c}

    heap: list[tuple[float, int, int]] = []

    def push(c: int, d: int) -> None:
        i, j = (c, d) if c < d else (d, c)
        gain = conditional_path_integral(p, members[i], members[j], zeta) - comp[i] - comp[j]
        heapq.heappush(heap, (-gain, i, j))

    for c in members:
        for d in neighbours(c):
            if c < d:
                push(c, d)
    disconnected = 0
    next_id = max(members) + 1
    while len(members) > n_clusters:
        pair = None
        while heap:
            _, i, j = heapq.heappop(heap)
            if i in members and j in members:  # ids are never reused: entries of merged ones
                # are stale
                pair = (i, j)
                break
        if pair is None:  # no edge left between clusters
            disconnected += 1
            small = min(members, key=lambda c: (members[c].size, c))
            mean = z[members[small]].mean(axis=0)
            pair = (small, min((c for c in members if c != small),
                               key=lambda c: (float(((z[members[c]].mean(axis=0) - mean) ** 2)
                                                    .sum()), c)))
        i, j = pair
        merged = np.sort(np.concatenate([members.pop(i), members.pop(j)]))
        comp.pop(i), comp.pop(j)
        new = next_id
        next_id += 1
        members[new] = merged
        owner[merged] = new
        comp[new] = path_integral(p, merged, zeta)
        if len(members) > n_clusters:
            for d in neighbours(new):
                push(new, d)
    if disconnected:
        log.warning("AC-PIC: the %d-nearest-neighbour graph has more than %d components; %d "
                    "merge(s) joined clusters without an edge by their means", n_neighbors,
                    n_clusters, disconnected)
    order = sorted(members, key=lambda c: members[c][0])
    labels = np.empty(n, dtype=np.int64)
    for k, c in enumerate(order):
        labels[members[c]] = k
    return labels, disconnected


def acpic_arrays(z: np.ndarray, n_clusters: int, recipe: dict[str, Any],
                 seed: int) -> dict[str, np.ndarray]:
    """The ``acpic`` init: ``labels`` (N,) int64 and ``centres`` (K, d) float32, the clusters'
    means (DEPICT's code starts its soft-max from these, normalised). ``seed`` is unused: the
    algorithm is deterministic."""
    del seed
    z = np.asarray(z)
    labels, disconnected = acpic(z, n_clusters, int(recipe.get("n_neighbors", 20)),
                                 float(recipe.get("a", 1.0)), float(recipe.get("zeta", 0.01)))
    centres = np.stack([z[labels == k].mean(axis=0) for k in range(n_clusters)])
    return {"labels": labels, "centres": centres.astype(np.float32),
            "disconnected_merges": np.asarray(disconnected, dtype=np.int64)}
