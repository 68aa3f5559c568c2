"""DSCDAN: dual autoencoder, losses, orthonormalisation, kNN graph, pretraining and clustering
phase (tiny sizes; the workflow test runs the methods end to end)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from stages.methods.dscdan import head as dscdan
from stages.methods.dscdan.knn_graph import approximate_knn, exact_knn, knn_graph, knn_graph_arrays
from stages.methods.dscdan.losses import (
    gaussian_kl,
    jsd_mi_loss,
    knn_affinity,
    mixture_kl,
    mixture_kl_terms,
    orthonormalize,
    spectral_loss,
)
from stages.methods.dscdan.pretrain import pretrain_dscdan
from stages.nets import build_network
from stages.plumbing.config import validate
from stages.plumbing.errors import ConfigError
from stages.runtime.train import Checkpointer

torch.set_num_threads(1)


def test_network_shapes_for_each_table2_stack():
    for shape, middle in [((1, 28, 28), (16, 14, 14)), ((1, 16, 16), (16, 8, 8)),
                          ((3, 55, 55), (16, 28, 28))]:
        for multiplier in (1, 2):
            net = build_network("dscdan", shape, {"latent_dim": 12, "disc_width": 8,
                                                  "channel_multiplier": multiplier,
                                                  "output": "linear"})
            x = torch.rand(3, *shape)
            mid, phi, mu, logvar = net.features(x)
            assert mid.shape == (3, middle[0] * multiplier, *middle[1:])
            assert mu.shape == logvar.shape == (3, 12)
            assert net.decode(mu).shape == x.shape
            assert net.global_logits(phi, mu).shape == (3,)
            assert net.local_logits(mid, mu).shape == (3, *middle[1:])
        sigmoid = build_network("dscdan", shape, {"latent_dim": 12})   # [code] default
        assert sigmoid.decode(mu).min() >= 0 and sigmoid.decode(mu).max() <= 1


def test_code_and_paper_channel_plans():
    """[code] (vaeConv2d.py / Conv.py): filters 16 doubled before the first conv, so the encoder
    is 32, 32, 64, 64 and the decoder's transposed convs 64 s1, 64 s2, 32 s1, 32 s2, then 1;
    its first Dense has no activation. [paper] Table 2 with our mirrored decoder: 16, 16, 32,
    32 and 32, 16, 16, 16."""
    code = build_network("dscdan", (1, 28, 28))
    assert [c.out_channels for c in code.encoder] == [32, 32, 64, 64]
    assert [(d.in_channels, d.out_channels, d.stride[0]) for d in code.decoder] == [
        (64, 64, 1), (64, 64, 2), (64, 32, 1), (32, 32, 2)]
    assert (code.out.in_channels, code.out.out_channels) == (32, 1)
    paper = build_network("dscdan", (1, 28, 28), {"channel_multiplier": 1,
                                                  "decoder_channels": "mirror"})
    assert [c.out_channels for c in paper.encoder] == [16, 16, 32, 32]
    assert [d.out_channels for d in paper.decoder] == [32, 16, 16, 16]
    # the first Dense: linear [code] passes negative values on, leaky scales them by 0.2
    z = torch.randn(2, 120)
    for dense, expected in (("linear", 1.0), ("leaky", 0.2)):
        net = build_network("dscdan", (1, 16, 16), {"decoder_dense": dense})
        seen: dict[str, torch.Tensor] = {}

        def keep(module, args, seen=seen):
            seen["h"] = args[0].clone()

        net.decoder[0].register_forward_pre_hook(keep)
        net.decode(z)
        pre = net.defc(z).view_as(seen["h"])
        neg = pre < 0
        assert torch.allclose(seen["h"][neg], expected * pre[neg], atol=1e-6)
    for bad in ({"decoder_channels": "wide"}, {"decoder_dense": "relu"},
                {"channel_multiplier": 0}):
        with pytest.raises(ValueError, match="decoder_channels|decoder_dense|channel_multiplier"):
            build_network("dscdan", (1, 16, 16), bad)


def test_mixture_prior_modules():
    net = build_network("dscdan", (1, 16, 16), {"latent_dim": 6, "prior_clusters": 4})
    assert torch.equal(net.prior_means, torch.zeros(4, 6))                # [code] start at 0
    assert [m.out_features for m in net.prior_classifier if hasattr(m, "out_features")] == [
        256, 4]
    pi = net.prior_probabilities(torch.randn(5, 6))
    assert pi.shape == (5, 4) and torch.allclose(pi.sum(1), torch.ones(5))
    with pytest.raises(ValueError, match="no mixture prior"):
        build_network("dscdan", (1, 16, 16)).prior_probabilities(torch.randn(5, 120))


def test_local_discriminator_equals_the_conv_on_the_tiled_code():
    torch.manual_seed(0)
    net = build_network("dscdan", (1, 28, 28), {"latent_dim": 8, "local_width": 12})
    middle, _, mu, _ = net.features(torch.rand(4, 1, 28, 28))
    other = torch.randn_like(mu)
    b, _, hh, ww = middle.shape
    reference = [net.local_disc(torch.cat([middle, z[:, :, None, None].expand(b, 8, hh, ww)],
                                          dim=1)).squeeze(1) for z in (mu, other)]
    pos, neg = net.local_logits(middle, mu, other)
    assert torch.allclose(pos, reference[0], atol=1e-5)
    assert torch.allclose(neg, reference[1], atol=1e-5)
    assert torch.allclose(net.local_logits(middle, mu), reference[0], atol=1e-5)


def test_noise_kinds():
    torch.manual_seed(0)
    mu, logvar = torch.ones(4, 6), torch.full((4, 6), -100.0)
    gauss = build_network("dscdan", (1, 16, 16), {"latent_dim": 6})
    assert torch.allclose(gauss.sample(mu, logvar), mu)  # no variance: no noise
    mult = build_network("dscdan", (1, 16, 16), {"latent_dim": 6, "noise": "multiplicative",
                                                 "noise_std": 0.5})
    assert not torch.allclose(mult.sample(mu, logvar), mu)
    assert torch.equal(mult.sample(torch.zeros(4, 6), logvar), torch.zeros(4, 6))
    with pytest.raises(ValueError, match="valid choices: gaussian, multiplicative"):
        build_network("dscdan", (1, 16, 16), {"noise": "uniform"})
    with pytest.raises(ValueError, match="valid choices: linear, sigmoid"):
        build_network("dscdan", (1, 16, 16), {"output": "tanh"})


def test_flat_or_tiny_inputs_are_rejected():
    with pytest.raises(ConfigError, match="dual autoencoder"):
        build_network("dscdan", (64,))
    with pytest.raises(ConfigError, match="at least 8x8"):
        build_network("dscdan", (1, 4, 4))


def test_orthonormalisation_gives_identity_gram():
    gen = torch.Generator().manual_seed(0)
    for m, k in [(64, 4), (200, 10), (1024, 10)]:
        y_tilde = torch.softmax(torch.randn(m, k, generator=gen) * 3, dim=1)
        y, w = orthonormalize(y_tilde)
        assert w.shape == (k, k)
        assert torch.allclose(y.T @ y / m, torch.eye(k), atol=1e-3)


def test_orthonormalisation_guards_rank_deficient_batches():
    y_tilde = torch.softmax(torch.randn(50, 4), dim=1)
    y_tilde[:, 3] = 0.0  # a cluster no sample of the batch uses
    y, w = orthonormalize(y_tilde)  # guarded: finite, no factorisation failure
    assert torch.isfinite(y).all() and torch.isfinite(w).all()
    gram = y.T @ y / 50
    assert torch.allclose(gram[:3, :3], torch.eye(3), atol=1e-3)
    with pytest.raises(ValueError, match="rank 4 .* has rank 3"):
        orthonormalize(y_tilde, check=True)


def test_spectral_loss_on_a_hand_built_graph():
    # two pairs joined by edges of weight 1 and 0.5: (1/m^2) sum_ij W_ij ||y_i - y_j||^2
    w = torch.zeros(4, 4)
    w[0, 1] = w[1, 0] = 1.0
    w[2, 3] = w[3, 2] = 0.5
    y = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    expected = (2 * 1.0 * 1.0 + 2 * 0.5 * 4.0) / 16
    assert spectral_loss(w, y).item() == pytest.approx(expected)
    assert spectral_loss(w, y, "m").item() == pytest.approx(expected * 4)
    # points that share a cluster's output cost nothing
    assert spectral_loss(w, torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])).item() == 0
    with pytest.raises(ValueError, match="valid choices: m2, m"):
        spectral_loss(w, y, "n")


def test_batch_affinity_is_the_symmetrised_knn_gaussian():
    z = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    w = knn_affinity(z, n_neighbors=1, sigma=1.0)
    assert torch.equal(w, w.T) and torch.equal(w.diagonal(), torch.zeros(4))
    e1, e4, e49 = np.exp(-0.5), np.exp(-2.0), np.exp(-24.5)
    # nearest neighbours: 0->1, 1->0, 2->1, 3->2
    assert w[0, 1].item() == pytest.approx(e1)
    assert w[1, 2].item() == pytest.approx(e4 / 2) and w[2, 3].item() == pytest.approx(e49 / 2)
    assert w[0, 2].item() == 0 and w[0, 3].item() == 0
    # the median rule: the distance to the 2nd neighbour, median over the batch
    w_auto = knn_affinity(z, n_neighbors=1, scale_neighbor=2)
    sigma = np.median([3.0, 2.0, 3.0, 9.0])
    assert w_auto[0, 1].item() == pytest.approx(np.exp(-1 / (2 * sigma**2)))


def test_dual_reconstruction_paper_and_code_readings():
    from stages.methods.dscdan.losses import dual_reconstruction

    x = torch.zeros(2, 1, 2, 2)
    clean = torch.ones(2, 1, 2, 2)          # |x - clean|^2 = 4 per sample
    noisy = torch.full((2, 1, 2, 2), 2.0)   # |x - noisy|^2 = 16, |noisy - clean|^2 = 4
    paper = dual_reconstruction(x, clean, noisy, relative_weight=1.0, plain_weight=0.5)
    assert paper["plain"].item() == 4 and paper["relative"].item() == 4
    assert paper["reconstruction"].item() == pytest.approx(1.0 * 4 + 0.5 * 4)
    # the code's clustering phase: 5 (1 |x - D(z_hat)|^2 + 0.5 |D(z) - D(z_hat)|^2)
    code = dual_reconstruction(x, clean, noisy, relative_weight=0.5, plain_weight=1.0,
                               scale=5.0, plain_target="noisy")
    assert code["plain"].item() == 16
    assert code["reconstruction"].item() == pytest.approx(5 * (16 + 0.5 * 4))
    with pytest.raises(ValueError, match="needs the noisy reconstruction"):
        dual_reconstruction(x, clean, None, 0.0, 1.0, plain_target="noisy")
    with pytest.raises(ValueError, match="valid choices: clean, noisy"):
        dual_reconstruction(x, clean, noisy, 0.0, 1.0, plain_target="both")


def test_mi_estimator_sign():
    # a discriminator that separates positive from negative pairs lowers the loss
    pos, neg = torch.full((32,), 5.0), torch.full((32,), -5.0)
    separated = jsd_mi_loss(pos, neg)
    blind = jsd_mi_loss(torch.zeros(32), torch.zeros(32))
    assert separated < blind and blind.item() == pytest.approx(2 * np.log(2))
    assert jsd_mi_loss(neg, pos) > blind  # the wrong way round is worse


def test_kl_terms():
    mu, logvar = torch.zeros(5, 3), torch.zeros(5, 3)
    assert gaussian_kl(mu, logvar).item() == 0
    means = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    uniform = torch.full((5, 2), 0.5)
    # Eq. 19 with uniform pi: half of ||mu - m_2||^2 / 2; the categorical term vanishes
    assert mixture_kl(mu, logvar, uniform, means).item() == pytest.approx(0.5 * 0.5 * 4.0)
    onehot = torch.tensor([[1.0, 0.0]]).repeat(5, 1)
    assert mixture_kl(mu, logvar, onehot, means).item() == pytest.approx(np.log(2))


def test_mixture_kl_against_a_hand_computation():
    """mu = (1, 0), sigma^2 = (1, 2), m_1 = (0, 0), m_2 = (1, 2), pi = (1/4, 3/4):
    sum_d (sigma^2 - 1 - log sigma^2) = 1 - log 2, ||mu - m||^2 = 1 and 4, so the Gaussian part
    is 1/4 * (1 - log 2 + 1) / 2 + 3/4 * (1 - log 2 + 4) / 2 = 2.125 - log(2) / 2, and the
    categorical part 1/4 log(2/4) + 3/4 log(6/4) (the code's sum pi log pi, plus log K)."""
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, float(np.log(2.0))]])
    means = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    pi = torch.tensor([[0.25, 0.75]])
    gauss, cat = mixture_kl_terms(mu, logvar, pi, means)
    assert gauss.item() == pytest.approx(2.125 - 0.5 * np.log(2.0), rel=1e-6)
    assert cat.item() == pytest.approx(0.25 * np.log(0.5) + 0.75 * np.log(1.5), rel=1e-6)
    assert (cat - np.log(2.0)).item() == pytest.approx(
        0.25 * np.log(0.25) + 0.75 * np.log(0.75), rel=1e-6)
    assert mixture_kl(mu, logvar, pi, means).item() == pytest.approx((gauss + cat).item())
    # batch mean: a second, identical row leaves both parts unchanged
    two = mixture_kl_terms(mu.repeat(2, 1), logvar.repeat(2, 1), pi.repeat(2, 1), means)
    assert two[0].item() == pytest.approx(gauss.item()) and two[1].item() == pytest.approx(
        cat.item())


def test_warm_started_head_populates_every_cluster_on_separable_data():
    """Four well-separated blobs of codes, targets their one-hot labels (the kmeans rule) or
    soft assignments (the prior rule): after the warm start the head's argmax puts samples in
    all four clusters and agrees with the targets."""
    torch.manual_seed(0)
    k, n_per, d = 4, 50, 8
    centres = 6.0 * torch.eye(k, d)
    codes = (centres.repeat_interleave(n_per, 0) + 0.3 * torch.randn(k * n_per, d))
    labels = torch.arange(k).repeat_interleave(n_per)
    for targets in (torch.nn.functional.one_hot(labels, k).float(),
                    torch.softmax(3.0 * torch.nn.functional.one_hot(labels, k).float(), dim=1)):
        head = dscdan.SpectralClusteringNet(d, k, widths=(32, 32, 16))
        rows = dscdan.warm_start_head(head, codes, targets, steps=60, batch_size=64, lr=1e-3,
                                      seed=0)
        warm = rows[-1]
        assert warm["kind"] == "warm_start"
        assert warm["populated"] == k and warm["agreement"] == 1.0
        assert torch.unique(head(codes).argmax(1)).numel() == k
    # the agreement rule stops it long before its cap, at a check
    head = dscdan.SpectralClusteringNet(d, k, widths=(32, 32, 16))
    rows = dscdan.warm_start_head(head, codes, targets, steps=2000, batch_size=64, lr=1e-3,
                                  seed=0, agreement=0.99, check_every=10)
    checks = [r for r in rows if r["kind"] == "warm_start_check"]
    assert rows[-1]["converged"] and rows[-1]["step"] < 2000 and rows[-1]["step"] % 10 == 0
    assert checks[-1]["agreement"] >= 0.99 > max(r["agreement"] for r in checks[:-1])
    with pytest.raises(ValueError, match="warm_start_agreement"):
        dscdan.warm_start_head(head, codes, targets, steps=1, batch_size=8, lr=1e-3, seed=0,
                               agreement=0.0)
    with pytest.raises(ValueError, match="200 codes but 3 target rows"):
        dscdan.warm_start_head(head, codes, targets[:3], steps=1, batch_size=8, lr=1e-3, seed=0)


def test_a_restarted_job_loads_the_finished_warm_start_instead_of_training_it(tmp_path,
                                                                              monkeypatch):
    """The warm start has its own checkpoint phase (``checkpoint-warmstart.pt``): a fine-tuning
    restarted after it finished starts from the saved head and rows, with no warm-start step
    trained again, and ends as the uninterrupted job did."""
    x, _ = _tiny_data()
    torch.manual_seed(0)
    net = _tiny_net(0)
    pretrain_dscdan(net, x, {**RECIPE, "prior": "standard"}, seed=0, log_every=4)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    init = knn_graph_arrays(net.encode(x).detach().numpy(), 2, {"n_init": 2}, seed=0)
    recipe = {**FINETUNE, "warm_start": "kmeans", "warm_start_steps": 30}
    first = dscdan.finetune(net, x, init, recipe, seed=0,
                            checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    assert (tmp_path / "checkpoint-warmstart.pt").is_file()
    (tmp_path / "checkpoint.pt").unlink()   # as if stopped before the clustering phase saved
    trained: list[int] = []
    original = dscdan.run_loop

    def counting(*args, **kwargs):
        result = original(*args, **kwargs)
        trained.append(result.steps - (result.resumed_from or 0))
        return result
    monkeypatch.setattr(dscdan, "run_loop", counting)
    again = _tiny_net(0)
    again.load_state_dict(state)
    second = dscdan.finetune(again, x, init, recipe, seed=0,
                             checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    assert trained[0] == 0 and trained[1] == first.info["steps"]  # warm start, clustering
    warm = [r for r in first.history if r["kind"].startswith("warm_start")]
    assert [r for r in second.history if r["kind"].startswith("warm_start")] == warm
    np.testing.assert_array_equal(second.labels, first.labels)


def test_finetune_warm_start_from_kmeans_labels_populates_both_clusters():
    x, _ = _tiny_data()
    torch.manual_seed(0)
    net = _tiny_net(0)
    pretrain_dscdan(net, x, {**RECIPE, "prior": "standard"}, seed=0, log_every=4)
    init = knn_graph_arrays(net.encode(x).detach().numpy(), 2, {"n_init": 2}, seed=0)
    result = dscdan.finetune(net, x, init, {**FINETUNE, "max_epochs": 1, "warm_start": "kmeans",
                                            "warm_start_steps": 30}, seed=0)
    (warm,) = [r for r in result.history if r["kind"] == "warm_start"]
    assert warm["populated"] == 2 and warm["agreement"] == 1.0


def test_a_collapsed_prior_falls_back_to_the_kmeans_warm_start():
    """A mixture classifier that puts every sample in cluster 0 (rule B of
    docs/reproduction/dscdan-choices.md): the head warm-starts from the k-means labels."""
    x, _ = _tiny_data()
    torch.manual_seed(0)
    net = _tiny_net()
    with torch.no_grad():
        net.prior_classifier[-1].bias.copy_(torch.tensor([50.0, 0.0]))
    init = knn_graph_arrays(net.encode(x).detach().numpy(), 2, {"n_init": 2}, seed=0)
    result = dscdan.finetune(net, x, init, {**FINETUNE, "max_epochs": 1,
                                            "warm_start_steps": 30}, seed=0)
    (warm,) = [r for r in result.history if r["kind"] == "warm_start"]
    assert warm["warm_start_targets_from"] == "kmeans" and warm["populated"] == 2


def test_gradient_through_the_affinity_reaches_the_encoder_only_when_asked():
    """L_c on a fixed Y: its only path to the encoder is W (mu), open with affinity_gradient
    [code] and closed without it."""
    x, _ = _tiny_data()
    torch.manual_seed(0)
    net = _tiny_net()
    y = torch.randn(16, 2)
    encoder_params = list(net.encoder.parameters()) + list(net.mu.parameters())
    for asked in (True, False):
        net.zero_grad()
        w = dscdan.batch_affinity(net.encode(x[12:28]), {"affinity_gradient": asked},
                                  torch.tensor(dscdan.CODE_SIGMA))
        assert w.requires_grad is asked
        assert torch.count_nonzero(w) > 0 and torch.allclose(w, w.T)
        if asked:
            spectral_loss(w, y, "m").backward()
            norm = sum(float(p.grad.abs().sum()) for p in encoder_params if p.grad is not None)
            assert norm > 0
    # 4 neighbours [code]: each row has at least 4 non-zero entries, the diagonal none
    w = dscdan.batch_affinity(net.encode(x).detach(), {}, torch.tensor(dscdan.CODE_SIGMA))
    assert bool(((w > 0).sum(1) >= 4).all()) and torch.count_nonzero(torch.diagonal(w)) == 0


def test_exact_knn_matches_sklearn():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 7)).astype(np.float32)
    idx, dist = exact_knn(z, 4, block=64)  # several blocks
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=5).fit(z).kneighbors(z)
    assert np.array_equal(idx, ref_idx[:, 1:])
    assert np.allclose(dist, ref_dist[:, 1:], atol=1e-4)


def test_approximate_knn_is_close_to_exact_on_the_stages_threads():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(600, 5)).astype(np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        idx, dist = approximate_knn(z, 3, seed=0)
        import numba
        # numba's import resets OpenMP's count to every core; the stage's one thread stays
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert idx.shape == (600, 3) and not (idx == np.arange(600)[:, None]).any()
    exact, _ = exact_knn(z, 3)
    recall = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(idx, exact, strict=True)])
    assert recall > 0.9


def test_knn_graph_init_arrays_and_threshold():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(0, 0.1, (40, 3)), rng.normal(5, 0.1, (40, 3))]).astype(
        np.float32)
    arrays = knn_graph_arrays(z, 2, {"n_neighbors": 3, "n_init": 2}, seed=0)
    assert arrays["neighbors"].shape == arrays["affinities"].shape == (80, 3)
    assert arrays["centres"].shape == (2, 3) and arrays["labels"].shape == (80,)
    assert np.all((arrays["affinities"] > 0) & (arrays["affinities"] <= 1))
    # neighbours never cross the gap between the two blobs
    assert np.all((arrays["neighbors"] < 40) == (np.arange(80) < 40)[:, None])
    approx = knn_graph(z, 3, approximate_above=50)  # above the threshold: NN-descent
    assert approx["neighbors"].shape == (80, 3)
    with pytest.raises(ValueError, match="n_neighbors must lie in"):
        exact_knn(z[:3], 3)


def _tiny_data(n_per: int = 20) -> tuple[torch.Tensor, np.ndarray]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2 * n_per, 1, 16, 16, generator=gen) * 0.2
    x[:n_per, :, :8] += 0.7
    x[n_per:, :, 8:] += 0.7
    return x.clamp(0, 1), np.repeat([0, 1], n_per)


def _tiny_net(prior_clusters: int = 2):
    return build_network("dscdan", (1, 16, 16), {"latent_dim": 8, "disc_width": 16,
                                                 "prior_clusters": prior_clusters})


RECIPE = {"epochs": 2, "batch_size": 10, "optimizer": {"name": "adam", "lr": 1e-3},
          "checkpoint_every": 4}


def _train_row(result) -> dict:
    return next(r for r in result.history if r["kind"] == "train")


def test_pretraining_logs_the_terms_switched_on():
    x, _ = _tiny_data()
    torch.manual_seed(0)
    net = _tiny_net()
    full = pretrain_dscdan(net, x, RECIPE, seed=0, log_every=4)
    assert {"loss", "plain", "relative", "mi_global", "mi_local", "kl", "cat"} <= set(
        _train_row(full))
    assert net.prior_means.abs().sum() > 0          # [code] the mixture means are trained
    standard = pretrain_dscdan(_tiny_net(), x, {**RECIPE, "prior": "standard"}, seed=0,
                               log_every=4)
    assert "kl" in _train_row(standard) and "cat" not in _train_row(standard)
    with pytest.raises(ValueError, match="prior_clusters > 0"):
        pretrain_dscdan(_tiny_net(0), x, RECIPE, seed=0)
    with pytest.raises(ValueError, match="valid choices: mixture, standard"):
        pretrain_dscdan(_tiny_net(), x, {**RECIPE, "prior": "vamp"}, seed=0)
    plain = pretrain_dscdan(_tiny_net(), x, {**RECIPE, "mi_weight": 0, "kl_weight": 0,
                                             "relative_weight": 0}, seed=0, log_every=4)
    assert set(_train_row(plain)) == {"kind", "step", "epoch", "loss", "plain"}
    assert full.steps == plain.steps == 8
    # [code]: global MI only, the local discriminator is not run
    global_only = pretrain_dscdan(_tiny_net(), x, {**RECIPE, "local_mi_weight": 0}, seed=0,
                                  log_every=4)
    assert "mi_global" in _train_row(global_only) and "mi_local" not in _train_row(global_only)


def test_pretraining_monitor_rows():
    """Once per epoch and at the end: the clean reconstruction's SSE, the active code
    dimensions and, with the mixture prior, its classifier's cluster shares and sharpness, on
    the held-out split when there is one (it is then left out of training)."""
    x, _ = _tiny_data()
    torch.manual_seed(0)
    held = pretrain_dscdan(_tiny_net(), x, {**RECIPE, "validation_fraction": 0.25}, seed=0)
    monitor = [r for r in held.history if r["kind"] == "monitor"]
    assert held.steps == 6                                # 30 training samples, batches of 10
    assert [r["step"] for r in monitor] == [0, 3, 6]
    assert all(r["held_out"] and r["eval_plain"] > 0 and 0 <= r["active_dims"] <= 8
               and r["prior_populated"] >= 1 and 0.5 <= r["prior_sharpness"] <= 1
               for r in monitor)
    plain = pretrain_dscdan(_tiny_net(0), x, {**RECIPE, "kl_weight": 0}, seed=0)
    rows = [r for r in plain.history if r["kind"] == "monitor"]
    assert rows and not rows[0]["held_out"] and "prior_sharpness" not in rows[0]


FINETUNE = {"batch_size": 16, "lr": 1e-3, "max_epochs": 3, "steps_per_check": 2, "tol": 0.0,
            "widths": [16, 16, 8], "checkpoint_every": 2, "warm_start_steps": 20}


def test_finetune_runs_eq20_and_predicts(tmp_path):
    x, y = _tiny_data()
    torch.manual_seed(0)
    net = _tiny_net()
    pretrain_dscdan(net, x, RECIPE, seed=0, log_every=4)
    z = net.encode(x).detach().numpy()
    init = knn_graph_arrays(z, 2, {"n_init": 2}, seed=0)
    result = dscdan.finetune(net, x, init, FINETUNE, seed=0, y_true=y, log_every=2,
                             checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    assert result.labels.shape == (40,) and result.embedding.shape == (40, 8)
    assert result.info["steps"] == 6 and result.info["checks"] == 3
    train = [r for r in result.history if r["kind"] == "train"]
    assert {"spectral", "kl", "mi_global", "mi_local", "relative", "plain"} <= set(train[0])
    checks = [r for r in result.history if r["kind"] == "check"]
    assert "acc" in checks[0] and "check_loss" in checks[1]
    assert 0 <= checks[0]["active_dims"] <= 8
    (share,) = [r for r in result.history if r["kind"] == "gradient_share"]
    # the clustering net's gradient comes from the KL terms and the spectral term only
    assert share["grad_clustering_net_share_kl"] + share["grad_clustering_net_share_cat"] + share[
        "grad_clustering_net_share_spectral"] == pytest.approx(1.0)
    (warm,) = [r for r in result.history if r["kind"] == "warm_start"]   # warm_start: prior
    assert 0.0 <= warm["agreement"] <= 1.0 and "populated" in warm
    assert "grad_clustering_net_share_autoencoder" not in share
    assert "spectral.w_orth" in result.state_dict and "means" in result.state_dict
    # the stored factor orthonormalises the last batch's outputs, not the identity
    assert not torch.equal(result.state_dict["spectral.w_orth"], torch.eye(2))
    global_bw = dscdan.finetune(_tiny_net(), x, init, {**FINETUNE, "bandwidth": "global",
                                                       "predict": "spectral-kmeans"}, seed=0)
    assert global_bw.labels.shape == (40,)


def test_finetune_rejects_bad_settings():
    x, _ = _tiny_data()
    init = {"centres": np.zeros((2, 8), np.float32), "labels": np.zeros(40, np.int64)}
    with pytest.raises(ValueError, match="needs the knn-graph init's 'sigma'"):
        dscdan.finetune(_tiny_net(), x, init, {**FINETUNE, "bandwidth": "global"}, seed=0)
    with pytest.raises(ValueError, match="valid choices: fixed, batch, global"):
        dscdan.finetune(_tiny_net(), x, init, {**FINETUNE, "bandwidth": "local"}, seed=0)
    with pytest.raises(ValueError, match="below the number of clusters"):
        dscdan.finetune(_tiny_net(), x, {**init, "centres": np.zeros((20, 8), np.float32)},
                        {**FINETUNE, "batch_size": 10}, seed=0)
    with pytest.raises(ValueError, match="valid choices: softmax, spectral-kmeans"):
        dscdan.finetune(_tiny_net(), x, init, {**FINETUNE, "max_epochs": 1,
                                               "predict": "vote"}, seed=0)
    with pytest.raises(ValueError, match="valid choices: hard, soft"):
        dscdan.finetune(_tiny_net(), x, init, {**FINETUNE, "warm_start_targets": "x"}, seed=0)
    with pytest.raises(ValueError, match="valid choices: prior, kmeans, none"):
        dscdan.finetune(_tiny_net(), x, init, {**FINETUNE, "warm_start": "labels"}, seed=0)
    with pytest.raises(ValueError, match="mixture prior of 2 clusters"):
        dscdan.finetune(_tiny_net(0), x, init, FINETUNE, seed=0)
    with pytest.raises(ValueError, match="positive sigma"):
        dscdan.finetune(_tiny_net(), x, init, {**FINETUNE, "sigma": 0.0}, seed=0)


def _config(**method) -> dict:
    return {"datasets": {"synthetic": {"methods": ["m"]}},
            "autoencoders": {"a": {"net": "dscdan", "objective": "dscdan",
                                   "optimizer": {"name": "adam", "lr": 1e-3},
                                   "batch_size": 10, "epochs": 1},
                             "s": {"net": "sae", "optimizer": {"name": "adam", "lr": 1e-3},
                                   "batch_size": 10, "epochs": 1}},
            "inits": {"g": {"algorithm": "knn-graph"}, "k": {"algorithm": "kmeans"}},
            "methods": {"m": {"family": "dscdan", "ae": "a", "init": "g", "head": "dscdan",
                              **method}}}


def test_config_checks():
    validate(_config())
    with pytest.raises(ConfigError, match="head 'dscdan' needs an autoencoder with net 'dscdan'"):
        validate(_config(ae="s"))
    with pytest.raises(ConfigError, match="bandwidth 'global' needs an init with algorithm "
                                          "'knn-graph'"):
        validate(_config(init="k", bandwidth="global"))
    paper_prior = _config()
    paper_prior["autoencoders"]["a"]["prior"] = "standard"
    with pytest.raises(ConfigError, match="warm_start 'prior' starts the head from the mixture"):
        validate(paper_prior)
    validate({**paper_prior, "methods": {"m": {**paper_prior["methods"]["m"],
                                               "warm_start": "kmeans"}}})
    bad = _config()
    bad["autoencoders"]["s"]["objective"] = "dscdan"
    with pytest.raises(ConfigError, match="objective 'dscdan' needs net 'dscdan'"):
        validate(bad)


def test_loss_change_predicts_all_samples_once_per_pass_of_training_data():
    from stages.methods.dscdan.head import ClusteringHook

    class Encoder(torch.nn.Module):
        calls = 0

        def encode(self, x):
            Encoder.calls += x.shape[0]
            return x

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.autoencoder = Encoder()

        def spectral(self, z):
            return torch.softmax(z[:, :2], dim=1)

    x = torch.randn(30, 4)
    hook = ClusteringHook(Counting(), x, None, period=2, tol=0.0, predict_every=3)
    for step in range(0, 12, 2):
        hook.add(torch.tensor(1.0))
        assert hook(step) is False  # tol 0: never stops
    assert Encoder.calls == 2 * 30  # checks 0 and 3 of six
    with_labels = [r for r in hook.rows if "delta_label" in r]
    assert [r["step"] for r in with_labels] == [0, 6]
    # the codes' signals: all 4 dimensions of N(0, 1) data vary
    assert all(r["active_dims"] == 4 and r["mi_chance"] == pytest.approx(2 * np.log(2))
               for r in with_labels)
    assert all(r["kind"] == "check" and "check_loss" in r for r in hook.rows)
