"""Tests of stages.metrics against hand-computed cases and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from stages import metrics

# A small case worked by hand.
#   y_true = [0, 0, 0, 1, 1, 1], y_pred = [0, 0, 1, 1, 2, 2]
#   contingency (rows classes, columns clusters):
#       [[2, 1, 0],
#        [0, 1, 2]]
#   ACC: cluster 0 -> class 0 (2 right), cluster 2 -> class 1 (2 right), cluster 1 left
#        unmatched: 4/6.
#   H(l) = ln 2, H(c) = ln 3.
#   I = sum_ij p_ij ln(p_ij / (p_i p_j)) with p_i = 3/6, p_j = 2/6:
#     two cells 2/6 ln((2/6)/(1/6)) = 2/6 ln 2 each, two cells 1/6 ln(1) = 0 -> I = 2/3 ln 2
#   NMI max = (2/3 ln 2) / ln 3; sqrt = (2/3 ln 2) / sqrt(ln 2 ln 3);
#   arithmetic = (2/3 ln 2) / ((ln 2 + ln 3) / 2).
#   Pairs: sum_ij C(n_ij, 2) = 1 + 1 = 2; sum_j C(b_j, 2) = 1 + 1 + 1 = 3 -> precision 2/3.
#   ARI: sum_i C(a_i, 2) = 3 + 3 = 6, C(6, 2) = 15, expected = 6 * 3 / 15 = 1.2,
#        max = (6 + 3) / 2 = 4.5 -> (2 - 1.2) / (4.5 - 1.2) = 0.8 / 3.3.
Y_TRUE = np.array([0, 0, 0, 1, 1, 1])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])
LN2, LN3 = math.log(2), math.log(3)
MI = 2 / 3 * LN2
EXPECTED = {
    "acc": 4 / 6,
    "nmi_max": MI / LN3,
    "nmi_sqrt": MI / math.sqrt(LN2 * LN3),
    "nmi_arithmetic": MI / ((LN2 + LN3) / 2),
    "ari": 0.8 / 3.3,
    "pair_precision": 2 / 3,
}

MNIST_CLASS_SIZES = [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958]


def test_contingency_by_hand() -> None:
    np.testing.assert_array_equal(metrics.contingency(Y_TRUE, Y_PRED),
                                  [[2, 1, 0], [0, 1, 2]])


def test_all_metrics_by_hand() -> None:
    got = metrics.all_metrics(Y_TRUE, Y_PRED)
    assert list(got) == list(metrics.METRIC_KEYS)
    for key, value in EXPECTED.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
        assert isinstance(got[key], float)
    # Hand numbers, written out: 0.6667, 0.4206, 0.5295, 0.5158, 0.2424, 0.6667
    # (arithmetic: 4/3 * 0.693147 / 1.791759 = 0.51580).
    assert got["nmi_max"] == pytest.approx(0.42062, abs=1e-5)
    assert got["nmi_sqrt"] == pytest.approx(0.52954, abs=1e-5)
    assert got["nmi_arithmetic"] == pytest.approx(0.51580, abs=1e-5)


def test_acc_perfect_up_to_relabelling() -> None:
    # Same partition, cluster ids permuted and shifted: ACC = NMI = ARI = precision = 1.
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    c = np.array([7, 7, 3, 3, 5, 5, 5])
    got = metrics.all_metrics(y, c)
    assert all(v == pytest.approx(1.0) for v in got.values()), got


def test_acc_invariant_to_label_permutation() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, size=500)
    c = np.where(rng.random(500) < 0.7, y, rng.integers(0, 6, size=500))
    base = metrics.cluster_acc(y, c)
    for _ in range(5):
        perm = rng.permutation(6)
        assert metrics.cluster_acc(y, perm[c]) == pytest.approx(base)
        assert metrics.cluster_acc(perm[y], c) == pytest.approx(base)


def test_acc_more_clusters_than_classes() -> None:
    # 2 classes, 4 clusters; each class split in two. Best one-to-one map keeps the
    # larger half of each class: (3 + 2) / 8.
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    c = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    assert metrics.cluster_acc(y, c) == pytest.approx(5 / 8)


def test_acc_fewer_clusters_than_classes() -> None:
    # 3 classes of 2, everything in one cluster: one class matched -> 2 / 6.
    y = np.array([0, 0, 1, 1, 2, 2])
    assert metrics.cluster_acc(y, np.zeros(6, dtype=int)) == pytest.approx(1 / 3)


def test_acc_matches_brute_force() -> None:
    from itertools import permutations

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=60)
    c = rng.integers(0, 4, size=60)
    best = max(np.mean(np.array(p)[c] == y) for p in permutations(range(4)))
    assert metrics.cluster_acc(y, c) == pytest.approx(best)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmi_and_ari_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=300)
    c = np.where(rng.random(300) < 0.5, y, rng.integers(0, 8, size=300))
    for ours, theirs in (("max", "max"), ("sqrt", "geometric"),
                         ("arithmetic", "arithmetic")):
        assert metrics.nmi(y, c, ours) == pytest.approx(
            normalized_mutual_info_score(y, c, average_method=theirs))
    assert metrics.ari(y, c) == pytest.approx(adjusted_rand_score(y, c))


def test_nmi_from_contingency_by_formula() -> None:
    # Independent implementation: I and H written out from the contingency table.
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, size=200)
    c = np.where(rng.random(200) < 0.6, y, rng.integers(0, 6, size=200))
    p = metrics.contingency(y, c) / 200.0
    pi, pj = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pi, pj)[nz])).sum())
    hl, hc = float(-(pi * np.log(pi)).sum()), float(-(pj * np.log(pj)).sum())
    assert metrics.nmi(y, c, "max") == pytest.approx(mi / max(hl, hc))
    assert metrics.nmi(y, c, "sqrt") == pytest.approx(mi / math.sqrt(hl * hc))
    assert metrics.nmi(y, c, "arithmetic") == pytest.approx(mi / ((hl + hc) / 2))


def test_nmi_variant_ordering() -> None:
    # max >= arithmetic >= geometric for the normaliser, so NMI max <= arith <= sqrt.
    got = metrics.all_metrics(Y_TRUE, Y_PRED)
    assert got["nmi_max"] <= got["nmi_arithmetic"] <= got["nmi_sqrt"]


def test_degenerate_cases() -> None:
    one = np.zeros(5, dtype=np.int64)
    # One class, one cluster: identical partitions.
    assert metrics.nmi(one, one, "max") == 1.0
    assert metrics.cluster_acc(one, one) == 1.0
    assert metrics.pair_precision(one, one) == 1.0
    # One class, several clusters: no information.
    assert metrics.nmi(one, np.arange(5), "sqrt") == 0.0
    # Every predicted cluster a singleton: no pair put together -> precision 1.0.
    assert metrics.pair_precision(np.array([0, 0, 1, 1]), np.arange(4)) == 1.0
    # A single sample.
    assert metrics.all_metrics(np.array([3]), np.array([9]))["acc"] == 1.0


def test_pair_precision_one_cluster_mnist() -> None:
    # Spec §0.1 check: everything in one cluster over the MNIST class sizes ~ 0.1003
    # (SAIP reports 10.04 for its degenerate baselines).
    y = np.repeat(np.arange(10), MNIST_CLASS_SIZES)
    assert y.size == 70000
    got = metrics.pair_precision(y, np.zeros_like(y))
    assert got == pytest.approx(0.1003, abs=5e-5)


def test_pair_precision_one_cluster_balanced() -> None:
    # 5 balanced classes of 600 in one cluster: 5 C(600,2) / C(3000,2) = 599/2999 ~ 0.1997.
    y = np.repeat(np.arange(5), 600)
    assert metrics.pair_precision(y, np.zeros_like(y)) == pytest.approx(599 / 2999)


@pytest.mark.parametrize(("y_true", "y_pred", "message"), [
    (np.array([0, 1, 2]), np.array([0, 1]), "differ in length"),
    (np.array([], dtype=int), np.array([], dtype=int), "empty"),
    (np.array([0.0, 1.0]), np.array([0, 1]), "integer labels"),
    (np.array([0, 1]), np.array([0.5, 1.0]), "integer labels"),
    (np.array([[0, 1]]), np.array([0, 1]), "1-D"),
])
def test_validation(y_true: np.ndarray, y_pred: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.all_metrics(y_true, y_pred)


def test_unknown_nmi_variant() -> None:
    with pytest.raises(ValueError, match="unknown NMI variant"):
        metrics.nmi(Y_TRUE, Y_PRED, "min")  # type: ignore[arg-type]
