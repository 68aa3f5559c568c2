"""SAIP (Peng et al., TNNLS 2020): distances, assignments, loss, schedule, stop rule, nets,
denoising pretraining and the fine-tuning driver (with resume)."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from stages.methods.saip import head as saip
from stages.methods.saip.pretrain import pretrain_denoising
from stages.methods.shared.noise import corrupt
from stages.nets import build_network, check_network_input
from stages.plumbing.errors import ConfigError


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "correlation", "cityblock"])
def test_distances_match_scipy_cdist(distance):
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(37, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    ours = saip.pairwise_distance(h, w, distance).numpy()
    assert ours.shape == (37, 5)
    assert np.allclose(ours, cdist(h.numpy(), w.numpy(), distance), atol=1e-10)


def test_unknown_distance_names_the_choices():
    with pytest.raises(ConfigError, match=r"unknown SAIP distance 'mahalanobis'.*cosine"):
        saip.pairwise_distance(torch.zeros(2, 3), torch.zeros(2, 3), "mahalanobis")


def test_q1_by_hand_and_all_equal_row():
    z = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    q1 = saip.q1_assign(z)  # u = (2, 2): max(0, 2 - z)
    assert torch.equal(q1, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    p = saip.sharpen(q1)
    assert torch.isfinite(p).all() and torch.equal(p[1], torch.zeros(3))


def test_q2_by_hand():
    z = torch.tensor([[0.0, 1.0]])
    assert torch.allclose(saip.q2_assign(z), torch.tensor([[2 / 3, 1 / 3]]))


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "correlation", "cityblock"])
def test_assignments_rows_sum_to_one(distance):
    gen = torch.Generator().manual_seed(2)
    p1, p2 = saip.assignments(torch.randn(50, 4, generator=gen), torch.randn(3, 4, generator=gen),
                              distance)
    assert p1.shape == p2.shape == (50, 3)
    assert torch.allclose(p1.sum(1), torch.ones(50), atol=1e-5)
    assert torch.allclose(p2.sum(1), torch.ones(50), atol=1e-5)
    assert (p1 >= 0).all() and (p2 > 0).all()


def test_sharpen_is_eq6_with_batch_frequencies():
    q = torch.tensor([[2.0, 2.0], [1.0, 3.0]])  # unnormalised rows, like Q1
    q_bar = q / q.sum(1, keepdim=True)          # (.5, .5), (.25, .75); f = (.75, 1.25)
    w = q_bar.pow(2) / q_bar.sum(0)
    assert torch.allclose(saip.sharpen(q), w / w.sum(1, keepdim=True))


@pytest.mark.parametrize("kl", ["p1_p2", "p2_p1", "symmetric"])
def test_loss_zero_for_equal_and_positive_otherwise(kl):
    p = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    assert saip.saip_loss(p, p, kl).item() == pytest.approx(0.0, abs=1e-7)
    other = torch.tensor([[0.5, 0.5], [0.6, 0.4]])
    forward = float((p * (p / other).log()).sum(1).mean())       # KL(P1 || P2)
    backward = float((other * (other / p).log()).sum(1).mean())  # KL(P2 || P1)
    expected = {"p1_p2": forward, "p2_p1": backward, "symmetric": forward + backward}[kl]
    assert saip.saip_loss(p, other, kl).item() == pytest.approx(expected, rel=1e-5)


# P1 with an exact zero (Q1 is sparse by design), P2 strictly positive
P1 = torch.tensor([[0.5, 0.5, 0.0]])
P2 = torch.tensor([[0.25, 0.25, 0.5]])


def test_readings_by_hand_where_p1_is_zero():
    # KL(P1 || P2) = 2 * 0.5 log(0.5 / 0.25) = log 2: the zero entry adds nothing (0 log 0 = 0)
    assert saip.saip_loss(P1, P2, "p1_p2").item() == pytest.approx(np.log(2), rel=1e-6)
    # KL(P2 || P1): the zero of P1 is clipped to 1e-7
    backward = 2 * 0.25 * np.log(0.5) + 0.5 * np.log(0.5 / 1e-7)
    assert saip.saip_loss(P1, P2, "p2_p1").item() == pytest.approx(backward, rel=1e-5)
    assert saip.saip_loss(P1, P2, "symmetric").item() == pytest.approx(np.log(2) + backward,
                                                                       rel=1e-5)
    # share of the loss from the clipped entry: none in KL(P1 || P2), most of KL(P2 || P1)
    assert saip.clipped_share(P1, P2, "p1_p2") == 0.0
    clipped = 0.5 * np.log(0.5 / 1e-7)
    assert saip.clipped_share(P1, P2, "p2_p1") == pytest.approx(clipped / backward, rel=1e-5)
    assert saip.clipped_share(P1, P2, "symmetric") == pytest.approx(
        clipped / (backward + np.log(2)), rel=1e-5)


def test_kl_p1_p2_has_finite_gradients_at_exact_zeros_and_the_clipped_entry_none():
    p1 = P1.clone().requires_grad_(True)
    p2 = P2.clone().requires_grad_(True)
    saip.saip_loss(p1, p2, "p1_p2").backward()
    assert torch.isfinite(p1.grad).all() and torch.isfinite(p2.grad).all()
    # d/dp2_j of -p1_j log p2_j = -p1_j / p2_j: nothing on the entry where P1 is zero
    assert torch.allclose(p2.grad, torch.tensor([[-2.0, -2.0, 0.0]]))
    p1.grad = None
    saip.saip_loss(p1, P2, "p2_p1").backward()
    assert p1.grad[0, 2].item() == 0.0          # clipped: no gradient where P1 is zero


@pytest.mark.parametrize("kl", ["p1_p2", "p2_p1", "symmetric"])
def test_detach_stops_the_gradient_through_the_named_side_only(kl):
    for detach, fixed, trained in [("p2", "p2", "p1"), ("p1", "p1", "p2")]:
        p = {"p1": torch.tensor([[0.7, 0.3]], requires_grad=True),
             "p2": torch.tensor([[0.4, 0.6]], requires_grad=True)}
        loss = saip.saip_loss(p["p1"], p["p2"], kl, detach=detach)
        assert loss.item() == pytest.approx(saip.saip_loss(p["p1"], p["p2"], kl).item())
        loss.backward()
        assert p[fixed].grad is None and p[trained].grad is not None
    p1 = torch.tensor([[0.7, 0.3]], requires_grad=True)
    p2 = torch.tensor([[0.4, 0.6]], requires_grad=True)
    saip.saip_loss(p1, p2, kl).backward()
    assert p1.grad is not None and p2.grad is not None
    with pytest.raises(ConfigError, match=r"unknown SAIP detach 'both'; valid choices: none, p2, "
                                          r"p1"):
        saip.saip_loss(p1, p2, kl, detach="both")


def test_detach_p1_by_hand():
    """KL(P1 || P2) against a fixed P1: the value of the reading, and d/dP2_ij = -P1_ij / P2_ij
    averaged over the rows (nothing where P1 is zero), no gradient into P1."""
    p1 = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]], requires_grad=True)
    p2 = torch.tensor([[0.25, 0.25, 0.5], [0.1, 0.4, 0.5]], requires_grad=True)
    loss = saip.saip_loss(p1, p2, "p1_p2", detach="p1")
    by_hand = (np.log(2) + 0.2 * np.log(0.2 / 0.4) + 0.8 * np.log(0.8 / 0.5)) / 2
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    loss.backward()
    assert p1.grad is None
    assert torch.allclose(p2.grad, torch.tensor([[-1.0, -1.0, 0.0], [0.0, -0.25, -0.8]]))
    # KL(P2 || P1) against a fixed P1: d/dP2_ij = (log(P2_ij / max(P1_ij, 1e-7)) + 1) / B
    p2.grad = None
    saip.saip_loss(p1, p2, "p2_p1", detach="p1").backward()
    q = p1.detach().clamp_min(1e-7)
    assert p1.grad is None
    assert torch.allclose(p2.grad, ((p2.detach() / q).log() + 1) / 2)


@pytest.mark.parametrize("kl", ["p1_p2", "p2_p1", "symmetric"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "correlation", "cityblock"])
def test_detach_p1_gives_the_p1_branch_inputs_no_gradient(distance, kl):
    """P1 and P2 built from separate copies of the embeddings and centres: with ``detach: p1``
    the copies feeding P1 (Eq. 7's Euclidean triangle) get no gradient, those feeding P2
    (``distance``) do; with gradients through both, both do."""
    gen = torch.Generator().manual_seed(3)
    h, w = torch.randn(20, 4, generator=gen), torch.randn(3, 4, generator=gen)
    for detach in ("p1", "none"):
        leaves = [t.clone().requires_grad_(True) for t in (h, w, h, w)]
        h1, w1, h2, w2 = leaves
        p1 = saip.sharpen(saip.q1_assign(saip.pairwise_distance(h1, w1, "euclidean")))
        p2 = saip.sharpen(saip.q2_assign(saip.pairwise_distance(h2, w2, distance)))
        grads = torch.autograd.grad(saip.saip_loss(p1, p2, kl, detach=detach), leaves,
                                    allow_unused=True)
        through_p1 = [g is not None and float(g.abs().max()) > 0 for g in grads[:2]]
        through_p2 = [g is not None and float(g.abs().max()) > 0 for g in grads[2:]]
        assert all(through_p2)
        assert through_p1 == ([False, False] if detach == "p1" else [True, True])


def test_resolve_detach_and_its_errors():
    assert saip.resolve_detach({}) == "none"
    assert saip.resolve_detach({"detach_target": True}) == "p2"
    assert saip.resolve_detach({"detach_target": False, "detach": "p1"}) == "p1"
    assert saip.resolve_detach({"detach_target": True, "detach": "p2"}) == "p2"
    with pytest.raises(ConfigError, match=r"detach_target: true fixes P2 but detach: p1"):
        saip.resolve_detach({"detach_target": True, "detach": "p1"})
    with pytest.raises(ConfigError, match=r"unknown SAIP detach 'P1'; valid choices"):
        saip.resolve_detach({"detach": "P1"})


def test_symmetric_reading_has_both_parts_and_unknown_reading_names_the_choices():
    parts = saip.saip_kl_parts(P1, P2, "symmetric")
    assert set(parts) == {"p1_p2", "p2_p1"}
    with pytest.raises(ConfigError, match=r"unknown SAIP kl reading 'js'.*p1_p2, p2_p1"):
        saip.saip_loss(P1, P2, "js")


def test_assignment_signals_by_hand():
    p1 = torch.tensor([[0.6, 0.4, 0.0], [0.0, 1.0, 0.0]])
    p2 = torch.tensor([[0.2, 0.5, 0.3], [0.1, 0.8, 0.1]])
    h = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    signals = saip.assignment_signals(h, p1, p2, "p1_p2")
    assert signals["disagreement"] == 0.5            # row 0: argmax 0 vs 1; row 1 agrees
    assert signals["p1_zero_fraction"] == pytest.approx(3 / 6)
    assert signals["p2_mass_on_p1_zeros"] == pytest.approx((0.3 + 0.2) / 2)
    assert signals["embedding_norm"] == pytest.approx(3.0)
    assert signals["clipped_share"] == 0.0
    assert signals["loss_all"] == pytest.approx(saip.saip_loss(p1, p2, "p1_p2").item())


def test_lr_decays_every_ep_epochs_at_most_re_minus_1_times():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = saip.make_scheduler(opt, steps_per_decay=4, decay=0.5, repeats=3)
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [1.0] * 4 + [0.5] * 4 + [0.25] * 8   # two decays, then constant


def _model(n=60, k=3, seed=0):
    torch.manual_seed(seed)
    ae = build_network("sae", (6,), {"hidden": [8, 2]})
    return saip.SaipClusterer(ae, torch.randn(k, 2), "cosine"), torch.randn(n, 6)


def test_stop_rule_fires_when_fewer_than_tol_labels_change():
    model, x = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hook = saip.ClusteringHook(model, x, np.zeros(60, dtype=np.int64), 5, 0.0003, opt)
    assert hook(0) is False                 # first epoch: nothing to compare with
    assert hook(5) is True                  # same weights: 0 % changed
    assert hook.rows[-1]["delta_label"] == 0.0 and hook.rows[-1]["lr"] == 0.1
    with torch.no_grad():
        model.centres.copy_(torch.randn_like(model.centres) * 5)
    assert hook(10) is False and hook.rows[-1]["delta_label"] > 0.0003


def test_stop_rule_not_checked_until_check_after():
    model, x = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hook = saip.ClusteringHook(model, x, None, 5, 0.0003, opt, check_after=10)
    # the same weights: 0 % changed at every epoch, but the rule waits until after step 10
    assert [hook(step) for step in (0, 5, 10, 15)] == [False, False, False, True]
    assert [row["delta_label"] for row in hook.rows[1:]] == [0.0, 0.0, 0.0]


def test_assignment_sharpness_of_both_assignments():
    p1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    p2 = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
    assert saip.assignment_sharpness(p1, p2) == pytest.approx({"sharpness_p1": 0.75,
                                                               "sharpness_p2": 0.55})


def test_stop_check_after_and_its_errors():
    assert saip.stop_check_after("start", 60, 10) == 0
    assert saip.stop_check_after("first_lr_decay", 60, 10) == 60
    with pytest.raises(ConfigError, match=r"first_lr_decay with decay_repeats: 1 never checks"):
        saip.stop_check_after("first_lr_decay", 60, 1)
    with pytest.raises(ConfigError, match=r"unknown SAIP stop_after 'never'; valid choices: "
                                          r"start, first_lr_decay"):
        saip.stop_check_after("never", 60, 10)


def _finetune(x, ae, centres, **over):
    params = {"distance": "correlation", "kl": "p1_p2", "optimizer": {"name": "sgd", "lr": 0.01,
                                                       "momentum": 0.9, "weight_decay": 1e-4},
              "lr_decay": 0.5, "decay_epochs": 2, "decay_repeats": 3, "tol": 0.0,
              "batch_size": 16, "checkpoint_every": 4, **over}
    return saip.finetune(ae, x, {"centres": centres}, params, seed=3,
                         y_true=np.zeros(x.shape[0], dtype=np.int64), log_every=2,
                         checkpoint=over.pop("checkpoint", None))


def test_finetune_trains_encoder_and_centres_on_the_lr_schedule():
    # killed-and-resumed runs ending identical: tests/test_heads.py, for every head
    torch.manual_seed(0)
    ae = build_network("sae", (6,), {"hidden": [8, 2]})
    x, centres = torch.randn(64, 6), np.random.default_rng(0).normal(size=(3, 2)).astype("f4")
    full = _finetune(x, ae, centres)
    assert full.info["steps"] == 2 * 3 * 4 and full.labels.shape == (64,)
    targets = [r for r in full.history if r["kind"] == "target"]
    assert len(targets) == 6 and [r["lr"] for r in targets[::2]] == [0.01, 0.005, 0.0025]
    for row in targets:   # SAIP's label-free signals in every monitor row
        assert 0 <= row["disagreement"] <= 1 and row["clipped_share"] == 0.0
        assert row["embedding_norm"] > 0 and 0 < row["sharpness"] <= 1
        assert row["sharpness"] == row["sharpness_p1"]   # detach: none, predict: p1
        assert 1 / 3 <= row["sharpness_p2"] <= 1
    assert not np.allclose(full.state_dict["centres"].numpy(), centres)


def test_finetune_predict_p2_and_bad_predict():
    torch.manual_seed(0)
    ae = build_network("sae", (6,), {"hidden": [8, 2]})
    x, centres = torch.randn(32, 6), np.random.default_rng(0).normal(size=(3, 2)).astype("f4")
    result = _finetune(x, ae, centres, predict="p2", detach_target=True)
    assert result.info["predict"] == "p2" and result.info["detach"] == "p2"
    targets = [r for r in result.history if r["kind"] == "target"]
    assert all(r["sharpness"] == r["sharpness_p1"] for r in targets)   # P2 fixed: P1 trained
    result = _finetune(x, ae, centres, detach="p1")
    targets = [r for r in result.history if r["kind"] == "target"]
    assert all(r["sharpness"] == r["sharpness_p2"] for r in targets)   # P1 fixed: P2 trained
    with pytest.raises(ConfigError, match=r"unknown SAIP predict 'p3'; valid choices: p1, p2"):
        _finetune(x, ae, centres, predict="p3")


def test_trained_assignment_is_the_one_the_gradient_moves():
    assert saip.trained_assignment("p1", "p1") == "p2"
    assert saip.trained_assignment("p2", "p1") == "p1"
    assert saip.trained_assignment("none", "p1") == "p1"
    assert saip.trained_assignment("none", "p2") == "p2"


@pytest.mark.parametrize("stop_after", ["start", "first_lr_decay"])
def test_finetune_stop_after(stop_after):
    """tol 1 stops at the first check: after one epoch from the start, after the first epoch
    trained at the decayed lr (ep = 2 epochs of 4 steps) with ``first_lr_decay``; every epoch
    still has its monitor row."""
    torch.manual_seed(0)
    ae = build_network("sae", (6,), {"hidden": [8, 2]})
    x, centres = torch.randn(64, 6), np.random.default_rng(0).normal(size=(3, 2)).astype("f4")
    result = _finetune(x, ae, centres, tol=1.0, stop_after=stop_after, detach="p1")
    steps = 4 if stop_after == "start" else (2 + 1) * 4
    assert result.info["steps"] == steps and result.info["converged"] is True
    assert result.info["stop_after"] == stop_after and result.info["detach"] == "p1"
    targets = [r for r in result.history if r["kind"] == "target"]
    assert [r["step"] for r in targets] == list(range(0, steps + 1, 4))
    assert targets[-1]["lr"] == pytest.approx(0.01 * (0.5 if steps > 8 else 1.0))


def test_sae_options_centre_and_sigmoid_ends():
    x = torch.rand(10, 1, 4, 4) + 3.0
    ae = build_network("sae", (1, 4, 4), {"hidden": [8, 3], "centre_input": True,
                                           "embedding_activation": "sigmoid"})
    ae.set_input_mean(x)
    assert torch.allclose(ae.input_mean, x.flatten(1).mean(0))
    z, x_hat = ae(x)
    assert z.shape == (10, 3) and ((z > 0) & (z < 1)).all() and x_hat.shape == x.shape
    # the decoder adds the mean back: zero decoder weights reconstruct the mean image
    for layer in ae.decoder:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    assert torch.allclose(ae.decode(z), ae.input_mean.view(1, 1, 4, 4).expand(10, 1, 4, 4))
    plain = build_network("sae", (16,), {"hidden": [8, 3]})
    assert "input_mean" not in plain.state_dict()   # other recipes' files are unchanged
    with pytest.raises(ConfigError, match=r"unknown end activation 'tanh'.*linear, sigmoid"):
        build_network("sae", (16,), {"hidden": [8, 3], "output_activation": "tanh"})


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 16, 16), (3, 15, 17)])
def test_hoe_cnn_shapes_and_sigmoid_ends(shape):
    net = build_network("saip-cnn", shape, {"channels": [4, 3], "hidden": 16})
    x = torch.rand(2, *shape)
    z, x_hat = net(x)
    assert z.shape == (2, 10) and x_hat.shape == x.shape
    assert ((z > 0) & (z < 1)).all() and ((x_hat > 0) & (x_hat < 1)).all()


def test_hoe_cnn_mean_output_bias_starts_at_the_mean_image():
    torch.manual_seed(0)
    shape = (1, 12, 12)
    x = torch.rand(50, *shape) ** 3      # a mean image far from sigmoid(0) = 0.5
    net = build_network("saip-cnn", shape, {"channels": [4, 3], "hidden": 16,
                                            "mean_output_bias": True})
    net.set_input_mean(x)
    assert torch.allclose(torch.sigmoid(net.output_bias), x.mean(dim=0), atol=1e-5)
    with torch.no_grad():                # a decoder that ignores the code outputs the mean image
        net.decoder_conv[-2].weight.zero_()
        net.decoder_conv[-2].bias.zero_()
    _, x_hat = net(x[:3])
    assert torch.allclose(x_hat, x.mean(dim=0).expand(3, *shape), atol=1e-5)
    # the bias is trained and saved with the network; the plain recipe has none
    assert "output_bias" in dict(net.named_parameters())
    reloaded = build_network("saip-cnn", shape, {"channels": [4, 3], "hidden": 16,
                                                 "mean_output_bias": True})
    reloaded.load_state_dict(net.state_dict())
    assert torch.equal(reloaded(x[:3])[1], x_hat)
    plain = build_network("saip-cnn", shape, {"channels": [4, 3], "hidden": 16})
    plain.set_input_mean(x)              # a no-op without the flag
    assert "output_bias" not in plain.state_dict()


def test_hoe_cnn_rejects_flat_and_tiny_inputs():
    with pytest.raises(ConfigError, match=r"saip-cnn.*needs images"):
        check_network_input("saip-cnn", (64,))
    with pytest.raises(ConfigError, match=r"at least 4x4.*3x3"):
        check_network_input("saip-cnn", (1, 3, 3))


def test_corruption_types():
    torch.manual_seed(0)
    x = torch.ones(200, 50)
    noisy = corrupt(x, 0.3)
    assert (noisy - x).std().item() == pytest.approx(0.3, rel=0.05)
    masked = corrupt(x, 0.3, "masking")
    assert (masked == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ConfigError, match=r"unknown noise_type 'salt'; valid choices: gaussian"):
        corrupt(x, 0.3, "salt")


def test_denoising_pretraining_lowers_reconstruction_error():
    torch.manual_seed(0)
    x = torch.sigmoid(torch.randn(128, 2) @ torch.randn(2, 36)).view(128, 1, 6, 6)  # rank 2
    ae = build_network("sae", (1, 6, 6), {"hidden": [32, 4], "centre_input": True})
    recipe = {"epochs": 30, "batch_size": 32, "noise": 0.1,
              "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-9}}
    result = pretrain_denoising(ae, x, recipe, seed=0, log_every=4)
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert torch.allclose(ae.input_mean, x.flatten(1).mean(0))


HELD_OUT = {"epochs": 3, "batch_size": 10, "noise": 0.1, "validation_fraction": 0.25,
            "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-9}}


def _held_out_dae(x: torch.Tensor, recipe: dict, checkpoint=None):
    from stages.runtime.train import Checkpointer

    torch.manual_seed(0)
    ae = build_network("sae", (1, 4, 4), {"hidden": [8, 3], "centre_input": True})
    return ae, pretrain_denoising(ae, x, recipe, seed=0, log_every=1,
                                  checkpoint=Checkpointer(checkpoint))


def test_denoising_pretraining_holds_out_validation_fraction():
    """With validation_fraction the DAE trains (and takes its input mean) on the rest only and
    records the clean reconstruction of the held-out images once per epoch and at the end."""
    from stages.runtime.train import validation_split

    x = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    train, val = validation_split(40, 0.25, 0)
    ae, result = _held_out_dae(x, HELD_OUT)
    assert result.steps == 9                            # 30 training images, batches of 10
    rows = [r for r in result.history if r["kind"] == "validation"]
    assert [r["step"] for r in rows] == [0, 3, 6, 9]
    assert torch.equal(ae.input_mean, x[train].flatten(1).mean(0))
    with torch.no_grad():
        z, x_hat = ae(x[val])                           # clean: no noise
    assert rows[-1]["val_mse"] == pytest.approx(float(((x_hat - x[val]) ** 2).mean()), rel=1e-6)
    assert 1.0 <= rows[-1]["code_participation_ratio"] <= 3.0
    assert 0.0 < rows[-1]["code_min_std_ratio"] <= 1.0
    # the held-out images never reach training: other values there, bit-identical weights
    other = x.clone()
    other[val] = 1.0 - other[val]
    again, second = _held_out_dae(other, HELD_OUT)
    for key, value in ae.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    assert [r["loss"] for r in second.history if r["kind"] == "train"] == \
        [r["loss"] for r in result.history if r["kind"] == "train"]
    assert [r["val_mse"] for r in second.history if r["kind"] == "validation"] != \
        [r["val_mse"] for r in rows]
    with pytest.raises(ValueError, match="validation_fraction must lie in"):
        _held_out_dae(x, {**HELD_OUT, "validation_fraction": 1.0})


def test_denoising_pretraining_with_held_out_rows_resumes_bit_identically(tmp_path, monkeypatch):
    """Killed after a checkpoint and restarted with other initial weights, the DAE with a
    held-out split ends with the weights, the input mean and the rows of an uninterrupted run."""
    import stages.methods.saip.pretrain as saip_pretrain
    from stages.runtime.train import Checkpointer

    x = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    recipe = {**HELD_OUT, "checkpoint_every": 4}
    ae, full = _held_out_dae(x, recipe)
    real, calls = saip_pretrain.corrupt, {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # the bad-noise check, then steps 1-6: killed in step 7
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(saip_pretrain, "corrupt", dying)
    with pytest.raises(KeyboardInterrupt):
        _held_out_dae(x, recipe, tmp_path / "checkpoint.pt")
    monkeypatch.setattr(saip_pretrain, "corrupt", real)
    torch.manual_seed(5)  # a fresh process: other initial weights and RNG state
    resumed_ae = build_network("sae", (1, 4, 4), {"hidden": [8, 3], "centre_input": True})
    resumed = pretrain_denoising(resumed_ae, x, recipe, seed=0, log_every=1,
                                 checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    assert resumed.resumed_from == 4
    for key, value in ae.state_dict().items():
        assert torch.equal(resumed_ae.state_dict()[key], value), key
    assert resumed.history == full.history


def _config():
    import yaml
    from snakemake.utils import validate as schema_validate

    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config.yaml").read_text())
    schema_validate(config, str(repo / "workflow/schemas/config.schema.yaml"))
    return config, str(repo / "workflow/schemas/config.schema.yaml")


def test_config_recipes_and_schedules():
    from stages.plumbing import config as cfg

    config, _ = _config()
    cfg.validate(config)
    assert ("mnist5k", "saip-hoe", 0) in cfg.runs(config)
    quick = cfg.method_recipe(config, "saip-hit")
    assert quick["distance"] == "cityblock" and quick["tol"] == 0.0003
    config["schedule"] = "paper"
    paper = cfg.method_recipe(config, "saip-homo")
    assert (paper["decay_epochs"], paper["decay_repeats"], paper["lr_decay"]) == (300, 10, 0.9)
    assert cfg.autoencoder_recipe(config, "dae")["epochs"] == 200
    assert cfg.method_modules(config, "saip-hoe-cnn") == ["stages.nets.saip",
                                                          "stages.methods.saip.head"]


def test_config_rejects_saip_on_depict_net_and_unknown_distance():
    from snakemake.utils import validate as schema_validate

    from stages.plumbing import config as cfg

    config, schema = _config()
    config["methods"]["saip-hoe"]["ae"] = "depict"
    with pytest.raises(ConfigError, match=r"head 'saip' needs an autoencoder with net one of "
                                          r"cae, sae, saip-cnn, but 'depict' has net 'depict'"):
        cfg.validate(config)
    config, schema = _config()
    config["methods"]["saip-hoe"]["distance"] = "chebyshev"
    with pytest.raises(ConfigError, match=r"methods\.saip-hoe\.distance: 'chebyshev' is not one "
                                          r"of \['euclidean', 'cosine', 'correlation'"):
        cfg.validate(config)
    config, schema = _config()
    config["methods"]["saip-hoe"]["stop_after"] = "first_lr_decay"
    config["methods"]["saip-hoe"]["decay_repeats"] = {"paper": 10, "quick": 1}
    with pytest.raises(ConfigError, match=r"method 'saip-hoe': SAIP: stop_after: first_lr_decay "
                                          r"with decay_repeats: 1"):
        cfg.validate(config)
    config, schema = _config()
    config["head_defaults"]["saip"].pop("detach", None)  # the default is now p1
    config["head_defaults"]["saip"]["detach_target"] = True
    config["methods"]["saip-hot"]["detach"] = "p1"
    with pytest.raises(ConfigError, match=r"method 'saip-hot': SAIP: detach_target: true fixes "
                                          r"P2 but detach: p1"):
        cfg.validate(config)
    config, schema = _config()
    config["methods"]["saip-hit"]["detach"] = "target"
    with pytest.raises(ConfigError, match=r"methods\.saip-hit\.detach: 'target' is not one of "
                                          r"\['none', 'p1', 'p2'\]"):
        cfg.validate(config)
    config, schema = _config()
    config["head_defaults"]["saip"].update(detach="p1", stop_after="first_lr_decay")
    cfg.validate(config)
    assert cfg.method_recipe(config, "saip-hoe-cnn")["detach"] == "p1"
    schema_validate(config, schema)  # the shared schema leaves a head's options to its family
