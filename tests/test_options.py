"""Each option that changes training changes what it should and nothing else.

One test (or one parametrised test) per option of every head's ``finetune`` and of the
pretraining losses, on tiny networks (the project's own builders, untrained) and 48 synthetic
images, at the level of the loss function or of a few steps:

* parameters an option must not touch are compared bit for bit (``torch.equal``), those it must
  train are checked to have moved;
* loss terms are recomputed here from the formulas, independently of the head's code, or a
  weight's contribution is checked to be linear in the weight (0 removes exactly that term);
* where an option only reaches a helper (the batch order, a bandwidth, a learning rate), the
  helper is spied on with ``monkeypatch`` and the values it receives are checked.

``capture`` replaces a head's ``run_loop`` by one that runs the hook once (step 0) and takes no
step, so the head's own loss function can be called on a chosen batch.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from scipy.spatial.distance import cdist

from stages.data.synthetic import make_synthetic
from stages.methods.dec import head as dec
from stages.methods.depict import head as depict
from stages.methods.dscdan import head as dscdan
from stages.methods.rmn import head as rmn
from stages.methods.saip import head as saip
from stages.methods.saip.pretrain import pretrain_denoising
from stages.methods.shared import reconstruction as pretrain_module
from stages.methods.shared.kmeans import kmeans_arrays
from stages.nets import build_network
from stages.plumbing import config as stage_config
from stages.runtime.device import seed_everything
from stages.runtime.train import LoopResult, map_batches

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "tests/data/workflow_config.yaml").read_text())
K = 3
N = 48
BATCH = 16


@pytest.fixture(autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, np.ndarray]:
    X, y, _ = make_synthetic({"n_clusters": K, "n_per_cluster": N // K, "side": 16,
                              "noise": 0.05, "seed": 0})
    return torch.as_tensor(X), y


# ----------------------------------------------------------------------------------- helpers


def _net(name: str, arch: dict) -> torch.nn.Module:
    seed_everything(0)
    return build_network(name, (1, 16, 16), arch)


def _kmeans_init(net: torch.nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    z = map_batches(net.encode, x).numpy()
    return kmeans_arrays(z, K, {"n_init": 3}, 0)


def _recipe(method: str, **overrides) -> dict:
    return {**stage_config.method_recipe(CONFIG, method), **overrides}


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _split(before: dict, after: dict, prefix: str = "") -> tuple[list[str], list[str]]:
    """(keys equal bit for bit, keys changed) of ``before`` against ``after[prefix + key]``."""
    same = [k for k in before if torch.equal(before[k], after[prefix + k])]
    return same, [k for k in before if k not in same]


def _train_rows(history: list[dict]) -> list[dict]:
    return [r for r in history if r.get("kind") == "train"]


def capture(monkeypatch: pytest.MonkeyPatch, module) -> dict:
    """Replace ``module.run_loop``: record its arguments, call the hook at step 0, take no step."""
    seen: dict = {}

    def fake(model, optimizer, loss_fn, n_samples, cfg, device, *, hook=None, scheduler=None,
             checkpoint=None, desc=""):
        seen.update(model=model, optimizer=optimizer, loss_fn=loss_fn, cfg=cfg, hook=hook,
                    scheduler=scheduler)
        if hook is not None:
            hook(0)
        return LoopResult(0, False, [])

    monkeypatch.setattr(module, "run_loop", fake)
    return seen


def spy_steps(monkeypatch: pytest.MonkeyPatch, module) -> dict:
    """Wrap ``module.run_loop``: record the config, the optimizer and, at every step, the batch
    indices given to the loss and the optimizer's learning rate."""
    seen: dict = {"batches": [], "lrs": []}
    real = module.run_loop

    def spy(model, optimizer, loss_fn, n_samples, cfg, device, **kwargs):
        seen.update(model=model, cfg=cfg, optimizer=optimizer)

        def recording(idx):
            seen["batches"].append(idx.clone())
            seen["lrs"].append(optimizer.param_groups[0]["lr"])
            return loss_fn(idx)

        return real(model, optimizer, recording, n_samples, cfg, device, **kwargs)

    monkeypatch.setattr(module, "run_loop", spy)
    return seen


def spy_calls(monkeypatch: pytest.MonkeyPatch, owner, name: str) -> list:
    """Record the (args, kwargs) of every call of ``owner.name``, then call the real one."""
    calls: list = []
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def _param_ids(optimizer: torch.optim.Optimizer) -> set[int]:
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def _grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _close(a: list[torch.Tensor], b: list[torch.Tensor], rtol: float = 1e-4) -> bool:
    scale = max(float(torch.cat([t.flatten() for t in b]).abs().max()), 1e-12)
    return all(torch.allclose(u, v, rtol=rtol, atol=rtol * scale) for u, v in zip(a, b,
                                                                                   strict=True))


def _kl(p: torch.Tensor, q: torch.Tensor, clip: float = 1e-7) -> torch.Tensor:
    """mean_i sum_j p log(p / max(q, clip)), 0 log 0 = 0 (SAIP's Keras-style KL)."""
    positive = p > 0
    safe = torch.where(positive, p, torch.ones_like(p))  # no NaN gradient where p is zero
    terms = torch.where(positive, p * (safe.log() - q.clamp_min(clip).log()), torch.zeros_like(p))
    return terms.sum(dim=1).mean()


# ------------------------------------------------------------------------------------- DEC


def _sae() -> torch.nn.Module:
    return _net("sae", {"hidden": [32, 16, 3]})


@pytest.mark.parametrize("w_rec", [0.0, 0.7])
def test_dec_reconstruction_weight_zero_leaves_the_decoder_bit_identical(w_rec, data,
                                                                         monkeypatch):
    """DEC (w_r = 0) trains the encoder and the centres only; IDEC (w_r > 0) the decoder too,
    and its loss is gamma * KL + w_r * L_r."""
    x, _ = data
    net = _sae()
    init = _kmeans_init(net, x)
    before = _state(net)
    seen = spy_steps(monkeypatch, dec)
    params = _recipe("idec", reconstruction_weight=w_rec, clustering_weight=0.5, max_iter=4,
                     batch_size=BATCH, update_interval=2, tol=-1.0)
    result = dec.finetune(net, x, init, params, seed=0, log_every=1)
    same, changed = _split(before, result.state_dict, "autoencoder.")
    decoder = {k for k in before if k.startswith("decoder.")}
    encoder = {k for k in before if k.startswith("encoder.")}
    assert encoder <= set(changed)
    assert not torch.equal(result.state_dict["centres"], torch.as_tensor(init["centres"]))
    encoder_ids = {id(p) for p in net.encoder.parameters()}
    centres_id = id(seen["model"].centres)
    if w_rec == 0:
        assert decoder == set(same)
        assert _param_ids(seen["optimizer"]) == encoder_ids | {centres_id}
    else:
        assert decoder <= set(changed)
        assert _param_ids(seen["optimizer"]) == {id(p) for p in seen["model"].parameters()}
    rows = _train_rows(result.history)
    assert len(rows) == 4
    for row in rows:
        if w_rec == 0:
            assert "reconstruction" not in row
            assert row["loss"] == pytest.approx(0.5 * row["clustering"], rel=1e-6)
        else:
            assert row["loss"] == pytest.approx(0.5 * row["clustering"]
                                                + w_rec * row["reconstruction"], rel=1e-5)


def _student_t(z: torch.Tensor, centres: torch.Tensor, alpha: float) -> torch.Tensor:
    kernel = (1.0 + torch.cdist(z, centres).pow(2) / alpha).pow(-(alpha + 1.0) / 2.0)
    return kernel / kernel.sum(dim=1, keepdim=True)


def _dec_terms(monkeypatch, x, net, init, **overrides) -> tuple[dict, dict]:
    seen = capture(monkeypatch, dec)
    params = _recipe("idec", batch_size=BATCH, **overrides)
    dec.finetune(copy.deepcopy(net), x, init, params, seed=0)
    idx = torch.arange(BATCH)
    return seen, seen["loss_fn"](idx)


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_dec_alpha_and_clustering_weight_enter_the_loss_as_written(alpha, data, monkeypatch):
    """The clustering term is KL(P || Q) with Q Student-t of ``alpha`` dof and P DEC's target of
    all points; ``clustering_weight`` scales that term alone."""
    x, _ = data
    net = _sae()
    init = _kmeans_init(net, x)
    centres = torch.as_tensor(init["centres"], dtype=torch.float64)
    z_all = net.encode(x).detach().double()
    q_all = _student_t(z_all, centres, alpha)
    weight = q_all ** 2 / q_all.sum(dim=0)
    p = weight / weight.sum(dim=1, keepdim=True)
    q = q_all[:BATCH]
    expected = (p[:BATCH].clamp(1e-7, 1) * (p[:BATCH].clamp(1e-7, 1).log()
                                            - q.clamp(1e-7, 1).log())).sum(dim=1).mean()
    x_hat = net.decode(net.encode(x[:BATCH])).detach().double()
    rec = ((x_hat - x[:BATCH].double()) ** 2).mean()
    terms = {}
    for gamma in (1.0, 2.0):
        _, terms[gamma] = _dec_terms(monkeypatch, x, net, init, alpha=alpha,
                                     clustering_weight=gamma, reconstruction_weight=1.0)
        terms[gamma] = {k: v.detach() for k, v in terms[gamma].items()}
        # float32 against float64: the KL is small (P is near Q), so 1e-3 relative
        assert float(terms[gamma]["clustering"]) == pytest.approx(float(expected), rel=1e-3)
        assert float(terms[gamma]["reconstruction"]) == pytest.approx(float(rec), rel=1e-5)
    assert torch.equal(terms[1.0]["clustering"], terms[2.0]["clustering"])
    assert torch.equal(terms[1.0]["reconstruction"], terms[2.0]["reconstruction"])
    # a difference of two float32 losses: its rounding error scales with the losses, not
    # with the (small) difference
    assert float(terms[2.0]["loss"] - terms[1.0]["loss"]) == pytest.approx(
        float(terms[1.0]["clustering"]), rel=1e-5,
        abs=4 * torch.finfo(torch.float32).eps * float(terms[2.0]["loss"]))


@pytest.mark.parametrize("shuffle", [False, True])
def test_dec_shuffle_changes_only_the_batch_order(shuffle, data, monkeypatch):
    """``shuffle: false`` takes sequential batches (0..B-1, B..2B-1, ..., then from 0 again);
    ``true`` a new permutation every epoch; the loop's other settings are the same."""
    x, _ = data
    net = _sae()
    init = _kmeans_init(net, x)
    seen = spy_steps(monkeypatch, dec)
    params = _recipe("dec", shuffle=shuffle, max_iter=6, batch_size=BATCH, update_interval=3,
                     tol=-1.0)
    dec.finetune(net, x, init, params, seed=0, log_every=1)
    batches = seen["batches"]
    assert len(batches) == 6 and all(b.shape == (BATCH,) for b in batches)
    sequential = [torch.arange(s % 3 * BATCH, (s % 3 + 1) * BATCH) for s in range(6)]
    if not shuffle:
        assert all(torch.equal(b, s) for b, s in zip(batches, sequential, strict=True))
    else:
        assert not all(torch.equal(b, s) for b, s in zip(batches, sequential, strict=True))
        for epoch in (0, 1):  # each epoch's batches: a permutation of all samples
            order = torch.cat(batches[3 * epoch:3 * epoch + 3])
            assert torch.equal(order.sort().values, torch.arange(N))
        assert not torch.equal(torch.cat(batches[:3]), torch.cat(batches[3:]))
    other = dataclasses.replace(seen["cfg"], shuffle=not shuffle)
    assert dataclasses.replace(other, shuffle=shuffle) == seen["cfg"]
    assert seen["cfg"].shuffle is shuffle


def test_dec_optimizer_spec_replaces_the_default_adam_and_nothing_else(data, monkeypatch):
    x, _ = data
    net = _sae()
    init = _kmeans_init(net, x)
    seen_adam, terms_adam = _dec_terms(monkeypatch, x, net, init, reconstruction_weight=0.0,
                                       lr=0.003)
    spec = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    seen_sgd, terms_sgd = _dec_terms(monkeypatch, x, net, init, reconstruction_weight=0.0,
                                     lr=0.003, optimizer=spec)
    adam, sgd = seen_adam["optimizer"], seen_sgd["optimizer"]
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["lr"] == 0.003
    assert type(sgd) is torch.optim.SGD
    assert sgd.param_groups[0]["lr"] == 0.01 and sgd.param_groups[0]["momentum"] == 0.9
    assert len(adam.param_groups[0]["params"]) == len(sgd.param_groups[0]["params"])
    assert terms_adam.keys() == terms_sgd.keys()
    assert all(torch.equal(terms_adam[k], terms_sgd[k]) for k in terms_adam)


@pytest.mark.parametrize("interval", [2, 3])
def test_dec_update_interval_sets_the_target_steps(interval, data):
    x, _ = data
    net = _sae()
    init = _kmeans_init(net, x)
    params = _recipe("dec", max_iter=6, batch_size=BATCH, update_interval=interval, tol=-1.0)
    result = dec.finetune(net, x, init, params, seed=0, log_every=1)
    steps = [r["step"] for r in result.history if r.get("kind") == "target"]
    assert steps == list(range(0, 6, interval))
    assert len(_train_rows(result.history)) == 6


# ------------------------------------------------------------------------------------ SAIP


def _saip_inputs(x):
    net = _net("sae", {"hidden": [32, 16, 3], "centre_input": True})  # SAIP's centred DAE
    net.set_input_mean(x)
    return net, _kmeans_init(net, x)


def _saip_loss_fn(monkeypatch, x, net, init, **overrides):
    seen = capture(monkeypatch, saip)
    params = _recipe("saip-homo", batch_size=BATCH, **overrides)
    if "detach_target" in overrides:  # the older key alone, without the recipe's detach
        params.pop("detach", None)
    saip.finetune(copy.deepcopy(net), x, init, params, seed=0)
    return seen


def _sharpen(q: torch.Tensor) -> torch.Tensor:
    q_bar = q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)
    weight = q_bar ** 2 / q_bar.sum(dim=0).clamp_min(1e-12)
    return weight / weight.sum(dim=1, keepdim=True).clamp_min(1e-12)


def _saip_assignments(h: np.ndarray, centres: np.ndarray, distance: str):
    """(P1, P2) in float64 from scipy's distances (Eqs. 6-8 as methods.md reconstructs them)."""
    z1 = torch.as_tensor(cdist(h, centres, "euclidean"))
    z2 = torch.as_tensor(cdist(h, centres, distance))
    q1 = (z1.mean(dim=1, keepdim=True) - z1).clamp_min(0)
    kernel = 1.0 / (1.0 + z2)
    return _sharpen(q1), _sharpen(kernel / kernel.sum(dim=1, keepdim=True))


@pytest.mark.parametrize("kl", sorted(saip.KL_READINGS))
@pytest.mark.parametrize("distance", sorted(saip.DISTANCES))
def test_saip_distance_and_kl_reading_give_the_loss_of_the_formulas(distance, kl, data,
                                                                    monkeypatch):
    x, _ = data
    net, init = _saip_inputs(x)
    seen = _saip_loss_fn(monkeypatch, x, net, init, distance=distance, kl=kl)
    terms = {k: v.detach() for k, v in seen["loss_fn"](torch.arange(BATCH)).items()}
    model = seen["model"]
    h = net.encode(x[:BATCH]).detach().double().numpy()
    p1, p2 = _saip_assignments(h, model.centres.detach().double().numpy(), distance)
    parts = {"p1_p2": _kl(p1, p2), "p2_p1": _kl(p2, p1)}
    wanted = {"p1_p2": ["p1_p2"], "p2_p1": ["p2_p1"], "symmetric": ["p1_p2", "p2_p1"]}[kl]
    assert float(terms["loss"]) == pytest.approx(float(sum(parts[w] for w in wanted)), rel=1e-4)
    if kl == "symmetric":
        for name in wanted:
            assert float(terms[f"kl_{name}"]) == pytest.approx(float(parts[name]), rel=1e-4)
    else:
        assert set(terms) == {"loss"}


@pytest.mark.parametrize("kl", sorted(saip.KL_READINGS))
def test_saip_detach_target_removes_exactly_the_gradient_through_p2(kl, data, monkeypatch):
    """Same loss value with and without ``detach_target``; the gradients differ by exactly the
    gradient that flows through P2, recomputed here."""
    x, _ = data
    net, init = _saip_inputs(x)
    losses, grads = {}, {}
    for detach in (False, True):
        seen = _saip_loss_fn(monkeypatch, x, net, init, kl=kl, detach_target=detach)
        model = seen["model"]
        params = [model.centres, *model.autoencoder.encoder.parameters()]
        losses[detach] = seen["loss_fn"](torch.arange(BATCH))["loss"]
        grads[detach] = _grads(losses[detach], params)
        # the same loss recomputed: the reading on the model's (P1, P2), by this file's KL
        p1, p2 = saip.assignments(model.autoencoder.encode(x[:BATCH]), model.centres,
                                  model.distance)

        def reading(a, b):
            return {"p1_p2": _kl(a, b), "p2_p1": _kl(b, a),
                    "symmetric": _kl(a, b) + _kl(b, a)}[kl]

        full = _grads(reading(p1, p2), params)
        through_p1 = _grads(reading(p1, p2.detach()), params)
        through_p2 = _grads(reading(p1.detach(), p2), params)
        assert _close(grads[detach], through_p1 if detach else full)
        assert _close([a + b for a, b in zip(through_p1, through_p2, strict=True)], full)
        assert max(float(g.abs().max()) for g in through_p2) > 1e-6  # a P2 path to remove
    assert torch.equal(losses[False], losses[True])
    assert not _close(grads[False], grads[True])


@pytest.mark.parametrize("kl", sorted(saip.KL_READINGS))
@pytest.mark.parametrize("variant", ["euclidean", "cosine", "correlation", "cityblock", "cnn"])
@pytest.mark.parametrize("detach", ["p1", "p2"])
def test_saip_detach_sends_the_gradient_through_the_other_assignment_only(detach, variant, kl,
                                                                         data, monkeypatch):
    """``detach: p1`` (P1 the fixed target) and ``detach: p2``, in every variant (HOMO, HOE, HOT,
    HIT and HOE(CNN), cosine on the conv encoder): the loss value of gradients through both, and
    the encoder's and the centres' gradients exactly those through the other assignment,
    recomputed here by this file's KL."""
    x, _ = data
    if variant == "cnn":
        net = _net("saip-cnn", {"channels": [4, 3], "hidden": 16})
        net, init, distance = net, _kmeans_init(net, x), "cosine"
    else:
        (net, init), distance = _saip_inputs(x), variant
    seen = {d: _saip_loss_fn(monkeypatch, x, net, init, kl=kl, distance=distance, detach=d)
            for d in ("none", detach)}
    model = seen[detach]["model"]
    params = [model.centres, *model.autoencoder.encoder.parameters()]
    loss = seen[detach]["loss_fn"](torch.arange(BATCH))["loss"]
    p1, p2 = saip.assignments(model.autoencoder.encode(x[:BATCH]), model.centres, distance)

    def reading(a, b):
        return {"p1_p2": _kl(a, b), "p2_p1": _kl(b, a), "symmetric": _kl(a, b) + _kl(b, a)}[kl]

    wanted = _grads(reading(p1.detach(), p2) if detach == "p1" else reading(p1, p2.detach()),
                    params)
    assert _close(_grads(loss, params), wanted)
    assert max(float(g.abs().max()) for g in wanted) > 1e-6
    assert not _close(_grads(reading(p1, p2), params), wanted)   # a gradient was removed
    assert torch.equal(loss, seen["none"]["loss_fn"](torch.arange(BATCH))["loss"])


def _saip_run(x, net, init, monkeypatch, **overrides):
    seen = spy_steps(monkeypatch, saip)
    params = _recipe("saip-homo", batch_size=BATCH, tol=0.0, **overrides)
    result = saip.finetune(copy.deepcopy(net), x, init, params, seed=0, log_every=1)
    monkeypatch.undo()
    return seen, result


@pytest.mark.parametrize("decay,epochs,repeats", [(0.5, 1, 3), (0.5, 2, 2), (1.0, 1, 3)])
def test_saip_lr_decay_schedule_and_what_is_trained(decay, epochs, repeats, data, monkeypatch):
    """The lr of every step is lr0 * de^min(epoch // ep, re - 1); training lasts ep * re epochs;
    the encoder and the centres are trained with the optimizer of the spec, the decoder is left
    bit-identical."""
    x, _ = data
    net, init = _saip_inputs(x)
    spec = {"name": "sgd", "lr": 0.01, "momentum": 0.8, "weight_decay": 1e-4}
    seen, result = _saip_run(x, net, init, monkeypatch, optimizer=spec, lr_decay=decay,
                             decay_epochs=epochs, decay_repeats=repeats)
    spe = N // BATCH
    assert result.info["steps"] == epochs * repeats * spe
    expected = [0.01 * decay ** min(s // (epochs * spe), repeats - 1)
                for s in range(epochs * repeats * spe)]
    assert seen["lrs"] == pytest.approx(expected, rel=1e-12)
    monitor = [(r["step"], r["lr"]) for r in result.history if r.get("kind") == "target"]
    assert monitor == [(s, pytest.approx(expected[s], rel=1e-12))
                       for s in range(0, epochs * repeats * spe, spe)]
    group = seen["optimizer"].param_groups[0]
    assert type(seen["optimizer"]) is torch.optim.SGD
    assert (group["momentum"], group["weight_decay"]) == (0.8, 1e-4)
    model = seen["model"]
    assert _param_ids(seen["optimizer"]) == {id(model.centres)} | {
        id(p) for p in model.autoencoder.encoder.parameters()}
    before = _state(net)
    same, changed = _split(before, result.state_dict, "autoencoder.")
    assert set(same) == {k for k in before if not k.startswith("encoder.")}  # decoder, mean
    assert set(changed) == {k for k in before if k.startswith("encoder.")}
    assert not torch.equal(result.state_dict["centres"],
                           torch.as_tensor(init["centres"]).float())


def test_saip_predict_changes_only_which_assignment_labels(data, monkeypatch):
    x, _ = data
    net, init = _saip_inputs(x)
    runs = {which: _saip_run(x, net, init, monkeypatch, distance="cosine", predict=which,
                             decay_epochs=1, decay_repeats=1)[1] for which in saip.PREDICT}
    first, second = runs["p1"], runs["p2"]
    assert first.state_dict.keys() == second.state_dict.keys()
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    np.testing.assert_array_equal(first.embedding, second.embedding)
    p1, p2 = _saip_assignments(first.embedding.astype(np.float64),
                               first.state_dict["centres"].double().numpy(), "cosine")
    assert (p1.argmax(dim=1) != p2.argmax(dim=1)).any(), "the test needs P1 and P2 to disagree"
    np.testing.assert_array_equal(first.labels, p1.argmax(dim=1).numpy())
    np.testing.assert_array_equal(second.labels, p2.argmax(dim=1).numpy())


# ---------------------------------------------------------------------------------- DSCDAN

DSCDAN_WIDTHS = (32, 32, 16)
DSCDAN_ARCH = {"latent_dim": 8, "disc_width": 16, "local_width": 8}
#: the weights of Eq. 20 and the terms a weight of zero removes
DSCDAN_WEIGHTS = {"mi_weight": {"mi_global", "mi_local"}, "local_mi_weight": {"mi_local"},
                  "kl_weight": set(), "relative_weight": {"relative"}, "plain_weight": set(),
                  "reconstruction_scale": set(), "spectral_weight": set(), "cat_weight": set()}


@pytest.fixture(scope="module")
def dscdan_setup(data):
    """A DSCDAN clusterer in float64 (so that sums of terms compare to 1e-10) and a batch."""
    x, _ = data
    net = _net("dscdan", DSCDAN_ARCH)
    init = _kmeans_init(net, x)
    seed_everything(1)
    model = dscdan.DscdanClusterer(net, torch.as_tensor(init["centres"]), DSCDAN_WIDTHS)
    return model.double(), x[:BATCH].double()


def _eq20(model, xb, sigma=None, graph=False, **overrides) -> dict[str, torch.Tensor]:
    """Eq. 20's terms with the recipe of the workflow test's ``dscdan`` and ``overrides``, the
    noise drawn from one seed (detached unless ``graph``)."""
    torch.manual_seed(0)
    terms = dscdan.eq20_terms(model, xb, _recipe("dscdan", **overrides), sigma)
    return terms if graph else {k: v.detach() for k, v in terms.items()}


def _weighted_sum(terms: dict, weights: dict) -> torch.Tensor:
    w = {**dscdan.loss_weights({}), "spectral_weight": 1.0, **weights}
    reconstruction = w["plain_weight"] * terms["plain"] + w["relative_weight"] * terms.get(
        "relative", 0.0)
    mi = terms.get("mi_global", 0.0) + w["local_mi_weight"] * terms.get("mi_local", 0.0)
    return (w["reconstruction_scale"] * reconstruction + w["mi_weight"] * mi
            + w["kl_weight"] * terms["kl"] + w["cat_weight"] * terms["cat"]
            + w["spectral_weight"] * terms["spectral"])


@pytest.mark.parametrize("weights", [
    {},
    {"mi_weight": 0.3, "local_mi_weight": 0.7, "kl_weight": 0.2, "relative_weight": 2.0,
     "plain_weight": 0.4, "reconstruction_scale": 3.0, "spectral_weight": 1.7,
     "plain_reconstruction": "clean"},
    {"mi_weight": 0.0, "relative_weight": 0.0, "kl_weight": 0.0, "spectral_weight": 0.0},
])
def test_dscdan_loss_is_the_sum_of_the_weighted_terms(weights, dscdan_setup):
    model, xb = dscdan_setup
    terms = _eq20(model, xb, **weights)
    recipe = {k: v for k, v in _recipe("dscdan", **weights).items()
              if k in dscdan.loss_weights({}) or k == "spectral_weight"}
    assert float(terms["loss"]) == pytest.approx(float(_weighted_sum(terms, recipe)), rel=1e-10)
    for weight, removed in DSCDAN_WEIGHTS.items():
        if recipe.get(weight, 1.0) == 0:
            assert not removed & set(terms), (weight, sorted(terms))


@pytest.mark.parametrize("weight", sorted(DSCDAN_WEIGHTS))
def test_dscdan_a_weight_scales_its_own_term_only(weight, dscdan_setup):
    """0 removes exactly that term (the other terms are bit-identical), doubling the weight
    doubles the term's contribution to the loss."""
    model, xb = dscdan_setup
    base = {"mi_weight": 1.0} if weight == "local_mi_weight" else {}
    runs = {w: _eq20(model, xb, **{**base, weight: w}) for w in (0.0, 1.0, 2.0)}
    one = runs[1.0].keys() - {"loss"}
    assert runs[2.0].keys() - {"loss"} == one
    assert runs[0.0].keys() - {"loss"} == one - DSCDAN_WEIGHTS[weight]
    for w in (0.0, 2.0):
        for name in runs[w].keys() - {"loss"}:
            assert torch.equal(runs[w][name], runs[1.0][name]), (w, name)
    first = float(runs[1.0]["loss"] - runs[0.0]["loss"])
    second = float(runs[2.0]["loss"] - runs[0.0]["loss"])
    assert abs(first) > 1e-6
    assert second == pytest.approx(2 * first, rel=1e-8)


def test_dscdan_spectral_normalisation_m2_divides_the_spectral_term_by_m(dscdan_setup):
    model, xb = dscdan_setup
    by_m = _eq20(model, xb, spectral_normalisation="m")
    by_m2 = _eq20(model, xb, spectral_normalisation="m2")
    assert float(by_m2["spectral"]) == pytest.approx(float(by_m["spectral"]) / BATCH, rel=1e-12)
    assert float(by_m["spectral"]) > 0
    for name in by_m.keys() - {"loss", "spectral"}:
        assert torch.equal(by_m[name], by_m2[name]), name
    assert float(by_m["loss"] - by_m2["loss"]) == pytest.approx(
        float(by_m["spectral"] - by_m2["spectral"]), rel=1e-8)


def _hand_affinity(z: np.ndarray, sigma: float | None, k: int = 4, scale: int = 2) -> np.ndarray:
    d2 = cdist(z, z, "sqeuclidean")
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1)
    if sigma is None:  # the median over the batch of the distance to the scale-th neighbour,
        # the lower of the two middle values for an even batch (torch.median's convention)
        scales = np.sort(np.sqrt(d2[np.arange(len(z)), order[:, scale - 1]]))
        sigma = float(scales[(len(z) - 1) // 2])
    w = np.zeros_like(d2)
    for i in range(len(z)):
        w[i, order[i, :k]] = np.exp(-d2[i, order[i, :k]] / (2 * sigma ** 2))
    return 0.5 * (w + w.T)


@pytest.mark.parametrize("sigma,neighbours", [(None, {}), (0.7, {}),
                                              (None, {"n_neighbors": 5, "scale_neighbor": 4})])
def test_dscdan_bandwidth_sets_the_sigma_of_the_spectral_affinity(sigma, neighbours,
                                                                  dscdan_setup):
    """The spectral term is Eq. 16 on the kNN Gaussian graph (``n_neighbors``, default 4) with
    the batch's median distance to the ``scale_neighbor``-th neighbour (default 2) as bandwidth
    (``bandwidth: batch``) or the given one (``global``); the other terms do not change."""
    model, xb = dscdan_setup
    terms = _eq20(model, xb, None if sigma is None else torch.tensor(sigma, dtype=torch.float64),
                  **neighbours)
    reference = _eq20(model, xb)
    with torch.no_grad():
        mu = model.autoencoder.encode(xb)
        y = (model.spectral(mu) @ model.spectral.w_orth).numpy()
    w = _hand_affinity(mu.numpy(), sigma, neighbours.get("n_neighbors", 4),
                       neighbours.get("scale_neighbor", 2))
    expected = (w * cdist(y, y, "sqeuclidean")).sum() / BATCH
    assert float(terms["spectral"]) == pytest.approx(expected, rel=1e-9)
    if sigma is not None or neighbours:
        assert float(terms["spectral"]) != pytest.approx(float(reference["spectral"]), rel=1e-6)
    # the diagnostic: the mean of W over its kNN edges
    assert float(terms["knn_affinity"]) == pytest.approx(float(w[w > 0].mean()), rel=1e-9)
    for name in terms.keys() - {"loss", "spectral", "knn_affinity"}:
        assert torch.equal(terms[name], reference[name]), name


@pytest.mark.parametrize("bandwidth", ["fixed", "batch", "global"])
def test_dscdan_finetune_passes_the_bandwidth_to_every_affinity(bandwidth, data, monkeypatch):
    x, _ = data
    net = _net("dscdan", DSCDAN_ARCH)
    init = {**_kmeans_init(net, x), "sigma": np.array([0.7], dtype=np.float32)}
    calls = spy_calls(monkeypatch, dscdan, "knn_affinity")
    params = _recipe("dscdan", bandwidth=bandwidth, batch_size=BATCH, max_epochs=1,
                     steps_per_check=2, warm_start="none")
    result = dscdan.finetune(net, x, init, params, seed=0, log_every=1)
    assert result.info["steps"] == 2
    assert len(calls) == 3  # the gradient shares' batch and two steps
    for args, _ in calls:
        if bandwidth == "batch":
            assert args[3] is None
        else:
            assert torch.equal(args[3], torch.tensor(0.7 if bandwidth == "global" else 2.62))


def _orth_factor(pi: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """W with (1/m) (pi W)^T (pi W) = I from the Cholesky factor (Eqs. 17-18), differentiable."""
    a = pi.T @ pi
    a = a + eps * torch.trace(a) / pi.shape[1] * torch.eye(pi.shape[1], dtype=pi.dtype)
    return math.sqrt(pi.shape[0]) * torch.linalg.inv(torch.linalg.cholesky(a)).T


def test_dscdan_orth_gradient_adds_exactly_the_gradient_through_the_factor(dscdan_setup):
    """The loss is the same with and without ``orth_gradient``; the gradients differ by exactly
    the gradient of the spectral term through W_orth, recomputed here."""
    model, xb = dscdan_setup
    params = list(model.parameters())
    runs = {}
    for flag in (True, False):
        terms = _eq20(model, xb, graph=True, orth_gradient=flag)
        runs[flag] = (terms, _grads(terms["loss"], params), model.spectral.w_orth.clone())
    for name in runs[True][0]:
        assert torch.equal(runs[True][0][name], runs[False][0][name]), name
    assert torch.equal(runs[True][2], runs[False][2])
    mu = model.autoencoder.encode(xb)
    pi = model.spectral(mu)
    factor = _orth_factor(pi)
    assert torch.allclose(factor, runs[True][2], rtol=1e-8)
    w = torch.as_tensor(_hand_affinity(mu.detach().numpy(), None))

    def spectral(y):
        return (w * (y.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(dim=2)).sum() / BATCH

    weight = float(_recipe("dscdan").get("spectral_weight", 1.0))
    through_factor = _grads(weight * (spectral(pi @ factor) - spectral(pi @ factor.detach())),
                            params)
    difference = [a - b for a, b in zip(runs[True][1], runs[False][1], strict=True)]
    assert max(float(g.abs().max()) for g in through_factor) > 1e-8
    assert _close(difference, through_factor, rtol=1e-6)


@pytest.mark.parametrize("target", ["clean", "noisy"])
def test_dscdan_plain_reconstruction_picks_the_reconstruction_of_the_plain_term(target,
                                                                               dscdan_setup):
    model, xb = dscdan_setup
    terms = _eq20(model, xb, plain_reconstruction=target)
    other = _eq20(model, xb, plain_reconstruction="noisy" if target == "clean" else "clean")
    ae = model.autoencoder
    torch.manual_seed(0)  # the draws of eq20_terms: z_hat first
    with torch.no_grad():
        _, _, mu, logvar = ae.features(xb)
        z_hat = ae.sample(mu, logvar)
        x_clean, x_noisy = ae.decode(mu), ae.decode(z_hat)
    expected = (xb - (x_clean if target == "clean" else x_noisy)).pow(2).flatten(1).sum(1).mean()
    assert float(terms["plain"]) == pytest.approx(float(expected), rel=1e-10)
    assert float(terms["relative"]) == pytest.approx(
        float((x_noisy - x_clean).pow(2).flatten(1).sum(1).mean()), rel=1e-10)
    for name in terms.keys() - {"loss", "plain"}:
        assert torch.equal(terms[name], other[name]), name


@pytest.mark.parametrize("rule", dscdan.PREDICT_RULES)
def test_dscdan_predict_rule_changes_only_the_labels(rule, data):
    """``softmax``: argmax of pi; ``spectral-kmeans``: k-means on Y = pi W_orth."""
    from sklearn.cluster import KMeans

    x, _ = data
    net = _net("dscdan", DSCDAN_ARCH)
    init = _kmeans_init(net, x)
    seed_everything(1)
    model = dscdan.DscdanClusterer(net, torch.as_tensor(init["centres"]), DSCDAN_WIDTHS)
    with torch.no_grad():
        model.spectral.w_orth.copy_(torch.tensor([[2.0, 0, 0], [1, 1, 0], [0, 0, 3]]))
        pi = model.spectral(net.encode(x))
    labels, z = dscdan.predict(model, x, rule, K, seed=0)
    np.testing.assert_array_equal(z, net.encode(x).detach().numpy())
    if rule == "softmax":
        np.testing.assert_array_equal(labels, pi.argmax(dim=1).numpy())
    else:
        y = (pi @ model.spectral.w_orth).numpy()
        expected = KMeans(n_clusters=K, n_init=10, random_state=0).fit(y).labels_
        np.testing.assert_array_equal(labels, expected)


# ------------------------------------------------------------------------------------- RMN


def _rmn_inputs(x):
    net = _net("rmn-sae", {"hidden": [32, 16, 3]})
    z = map_batches(net.encode, x).double().numpy()
    labels = kmeans_arrays(z.astype(np.float32), K, {"n_init": 3}, 0)["labels"]
    init = {"means": np.stack([z[labels == k].mean(0) for k in range(K)]),
            "variances": np.stack([z[labels == k].var(0) for k in range(K)]) + 1e-3,
            "weights": np.bincount(labels, minlength=K) / N, "labels": labels}
    return net, {k: v.astype(np.float32) if v.dtype == np.float64 else v
                 for k, v in init.items()}


def _rmn_run(x, net, init, monkeypatch, **overrides):
    seen = spy_steps(monkeypatch, rmn)
    params = _recipe("rmn-gmm", batch_size=BATCH, **overrides)
    result = rmn.finetune(copy.deepcopy(net), x, init, params, seed=0, log_every=1)
    return seen, result


@pytest.mark.parametrize("w_rec", [0.0, 1.0])
def test_rmn_reconstruction_weight_zero_leaves_the_decoder_bit_identical(w_rec, data,
                                                                         monkeypatch):
    x, _ = data
    net, init = _rmn_inputs(x)
    before = _state(net)
    seen, result = _rmn_run(x, net, init, monkeypatch, reconstruction_weight=w_rec,
                            standardise=False, encoder_lr=0.01, steps=3)
    same, changed = _split(before, result.state_dict, "autoencoder.")
    encoder = {k for k in before if k.startswith("encoder.")}
    decoder = {k for k in before if k.startswith("decoder.")}
    assert encoder <= set(changed)
    assert set(same) == (decoder if w_rec == 0 else set())
    trained = seen["model"].autoencoder
    wanted = trained.encoder if w_rec == 0 else trained
    assert _param_ids(seen["optimizer"]) == {id(p) for p in wanted.parameters()}
    assert not torch.equal(result.state_dict["rmn.means"], torch.as_tensor(init["means"]))
    for row in _train_rows(result.history):
        if w_rec == 0:
            assert "reconstruction" not in row and row["loss"] == -row["log_likelihood"]
        else:
            assert row["loss"] == pytest.approx(-row["log_likelihood"]
                                                + w_rec * row["reconstruction"], rel=1e-5)


@pytest.mark.parametrize("standardise", [False, True])
def test_rmn_standardise_rescales_code_and_mixture_and_nothing_else(standardise, data,
                                                                    monkeypatch):
    """Before any step: with ``standardise`` the last encoder layer is divided by the codes'
    standard deviation s, the first decoder weight multiplied by it and the GMM mapped to
    (mu / s, sigma^2 / s^2); every other tensor is untouched, and so is the clustering."""
    x, _ = data
    net, init = _rmn_inputs(x)
    before = _state(net)
    runs = {flag: _rmn_run(x, net, init, monkeypatch, standardise=flag, steps=0,
                           min_variance=1e-12)[1] for flag in (False, True)}
    result = runs[standardise]
    state = result.state_dict
    # the root of the codes' mean per-dimension variance
    s = float(net.encode(x).detach().var(dim=0).mean().sqrt()) if standardise else 1.0
    assert result.info["code_scale"] == pytest.approx(s, rel=1e-6)
    s = result.info["code_scale"]
    rescaled = {"encoder.4.weight": before["encoder.4.weight"] / s,
                "encoder.4.bias": before["encoder.4.bias"] / s,
                "decoder.0.weight": before["decoder.0.weight"] * s} if standardise else {}
    for key, value in before.items():
        assert torch.equal(state[f"autoencoder.{key}"], rescaled.get(key, value)), key
    means = torch.as_tensor(init["means"])
    variances = torch.as_tensor(init["variances"])
    assert torch.equal(state["rmn.means"], (means / s).float())
    assert torch.allclose(state["rmn.variances"], (variances / s ** 2).float(), rtol=1e-6)
    np.testing.assert_array_equal(runs[False].labels, runs[True].labels)


@pytest.mark.parametrize("eta", [0.0, 0.05, "auto"])
def test_rmn_eta_and_separation_weighting_set_the_separation_step_only(eta, data, monkeypatch):
    """The GMM directions get eta (``sample``) or eta / N (``dataset``), ``auto`` = 0.01 for
    K <= 10; the encoder's loss (minus the log-likelihood) is the same either way."""
    x, _ = data
    net, init = _rmn_inputs(x)
    value = 0.01 if eta == "auto" else eta
    first_loss = {}
    for weighting, expected in (("sample", value), ("dataset", value / N)):
        calls = spy_calls(monkeypatch, rmn, "gmm_directions")
        _, result = _rmn_run(x, net, init, monkeypatch, eta=eta, separation_weighting=weighting,
                             steps=2)
        monkeypatch.undo()
        assert [args[5] for args, _ in calls] == [pytest.approx(expected, rel=1e-12)] * 2
        rows = _train_rows(result.history)
        for row in rows:
            assert row["objective"] == pytest.approx(
                row["log_likelihood"] + expected * row["separation"], rel=1e-6)
        first_loss[weighting] = rows[0]["loss"]
    assert first_loss["sample"] == first_loss["dataset"]


@pytest.mark.parametrize("distance", ["euclidean", "normalized"])
def test_rmn_separation_distance_sets_the_scale_of_the_separation_only(distance, data,
                                                                        monkeypatch):
    """``euclidean``: S(mu) of plain squared distances; ``normalized``: divided by the mean
    squared distance between distinct centres; the encoder's loss does not change."""
    x, _ = data
    net, init = _rmn_inputs(x)
    calls = spy_calls(monkeypatch, rmn, "gmm_directions")
    seen, result = _rmn_run(x, net, init, monkeypatch, separation_distance=distance,
                            standardise=False, steps=1)
    means = calls[0][0][1]
    d2 = torch.cdist(means.double(), means.double()).pow(2)
    scale = 1.0 if distance == "euclidean" else float(d2.sum() / (K * (K - 1)))
    assert float(calls[0][0][6]) == pytest.approx(scale, rel=1e-5)
    neighbours = calls[0][0][4]
    assert neighbours.shape == (K, K // 2)
    separation = sum(float(d2[k, j]) for k in range(K) for j in neighbours[k].tolist())
    (row,) = _train_rows(result.history)
    assert row["separation"] == pytest.approx(separation / scale, rel=1e-5)
    with torch.no_grad():
        y = net.encode(x[seen["batches"][0]])
        ll = rmn.log_likelihood(y, *(torch.as_tensor(init[k]).clamp_min(m) for k, m in
                                     (("means", -math.inf), ("variances", 0.01),
                                      ("weights", 1e-8))))
    assert row["loss"] == pytest.approx(-float(ll.mean()), rel=1e-5)


@pytest.mark.parametrize("encoder_lr", [None, 0.001])
def test_rmn_encoder_lr_momentum_and_lr_steps(encoder_lr, data, monkeypatch):
    """The encoder's SGD runs at ``encoder_lr`` (default ``lr``), the GMM's manual steps at
    ``lr``; both are divided by 10 every ``lr_step_steps`` steps and share the momentum."""
    x, _ = data
    net, init = _rmn_inputs(x)
    ascents = spy_calls(monkeypatch, rmn.RMN, "ascend")
    extra = {} if encoder_lr is None else {"encoder_lr": encoder_lr}
    params = {k: v for k, v in _recipe("rmn-gmm").items() if k != "encoder_lr"}
    seen = spy_steps(monkeypatch, rmn)
    rmn.finetune(copy.deepcopy(net), x, init,
                 {**params, **extra, "batch_size": BATCH, "lr": 0.01, "momentum": 0.8,
                  "lr_step_steps": 2, "steps": 4, "standardise": False}, seed=0, log_every=1)
    enc = 0.01 if encoder_lr is None else encoder_lr
    assert seen["lrs"] == pytest.approx([enc, enc, enc / 10, enc / 10], rel=1e-12)
    assert [args[2] for args, _ in ascents] == pytest.approx([0.01, 0.01, 0.001, 0.001],
                                                              rel=1e-9)
    assert [args[3] for args, _ in ascents] == [0.8] * 4
    assert seen["optimizer"].param_groups[0]["momentum"] == 0.8


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_rmn_reconstruction_reduction(reduction, data, monkeypatch):
    x, _ = data
    net, init = _rmn_inputs(x)
    seen, result = _rmn_run(x, net, init, monkeypatch, reconstruction_weight=1.0,
                            reconstruction=reduction, standardise=False, steps=1)
    xb = x[seen["batches"][0]]
    with torch.no_grad():
        squared = (net.decode(net.encode(xb)) - xb).pow(2).double()
    expected = squared.mean() if reduction == "mean" else squared.flatten(1).sum(1).mean()
    (row,) = _train_rows(result.history)
    assert row["reconstruction"] == pytest.approx(float(expected), rel=1e-5)


# ---------------------------------------------------------------------------------- DEPICT

DEPICT_DECODER = ("defc.", "deconv2.", "deconv1.")


def _depict_inputs(x):
    net = _net("depict", {"maps": 8, "embedding_dim": K})
    return net, _kmeans_init(net, x)


@pytest.mark.parametrize("w_rec", [0.0, 1.0])
def test_depict_reconstruction_weight_zero_leaves_the_decoder_bit_identical(w_rec, data):
    x, _ = data
    net, init = _depict_inputs(x)
    before = _state(net)
    params = _recipe("depict", reconstruction_weight=w_rec, initial_q="labels",
                     batch_size=BATCH, max_epochs=1)
    result = depict.finetune(copy.deepcopy(net), x, init, params, seed=0, log_every=1)
    same, changed = _split(before, result.state_dict, "autoencoder.")
    decoder = {k for k in before if k.startswith(DEPICT_DECODER)}
    assert set(same) == (decoder if w_rec == 0 else set())
    assert not torch.equal(result.state_dict["head.weight"],
                           F.normalize(torch.as_tensor(init["centres"]), dim=1))
    rows = _train_rows(result.history)
    assert len(rows) == N // BATCH
    for row in rows:
        if w_rec == 0:
            assert "reconstruction" not in row and row["loss"] == row["clustering"]
        else:
            assert row["loss"] == pytest.approx(row["clustering"]
                                                + w_rec * row["reconstruction"], rel=1e-5)


def _depict_start(monkeypatch, x, net, init, **overrides):
    seen = capture(monkeypatch, depict)
    params = _recipe("depict", batch_size=BATCH, **overrides)
    result = depict.finetune(copy.deepcopy(net), x, init, params, seed=0)
    return seen, result


@pytest.mark.parametrize("hidden_weight", [0.0, 0.1, 1.0])
def test_depict_hidden_weight_weighs_the_hidden_layers_only(hidden_weight, data, monkeypatch):
    x, _ = data
    net, init = _depict_inputs(x)
    seen, _ = _depict_start(monkeypatch, x, net, init, initial_q="labels",
                            reconstruction_weight=0.5, hidden_weight=hidden_weight)
    torch.manual_seed(3)
    terms = {k: v.detach() for k, v in seen["loss_fn"](torch.arange(BATCH)).items()}
    ae, model = seen["model"].autoencoder, seen["model"]
    torch.manual_seed(3)  # the same dropout masks: the clean pathway draws none
    with torch.no_grad():
        clean = ae.encoder_activations(x[:BATCH], corrupt=False)
        noisy = ae.encoder_activations(x[:BATCH], corrupt=True)
        rebuilt = ae.decoder_activations(noisy[-1])
        mse = [float((r - c).pow(2).mean()) for r, c in zip(rebuilt, clean[:-1], strict=True)]
        q = F.one_hot(torch.as_tensor(init["labels"][:BATCH]), K).float()
        clustering = -(q * F.log_softmax(model.head(noisy[-1]), dim=1)).sum(1).mean()
    expected = mse[0] + hidden_weight * (mse[1] + mse[2])
    assert float(terms["reconstruction"]) == pytest.approx(expected, rel=1e-5)
    assert float(terms["clustering"]) == pytest.approx(float(clustering), rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(float(clustering) + 0.5 * expected, rel=1e-5)


def _depict_rule(p: torch.Tensor, rule: str) -> torch.Tensor:
    weight = p ** 2 / p.sum(dim=0) if rule == "dec" else p / p.sum(dim=0).sqrt()
    return weight / weight.sum(dim=1, keepdim=True)


@pytest.mark.parametrize("initial_q", ["labels", "softmax", "warm-start"])
@pytest.mark.parametrize("rule", ["sqrt", "dec"])
def test_depict_initial_q_and_target_make_the_first_q(initial_q, rule, data, monkeypatch):
    """``labels``: Q = the one-hot k-means labels, no warm start; ``softmax``: Q = the target
    rule of the initial clean soft-max, the labels unused; ``warm-start``: the warm start runs
    on the k-means labels first and Q is the target of the soft-max after it."""
    x, _ = data
    net, init = _depict_inputs(x)
    warm_calls = []

    def fake_warm_start(model, x, pseudo_labels, params, **kwargs):
        warm_calls.append(pseudo_labels.clone())
        with torch.no_grad():  # a visible change of the network, as training would make
            model.head.bias.copy_(torch.tensor([2.0, 0.0, -2.0]))
        return [{"kind": "train", "phase": "warm-start", "step": 0, "loss": 1.0}]

    monkeypatch.setattr(depict, "warm_start", fake_warm_start)
    given = {k: v for k, v in init.items() if initial_q != "softmax" or k != "labels"}
    seen, result = _depict_start(monkeypatch, x, net, given, initial_q=initial_q, target=rule,
                                 reconstruction_weight=1.0)
    q = seen["hook"].q
    with torch.no_grad():
        logits = net.encode(x) @ F.normalize(torch.as_tensor(init["centres"]), dim=1).T
    if initial_q == "labels":
        assert torch.equal(q, F.one_hot(torch.as_tensor(init["labels"]), K).float())
    else:
        bias = torch.tensor([2.0, 0.0, -2.0]) if initial_q == "warm-start" else 0.0
        assert torch.allclose(q, _depict_rule(F.softmax(logits + bias, dim=1), rule),
                              rtol=1e-5, atol=1e-6)
    if initial_q == "warm-start":
        assert len(warm_calls) == 1
        np.testing.assert_array_equal(warm_calls[0].numpy(), init["labels"])
        assert result.history[0].get("phase") == "warm-start"
    else:
        assert warm_calls == []
        assert all(r.get("phase") != "warm-start" for r in result.history)


# ------------------------------------------------------------------------------ pretraining


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("objective,net_name,arch", [
    ("reconstruction", "sae", {"hidden": [32, 16, 3]}),
    ("reconstruction", "cae", {"channels": [4, 8, 8], "embedding_dim": K}),
    ("denoising", "sae", {"hidden": [32, 16, 3], "centre_input": True}),
])
def test_pretraining_reconstruction_reduction(objective, net_name, arch, reduction, data):
    """``reconstruction: mean`` is the per-element mean squared error, ``sum`` its sum over a
    sample's elements averaged over the batch (one full batch at lr 0: the initial network)."""
    x, _ = data
    net = _net(net_name, arch)
    before = _state(net)
    recipe = {"epochs": 1, "batch_size": N, "optimizer": {"name": "sgd", "lr": 0.0},
              "reconstruction": reduction, "noise": 0.0}
    train = pretrain_module.pretrain_autoencoder if objective == "reconstruction" \
        else pretrain_denoising
    result = train(net, x, recipe, seed=0, log_every=1)
    with torch.no_grad():
        squared = (net(x)[1] - x).pow(2).double()
    expected = squared.mean() if reduction == "mean" else squared.flatten(1).sum(1).mean()
    (row,) = _train_rows(result.history)
    assert row["loss"] == pytest.approx(float(expected), rel=1e-5)
    after = _state(net)
    if objective == "denoising":  # the DAE stores the data mean it centres its inputs by
        assert torch.equal(after.pop("input_mean"), x.flatten(1).mean(dim=0))
        before.pop("input_mean")
    same, _ = _split(before, after)
    assert set(same) == set(before)
