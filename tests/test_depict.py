"""DEPICT: network shapes, the two pathways, Eq. 7, the losses, the stop rule, the pretraining
objectives and the early stopping they use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stages.data.synthetic import make_synthetic
from stages.methods.depict import head as depict
from stages.methods.depict import losses as depict_losses
from stages.methods.depict import pretrain as depict_pretrain
from stages.methods.shared.reconstruction import check_unit_range
from stages.nets import build_network, check_network_input
from stages.plumbing.errors import ConfigError
from stages.runtime.train import Checkpointer, EarlyStopping, LoopConfig, run_loop, validation_split


@pytest.mark.parametrize("shape, sizes", [
    ((1, 28, 28), [(13, 13), (7, 7)]),   # MNIST, paper Table 5: 28 -> 13 -> 7
    ((1, 16, 16), [(7, 7), (4, 4)]),     # USPS: 16 -> 7 -> 4
    ((3, 32, 32), [(17, 17), (9, 9)]),   # FRGC / CMU-PIE: 32 -> 17 -> 9
    ((3, 55, 55), [(28, 28), (13, 13)]),  # YTF: 55 -> 28 -> 13
    ((1, 8, 8), [(5, 5), (3, 3)]),       # scikit-learn digits, padded layout
])
def test_shapes_follow_the_paper_table(shape, sizes):
    net = build_network("depict", shape, {"embedding_dim": 7})
    x = torch.rand(4, *shape)
    h0, h1, h2, z = net.encoder_activations(x)
    assert h0.shape == (4, *shape) and z.shape == (4, 7)
    assert h1.shape == (4, 50, *sizes[0]) and h2.shape == (4, 50, *sizes[1])
    recon = net.decoder_activations(z)
    assert [r.shape for r in recon] == [h0.shape, h1.shape, h2.shape]
    assert z.abs().max() <= 1 and recon[0].abs().max() <= 1  # tanh embedding and output
    assert net.conv1.kernel_size == (net.deconv1.kernel_size)


def test_input_is_mapped_to_minus_one_one():
    net = build_network("depict", (1, 16, 16), {})
    x = torch.rand(2, 1, 16, 16)
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    h0 = net.encoder_activations(x)[0]
    assert h0.min().item() == -1.0 and h0.max().item() == 1.0
    assert torch.allclose(h0, 2 * x - 1)


def test_depict_rejects_flat_and_tiny_inputs():
    with pytest.raises(ConfigError, match="needs images"):
        check_network_input("depict", (64,), "blobs")
    with pytest.raises(ConfigError, match="at least 8x8.*4x4"):
        check_network_input("depict", (1, 4, 4), "tiny")


def test_data_outside_unit_range_is_rejected_for_depict():
    check_unit_range("depict", np.array([0.0, 1.0]), "d.h5")
    check_unit_range("sae", np.array([-3.0, 3.0]), "d.h5")  # other nets take any range
    with pytest.raises(ConfigError, match=r"d.h5: values span \[-1, 1\].*scaling: unit"):
        check_unit_range("depict", np.array([-1.0, 1.0]), "d.h5")


def test_pathways_share_weights_and_differ_only_by_dropout():
    torch.manual_seed(0)
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3,
                                                "dropouts": [0.3, 0.2, 0.1]})
    x = torch.rand(5, 1, 16, 16)
    # the corrupted pathway is the clean layers with dropout between them, same weights
    torch.manual_seed(1)
    noisy = net.encoder_activations(x, corrupt=True)
    torch.manual_seed(1)
    h = F.dropout(net.scale_input(x), 0.3, training=True)
    manual = [h]
    for level, rate in ((1, 0.2), (2, 0.1)):
        h = F.dropout(net.encoder_layer(level, h), rate, training=True)
        manual.append(h)
    manual.append(net.encoder_layer(3, h))
    for a, b in zip(noisy, manual, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(noisy[-1], net.encode(x))  # dropout changed the embedding
    # the clean pathway never drops, in train and in eval mode
    net.train()
    clean_train = net.encoder_activations(x)
    net.eval()
    clean_eval = net.encoder_activations(x)
    for a, b in zip(clean_train, clean_eval, strict=True):
        assert torch.equal(a, b)
    # without dropout the two pathways coincide
    plain = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "dropouts": [0, 0, 0]})
    for a, b in zip(plain.encoder_activations(x, corrupt=True), plain.encoder_activations(x),
                    strict=True):
        assert torch.equal(a, b)


def test_eq7_target_by_hand():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.1, 0.4]])
    assert torch.allclose(p.sum(0), torch.tensor([1.6, 1.4, 1.0]))  # f_k
    # q_ik = (p_ik / sqrt(f_k)) / sum_k' (p_ik' / sqrt(f_k'))
    first = np.array([0.7 / math.sqrt(1.6), 0.2 / math.sqrt(1.4), 0.1 / math.sqrt(1.0)])
    q = depict_losses.depict_target(p, "sqrt")
    assert np.allclose(q[0].numpy(), first / first.sum(), atol=1e-6)
    assert torch.allclose(q.sum(1), torch.ones(4))
    # the code's variant is DEC's p^2 / f
    dec_first = np.array([0.49 / 1.6, 0.04 / 1.4, 0.01 / 1.0])
    q_dec = depict_losses.depict_target(p, "dec")
    assert np.allclose(q_dec[0].numpy(), dec_first / dec_first.sum(), atol=1e-6)
    with pytest.raises(ValueError, match="valid choices: sqrt, dec"):
        depict_losses.depict_target(p, "square")


def test_eq7_balances_a_dominant_cluster():
    """Dividing by sqrt(f) moves mass away from a cluster that holds most points."""
    p = torch.tensor([[0.5, 0.5]] + [[0.9, 0.1]] * 9)
    q = depict_losses.depict_target(p)
    assert q[0, 1] > 0.5  # the ambiguous point leans to the small cluster


def test_soft_cross_entropy_and_layerwise_reconstruction():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    q = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    log_p = F.log_softmax(logits, 1)
    expected = -(log_p[0, 0] + 0.25 * log_p[1, 0] + 0.75 * log_p[1, 1]) / 2
    assert depict_losses.soft_cross_entropy(q, logits).item() == pytest.approx(expected.item())
    clean = [torch.zeros(2, 4), torch.zeros(2, 3, 3)]
    recon = [torch.ones(2, 4), torch.full((2, 3, 3), 2.0)]
    # per-element means: 1 and 4; hidden layers weighted
    assert depict_losses.layerwise_reconstruction(clean, recon).item() == pytest.approx(5.0)
    assert depict_losses.layerwise_reconstruction(clean, recon, 0.1).item() == pytest.approx(1.4)
    with pytest.raises(ValueError, match="2 clean layers but 1"):
        depict_losses.layerwise_reconstruction(clean, recon[:1])


def test_validation_split_is_random_disjoint_and_label_free():
    train, val = validation_split(100, 0.1, seed=3)
    assert len(val) == 10 and len(train) == 90
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert set(train.tolist()) | set(val.tolist()) == set(range(100))
    assert val.tolist() != list(range(10))
    again, _ = validation_split(100, 0.1, seed=3)
    assert torch.equal(again, train)
    with pytest.raises(ValueError, match="validation_fraction"):
        validation_split(100, 1.0, seed=0)


def test_early_stopping_stops_after_patience_and_restores_the_best():
    model = torch.nn.Linear(1, 1, bias=False)
    losses = iter([5.0, 3.0, 4.0, 4.5, 6.0, 1.0])
    weights_seen = []

    def val_loss():
        weights_seen.append(model.weight.item())
        return torch.tensor(next(losses))

    stopper = EarlyStopping(model, val_loss, period=1, patience=3)
    cfg = LoopConfig(batch_size=1, max_steps=20, shuffle=False, log_every=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = run_loop(model, optimizer, lambda idx: {"loss": model.weight.sum()}, 1, cfg,
                      torch.device("cpu"), hook=stopper)
    assert result.stopped_by_hook and result.steps == 4  # evaluations at steps 0..4
    stopper.finish(result.steps)
    assert stopper.best == 3.0 and stopper.best_step == 1
    assert model.weight.item() == pytest.approx(weights_seen[1])
    assert [r["loss"] for r in stopper.rows] == [5.0, 3.0, 4.0, 4.5, 6.0]


def tiny_data(n_per_cluster: int = 30) -> tuple[torch.Tensor, np.ndarray]:
    X, y, _ = make_synthetic({"n_clusters": 3, "n_per_cluster": n_per_cluster, "side": 16,
                              "seed": 0, "noise": 0.1})
    return torch.as_tensor(X), y


RECIPE = {"epochs": 6, "layer_epochs": 3, "batch_size": 16, "optimizer": {"lr": 1e-3},
          "patience": 3, "validation_fraction": 0.2, "hidden_weight": 1.0, "noise": 0.1,
          "checkpoint_every": 4}


def test_mda_pretraining_lowers_the_validation_loss():
    torch.manual_seed(0)
    x, _ = tiny_data()
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 8})
    result = depict_pretrain.pretrain_mda(net, x, {**RECIPE, "epochs": 15}, seed=0, log_every=2)
    val = [r["loss"] for r in result.history if r["kind"] == "validation"]
    assert min(val) < 0.8 * val[0]
    assert {r["phase"] for r in result.history} == {"mda"}


def test_sda_trains_layer_by_layer_and_rda_adds_a_retraining_phase(tmp_path):
    torch.manual_seed(0)
    x, _ = tiny_data()
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 8})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = depict_pretrain.pretrain_rda(net, x, RECIPE, seed=0, log_every=2,
                                 checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    phases = list(dict.fromkeys(r["phase"] for r in result.history))
    assert phases == ["sda-layer1", "sda-layer2", "sda-layer3", "rda-retrain"]
    steps = [r["step"] for r in result.history if r["kind"] == "train"]
    assert steps == sorted(steps)  # phases follow one another on one step axis
    assert all(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    # a restart finds every phase finished and reproduces the weights without training
    after = {k: v.clone() for k, v in net.state_dict().items()}
    again = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 8})
    resumed = depict_pretrain.pretrain_rda(again, x, RECIPE, seed=0, log_every=2,
                                  checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    assert resumed.resumed_from is not None
    for k, v in again.state_dict().items():
        assert torch.equal(v, after[k])
    Checkpointer(tmp_path / "checkpoint.pt").remove()
    assert not list(tmp_path.glob("checkpoint*"))


def test_sda_trains_every_layer_with_its_own_parameters():
    torch.manual_seed(0)
    x, _ = tiny_data()
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 8})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    depict_pretrain.pretrain_sda(net, x, {**RECIPE, "layer_epochs": 1}, seed=0, log_every=2)
    changed = {k.split(".")[0] for k, v in net.state_dict().items()
               if not torch.equal(before[k], v)}
    assert changed == {"conv1", "deconv1", "conv2", "deconv2", "fc", "defc"}
    # each layer's phase optimises that layer's encoder and decoder parameters only
    for level, pair in ((1, (net.conv1, net.deconv1)), (2, (net.conv2, net.deconv2)),
                        (3, (net.fc, net.defc))):
        assert {id(p) for p in net.layer_parameters(level)} == {
            id(p) for module in pair for p in module.parameters()}


JOINT = {"reconstruction_weight": 1.0, "hidden_weight": 1.0, "target": "sqrt", "tol": 1e-7,
         "max_epochs": 4, "batch_size": 16, "lr": 1e-3, "initial_q": "labels",
         "warm_start_epochs": 6, "warm_start_patience": 2, "validation_fraction": 0.2}


def kmeans_init(net, x) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    km = KMeans(3, n_init=5, random_state=0).fit(net.encode(x).detach().numpy())
    return km.cluster_centers_, km.labels_


def test_finetune_runs_and_predicts_from_the_clean_softmax():
    torch.manual_seed(0)
    x, y = tiny_data()
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 8})
    depict_pretrain.pretrain_mda(net, x, RECIPE, seed=0, log_every=2)
    centres, labels = kmeans_init(net, x)
    result = depict.finetune(net, x, {"centres": centres, "labels": labels}, JOINT, seed=0,
                             y_true=y, log_every=2)
    assert result.labels.shape == (90,) and result.embedding.shape == (90, 3)
    targets = [r for r in result.history if r["kind"] == "target"]
    assert len(targets) == 4  # one refresh per epoch, the first before any step
    from stages.reporting.metrics import cluster_acc
    assert targets[0]["acc"] == cluster_acc(y, labels)  # Q0 = the one-hot k-means labels
    from stages.reporting.metrics import nmi
    assert targets[0]["nmi_start"] == 1.0              # the start's labels themselves
    assert all(0 <= r["nmi_start"] <= 1 for r in targets)
    # lr 0 from the soft-max: every refresh's labels are the final clean argmax
    frozen = depict.finetune(net, x, {"centres": centres, "labels": labels},
                             {**JOINT, "lr": 0.0, "initial_q": "softmax"}, seed=0)
    rows = [r for r in frozen.history if r["kind"] == "target"]
    assert [r["nmi_start"] for r in rows] == [nmi(labels, frozen.labels, "max")] * len(rows)
    assert rows[0]["nmi_start"] < 1.0
    assert {"clustering", "reconstruction"} <= set(result.history[-1])
    clusterer = depict.DepictClusterer(net, torch.zeros(3, 3))
    clusterer.load_state_dict(result.state_dict)
    expected = clusterer.clean_probabilities(x).argmax(1).numpy()
    assert np.array_equal(result.labels, expected)


def test_head_starts_from_unit_norm_centres():
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 2, "maps": 4})
    centres = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    head = depict.DepictClusterer(net, centres).head
    assert torch.allclose(head.weight, torch.tensor([[0.6, 0.8], [0.0, -1.0]]))
    assert torch.equal(head.bias, torch.zeros(2))


def test_stop_rule_ends_when_q_stops_changing():
    x, y = tiny_data(10)
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 4})
    centres, labels = kmeans_init(net, x)
    # lr 0 and Q0 from the soft-max: P never changes, so Q of epoch 1 equals Q of epoch 0
    frozen = depict.finetune(net, x, {"centres": centres}, {**JOINT, "lr": 0.0, "max_epochs": 10,
                                               "initial_q": "softmax"}, seed=0)
    assert frozen.info["converged"] and frozen.info["epochs"] == 1
    assert [r["q_change"] for r in frozen.history if r["kind"] == "target"][1] == 0.0
    assert not any("nmi_start" in r for r in frozen.history)  # no init labels: nothing to compare
    # from one-hot labels the first refresh changes Q, so lr 0 stops one epoch later
    init = {"centres": centres, "labels": labels}
    from_labels = depict.finetune(net, x, init, {**JOINT, "lr": 0.0, "max_epochs": 10}, seed=0)
    assert from_labels.info["converged"] and from_labels.info["epochs"] == 2
    # tol 0 never stops: the epoch cap ends training
    capped = depict.finetune(net, x, init, {**JOINT, "tol": 0.0, "max_epochs": 3}, seed=0)
    assert not capped.info["converged"] and capped.info["epochs"] == 3
    with pytest.raises(ValueError, match="initial_q 'labels' needs the init stage's labels"):
        depict.finetune(net, x, {"centres": centres}, JOINT, seed=0)
    with pytest.raises(ValueError, match="unknown initial_q 'kmeans'; valid choices"):
        depict.finetune(net, x, init, {**JOINT, "initial_q": "kmeans"}, seed=0)


def test_warm_start_fits_the_kmeans_labels_before_the_joint_phase(tmp_path):
    torch.manual_seed(0)
    x, y = tiny_data()
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 8})
    centres, labels = kmeans_init(net, x)
    result = depict.finetune(net, x, {"centres": centres, "labels": labels},
                             {**JOINT, "initial_q": "warm-start"}, seed=0, y_true=y, log_every=2,
                             checkpoint=Checkpointer(tmp_path / "checkpoint.pt"))
    warm = [r for r in result.history if r.get("phase") == "warm-start"]
    checks = [r["nmi_pseudo"] for r in warm if r["kind"] == "warm-start-validation"]
    assert 3 <= len(checks) <= 7 and all(0 <= c <= 1 for c in checks)  # patience 2, cap 6
    assert all(r["step"] <= 0 for r in warm)  # before the joint phase on the step axis
    joint = [r for r in result.history if r.get("phase") != "warm-start"]
    share, joint = joint[0], joint[1:]
    assert share["kind"] == "gradient_share"  # Eq. 12's terms, once before the joint phase
    assert share["grad_share_clustering"] + share["grad_share_reconstruction"] == (
        pytest.approx(1.0))
    assert share["grad_norm_clustering"] > 0 and share["grad_norm_reconstruction"] > 0
    assert joint[0]["kind"] == "target" and joint[0]["step"] == 0
    # the label-free diagnostics of every refresh
    for row in (r for r in joint if r["kind"] == "target"):
        assert 0 <= row["smallest_share"] <= row["largest_share"] <= 1
        assert 1 / 3 <= row["sharpness"] <= 1 and 1 / 3 <= row["target_sharpness"] <= 1
        assert 0 <= row["code_saturated"] <= 1 and 0 <= row["code_dead_dims"] <= 3
        assert row["populated"] <= 3 and isinstance(row["collapsed"], bool)
    assert (tmp_path / "checkpoint-warmstart.pt").exists()


def test_q_change_is_mean_squared_difference():
    a = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    b = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    assert depict_losses.q_change(a, b).item() == pytest.approx(0.5)


def test_transposed_head_init_is_the_authors_acpic_branch():
    """head_init 'transposed' [code-bug] reproduces functions.py:685-690 as Lasagne uses it
    (W of shape (d, K), scores z @ W): torch's weight is that W transposed. A point at a centre
    then need not score highest on its own cluster; with 'centres' it does."""
    rng = np.random.default_rng(0)
    c = rng.normal(size=(4, 4)).astype(np.float32)
    centroids = c.T                                                  # their two lines, verbatim
    centroids = c / np.sqrt(np.diag(np.matmul(centroids.T, centroids)))
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 4, "maps": 4})
    weight = depict.DepictClusterer(net, torch.as_tensor(c), "transposed").head.weight
    np.testing.assert_allclose(weight.detach().numpy(), centroids.T, rtol=1e-6)
    assert torch.equal(depict.initial_head_weight(torch.as_tensor(c), "transposed"), weight.data)
    scores = torch.as_tensor(c) @ weight.data.T                      # a point at each centre
    right = depict.initial_head_weight(torch.as_tensor(c))
    assert torch.equal((torch.as_tensor(c) @ right.T).argmax(1), torch.arange(4))
    assert not torch.equal(scores.argmax(1), torch.arange(4))
    with pytest.raises(ValueError, match="needs an embedding of as many dimensions as clusters"
                                         ".*got 2 dimensions for 3 clusters"):
        depict.initial_head_weight(torch.ones(3, 2), "transposed")
    with pytest.raises(ValueError, match="unknown head_init 'rows'; valid choices: centres, "
                                         "transposed"):
        depict.initial_head_weight(torch.ones(3, 3), "rows")


def test_train_ce_warm_start_trains_on_all_data_until_the_training_ce_is_low():
    """warm_start_rule 'train-ce' (a0ea650): no held-out split (an epoch is all 90 points, 6
    steps of 16, not 5), stops after the first epoch whose mean training cross-entropy is below
    warm_start_ce, else at the cap; the last weights are kept."""
    torch.manual_seed(0)
    x, y = tiny_data()
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 8})
    centres, labels = kmeans_init(net, x)
    params = {**JOINT, "initial_q": "warm-start", "warm_start_rule": "train-ce", "max_epochs": 1}

    def warm_rows(threshold: float) -> tuple[list[dict], list[dict]]:
        model = depict.DepictClusterer(net, torch.as_tensor(centres))
        rows = depict.warm_start(model, x, torch.as_tensor(labels, dtype=torch.long),
                                 {**params, "warm_start_ce": threshold}, seed=0, log_every=2,
                                 checkpoint=Checkpointer(None))
        return [r for r in rows if r["kind"] == "warm-start-epoch"], rows

    epochs, rows = warm_rows(100.0)            # any cross-entropy is below: one epoch
    assert len(epochs) == 1 and epochs[0]["step"] == 0
    assert all(-6 < r["step"] <= 0 for r in rows)
    assert epochs[0]["train_ce"] > 0 and 0 <= epochs[0]["nmi_pseudo"] <= 1
    epochs, rows = warm_rows(1e-9)             # never below: the cap of 6 epochs of 6 steps
    assert [r["step"] for r in epochs] == [-30, -24, -18, -12, -6, 0]
    assert min(r["step"] for r in rows) > -36
    assert all(r["train_ce"] >= 1e-9 for r in epochs)
    assert epochs[-1]["train_ce"] < epochs[0]["train_ce"]  # it fits the pseudo-labels
    # the last weights are kept: what the joint phase starts from is the cap's end
    result = depict.finetune(net, x, {"centres": centres, "labels": labels},
                             {**params, "warm_start_ce": 1e-9, "tol": 0.0}, seed=0, log_every=2)
    assert [r["step"] for r in result.history if r.get("kind") == "warm-start-epoch"] == \
        [-30, -24, -18, -12, -6, 0]
    with pytest.raises(ValueError, match="unknown warm_start_rule 'nmi'; valid choices: "
                                         "heldout-nmi, train-ce"):
        depict.warm_start(depict.DepictClusterer(net, torch.as_tensor(centres)), x,
                          torch.as_tensor(labels, dtype=torch.long),
                          {**params, "warm_start_rule": "nmi"},
                          seed=0, log_every=2, checkpoint=Checkpointer(None))


def test_training_loss_stop_resumes_its_epoch_sums():
    x, _ = tiny_data(5)
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 4})
    model = depict.DepictClusterer(net, torch.eye(3))
    pseudo = np.repeat(np.arange(3), 5)
    stop = depict.TrainingLossStop(model, x, pseudo, period=2, threshold=0.5)
    assert stop(0) is False and stop.rows == []          # nothing trained yet
    stop.add(torch.tensor(0.8))
    again = depict.TrainingLossStop(model, x, pseudo, period=2, threshold=0.5)
    again.load_state_dict(stop.state_dict())
    again.add(torch.tensor(0.1))
    assert again(2) is True and again.rows[-1]["train_ce"] == pytest.approx(0.45)
    again.add(torch.tensor(0.7))
    assert again(4) is False and again.rows[-1]["train_ce"] == pytest.approx(0.7)


def test_finetune_starts_its_head_as_head_init_says():
    """With lr 0 and Q from the soft-max, the labels are the initial head's argmax: the
    transposed start's under head_init 'transposed', the unit-norm centres' by default."""
    x, _ = tiny_data(10)
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 4})
    centres, labels = kmeans_init(net, x)
    c = torch.as_tensor(centres, dtype=torch.float32)
    z = net.encode(x).detach()
    params = {**JOINT, "lr": 0.0, "initial_q": "softmax", "max_epochs": 1}
    for head_init in ("centres", "transposed"):
        result = depict.finetune(net, x, {"centres": centres, "labels": labels},
                                 {**params, "head_init": head_init}, seed=0)
        weight = depict.initial_head_weight(c, head_init)
        np.testing.assert_array_equal(result.labels, (z @ weight.T).argmax(1).numpy())
    default = depict.finetune(net, x, {"centres": centres, "labels": labels}, params, seed=0)
    np.testing.assert_array_equal(default.labels, (z @ F.normalize(c, dim=1).T).argmax(1).numpy())
