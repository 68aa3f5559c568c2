"""Tests of stages.reporting.metrics against hand-computed cases and formulas written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stages.reporting import metrics

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


# --------------------------------------------------------------------------- independent formulas
# The reference values below are written out from the contingency table with numpy only (no
# scikit-learn), so that a wrong normaliser, a swapped variant or a wrong ARI expectation in
# stages.reporting.metrics (which wraps scikit-learn) shows up as a difference.


def _table(y: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Contingency counts n_ij (classes x clusters) by np.add.at, not by scikit-learn."""
    _, yi = np.unique(y, return_inverse=True)
    _, ci = np.unique(c, return_inverse=True)
    table = np.zeros((yi.max() + 1, ci.max() + 1), dtype=np.float64)
    np.add.at(table, (yi, ci), 1.0)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _reference_nmi(y: np.ndarray, c: np.ndarray, variant: str) -> float:
    """I(l; c) / norm from the table; 1.0 for one class and one cluster, 0.0 when only one side
    has a single block (the conventions of stages.reporting.metrics' docstring)."""
    table = _table(y, c)
    if table.shape == (1, 1):
        return 1.0
    if 1 in table.shape:
        return 0.0
    n = table.sum()
    a, b = table.sum(1), table.sum(0)
    i, j = np.nonzero(table)
    mi = float((table[i, j] / n * np.log(n * table[i, j] / (a[i] * b[j]))).sum())
    hl, hc = _entropy(a), _entropy(b)
    norm = {"max": max(hl, hc), "sqrt": math.sqrt(hl * hc), "arithmetic": (hl + hc) / 2}[variant]
    return mi / norm


def _reference_ari(y: np.ndarray, c: np.ndarray) -> float:
    """Hubert-Arabie ARI from pair counts: (index - expected) / (max - expected); 1.0 when the
    denominator is 0 (both partitions one block, or both all singletons: identical)."""
    table = _table(y, c)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    index, sum_a, sum_b = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    total = table.sum() * (table.sum() - 1) / 2
    expected = sum_a * sum_b / total if total else 0.0
    top = (sum_a + sum_b) / 2
    return 1.0 if top == expected else (index - expected) / (top - expected)


def _brute_force_acc(y: np.ndarray, c: np.ndarray) -> float:
    """Best one-to-one map between clusters and classes over every injective assignment of the
    smaller side into the larger (unmatched ones count as wrong)."""
    from itertools import permutations

    table = _table(y, c)
    if table.shape[0] < table.shape[1]:
        table = table.T  # rows: the larger side
    rows, cols = table.shape
    best = max(sum(table[p[j], j] for j in range(cols)) for p in permutations(range(rows), cols))
    return float(best / table.sum())


def _labelling(rng: np.random.Generator, n: int, k_true: int, k_pred: int,
               agree: float) -> tuple[np.ndarray, np.ndarray]:
    """Random classes and clusters that agree on about ``agree`` of the samples, with label ids
    that are neither contiguous nor starting at 0 (negative and large ids included)."""
    y = rng.integers(0, k_true, size=n)
    c = np.where(rng.random(n) < agree, y % k_pred, rng.integers(0, k_pred, size=n))
    true_ids = rng.choice(np.arange(-50, 1000), size=k_true, replace=False)
    pred_ids = rng.choice(np.arange(-7, 10_000), size=k_pred, replace=False)
    return true_ids[y], pred_ids[c]


#: (n, classes, clusters): tiny and one-block cases, square, rectangular both ways, many clusters
SHAPES = [(1, 1, 1), (2, 1, 2), (2, 2, 2), (3, 3, 1), (7, 1, 1), (7, 3, 7), (20, 2, 2),
          (50, 1, 4), (50, 4, 1), (60, 5, 3), (60, 3, 5), (200, 4, 4), (300, 10, 10),
          (300, 5, 12), (500, 12, 5), (400, 40, 40)]


@pytest.mark.parametrize(("n", "k_true", "k_pred"), SHAPES)
def test_nmi_and_ari_match_the_formulas_on_random_labellings(n: int, k_true: int,
                                                             k_pred: int) -> None:
    rng = np.random.default_rng(1000 * n + 10 * k_true + k_pred)
    for agree in (0.0, 0.5, 0.9, 1.0):
        y, c = _labelling(rng, n, k_true, k_pred, agree)
        got = metrics.all_metrics(y, c)  # nmi(y, c, variant) and ari(y, c) for every key
        for variant in ("max", "sqrt", "arithmetic"):
            assert got[f"nmi_{variant}"] == pytest.approx(
                _reference_nmi(y, c, variant), abs=1e-10), (variant, agree)
        assert got["ari"] == pytest.approx(_reference_ari(y, c), abs=1e-10), agree


@pytest.mark.parametrize(("n", "k_true", "k_pred"),
                         [(1, 1, 1), (5, 1, 3), (5, 3, 1), (30, 2, 2), (60, 4, 4), (60, 6, 3),
                          (60, 3, 6), (80, 5, 7), (80, 7, 5)])
def test_acc_matches_brute_force(n: int, k_true: int, k_pred: int) -> None:
    rng = np.random.default_rng(7 * n + k_true + 100 * k_pred)
    for agree in (0.0, 0.6):
        y, c = _labelling(rng, n, k_true, k_pred, agree)
        assert metrics.cluster_acc(y, c) == pytest.approx(_brute_force_acc(y, c)), agree


def test_reference_formulas_on_the_hand_case() -> None:
    """The test's own formulas agree with the case worked by hand at the top of this file."""
    for variant in ("max", "sqrt", "arithmetic"):
        assert _reference_nmi(Y_TRUE, Y_PRED, variant) == pytest.approx(EXPECTED[f"nmi_{variant}"])
    assert _reference_ari(Y_TRUE, Y_PRED) == pytest.approx(EXPECTED["ari"])
    assert _brute_force_acc(Y_TRUE, Y_PRED) == pytest.approx(EXPECTED["acc"])


def test_independent_partitions_by_hand() -> None:
    # y = [0,0,1,1], c = [0,1,0,1]: every cell 1, p_ij = p_i p_j -> I = 0, NMI 0 (all variants).
    # ACC 2/4. ARI: index 0, sum_i C(a_i,2) = sum_j C(b_j,2) = 2, C(4,2) = 6, expected 4/6,
    # max 2 -> (0 - 2/3) / (2 - 2/3) = -1/2. No pair in a cluster shares a class: precision 0.
    got = metrics.all_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert got == pytest.approx({"acc": 0.5, "nmi_max": 0.0, "nmi_sqrt": 0.0,
                                 "nmi_arithmetic": 0.0, "ari": -0.5, "pair_precision": 0.0})


def test_unbalanced_split_by_hand() -> None:
    # y = [0,0,0,0,1,1], c = [0,0,0,1,1,1]: table [[3, 1], [0, 2]], a = (4, 2), b = (3, 3).
    # ACC (3 + 2) / 6. H(l) = ln 3 - 2/3 ln 2, H(c) = ln 2.
    # I = 1/2 ln((1/2)/(2/3 * 1/2)) + 1/6 ln((1/6)/(2/3 * 1/2)) + 1/3 ln((1/3)/(1/3 * 1/2))
    #   = 1/2 ln(3/2) - 1/6 ln 2 + 1/3 ln 2 = 1/2 ln 3 - 1/3 ln 2 ~ 0.318257.
    # ARI: index 3 + 0 + 1 = 4, sum_a 6 + 1 = 7, sum_b 3 + 3 = 6, expected 7 * 6 / 15 = 2.8,
    # max 6.5 -> 1.2 / 3.7. Precision: 4 of the 6 pairs in a cluster share a class.
    mi, hl, hc = LN3 / 2 - LN2 / 3, LN3 - 2 / 3 * LN2, LN2
    got = metrics.all_metrics(np.array([0, 0, 0, 0, 1, 1]), np.array([0, 0, 0, 1, 1, 1]))
    assert got == pytest.approx({"acc": 5 / 6, "nmi_max": mi / max(hl, hc),
                                 "nmi_sqrt": mi / math.sqrt(hl * hc),
                                 "nmi_arithmetic": mi / ((hl + hc) / 2), "ari": 1.2 / 3.7,
                                 "pair_precision": 4 / 6}, abs=1e-12)
    assert got["nmi_max"] == pytest.approx(0.459148, abs=1e-6)
    assert got["ari"] == pytest.approx(0.324324, abs=1e-6)


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
