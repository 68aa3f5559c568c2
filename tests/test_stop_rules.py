"""Every stop rule at its tolerance: an input just below it stops, one just above does not.

The hooks are driven with stand-in models whose assignments the test sets, so the quantity each
rule compares (the fraction of changed labels, DEPICT's change of Q, DSCDAN's mean loss of a
check, a validation loss that stops improving) is known exactly and computed here by another
path than the hook's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stages.methods.dec.head import ClusteringHook
from stages.methods.depict import head as depict
from stages.methods.dscdan import head as dscdan
from stages.methods.saip import head as saip
from stages.nets import build_network
from stages.runtime.train import EarlyStopping

N, K = 1000, 4
TOL = 0.01  # 10 of the N labels


class SetLabels(nn.Module):
    """A stand-in for a head's model whose soft assignments are one-hot-ish rows of ``labels``.

    The inputs are the sample indices (N, 1), so a batch's rows are ``labels[x[:, 0]]``; the
    encoder is the identity on them.
    """

    def __init__(self):
        super().__init__()
        self.labels = torch.zeros(N, dtype=torch.long)
        self.weight = nn.Parameter(torch.zeros(()))  # something for an optimizer to hold

    @property
    def autoencoder(self) -> SetLabels:
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1) indices -> (B, K): 0.9 on the set label, the rest spread evenly."""
        one_hot = F.one_hot(self.labels[x[:, 0].long()], K).float()
        return 0.9 * one_hot + 0.1 / K

    # the names each hook calls
    def assign(self, x: torch.Tensor) -> torch.Tensor:                       # DEC
        return self.probabilities(x)

    def assign_all(self, x: torch.Tensor):                                   # SAIP
        q = self.probabilities(x)
        return x.float(), q, q

    def spectral(self, z: torch.Tensor) -> torch.Tensor:                    # DSCDAN
        return self.probabilities(z)

    def change(self, n: int) -> None:
        """Move the first n samples to the next cluster."""
        self.labels[:n] = (self.labels[:n] + 1) % K


def _indices() -> torch.Tensor:
    return torch.arange(N).unsqueeze(1)


def _dec_hook(model: SetLabels) -> ClusteringHook:
    return ClusteringHook(model, _indices(), None, period=1, tol=TOL)


def _saip_hook(model: SetLabels) -> saip.ClusteringHook:
    optimizer = torch.optim.SGD([model.weight], lr=0.1)
    return saip.ClusteringHook(model, _indices(), None, period=1, tol=TOL,
                                  optimizer=optimizer)


@pytest.mark.parametrize("make_hook", [_dec_hook, _saip_hook], ids=["dec", "saip"])
@pytest.mark.parametrize(("changed", "stops"), [(0, True), (9, True), (11, False), (500, False)])
def test_label_change_rules_stop_below_tol_only(make_hook, changed, stops):
    """DEC (fewer than tol = 0.1% of labels changed, here 1%) and SAIP (0.03%, here 1%)."""
    model = SetLabels()
    hook = make_hook(model)
    assert hook(0) is False                   # the first update has nothing to compare with
    model.change(changed)
    assert hook(1) is stops
    assert hook.rows[-1]["delta_label"] == pytest.approx(changed / N)


def test_depict_q_change_rule_stops_below_tol_only():
    """DEPICT: mean((Q_t - Q_{t-1})^2) < tol, Q = p^2 / f row-normalised (target 'dec')."""
    rng = np.random.default_rng(0)
    p0 = rng.dirichlet(np.ones(K), size=N)
    p1 = np.clip(p0 + rng.normal(0, 0.01, p0.shape), 1e-3, None)
    p1 /= p1.sum(axis=1, keepdims=True)

    def target(p: np.ndarray) -> np.ndarray:
        w = p ** 2 / p.sum(axis=0)
        return w / w.sum(axis=1, keepdims=True)

    change = float(((target(p1) - target(p0)) ** 2).mean())
    assert change > 0
    for tol, stops in [(change * 1.001, True), (change * 0.999, False)]:
        model = SetLabels()
        hook = depict.ClusteringHook(model, _indices(), None, period=1, tol=tol, rule="dec")
        hook.p_epoch = torch.as_tensor(p0, dtype=torch.float32)
        assert hook(0) is False
        hook.p_epoch = torch.as_tensor(p1, dtype=torch.float32)  # what the loss stored
        assert hook(1) is stops
        assert hook.rows[-1]["q_change"] == pytest.approx(change, rel=1e-4)


@pytest.mark.parametrize(("delta", "stops"), [(0.0, True), (0.9 * TOL, True), (-0.9 * TOL, True),
                                              (1.1 * TOL, False), (-1.1 * TOL, False)])
def test_dscdan_loss_change_rule_compares_the_means_of_two_checks(delta, stops):
    """DSCDAN, ``check_statistic: mean``: |mean loss of a check - that of the previous check| <
    tol; the mean is over the check's steps (here 1 and 3 + 2 delta, mean 2 + delta), not its
    last step's loss."""
    hook = dscdan.ClusteringHook(SetLabels(), _indices(), None, period=2, tol=TOL,
                                 statistic="mean")
    for loss in (2.0, 2.0):
        hook.add(torch.tensor(loss))
    assert hook(2) is False                   # nothing to compare with
    for loss in (1.0, 3.0 + 2 * delta):
        hook.add(torch.tensor(loss))
    assert hook(4) is stops
    assert hook.rows[-1]["check_loss"] == pytest.approx(2.0 + delta)


@pytest.mark.parametrize(("delta", "sum_stops", "mean_stops"),
                         [(0.9e-4, True, True), (-0.9e-4, True, True),
                          (1.1e-4, False, True), (-1.1e-4, False, True)])
def test_dscdan_code_rule_compares_sums_of_ten_batch_losses(delta, sum_stops, mean_stops):
    """[code] DSCDAN.py: |sum of a check's 10 batch losses - the previous sum| < 1e-4. Ten
    float32 losses of ~70 (as in training), one of them moved by delta: the sum rule stops just
    below its tolerance and not just above it (the float64 accumulation resolves 1e-4 at a sum
    of 700, where a float32 sum's spacing is 6e-5); the mean rule at the same tol sees delta/10
    and stops in all four cases."""
    for statistic, stops in (("sum", sum_stops), ("mean", mean_stops)):
        hook = dscdan.ClusteringHook(SetLabels(), _indices(), None, period=10, tol=1e-4,
                                     statistic=statistic)
        for _ in range(10):
            hook.add(torch.tensor(70.0))
        assert hook(10) is False                                  # nothing to compare with
        for loss in [70.0] * 9 + [70.0 + delta]:
            hook.add(torch.tensor(loss, dtype=torch.float32))
        assert hook(20) is stops, statistic
        assert hook.rows[-1]["check_loss"] == pytest.approx(70.0 + delta / 10)
        if statistic == "sum":
            assert hook.rows[-1]["check_loss_sum"] == pytest.approx(700.0 + delta, abs=1e-5)
    with pytest.raises(ValueError, match="valid choices: sum, mean"):
        dscdan.ClusteringHook(SetLabels(), _indices(), None, period=10, tol=1e-4,
                              statistic="median")


def test_dscdan_checkpoint_of_the_other_statistic_is_refused():
    old = dscdan.ClusteringHook(SetLabels(), _indices(), None, period=2, tol=TOL,
                                statistic="mean")
    new = dscdan.ClusteringHook(SetLabels(), _indices(), None, period=2, tol=TOL)
    with pytest.raises(ValueError, match="check_statistic: mean"):
        new.load_state_dict(old.state_dict())


def test_dscdan_stop_window_compares_averages_of_checks_and_resumes():
    """stop_window 3: noisy check means 2, 4, 3, 4, 2, 3 (consecutive changes of 1 or 2, so the
    code's rule never stops) stop at the sixth check, where the averages of the last three and
    of the three before are both 3; the first 2W - 1 checks never stop. A checkpoint taken
    after the fifth check restores the window."""
    def feed(hook, means, start):
        decisions = []
        for k, mean in enumerate(means):
            hook.add(torch.tensor(mean - 0.5))
            hook.add(torch.tensor(mean + 0.5))
            decisions.append(hook(2 * (start + k + 1)))
        return decisions
    hook = dscdan.ClusteringHook(SetLabels(), _indices(), None, period=2, tol=TOL, window=3)
    assert feed(hook, [2.0, 4.0, 3.0, 4.0, 2.0], 0) == [False] * 5
    resumed = dscdan.ClusteringHook(SetLabels(), _indices(), None, period=2, tol=TOL, window=3)
    resumed.load_state_dict(hook.state_dict())
    for h in (hook, resumed):
        assert feed(h, [3.0], 5) == [True]
        assert h.rows[-1]["check_loss_change"] == pytest.approx(0.0)
    one = dscdan.ClusteringHook(SetLabels(), _indices(), None, period=2, tol=TOL, window=1)
    assert feed(one, [2.0, 4.0, 3.0, 4.0, 2.0, 3.0], 0) == [False] * 6   # the code's rule
    with pytest.raises(ValueError, match="stop_window"):
        dscdan.ClusteringHook(SetLabels(), _indices(), None, period=2, tol=TOL, window=0)


def _scripted_stopper(losses: list[float], patience: int) -> tuple[EarlyStopping, nn.Linear]:
    """An EarlyStopping whose k-th evaluation returns ``losses[k]``; between evaluations the
    test changes the weights, so each evaluation sees different ones."""
    model = nn.Linear(2, 1)
    values = iter(losses)
    return EarlyStopping(model, lambda: torch.tensor(next(values)), period=1,
                         patience=patience), model


@pytest.mark.parametrize(("last", "stops"), [(4.0, True), (4.0 + 1e-6, True), (4.0 - 1e-6, False)])
def test_early_stopping_needs_patience_evaluations_without_a_strict_improvement(last, stops):
    """Patience 3: after the best (4.0), two equal losses, then one just above (a third without
    improvement: stop) or just below (a new best: go on)."""
    stopper, model = _scripted_stopper([5.0, 4.0, 4.0, 4.0, last], patience=3)
    decisions = []
    for step in range(5):
        decisions.append(stopper(step))
        with torch.no_grad():
            model.weight.add_(1.0)
    assert decisions == [False, False, False, False, stops]


def test_early_stopping_restores_the_weights_of_the_best_evaluation():
    stopper, model = _scripted_stopper([5.0, 3.0, 4.0, 6.0, 7.0], patience=3)
    seen = []
    for step in range(4):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        stopper(step)
        with torch.no_grad():
            model.weight.add_(1.0)
    stopper.finish(4)                          # evaluates the final weights (7.0), keeps best
    assert stopper.best_step == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, seen[1][key]), key


def test_depict_warm_start_keeps_the_weights_of_its_best_validation(monkeypatch):
    """The warm start ends with the weights at its best held-out NMI with the k-means labels,
    not its last ones: each evaluation's weights are recorded by a spy on the stopper."""
    from sklearn.cluster import KMeans

    from stages.data.synthetic import make_synthetic

    X, _, _ = make_synthetic({"n_clusters": 3, "n_per_cluster": 20, "side": 16, "seed": 0,
                              "noise": 0.1})
    x = torch.as_tensor(X)
    torch.manual_seed(0)
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 3, "maps": 4})
    km = KMeans(3, n_init=3, random_state=0).fit(net.encode(x).detach().numpy())
    model = depict.DepictClusterer(net, torch.as_tensor(km.cluster_centers_))
    evaluated: list[tuple[float, dict]] = []
    evaluate = EarlyStopping._evaluate

    def spy(self: EarlyStopping, step: int) -> None:
        evaluate(self, step)
        evaluated.append((self.rows[-1]["loss"],
                          {k: v.clone() for k, v in self.model.state_dict().items()}))

    monkeypatch.setattr(EarlyStopping, "_evaluate", spy)
    params = {"reconstruction_weight": 1.0, "hidden_weight": 1.0, "batch_size": 16, "lr": 3e-3,
              "warm_start_epochs": 8, "warm_start_patience": 3, "validation_fraction": 0.25}
    depict.warm_start(model, x, torch.as_tensor(km.labels_, dtype=torch.long), params, seed=0,
                      log_every=2, checkpoint=None)
    losses = [loss for loss, _ in evaluated]
    best = int(np.argmin(losses))              # the first of equal bests, as the stopper keeps
    assert len(set(losses)) > 1, "the held-out NMI never changed: nothing to choose between"
    assert any(not torch.equal(evaluated[best][1][k], evaluated[-1][1][k])
               for k in evaluated[-1][1]), "the best weights are the last ones here"
    for key, value in model.state_dict().items():
        assert torch.equal(value, evaluated[best][1][key]), key
