import numpy as np
import pytest
import torch

from stages.methods.dec.head import ClusteringAutoencoder, ClusteringHook, student_t_assign
from stages.methods.shared.common import kl_divergence, target_distribution
from stages.nets import build_network


def test_student_t_matches_hand_computation():
    z = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    q = student_t_assign(z, centres)
    # point 0: kernels 1/(1+0)=1, 1/(1+1)=0.5 -> (2/3, 1/3); point 1: 1/(1+2), 1/(1+1) -> (0.4, 0.6)
    expected = torch.tensor([[2 / 3, 1 / 3], [0.4, 0.6]])
    assert torch.allclose(q, expected, atol=1e-6)


def test_dec_target_distribution_by_hand():
    q = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    p = target_distribution(q)  # q^2 / f, f = (1.2, 0.8)
    w = np.array([[0.64 / 1.2, 0.04 / 0.8], [0.16 / 1.2, 0.36 / 0.8]])
    expected = w / w.sum(1, keepdims=True)
    assert np.allclose(p.numpy(), expected, atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(2))
    # sharpening: the dominant assignment of each point grows
    assert p[0, 0] > q[0, 0] and p[1, 1] > q[1, 1]


def test_target_distribution_generalises_depict_eq7():
    q = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    p = target_distribution(q, power=1.0, freq_exponent=0.5)
    w = q.numpy() / np.sqrt(q.numpy().sum(0))
    assert np.allclose(p.numpy(), w / w.sum(1, keepdims=True), atol=1e-6)


def test_kl_zero_for_equal_and_positive_otherwise():
    q = torch.tensor([[0.7, 0.3], [0.1, 0.9]])
    assert kl_divergence(q, q).item() == pytest.approx(0.0, abs=1e-7)
    p = target_distribution(q)
    expected = float((p * (p / q).log()).sum(1).mean())
    assert kl_divergence(p, q).item() == pytest.approx(expected, rel=1e-5)
    assert kl_divergence(p, q).item() > 0


def _hook(period=3, tol=0.01):
    torch.manual_seed(0)
    ae = build_network("sae", (4,), {"hidden": [8, 2]})
    model = ClusteringAutoencoder(ae, torch.randn(3, 2))
    x = torch.randn(50, 4)
    return ClusteringHook(model, x, np.zeros(50, dtype=np.int64), period, tol), model


def test_target_update_stop_rule():
    hook, model = _hook()
    assert hook(0) is False  # first update never stops
    assert hook.p.shape == (50, 3)
    assert hook(3) is True   # nothing changed: 0% < tol
    with torch.no_grad():   # move the centres so that labels change
        model.centres.mul_(-1.0).add_(3.0 * torch.randn_like(model.centres))
    changed = hook(6)
    delta = hook.rows[-1]["delta_label"]
    assert delta > 0
    assert changed is (delta < hook.tol)
    assert {"acc", "nmi", "delta_label", "step"} <= set(hook.rows[-1])


def test_target_update_state_round_trip():
    hook, _ = _hook()
    hook(0)
    other, _ = _hook()
    other.load_state_dict(hook.state_dict())
    assert torch.equal(other.p, hook.p) and other.rows == hook.rows


def test_reconstruction_reductions():
    from stages.methods.shared.common import reconstruction_mse

    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]], [[[2.0, 0.0], [0.0, 0.0]]]])
    # per-sample sums of squares: 2 and 4 -> mean 3; per-element mean: 6 / 8
    assert reconstruction_mse(x_hat, x, "sum").item() == pytest.approx(3.0)
    assert reconstruction_mse(x_hat, x, "mean").item() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="valid choices: mean, sum"):
        reconstruction_mse(x_hat, x, "max")


def test_networks_start_from_keras_defaults():
    net = build_network("cae", (1, 16, 16), {"embedding_dim": 3})
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            assert torch.count_nonzero(m.bias) == 0
            fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
            assert m.weight.abs().max() <= (6.0 / (fan_in + fan_out)) ** 0.5 + 1e-6


def test_sae_fan_in_uniform_init_of_dec_keras():
    net = build_network("sae", (1, 8, 8), {"hidden": [32, 16, 4], "init": "fan-in-uniform"})
    for m in (m for m in net.modules() if isinstance(m, torch.nn.Linear)):
        limit = 1.0 / m.in_features ** 0.5  # VarianceScaling(1/3, fan_in, uniform)
        assert m.weight.abs().max() <= limit and m.weight.abs().max() > 0.9 * limit
        assert torch.count_nonzero(m.bias) == 0
    with pytest.raises(Exception, match="unknown init 'he'; valid choices: glorot-uniform"):
        build_network("sae", (1, 8, 8), {"init": "he"})


def _spread_by_numpy(z: np.ndarray) -> tuple[float, float]:
    """(participation ratio from the eigenvalues of np.cov, min / max per-dimension std) of
    codes z (N, d)."""
    eig = np.linalg.eigvalsh(np.cov(z.T.astype(np.float64)))
    std = z.astype(np.float64).std(axis=0)
    return float(eig.sum() ** 2 / (eig ** 2).sum()), float(std.min() / std.max())


def test_code_spread_by_hand():
    """The participation ratio is 1 for codes along one direction, d for isotropic ones, the
    eigenvalue formula in between; the std ratio is min / max per-dimension std; codes that do
    not vary give 0 for both."""
    from stages.methods.shared.codes import code_spread, min_std_ratio, participation_ratio

    t = torch.randn(50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    line = t * torch.tensor([[1.0, 2.0, -0.5]], dtype=torch.float64) + 3.0   # (50, 3)
    assert participation_ratio(line) == pytest.approx(1.0, rel=1e-12)
    assert min_std_ratio(line) == pytest.approx(0.25, rel=1e-12)
    basis = torch.eye(4)
    isotropic = torch.cat([basis, -basis]) * 5.0 + 1.0    # covariance 25/4 * I, exactly
    assert participation_ratio(isotropic) == pytest.approx(4.0, rel=1e-12)
    assert min_std_ratio(isotropic) == pytest.approx(1.0, rel=1e-12)
    z = torch.randn(200, 5, generator=torch.Generator().manual_seed(1)) \
        * torch.tensor([3.0, 1.0, 1.0, 0.3, 0.01])
    ratio, min_std = _spread_by_numpy(z.numpy())
    assert 1.0 < ratio < 5.0
    assert code_spread(z) == pytest.approx({"code_participation_ratio": ratio,
                                            "code_min_std_ratio": min_std}, rel=1e-6)
    assert code_spread(torch.ones(7, 3)) == {"code_participation_ratio": 0.0,
                                             "code_min_std_ratio": 0.0}
    with pytest.raises(ValueError, match=r"needs codes \(N, d\); got shape \(7,\)"):
        participation_ratio(torch.ones(7))


def test_pretraining_records_held_out_reconstruction():
    """validation_fraction trains on the rest only and records the held-out per-pixel MSE once
    per epoch; without it nothing is held out."""
    from stages.methods.shared.reconstruction import pretrain_autoencoder

    torch.manual_seed(0)
    x = torch.rand(50, 1, 4, 4)
    recipe = {"epochs": 3, "batch_size": 10, "optimizer": {"name": "adam", "lr": 0.01},
              "reconstruction": "sum", "validation_fraction": 0.2}
    net = build_network("sae", (1, 4, 4), {"hidden": [8, 2]})
    result = pretrain_autoencoder(net, x, recipe, seed=0, log_every=2)
    rows = [r for r in result.history if r["kind"] == "validation"]
    assert [r["step"] for r in rows] == [0, 4, 8, 12]  # 40 training samples: 4 steps an epoch
    from stages.runtime.train import validation_split

    _, val = validation_split(50, 0.2, 0, "cpu")
    with torch.no_grad():
        expected = ((net(x[val])[1] - x[val]) ** 2).mean()
    assert rows[-1]["val_mse"] == pytest.approx(float(expected), rel=1e-5)
    assert rows[-1]["val_mse"] < rows[0]["val_mse"]
    with torch.no_grad():  # how many of the 2 code dimensions the held-out codes use
        ratio, min_std = _spread_by_numpy(net.encode(x[val]).numpy())
    assert rows[-1]["code_participation_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert rows[-1]["code_min_std_ratio"] == pytest.approx(min_std, rel=1e-5)
    plain = pretrain_autoencoder(build_network("sae", (1, 4, 4), {"hidden": [8, 2]}), x,
                                 {**recipe, "validation_fraction": None}, seed=0, log_every=2)
    assert plain.steps == 15 and all(r["kind"] == "train" for r in plain.history)
