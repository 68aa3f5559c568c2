"""AC-PIC (stages/methods/depict/acpic.py) against hand-computed path integrals and against a dense,
all-pairs re-implementation of the graph-agglomerative-clustering toolbox's procedure."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from stages.methods import init_algorithm
from stages.methods.depict.acpic import (
    acpic,
    acpic_arrays,
    conditional_path_integral,
    nearest_neighbour_clusters,
    path_integral,
    transition_graph,
)
from stages.methods.shared.knn import exact_knn


def _dense_toolbox(z: np.ndarray, n_clusters: int, k: int, a: float, zeta: float) -> np.ndarray:
    """The toolbox's gacCluster(.., 'path', K, a, z) written densely: full distance matrix, all
    pairs of clusters scored with dense inverses, the best pair merged, all pairs re-scored."""
    n = z.shape[0]
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, -1.0)  # self first in the sort
    order = np.argsort(d2, axis=1)
    sorted_d2 = np.take_along_axis(d2, order, axis=1)
    sig2 = sorted_d2[:, 1:k + 1].mean() * a
    while np.any(np.exp(-sorted_d2[:, 1] / sig2) < 1e-5):
        sig2 *= 2
    w = np.eye(n)
    for i in range(n):
        w[i, order[i, 1:k + 1]] = np.exp(-sorted_d2[i, 1:k + 1] / sig2)
    p = w / w.sum(axis=1, keepdims=True)
    m = np.eye(n) - zeta * p
    # gacNNMerge: union each point with its nearest neighbour
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i
    for i in range(n):
        parent[find(i)] = find(int(order[i, 1]))
    roots = sorted({find(i) for i in range(n)})
    clusters = [np.array([i for i in range(n) if find(i) == r]) for r in roots]

    def s(c: np.ndarray) -> float:
        return np.linalg.inv(m[np.ix_(c, c)]).sum() / c.size ** 2

    def cond(ci: np.ndarray, cj: np.ndarray) -> float:
        u = np.concatenate([ci, cj])
        inv = np.linalg.inv(m[np.ix_(u, u)])
        return (inv[:ci.size, :ci.size].sum() / ci.size ** 2
                + inv[ci.size:, ci.size:].sum() / cj.size ** 2)
    while len(clusters) > n_clusters:
        best, pair = -np.inf, None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                gain = cond(clusters[i], clusters[j]) - s(clusters[i]) - s(clusters[j])
                if gain > best:
                    best, pair = gain, (i, j)
        i, j = pair
        merged = np.concatenate([clusters[i], clusters[j]])
        clusters = [c for t, c in enumerate(clusters) if t not in (i, j)] + [merged]
    labels = np.empty(n, dtype=int)
    for t, c in enumerate(clusters):
        labels[c] = t
    return labels


def _blobs(rng: np.random.Generator, centres: np.ndarray, per: int, sd: float) -> np.ndarray:
    return np.concatenate([c + sd * rng.standard_normal((per, centres.shape[1]))
                           for c in centres])


def test_path_integral_by_hand():
    # three points, P row-normalised by hand: S_C = 1^T (I - zP_CC)^-1 1 / |C|^2
    p = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]]))
    zeta = 0.1
    full = np.linalg.inv(np.eye(3) - zeta * p.toarray())
    assert path_integral(p, np.arange(3), zeta) == pytest.approx(full.sum() / 9, rel=1e-12)
    single = 1.0 / (1 - zeta * 0.5)  # a lone node with self-weight 0.5
    assert path_integral(p, np.array([0]), zeta) == pytest.approx(single, rel=1e-12)
    # S_{a|ab} + S_{b|ab} for a = {0}, b = {1, 2}: blocks of the inverse over all three
    expected = full[0, 0] + full[1:, 1:].sum() / 4
    got = conditional_path_integral(p, np.array([0]), np.array([1, 2]), zeta)
    assert got == pytest.approx(expected, rel=1e-12)
    # the increment of merging two clusters joined by edges is positive
    assert got > path_integral(p, np.array([0]), zeta) + path_integral(p, np.array([1, 2]), zeta)


def test_transition_graph_rows_and_bandwidth():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 3))
    p = transition_graph(*exact_knn(z, 5), a=1.0)
    assert np.allclose(np.asarray(p.sum(axis=1)).ravel(), 1.0)
    assert (p.getnnz(axis=1) == 6).all()  # five neighbours and the point itself
    # the self weight w_ii = 1 is the largest weight of its row, so the largest p of the row
    assert np.allclose(p.diagonal(), p.max(axis=1).toarray().ravel())


def test_nearest_neighbour_clusters_are_the_one_nn_components():
    z = np.array([[0.0], [0.1], [5.0], [5.3], [5.5], [20.0], [20.05]])
    labels = nearest_neighbour_clusters(exact_knn(z, 1)[0][:, 0])
    assert adjusted_rand_score(labels, [0, 0, 1, 1, 1, 2, 2]) == 1.0


@pytest.mark.parametrize("n_clusters,k", [(3, 5), (5, 5), (4, 10)])
def test_matches_the_dense_all_pairs_procedure(n_clusters, k):
    rng = np.random.default_rng(n_clusters * 10 + k)
    z = _blobs(rng, rng.uniform(-3, 3, (4, 2)), 15, 0.8)
    ours, disconnected = acpic(z, n_clusters, n_neighbors=k, a=1.0, zeta=0.01)
    assert disconnected == 0
    assert adjusted_rand_score(_dense_toolbox(z, n_clusters, k, 1.0, 0.01), ours) == 1.0


def test_recovers_separated_clusters_of_unequal_size():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 0.0]])
    z = np.concatenate([c + 0.5 * rng.standard_normal((m, 3))
                        for c, m in zip(centres, (60, 25, 40), strict=True)])
    truth = np.repeat([0, 1, 2], (60, 25, 40))
    labels, _ = acpic(z, 3, n_neighbors=8)
    assert adjusted_rand_score(truth, labels) == 1.0
    assert sorted(np.unique(labels)) == [0, 1, 2]


def test_disconnected_graph_merges_nearest_means():
    # four tight groups far apart; with 3 neighbours each group is its own component, so the
    # last two merges have no edge: the smallest group joins the group with the nearest mean,
    # (103, 0) joins (100, 0), then (0, 300) joins (0, 0) (300 away, against 316)
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 300.0], [103.0, 0.0]])
    sizes = (7, 6, 5, 4)
    z = np.concatenate([c + 0.1 * rng.standard_normal((m, 2))
                        for c, m in zip(centres, sizes, strict=True)])
    labels, disconnected = acpic(z, 2, n_neighbors=3)
    assert disconnected == 2
    truth = np.repeat([0, 1, 0, 1], sizes)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_arrays_and_registry():
    rng = np.random.default_rng(3)
    z = _blobs(rng, np.array([[0.0, 0.0], [6.0, 6.0]]), 20, 0.5).astype(np.float32)
    out = acpic_arrays(z, 2, {"algorithm": "acpic", "n_neighbors": 5}, seed=0)
    assert out["labels"].dtype == np.int64 and out["labels"].shape == (40,)
    for k in range(2):
        assert np.allclose(out["centres"][k], z[out["labels"] == k].mean(axis=0), atol=1e-6)
    assert out["centres"].dtype == np.float32
    assert init_algorithm("acpic") == ("stages.methods.depict.acpic", "acpic_arrays")


@pytest.mark.parametrize("n_clusters", [0, 41])
def test_rejects_impossible_cluster_counts(n_clusters):
    z = np.random.default_rng(4).standard_normal((40, 2))
    with pytest.raises(ValueError, match="n_clusters"):
        acpic(z, n_clusters)


def test_init_stage_writes_acpic_arrays(tmp_path):
    """`python -m stages.init` with the acpic recipe: labels and centres of the embedding file."""
    import json

    from stages import init as init_stage
    from stages.plumbing.artifacts import read_arrays, write_arrays
    from stages.plumbing.cli import main_for
    rng = np.random.default_rng(5)
    z = _blobs(rng, np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]]), 20, 0.4).astype(np.float32)
    write_arrays(tmp_path / "emb.h5", {"Z": z},
                 {"stage": "embed", "dataset": "toy", "n_clusters": 3, "device": "cpu",
                  "timings": {"pretrain": 1.0, "embed": 0.5}})
    recipe = {"algorithm": "acpic", "n_neighbors": 5, "a": 1.0, "zeta": 0.01}
    code = main_for(init_stage.build_parser, init_stage.run,
                    ["--embedding", str(tmp_path / "emb.h5"), "--params", json.dumps(recipe),
                     "--out", str(tmp_path / "acpic.h5")])
    assert code == 0
    arrays, attrs = read_arrays(tmp_path / "acpic.h5", required=["labels", "centres"])
    assert adjusted_rand_score(np.repeat([0, 1, 2], 20), arrays["labels"]) == 1.0
    assert arrays["centres"].shape == (3, 2)
    assert set(attrs["timings"]) == {"pretrain", "embed", "init"}
