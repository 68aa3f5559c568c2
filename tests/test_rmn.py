"""RMN-GMM: the G layer against scikit-learn, Eqs. 10-12 by hand, the constraints of λ, the
neighbour sets, the RBMs' CD-1, the augmentation, the gmm init and the stage drivers."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.mixture import GaussianMixture

from stages.methods.rmn import criteria
from stages.methods.rmn import pretrain as rp
from stages.methods.rmn.gmm_init import gmm_arrays
from stages.methods.rmn.head import (
    RMN,
    distance_scale,
    eta_for_beta,
    finetune,
    gmm_directions,
    log_gaussians,
    log_likelihood,
    neighbour_sets,
    posteriors,
    rescale_code,
    resolve_eta,
    separation,
    stability,
)
from stages.nets import build_network
from stages.nets.rmn import RBMAutoencoder
from stages.plumbing import config as cfg
from stages.plumbing.artifacts import write_arrays
from stages.plumbing.config import validate
from stages.plumbing.errors import ConfigError, DataFileError
from stages.runtime.train import Checkpointer

REPO = Path(__file__).resolve().parent.parent


def _random_gmm(k: int = 4, d: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=gen, dtype=torch.float64) * 3
    variances = torch.rand(k, d, generator=gen, dtype=torch.float64) * 2 + 0.1
    weights = torch.rand(k, generator=gen, dtype=torch.float64) + 0.2
    return means, variances, weights / weights.sum()


def test_log_likelihood_and_posteriors_match_sklearn():
    means, variances, weights = _random_gmm()
    y = torch.randn(50, 3, dtype=torch.float64) * 4
    gmm = GaussianMixture(4, covariance_type="diag")
    gmm.means_, gmm.covariances_, gmm.weights_ = means.numpy(), variances.numpy(), weights.numpy()
    gmm.precisions_cholesky_ = 1.0 / np.sqrt(variances.numpy())
    np.testing.assert_allclose(log_likelihood(y, means, variances, weights).numpy(),
                               gmm.score_samples(y.numpy()), rtol=1e-10)
    np.testing.assert_allclose(posteriors(y, means, variances, weights).numpy(),
                               gmm.predict_proba(y.numpy()), atol=1e-10)


def test_log_likelihood_is_finite_far_from_every_component():
    means, variances, weights = _random_gmm()
    y = torch.full((2, 3), 1e4, dtype=torch.float64)  # exp(log g) underflows to 0 here
    assert torch.isfinite(log_likelihood(y, means, variances, weights)).all()
    assert torch.isfinite(posteriors(y, means, variances, weights)).all()
    assert torch.isfinite(log_gaussians(y, means, variances)).all()


def test_eqs_10_to_12_by_hand():
    # one sample y = 1; components N(0, 1) and N(2, 4), equal weights; eta = 0.1, n(k) = other
    y = torch.tensor([[1.0]], dtype=torch.float64)
    means = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    variances = torch.tensor([[1.0], [4.0]], dtype=torch.float64)
    weights = torch.tensor([0.5, 0.5], dtype=torch.float64)
    g0 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    g1 = math.exp(-1 / 8) / math.sqrt(8 * math.pi)
    p0, p1 = g0 / (g0 + g1), g1 / (g0 + g1)
    eta = 0.1
    nbrs = neighbour_sets(means, 1)
    assert nbrs.tolist() == [[1], [0]]
    d_mu, d_var, d_w = gmm_directions(y, means, variances, weights, nbrs, eta)
    assert d_mu[0, 0].item() == pytest.approx(p0 * 1 / 1 + 2 * eta * (0 - 2))
    assert d_mu[1, 0].item() == pytest.approx(p1 * (1 - 2) / 4 + 2 * eta * (2 - 0))
    assert d_var[0, 0].item() == pytest.approx(p0 * (1 / 1 - 1))
    assert d_var[1, 0].item() == pytest.approx(p1 * (1 / 4 - 1))
    assert d_w.tolist() == pytest.approx([p0 - 0.5, p1 - 0.5])


def test_directions_average_the_per_sample_equations():
    means, variances, weights = _random_gmm()
    y = torch.randn(6, 3, dtype=torch.float64)
    nbrs = neighbour_sets(means, 2)
    batch = gmm_directions(y, means, variances, weights, nbrs, 0.0)
    single = [gmm_directions(y[i:i + 1], means, variances, weights, nbrs, 0.0) for i in range(6)]
    for j in range(3):
        torch.testing.assert_close(batch[j], torch.stack([s[j] for s in single]).mean(dim=0))


def test_eq8_is_what_autograd_gives_the_encoder():
    means, variances, weights = _random_gmm()
    y = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    log_likelihood(y, means, variances, weights).sum().backward()
    post = posteriors(y.detach(), means, variances, weights)
    eq8 = (post.T * (means - y.detach()) / variances).sum(dim=0)
    torch.testing.assert_close(y.grad[0], eq8)


def test_weights_stay_a_distribution_and_variances_positive_over_many_steps():
    torch.manual_seed(0)
    means, variances, weights = (t.float() for t in _random_gmm(k=5, d=2))
    rmn = RMN(means, variances, weights)
    for step in range(500):
        # first spread points, then every point near one spot: the variances shrink to the floor
        y = torch.randn(32, 2) * (3.0 if step < 100 else 0.01) + 5.0
        mu, var, w = rmn.parameters_now()
        rmn.ascend(gmm_directions(y, mu, var, w, neighbour_sets(mu, 2), 0.01), lr=0.01,
                   momentum=0.9)
        assert rmn.weights.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert (rmn.weights > 0).all()  # clipped to 1e-8, then renormalised
        assert (rmn.variances >= rmn.min_variance).all()
    assert torch.isfinite(rmn.means).all() and torch.isfinite(rmn.variances).all()
    assert rmn.variances.min().item() == pytest.approx(rmn.min_variance)


def test_neighbour_sets_are_the_nearest_other_centres():
    means = torch.tensor([[0.0], [1.0], [3.0], [7.0], [15.0]])
    nbrs = neighbour_sets(means, 2)
    assert [sorted(row) for row in nbrs.tolist()] == [[1, 2], [0, 2], [0, 1], [1, 2], [2, 3]]
    assert all(k not in row for k, row in enumerate(neighbour_sets(means, 4).tolist()))
    # S(mu) sums |mu_k - mu_j|^2 over k and its neighbours
    expected = sum((means[k] - means[j]).pow(2).sum().item() for k in range(5) for j in nbrs[k])
    assert separation(means, nbrs).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"n_neighbours must lie in \[0, 4\]"):
        neighbour_sets(means, 5)


def test_normalized_distance_divides_by_the_mean_pairwise_squared_distance():
    means = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    # pairs: |(3,0)|^2 = 9, |(0,4)|^2 = 16, |(3,-4)|^2 = 25; mean over the 6 ordered pairs = 50/3
    assert distance_scale(means, "euclidean").item() == 1.0
    assert distance_scale(means, "normalized").item() == pytest.approx(50 / 3)
    nbrs = neighbour_sets(means, 1)
    scale = distance_scale(means, "normalized")
    assert separation(means, nbrs, scale).item() == pytest.approx(
        separation(means, nbrs).item() / (50 / 3))
    # stretching the whole code space leaves the normalised S(mu) unchanged
    stretched = means * 7.0
    assert separation(stretched, nbrs, distance_scale(stretched, "normalized")).item() == \
        pytest.approx(separation(means, nbrs, scale).item())
    # Eq. 10's eta term is divided by the same (constant) scale; the likelihood term is not
    means3, variances, weights = _random_gmm(k=3, d=2)
    y = torch.randn(5, 2, dtype=torch.float64)
    nbrs3 = neighbour_sets(means3, 1)
    plain = gmm_directions(y, means3, variances, weights, nbrs3, 0.0)[0]
    eta_term = gmm_directions(y, means3, variances, weights, nbrs3, 0.1)[0] - plain
    scaled = gmm_directions(y, means3, variances, weights, nbrs3, 0.1, 4.0)[0] - plain
    torch.testing.assert_close(scaled, eta_term / 4.0)
    with pytest.raises(ValueError, match="'euclidean' or 'normalized'; got 'cosine'"):
        distance_scale(means, "cosine")


def test_normalized_separation_keeps_the_centres_near_the_data():
    # three well-separated blobs, the mixture at the right place: with Eq. 5's squared
    # Euclidean distance a large eta drives the centres away; the normalised one does not
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    data = (centres.repeat_interleave(100, 0) + 0.3 * torch.randn(300, 2, generator=gen))
    norms = {}
    for distance in ("euclidean", "normalized"):
        rmn = RMN(centres.clone(), torch.full((3, 2), 0.09), torch.full((3,), 1 / 3))
        for _ in range(300):
            y = data[torch.randint(0, 300, (64,), generator=gen)]
            mu, var, w = rmn.parameters_now()
            rmn.ascend(gmm_directions(y, mu, var, w, neighbour_sets(mu, 1), 1.0,
                                      distance_scale(mu, distance)), lr=0.01, momentum=0.9)
        norms[distance] = rmn.means.norm(dim=1).max().item()
    assert norms["normalized"] < 5.0 < 50.0 < norms["euclidean"]


def test_euclidean_and_normalized_separation_and_stability_by_hand():
    # centres (0,0), (3,0), (0,4); one neighbour each: 0 -> 1 (9), 1 -> 0 (9), 2 -> 0 (16)
    means = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    variances = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 2.0]], dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    nbrs = neighbour_sets(means, 1)
    assert separation(means, nbrs, distance_scale(means, "euclidean")).item() == 34.0
    assert separation(means, nbrs, distance_scale(means, "normalized")).item() == \
        pytest.approx(34 / (50 / 3))
    euclidean = stability(means, variances, weights, 0.1, 1, "euclidean")
    normalized = stability(means, variances, weights, 0.1, 1, "normalized")
    # beta = 1.1 eta S / D with D = 2
    assert euclidean["beta"] == pytest.approx(1.1 * 0.1 * 34 / 2)
    assert normalized["beta"] == pytest.approx(1.1 * 0.1 * 34 * 3 / 50 / 2)
    # kappa = 2 eta |n| sigma^2 / (omega scale): largest at component 2, dimension 1
    assert euclidean["kappa_max"] == pytest.approx(2 * 0.1 * 1 * 2.0 / 0.2)
    assert normalized["kappa_max"] == pytest.approx(2 * 0.1 * 1 * 2.0 / 0.2 / (50 / 3))
    # R = mean squared centre distance / sum_k omega_k tr(Sigma_k) = (50/3) / 1.3, either way
    assert euclidean["separation_ratio"] == pytest.approx((50 / 3) / 1.3)
    assert normalized["separation_ratio"] == euclidean["separation_ratio"]
    # stretching the code by c: Eq. 5's beta and kappa grow by c^2 and c^0 (the variances grow
    # by c^2 too, the weights not); the normalised beta and R do not change
    c = 3.0
    stretched = stability(c * means, c * c * variances, weights, 0.1, 1, "euclidean")
    assert stretched["beta"] == pytest.approx(c * c * euclidean["beta"])
    assert stretched["kappa_max"] == pytest.approx(c * c * euclidean["kappa_max"])
    assert stretched["separation_ratio"] == pytest.approx(euclidean["separation_ratio"])
    assert stability(c * means, c * c * variances, weights, 0.1, 1, "normalized")["beta"] == \
        pytest.approx(normalized["beta"])


def test_eta_auto_beta_follows_the_code_scale():
    means = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    variances = torch.full((3, 2), 0.5, dtype=torch.float64)
    weights = torch.full((3,), 1 / 3, dtype=torch.float64)
    for distance in ("euclidean", "normalized"):
        for target in (0.5, 1.0, 2.0):
            eta = eta_for_beta(target, means, 1, distance)
            assert stability(means, variances, weights, eta, 1, distance)["beta"] == \
                pytest.approx(target)
    # Eq. 5's plain distance: eta scales as 1 / (code scale)^2; the normalised one: not at all
    assert eta_for_beta(1.0, 10 * means, 1, "euclidean") == \
        pytest.approx(eta_for_beta(1.0, means, 1, "euclidean") / 100)
    assert eta_for_beta(1.0, 10 * means, 1, "normalized") == \
        pytest.approx(eta_for_beta(1.0, means, 1, "normalized"))
    with pytest.raises(ValueError, match="auto_beta needs centres that are apart"):
        eta_for_beta(1.0, torch.zeros(3, 2), 1, "euclidean")
    with pytest.raises(ValueError, match="target_beta must be > 0"):
        eta_for_beta(0.0, means, 1, "euclidean")


def _scaled_blob_start(c: float = 50.0):
    """:func:`_blob_start` with the encoder's last layer multiplied by c (codes with std ~3
    and within-component variances 0.4-1.3, far above the variance floor, like the
    paper-schedule codes) and the GMM init fitted on those codes."""
    x, y, ae, _ = _blob_start()
    last = [m for m in ae.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(c)
        last.bias.mul_(c)
        init = gmm_arrays(ae.encode(x).numpy(), 3, {}, seed=0)
    return x, y, ae, init


def test_auto_beta_starts_at_the_target_and_the_monitor_rows_record_it(caplog):
    x, y, ae, init = _scaled_blob_start()
    params = {"eta": "auto_beta", "target_beta": 0.5, "separation_distance": "euclidean",
              "epochs": 2, "lr": 0.01, "encoder_lr": 1e-4, "batch_size": 32}
    result = finetune(copy.deepcopy(ae), x, init, params, seed=0, y_true=y)
    assert result.info["target_beta"] == 0.5
    assert result.info["start"]["beta"] == pytest.approx(0.5)
    assert result.info["eta"] == result.info["eta_per_sample"] > 0
    monitor = [r for r in result.history if r["kind"] == "target"]
    assert monitor[0]["step"] == 0 and monitor[0]["beta"] == pytest.approx(0.5, rel=1e-5)
    for row in monitor:
        assert {"beta", "kappa_max", "separation_ratio", "encoder_lr"} <= set(row)
        assert row["kappa_max"] > 0 and row["separation_ratio"] > 0
    # Eq. 4's weighting: the same per-sample eta, counted N times over as the recipe's eta
    per_dataset = finetune(copy.deepcopy(ae), x, init,
                           {**params, "separation_weighting": "dataset"}, seed=0)
    assert per_dataset.info["eta_per_sample"] == pytest.approx(result.info["eta_per_sample"])
    assert per_dataset.info["eta"] == pytest.approx(x.shape[0] * result.info["eta_per_sample"])
    # eta = 0 (DeepGMM): beta and kappa are 0, R is still measured
    deep = finetune(copy.deepcopy(ae), x, init, {**params, "eta": 0.0, "target_beta": None},
                    seed=0)
    rows = [r for r in deep.history if r["kind"] == "target"]
    assert all(r["beta"] == 0 and r["kappa_max"] == 0 and r["separation_ratio"] > 0
               for r in rows)
    # an inherited target (head_defaults.rmn sets one) is not used by any other eta
    fixed = finetune(copy.deepcopy(ae), x, init, {**params, "eta": 0.01}, seed=0)
    assert fixed.info["eta"] == fixed.info["eta_per_sample"] == 0.01
    assert fixed.info["target_beta"] is None
    # a target far beyond the centres' hold: the start's kappa is logged as a detachment
    assert "kappa_max" not in caplog.text
    far = finetune(copy.deepcopy(ae), x, init, {**params, "target_beta": 100.0, "epochs": 1},
                   seed=0)
    assert far.info["start"]["kappa_max"] >= 1 and "so it will detach" in caplog.text


def test_encoder_lr_reaches_the_optimiser():
    x, y, ae, init = _scaled_blob_start()
    params = {"eta": 0.0, "epochs": 3, "lr": 0.01, "batch_size": 32, "lr_step_epochs": 2}
    moved = {}
    for encoder_lr in (1e-6, 1e-2, None):
        net = copy.deepcopy(ae)
        recipe = params if encoder_lr is None else {**params, "encoder_lr": encoder_lr}
        result = finetune(net, x, init, recipe, seed=0)
        rows = [r for r in result.history if r["kind"] == "target"]
        expected = 0.01 if encoder_lr is None else encoder_lr   # default: the GMM's lr
        assert result.info["encoder_lr"] == expected
        # divided by 10 with the GMM's lr after lr_step_epochs (2 epochs of 4 steps)
        assert [r["encoder_lr"] for r in rows] == pytest.approx(
            [expected if r["step"] < 8 else expected / 10 for r in rows])
        moved[encoder_lr] = sum(float((a - b).detach().abs().sum()) for a, b in
                                zip(net.encoder.parameters(), ae.encoder.parameters(),
                                    strict=True))
    assert moved[1e-2] > 100 * moved[1e-6] > 0


def test_plain_distance_at_beta_one_keeps_every_component_on_a_moving_encoder(tmp_path, capsys):
    """Eq. 5 with eta: auto_beta (beta 1 at the start) and an encoder that moves (lr 1e-3 here;
    the separable blobs' codes at scale ~3): no centre detaches (kappa < 1), every component
    keeps its third of the points, the code scale stays within a factor 2 and the
    between/within ratio rises, for 160 steps: docs/reproduction/rmn-stage3.md's criteria.
    At ten times the encoder lr the likelihood's shrink wins within the run, and the criteria
    say so; the command-line table picks the stable run."""
    x, y, ae, init = _scaled_blob_start()
    params = {"eta": "auto_beta", "separation_distance": "euclidean", "epochs": 40,
              "lr": 0.01, "batch_size": 32, "momentum": 0.9}
    paths = []
    for encoder_lr in (1e-3, 1e-2):
        result = finetune(copy.deepcopy(ae), x, init, {**params, "encoder_lr": encoder_lr},
                          seed=0)
        path = tmp_path / f"lr{encoder_lr}" / "history.csv"
        path.parent.mkdir()
        pd.DataFrame(result.history).to_csv(path, index=False)
        paths.append(path)
        if encoder_lr == 1e-3:
            assert (np.bincount(result.labels, minlength=3) == 40).all()
    stable, collapsed = (criteria.verdict(criteria.history_rows(p)) for p in paths)
    assert stable["passes"], stable
    assert stable["kappa_max"] < 1 and stable["ratio_last"] > stable["ratio_first"]
    assert not collapsed["passes"]
    assert not (collapsed["shares"] and collapsed["attached"] and collapsed["bounded_scale"])
    assert criteria.choose({"a": stable, "b": collapsed}) == "a"
    assert criteria.choose({"b": collapsed}) is None
    criteria.run(criteria.build_parser().parse_args(["judge", *map(str, paths),
                                                     "--out", str(tmp_path / "c.csv")]))
    assert f"chosen (largest final R among the runs that pass): {paths[0]}" in \
        capsys.readouterr().out
    assert criteria.run_label("r/results/finetune/fashion/rmn-gmm@eta=0.1/seed0/history.csv") \
        == "fashion/rmn-gmm@eta=0.1/seed0"
    assert pd.read_csv(tmp_path / "c.csv")["passes"].tolist() == [True, False]


def test_start_values_of_auto_beta_on_a_gmm_init(tmp_path, capsys):
    """Before any run: the start's beta is the target, kappa and beta scale together (so a
    target beyond 1 / (kappa/beta) starts detached), R does not depend on eta, and the two
    distances start alike (the scale cancels in kappa / beta)."""
    means = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    variances = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 2.0]], dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    rows = criteria.start_values(means, variances, weights, [0.5, 1.0], ["euclidean",
                                                                       "normalized"])
    assert [(r["distance"], r["target_beta"]) for r in rows] == [
        ("euclidean", 0.5), ("euclidean", 1.0), ("normalized", 0.5), ("normalized", 1.0)]
    for r in rows:
        assert r["beta"] == pytest.approx(r["target_beta"])
        # kappa / beta = 2 |n| sigma^2 / omega * D / (1.1 S) = 2 * 2.0 / 0.2 * 2 / (1.1 * 34)
        assert r["kappa_max"] / r["beta"] == pytest.approx(2 * 2.0 / 0.2 * 2 / (1.1 * 34))
        assert r["separation_ratio"] == pytest.approx((50 / 3) / 1.3)
    # the head's variance floor applies as in stage 3
    floored = criteria.start_values(means, variances * 1e-4, weights, [1.0], ["euclidean"])
    assert floored[0]["kappa_max"] == pytest.approx(
        rows[1]["kappa_max"] * 0.01 / 2.0)  # the broadest variance 2e-4 is floored to 0.01
    path = tmp_path / "gmm.h5"
    write_arrays(path, {"means": means.numpy(), "variances": variances.numpy(),
                        "weights": weights.numpy()})
    criteria.run(criteria.build_parser().parse_args(["start", str(path), "--target-beta", "1"]))
    out = capsys.readouterr().out
    assert "euclidean" in out and "normalized" in out and "kappa_max" in out


def test_stage3_criteria_need_the_monitor_columns():
    row = {"step": 0, "code_std": 1.0, "smallest_share": 0.3, "largest_share": 0.4,
           "kappa_max": 0.5, "separation_ratio": 10.0}
    with pytest.raises(DataFileError, match="at least two monitor rows"):
        criteria.verdict([row])
    with pytest.raises(DataFileError, match=r"monitor rows lack \['kappa_max'\]"):
        criteria.verdict([row, {k: v for k, v in row.items() if k != "kappa_max"}])
    grown = criteria.verdict([row, {**row, "code_std": 2.5, "separation_ratio": 11.0}])
    assert not grown["bounded_scale"] and grown["shares"] and grown["attached"] \
        and grown["ratio_rises"] and not grown["passes"]


def test_eta_defaults_and_rejects_negative_values():
    assert resolve_eta("auto", 10) == 0.01 and resolve_eta("auto", 68) == 0.001
    assert resolve_eta(0, 10) == 0.0
    with pytest.raises(ValueError, match="eta must be >= 0"):
        resolve_eta(-0.1, 10)


# --------------------------------------------------------------------------- stage 1


def test_free_energy_gradient_gives_the_cd_statistics():
    torch.manual_seed(0)
    w = torch.randn(4, 6, requires_grad=True)
    b, c = torch.randn(4), torch.randn(6)
    v = torch.rand(1, 6)
    rp.free_energy(v, w, b, c, "bernoulli", "bernoulli").sum().backward()
    torch.testing.assert_close(w.grad, -torch.sigmoid(v @ w.detach().T + b).T @ v)
    w.grad = None
    rp.free_energy(v, w, b, c, "gaussian", "gaussian").sum().backward()
    torch.testing.assert_close(w.grad, -(v @ w.detach().T + b).T @ v)


def _toy_binary(n: int = 200, d: int = 24, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(4, d, generator=gen) > 0.5).float()
    x = prototypes[torch.randint(0, 4, (n,), generator=gen)]
    flip = torch.rand(n, d, generator=gen) < 0.05
    return torch.where(flip, 1 - x, x)


def test_cd1_lowers_the_reconstruction_error_on_a_toy_set():
    torch.manual_seed(0)
    x = _toy_binary()
    rbm = rp.RBM(24, 8)
    opt = torch.optim.SGD(rbm.parameters(), lr=0.1, momentum=0.5)

    def error() -> float:
        with torch.no_grad():
            return (rbm.visible_mean(rbm.hidden_mean(x)) - x).pow(2).sum(dim=1).mean().item()

    before = error()
    for step in range(300):
        terms = rbm.cd1(x[(step * 20) % 200:(step * 20) % 200 + 20])
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    assert error() < 0.5 * before


def _images(n: int = 64, side: int = 8, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, side, side, generator=gen)


def _recipe(**kw):
    recipe = {"batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
              "epochs": 2, "layer_epochs": 2, "noise": 0.2, "augment": True,
              "reconstruction": "sum", "lr_step_epochs": 1}
    recipe.update(kw)
    return recipe


def test_rbm_pretraining_unrolls_every_rbm_and_resumes_finished_phases(tmp_path):
    torch.manual_seed(0)
    x = _images()
    model = RBMAutoencoder((1, 8, 8), hidden=(16, 8, 3))
    before = copy.deepcopy(model.state_dict())
    result = rp.pretrain_rbm(model, x, _recipe(), seed=0, log_every=2,
                             checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    phases = list(dict.fromkeys(row["phase"] for row in result.history))
    assert phases == ["rbm1", "rbm2", "rbm3", "finetune"]
    assert result.steps == 4 * 2 * 4  # 4 phases x 2 epochs x 4 batches
    rbm_rows = [r for r in result.history if r["phase"].startswith("rbm")]
    assert all("reconstruction" in r for r in rbm_rows)
    for level in (1, 2, 3):  # every layer pair left its initial weights
        assert not torch.equal(model.encoder_linear(level).weight, before[f"encoder.{2 * level - 2}"
                                                                            ".weight"])
    # a restarted job finds every phase finished and ends with the same weights
    again = RBMAutoencoder((1, 8, 8), hidden=(16, 8, 3))
    rp.pretrain_rbm(again, x, _recipe(), seed=0, log_every=2,
                    checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)


def test_unrolled_encoder_is_the_rbms_p_h_given_v_and_the_decoder_scaled(monkeypatch):
    trained = []

    class Recording(rp.RBM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trained.append(self)

    monkeypatch.setattr(rp, "RBM", Recording)
    torch.manual_seed(0)
    x = _images()
    model = RBMAutoencoder((1, 8, 8), hidden=(16, 8, 3))
    rp.pretrain_rbm(model, x, _recipe(epochs=0, noise=0.2), seed=0, log_every=2)  # no fine-tune
    first = trained[0]
    v = x.flatten(1)
    with torch.no_grad():
        unrolled = torch.sigmoid(model.encoder_linear(1)(v))
        torch.testing.assert_close(unrolled, first.hidden_mean(v))
        torch.testing.assert_close(model.decoder_linear(1).weight, 0.8 * first.weight.t())
        # the next RBM was trained on the same p(h | v) the encoder now computes
        torch.testing.assert_close(model.encode_below(x, 2), first.hidden_mean(v))


@pytest.fixture
def made_optimizers(monkeypatch) -> list[dict]:
    """The options of every optimizer stage 1 makes, in order (make_optimizer recorded)."""
    made = []
    real = rp.make_optimizer

    def recording(params, options):
        made.append(dict(options))
        return real(params, options)

    monkeypatch.setattr(rp, "make_optimizer", recording)
    return made


@pytest.mark.parametrize("spec", [None, {"name": "adam", "lr": 0.001},
                                  {"name": "sgd", "lr": 0.03, "momentum": 0.9}])
def test_finetune_optimizer_trains_the_fine_tune_phase_alone(made_optimizers, spec):
    """``finetune_optimizer`` replaces the recipe's SGD in the fine-tune phase only; the RBMs
    keep SGD at the recipe's rate (the top, Gaussian one at ``gaussian_rbm_lr``)."""
    torch.manual_seed(0)
    model = RBMAutoencoder((1, 8, 8), hidden=(16, 8, 3))
    recipe = _recipe(**({} if spec is None else {"finetune_optimizer": spec}))
    rp.pretrain_rbm(model, _images(), recipe, seed=0, log_every=2)
    sgd = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    rbms = [sgd, sgd, {**sgd, "lr": 0.001}]
    assert made_optimizers == [*rbms, sgd if spec is None else spec]  # the fine-tune last


@pytest.mark.parametrize("rbm_lr", [None, 0.1])
def test_rbm_lr_sets_the_bernoulli_rbms_rate_alone(made_optimizers, rbm_lr):
    """``rbm_lr`` replaces the recipe's rate in the Bernoulli-hidden RBMs only; the top,
    Gaussian RBM keeps ``gaussian_rbm_lr`` and the fine-tune the recipe's SGD."""
    torch.manual_seed(0)
    model = RBMAutoencoder((1, 8, 8), hidden=(16, 8, 3))
    rp.pretrain_rbm(model, _images(), _recipe(rbm_lr=rbm_lr), seed=0, log_every=2)
    sgd = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    rbm = sgd if rbm_lr is None else {**sgd, "lr": rbm_lr}
    assert made_optimizers == [rbm, rbm, {**sgd, "lr": 0.001}, sgd]


def test_sda_substitute_trains_layer_by_layer_then_fine_tunes():
    torch.manual_seed(0)
    model = RBMAutoencoder((1, 8, 8), hidden=(16, 3), activation="relu")
    result = rp.pretrain_sda(model, _images(), _recipe(augment=False), seed=0, log_every=2)
    assert list(dict.fromkeys(r["phase"] for r in result.history)) == ["sda1", "sda2",
                                                                       "finetune"]


def _held_out_stage_one(x: torch.Tensor, objective: str = "rbm", checkpoint=None, **kw):
    torch.manual_seed(0)
    model = RBMAutoencoder((1, 8, 8), hidden=(16, 8, 3))
    recipe = _recipe(validation_fraction=0.25, **kw)
    train = rp.pretrain_rbm if objective == "rbm" else rp.pretrain_sda
    return model, train(model, x, recipe, seed=0, log_every=2,
                        checkpoint=Checkpointer(checkpoint))


@pytest.mark.parametrize("objective", ["rbm", "sda"])
def test_stage_one_holds_out_validation_fraction(objective):
    """With validation_fraction every phase trains on the rest only; the whole autoencoder's
    clean reconstruction of the held-out images (and how many code dimensions it uses) is
    recorded after each greedy layer (unrolled) and once per fine-tune epoch."""
    from stages.runtime.train import validation_split

    x = _images()
    _, val = validation_split(64, 0.25, 0)
    model, result = _held_out_stage_one(x, objective)
    assert result.steps == 4 * 2 * 3                    # 48 training images: 3 batches an epoch
    rows = [r for r in result.history if r["kind"] == "validation"]
    layers = [f"{objective}{level}" for level in (1, 2, 3)]
    assert [(r["phase"], r["step"]) for r in rows] == [
        (layers[0], 6), (layers[1], 12), (layers[2], 18),
        ("finetune", 18), ("finetune", 21), ("finetune", 24)]
    # the last layer's row and the fine-tune's first see the same (unrolled) autoencoder
    assert rows[2]["val_mse"] == rows[3]["val_mse"]
    with torch.no_grad():
        codes = model.encode(x[val])
        expected = ((model.decode(codes) - x[val]) ** 2).mean()
    assert rows[-1]["val_mse"] == pytest.approx(float(expected), rel=1e-6)
    assert 1.0 <= rows[-1]["code_participation_ratio"] <= 3.0
    assert 0.0 <= rows[-1]["code_min_std_ratio"] <= 1.0
    # the held-out images never reach training: other values there, bit-identical weights
    other = x.clone()
    other[val] = 1.0 - other[val]
    again, _ = _held_out_stage_one(other, objective)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_stage_one_with_held_out_rows_resumes_bit_identically(tmp_path, monkeypatch):
    """Killed in the second RBM, and again in the fine-tune, then restarted: the weights and
    every row (the held-out ones included) are those of an uninterrupted run."""
    x = _images()
    model, full = _held_out_stage_one(x, checkpoint_every=2)
    # killed in the 9th CD-1 step (rbm2's 3rd) and the 5th fine-tune step, after the
    # checkpoints of their steps 2 and 4
    killed = {"cd1": (9, "rbm2", 2), "corrupt": (5, "finetune", 4)}
    for name, (kill_at, phase, saved_step) in killed.items():
        real, calls = getattr(rp, name), {"n": 0}

        def dying(*args, real=real, calls=calls, kill_at=kill_at, **kwargs):
            calls["n"] += 1
            if calls["n"] == kill_at:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(rp, name, dying)
        with pytest.raises(KeyboardInterrupt):
            _held_out_stage_one(x, checkpoint=tmp_path / name / "checkpoint.pt",
                                checkpoint_every=2)
        monkeypatch.setattr(rp, name, real)
        saved = torch.load(tmp_path / name / f"checkpoint-{phase}.pt", weights_only=True)
        assert not saved["finished"] and saved["step"] == saved_step
        # restarted as the pretrain stage does: seeded, then the network built (the layers not
        # yet unrolled keep their initial weights, and the held-out rows see them)
        resumed_model, resumed = _held_out_stage_one(
            x, checkpoint=tmp_path / name / "checkpoint.pt", checkpoint_every=2)
        assert resumed.resumed_from is not None, name
        for key, value in model.state_dict().items():
            assert torch.equal(resumed_model.state_dict()[key], value), (name, key)
        assert resumed.history == full.history, name


def test_stage_one_rejects_impossible_inputs():
    model = RBMAutoencoder((12,), hidden=(8, 3))
    flat = torch.rand(32, 12)
    with pytest.raises(ConfigError, match="augment: true needs image data"):
        rp.pretrain_sda(model, flat, _recipe(augment=True), seed=0)
    with pytest.raises(ConfigError, match=r"Bernoulli visible units need inputs in \[0, 1\]"):
        rp.pretrain_rbm(model, flat * 3, _recipe(augment=False), seed=0)
    relu = RBMAutoencoder((12,), hidden=(8, 3), activation="relu")
    with pytest.raises(ConfigError, match="cannot unroll RBMs"):
        rp.pretrain_rbm(relu, flat, _recipe(augment=False), seed=0)
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        RBMAutoencoder((12,), activation="tanh")


def test_autoencoder_layer_pairs_mirror_each_other():
    model = build_network("rmn-sae", (1, 28, 28), {})
    assert model.dims == (784, 500, 500, 2000, 10)
    for level in range(1, 5):
        enc, dec = model.encoder_linear(level), model.decoder_linear(level)
        assert (enc.in_features, enc.out_features) == (dec.out_features, dec.in_features)
    assert [model.hidden_kind(lv) for lv in range(1, 5)] == ["sigmoid"] * 3 + ["linear"]
    assert model.visible_kind(1) == "sigmoid"
    x = torch.rand(3, 1, 28, 28)
    assert model.encode_below(x, 4).shape == (3, 2000)
    z, x_hat = model(x)
    assert z.shape == (3, 10) and x_hat.shape == x.shape
    assert 0.0 <= float(x_hat.detach().min()) <= float(x_hat.detach().max()) <= 1.0  # logistic


def test_augmentation_keeps_shapes_and_is_the_identity_without_range():
    torch.manual_seed(0)
    x = _images(n=4, side=16)
    assert rp.augment_images(x).shape == x.shape
    torch.testing.assert_close(rp.augment_images(x, 0.0, 0.0), x, atol=1e-5, rtol=0)
    moved = rp.augment_images(x)
    assert not torch.allclose(moved, x)
    with pytest.raises(ValueError, match="needs images"):
        rp.augment_images(x.flatten(1))


# --------------------------------------------------------------------------- stages 2 and 3


def _blobs(n_per: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.2, 0.2, 0.8, 0.8], [0.8, 0.8, 0.2, 0.2], [0.2, 0.8, 0.2, 0.8]])
    y = np.repeat(np.arange(3), n_per)
    x = np.clip(centres[y] + rng.normal(0, 0.05, (len(y), 4)), 0, 1)
    return x.astype(np.float32), y


def _tiny_autoencoder_and_gmm() -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
    """The blobs (N, 4), the initial state of a 4-8-2 RBMAutoencoder, and a GMM on its codes."""
    x = torch.as_tensor(_blobs()[0])
    torch.manual_seed(0)
    ae = RBMAutoencoder((4,), hidden=(8, 2))
    state = copy.deepcopy(ae.state_dict())
    with torch.no_grad():
        init = gmm_arrays(ae.encode(x).numpy(), 3, {}, seed=0)
    return x, state, init


def test_gmm_init_writes_a_valid_mixture():
    z, y = _blobs()
    arrays = gmm_arrays(z, 3, {}, seed=0)
    assert arrays["means"].shape == (3, 4) and arrays["variances"].shape == (3, 4)
    assert arrays["weights"].sum() == pytest.approx(1.0, abs=1e-6)
    assert (arrays["variances"] > 0).all()
    assert arrays["labels"].dtype == np.int64 and len(set(arrays["labels"].tolist())) == 3


def test_gmm_init_is_the_same_fit_at_any_scale_of_the_codes():
    """Codes 1e-4 times smaller (per-dimension variance ~1e-8, below the default reg_covar of
    1e-6) give the same partition and the parameters scaled with them, not one component."""
    z, _ = _blobs()
    unit = gmm_arrays(z, 3, {}, seed=0)
    tiny = gmm_arrays(z * 1e-4, 3, {}, seed=0)
    np.testing.assert_array_equal(unit["labels"], tiny["labels"])
    assert len(set(tiny["labels"].tolist())) == 3
    np.testing.assert_allclose(tiny["means"], unit["means"] * 1e-4, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(tiny["variances"], unit["variances"] * 1e-8, rtol=1e-4)
    np.testing.assert_allclose(tiny["weights"], unit["weights"], rtol=1e-5)


def test_finetune_runs_predicts_and_resumes(tmp_path):
    x_np, y = _blobs()
    x = torch.as_tensor(x_np)
    torch.manual_seed(0)
    ae = RBMAutoencoder((4,), hidden=(8, 2))
    with torch.no_grad():
        z = ae.encode(x).numpy()
    init = gmm_arrays(z, 3, {}, seed=0)
    params = {"eta": "auto", "epochs": 3, "lr": 0.01, "batch_size": 32, "lr_step_epochs": 2,
              "checkpoint_every": 4}
    state = copy.deepcopy(ae.state_dict())
    result = finetune(ae, x, init, params, seed=0, y_true=y, log_every=2,
                      checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    assert result.labels.shape == (120,) and result.embedding.shape == (120, 2)
    assert result.info["eta"] == 0.01 and result.info["n_neighbours"] == 1
    assert sum(result.info["weights"]) == pytest.approx(1.0, abs=1e-5)
    monitor = [r for r in result.history if r["kind"] == "target"]
    assert len(monitor) == 3 and all("acc" in r and "log_likelihood_all" in r for r in monitor)
    assert all(r["centre_separation"] > 0 and r["code_std"] > 0 for r in monitor)
    train = [r for r in result.history if r["kind"] == "train"]
    assert {"log_likelihood", "separation", "objective"} <= set(train[0])
    # the finished checkpoint is reused: a restarted job gives the same result
    ae2 = RBMAutoencoder((4,), hidden=(8, 2))
    ae2.load_state_dict(state)
    again = finetune(ae2, x, init, params, seed=0, y_true=y, log_every=2,
                     checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    np.testing.assert_array_equal(again.labels, result.labels)
    assert again.info["resumed_from_step"] == result.info["steps"]


def _blob_start():
    """Three blobs (120, 4), their labels, a fresh RBM autoencoder (seed 0) and the GMM init of
    its codes."""
    x_np, y = _blobs()
    x = torch.as_tensor(x_np)
    torch.manual_seed(0)
    ae = RBMAutoencoder((4,), hidden=(8, 2))
    with torch.no_grad():
        init = gmm_arrays(ae.encode(x).numpy(), 3, {}, seed=0)
    return x, y, ae, init


def test_separation_weighted_per_dataset_is_eta_over_n_per_sample():
    x, _, ae, init = _blob_start()
    params = {"eta": 0.5, "epochs": 1, "lr": 0.01, "encoder_lr": 1e-5, "batch_size": 32}
    runs = {}
    for weighting, eta in (("dataset", 0.5), ("sample", 0.5 / x.shape[0])):
        net = copy.deepcopy(ae)
        runs[weighting] = finetune(net, x, init, {**params, "eta": eta,
                                                  "separation_weighting": weighting}, seed=0)
    assert runs["dataset"].info["separation_weighting"] == "dataset"
    # eta 0.5 over the dataset's 120 samples moves the centres as eta 0.5 / 120 per sample
    for key in ("rmn.means", "rmn.variances", "rmn.weights"):
        torch.testing.assert_close(runs["dataset"].state_dict[key],
                                   runs["sample"].state_dict[key])
    with pytest.raises(ValueError, match="separation_weighting must be one of sample, dataset"):
        finetune(copy.deepcopy(ae), x, init, {**params, "separation_weighting": "batch"}, seed=0)


def test_finetune_needs_the_gmm_init():
    x = torch.rand(10, 4)
    with pytest.raises(DataFileError, match="needs the arrays of the 'gmm' init"):
        finetune(RBMAutoencoder((4,), hidden=(8, 2)), x, {"labels": np.zeros(10, np.int64),
                                                          "centres": np.zeros((2, 2))},
                 {"epochs": 1, "lr": 0.01, "batch_size": 4}, seed=0)


def _config() -> dict:
    return {
        "datasets": {"synthetic": {"methods": ["rmn-gmm"]}},
        "autoencoders": {"rmn": {"net": "rmn-sae", "objective": "rmn-rbm",
                                 "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 8,
                                 "epochs": 1}},
        "inits": {"gmm": {"algorithm": "gmm"}, "kmeans": {"algorithm": "kmeans"}},
        "methods": {"rmn-gmm": {"family": "rmn-gmm", "ae": "rmn", "init": "gmm",
                                "head": "rmn"}},
    }


def test_config_checks_the_rmn_combinations():
    validate(_config())
    bad = _config()
    bad["methods"]["rmn-gmm"]["init"] = "kmeans"
    with pytest.raises(ConfigError, match="head 'rmn' needs an init with algorithm 'gmm'"):
        validate(bad)
    bad = _config()
    bad["autoencoders"]["rmn"]["arch"] = {"activation": "relu"}
    with pytest.raises(ConfigError, match="objective 'rmn-rbm' unrolls RBMs"):
        validate(bad)
    bad = _config()
    bad["autoencoders"]["rmn"]["net"] = "sae"
    with pytest.raises(ConfigError, match="objective 'rmn-rbm' needs net 'rmn-sae'"):
        validate(bad)
    # target_beta only where eta is auto_beta: the method's own eta or the head default's
    bad = _config()
    bad["methods"]["rmn-gmm"].update(eta=0.01, target_beta=0.5)
    with pytest.raises(ConfigError, match="target_beta .* applies only with eta: auto_beta"):
        validate(bad)
    inherited = _config()
    inherited["head_defaults"] = {"rmn": {"eta": "auto_beta", "target_beta": 0.125}}
    inherited["methods"]["deepgmm"] = {**inherited["methods"]["rmn-gmm"], "eta": 0.0}
    inherited["methods"]["rmn-gmm"]["target_beta"] = 0.5
    validate(inherited)
    inherited["head_defaults"]["rmn"]["eta"] = "auto"
    with pytest.raises(ConfigError, match="method 'rmn-gmm': target_beta"):
        validate(inherited)
    # the paper counts iterations: steps instead of epochs, for RMN's stage 1 only
    counted = _config()
    del counted["autoencoders"]["rmn"]["epochs"]
    counted["autoencoders"]["rmn"].update(steps=40, layer_steps=50, lr_step_steps=10)
    validate(counted)
    del counted["autoencoders"]["rmn"]["steps"]
    with pytest.raises(ConfigError, match="autoencoder 'rmn': no 'epochs'"):
        validate(counted)
    other = _config()
    other["autoencoders"]["s"] = {"net": "sae", "optimizer": {"name": "sgd", "lr": 0.01},
                                  "batch_size": 8, "epochs": 1, "steps": 100}
    with pytest.raises(ConfigError, match="objective 'reconstruction' counts epochs; steps"):
        validate(other)


def test_stage_one_counts_steps_whatever_the_dataset_size():
    torch.manual_seed(0)
    model = RBMAutoencoder((1, 8, 8), hidden=(16, 3))
    recipe = _recipe(layer_steps=3, steps=5, lr_step_steps=2)
    for key in ("layer_epochs", "epochs", "lr_step_epochs"):
        recipe.pop(key)
    result = rp.pretrain_rbm(model, _images(), recipe, seed=0, log_every=1)
    per_phase = {}
    for row in result.history:
        per_phase[row["phase"]] = per_phase.get(row["phase"], 0) + 1
    assert per_phase == {"rbm1": 3, "rbm2": 3, "finetune": 5}
    assert result.steps == 3 + 3 + 5


def test_reference_rows_of_the_rmn_gmm_paper():
    from stages.reporting import tables

    ref = tables.load_reference(tables.DEFAULT_REFERENCE)
    ref = ref[ref.paper == "rmn-gmm"].set_index(["method", "dataset", "metric"])["value"]
    assert ref[("rmn-gmm", "MNIST-full", "acc")] == 98.7
    assert ref[("rmn-gmm", "MNIST-full", "nmi")] == 96.0
    assert ref[("deepgmm", "MNIST-full", "acc")] == 72.5
    assert ref[("aef-gmm", "MNIST-full", "nmi")] == 59.0
    assert ref[("aef-kmeans", "MNIST-full", "acc")] == 80.0
    assert ref[("rmn-gmm", "Fashion-MNIST", "acc")] == 63.5
    assert tables.nmi_variant("rmn-gmm", "rmn-gmm") == "nmi_max"


def test_interrupted_finetune_resumes_to_the_same_result(tmp_path, monkeypatch):
    from stages.methods.rmn import head as rmn_module

    x, state, init = _tiny_autoencoder_and_gmm()
    params = {"eta": 0.01, "epochs": 3, "lr": 0.01, "encoder_lr": 0.01, "batch_size": 32,
              "lr_step_epochs": 1, "checkpoint_every": 4}

    def fresh() -> RBMAutoencoder:
        model = RBMAutoencoder((4,), hidden=(8, 2))
        model.load_state_dict(state)
        return model

    torch.manual_seed(1)
    full = finetune(fresh(), x, init, params, seed=0, log_every=2)
    real, calls = rmn_module.gmm_directions, {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:  # killed in step 10, after the checkpoint of step 8
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(rmn_module, "gmm_directions", failing)
    checkpoint = Checkpointer(tmp_path / "checkpoint.pt")
    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        finetune(fresh(), x, init, params, seed=0, log_every=2, checkpoint=checkpoint)
    monkeypatch.setattr(rmn_module, "gmm_directions", real)
    resumed = finetune(fresh(), x, init, params, seed=0, log_every=2, checkpoint=checkpoint)
    assert resumed.info["resumed_from_step"] == 8
    np.testing.assert_array_equal(resumed.labels, full.labels)
    for key, value in full.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[key], value)


def test_rescaled_code_keeps_the_clustering():
    x, _, ae, init = _blob_start()
    with torch.no_grad():
        z = ae.encode(x)
    means, variances, weights = (torch.as_tensor(init[k]) for k in ("means", "variances",
                                                                     "weights"))
    before = posteriors(z, means, variances, weights)
    with torch.no_grad():
        reconstruction = ae.decode(z)
    scale, means_s, variances_s = rescale_code(ae, x, means, variances)
    with torch.no_grad():
        z_s = ae.encode(x)
        torch.testing.assert_close(ae.decode(z_s), reconstruction, atol=1e-5, rtol=1e-4)
    # s: the root of the mean per-dimension variance (not the std of all entries, which also
    # counts the offsets between the dimensions' means)
    assert scale == pytest.approx(float(z.var(dim=0).mean().sqrt()), rel=1e-5)
    assert float(z_s.var(dim=0).mean()) == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(posteriors(z_s, means_s, variances_s, weights), before,
                               atol=1e-5, rtol=1e-4)


def test_reconstruction_weight_trains_the_decoder_beside_the_likelihood():
    x, state, init = _tiny_autoencoder_and_gmm()
    params = {"eta": 0.01, "epochs": 2, "lr": 0.01, "encoder_lr": 0.01, "batch_size": 32,
              "standardise": True}

    def decoder_after(**extra) -> tuple[dict[str, torch.Tensor], object]:
        model = RBMAutoencoder((4,), hidden=(8, 2))
        model.load_state_dict(state)
        result = finetune(model, x, init, {**params, **extra}, seed=0, log_every=1)
        return {k: v.clone() for k, v in model.decoder.state_dict().items()}, result

    # the paper's stage 3: the decoder keeps its weights (up to the code rescaling)
    torch.manual_seed(0)
    reference = RBMAutoencoder((4,), hidden=(8, 2))
    reference.load_state_dict(state)
    rescale_code(reference, x, torch.as_tensor(init["means"]), torch.as_tensor(init["variances"]))
    unused, paper = decoder_after()
    for key, value in reference.decoder.state_dict().items():
        torch.testing.assert_close(unused[key], value)
    assert paper.info["reconstruction_weight"] == 0.0
    assert not any("reconstruction" in row for row in paper.history)

    trained, with_rec = decoder_after(reconstruction_weight=1.0)
    assert any(not torch.equal(trained[k], unused[k]) for k in trained)
    rows = [row for row in with_rec.history if "reconstruction" in row]
    assert rows and all(row["loss"] > -row["log_likelihood"] for row in rows)

    with pytest.raises(ValueError, match="unknown reduction 'max'"):
        decoder_after(reconstruction_weight=1.0, reconstruction="max")


def test_the_relu_stacked_denoising_recipe_pretrains_with_relu_units():
    """config.yaml's rmn-sda-relu (DEC's Caffe SDAE units): greedy denoising layers and the
    fine-tune run with ReLU hidden units and a linear code, and its method validates."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg.validate(config)
    recipe = cfg.autoencoder_recipe(config, "rmn-sda-relu")
    assert cfg.method_recipe(config, "rmn-gmm-relu")["ae"] == "rmn-sda-relu"
    recipe = {**recipe, "arch": {**recipe["arch"], "hidden": [16, 3]}, "layer_steps": 3,
              "steps": 3, "augment": False, "batch_size": 16}
    model = build_network("rmn-sae", (1, 8, 8), recipe["arch"])
    assert any(isinstance(m, torch.nn.ReLU) for m in model.encoder)
    x = torch.rand(64, 1, 8, 8)
    result = rp.pretrain_sda(model, x, recipe, seed=0, log_every=1)
    losses = [row["loss"] for row in result.history if "loss" in row]
    assert losses and all(math.isfinite(v) for v in losses)


def _v(passes: bool, ratio_last: float) -> dict:
    return {"passes": passes, "ratio_last": ratio_last}


def test_decision_rule_over_two_datasets():
    """rmn-stage3.md's rule: a point passing on both datasets with the largest Fashion R wins;
    R within 1% is a tie broken towards encoder lr 0.01, euclidean, target beta nearest 1;
    passing on Fashion alone is rule 3; a better base keeps today's defaults (rule 4);
    nothing passing on Fashion keeps them too (rule 5)."""
    e = "rmn-gmm@eta=auto_beta@separation_distance=euclidean@target_beta={}@encoder_lr={}"
    n = "rmn-gmm@eta=auto_beta@separation_distance=normalized@target_beta={}@encoder_lr={}"
    a, b, c = e.format(0.25, 0.01), n.format(0.25, 0.01), e.format(0.0625, 1e-05)
    primary = {"rmn-gmm": _v(False, 9.0), a: _v(True, 7.0), b: _v(True, 7.05), c: _v(True, 8.0)}
    secondary = {"rmn-gmm": _v(True, 9.0), a: _v(True, 4.0), b: _v(True, 4.0), c: _v(False, 5)}
    got = criteria.decide(primary, secondary)
    assert (got["rule"], got["chosen"]) == (2, a)          # b ties with a: euclidean first
    assert got["options"] == {"eta": "auto_beta", "separation_distance": "euclidean",
                              "target_beta": "0.25", "encoder_lr": "0.01"}
    assert criteria.decide({**primary, b: _v(True, 7.2)}, secondary)["chosen"] == b
    closer = e.format(0.125, 0.01)                          # a tie on beta: 0.25 is nearer 1
    assert criteria.decide({**primary, closer: _v(True, 7.0)},
                           {**secondary, closer: _v(True, 1.0)})["chosen"] == a
    only_fashion = criteria.decide(primary, {**secondary, a: _v(False, 1), b: _v(False, 1)})
    assert (only_fashion["rule"], only_fashion["chosen"]) == (3, c)
    kept = criteria.decide({**primary, "rmn-gmm": _v(True, 9.0)}, secondary)
    assert (kept["rule"], kept["chosen"], kept["options"]) == (4, None, {})
    none = criteria.decide({k: _v(False, 1.0) for k in primary}, secondary)
    assert (none["rule"], none["chosen"]) == (5, None)
    with pytest.raises(ConfigError, match="not key=value"):
        criteria.decide({**primary, "rmn-gmm@eta": _v(True, 7.0)},
                        {**secondary, "rmn-gmm@eta": _v(True, 1.0)})


def test_decide_command_reads_both_datasets_histories(tmp_path, capsys):
    """The ``decide`` command: histories laid out as results/finetune/D/METHOD/seedS, one
    dataset per option; it prints the rule, the chosen point and its head_defaults line."""
    def history(dataset, method, ratios, largest=0.2):
        path = tmp_path / "results" / "finetune" / dataset / method / "seed0" / "history.csv"
        path.parent.mkdir(parents=True)
        pd.DataFrame([{"kind": "target", "step": i, "code_std": 1.0, "smallest_share": 0.05,
                       "largest_share": largest, "kappa_max": 0.3, "separation_ratio": r}
                      for i, r in enumerate(ratios)]).to_csv(path, index=False)
        return str(path)
    point = "rmn-gmm@separation_distance=euclidean@target_beta=0.125@encoder_lr=0.01"
    fashion = [history("fashion", "rmn-gmm", [6.0, 6.1]), history("fashion", point, [6.0, 7.0])]
    mnist = [history("mnist5k", "rmn-gmm", [3.0, 3.1]),
             history("mnist5k", point, [3.0, 3.5], largest=0.6)]
    criteria.run(criteria.build_parser().parse_args(
        ["decide", "--primary", *fashion, "--secondary", *mnist, "--out", str(tmp_path / "d.csv")]))
    out = capsys.readouterr().out
    assert f"rule 3: {point}" in out
    assert "head_defaults.rmn: separation_distance: euclidean, target_beta: 0.125, " \
           "encoder_lr: 0.01" in out
    assert len(pd.read_csv(tmp_path / "d.csv")) == 4
    with pytest.raises(DataFileError, match="one dataset"):
        criteria.run(criteria.build_parser().parse_args(
            ["decide", "--primary", *fashion, mnist[0], "--secondary", *mnist]))


def test_restart_likelihoods_never_fall_with_more_em_runs(capsys, tmp_path):
    """``criteria restarts``: stage 2's GMM fitted as the init fits it; the best of more EM runs
    (each from its own k-means start) has at least the likelihood of fewer, and matches
    ``gmm_arrays`` fitted with the same recipe."""
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(c, 0.5, size=(60, 3)) for c in (-3.0, 0.0, 3.0, 6.0)])
    rows = criteria.restart_likelihoods(z, 4, [1, 5], seed=3)
    assert [r["n_init"] for r in rows] == [1, 5] and all(r["converged"] for r in rows)
    assert rows[1]["loglik"] >= rows[0]["loglik"] - 1e-12
    labels = gmm_arrays(z, 4, {"n_init": 5}, seed=3)["labels"]
    assert len(set(labels.tolist())) == 4
    write_arrays(tmp_path / "seed0.h5", {"Z": z.astype(np.float32)})
    criteria.run(criteria.build_parser().parse_args(
        ["restarts", str(tmp_path / "seed0.h5"), "--n-init", "1", "2", "--n-clusters", "4"]))
    out = capsys.readouterr().out
    assert "loglik" in out and out.count("seed0.h5") == 2
