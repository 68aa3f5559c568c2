"""SAIP: deep clustering with the sample-assignment invariance prior (Peng et al., TNNLS 2020).

One head for the four variants and HOE(CNN); ``distance`` picks the metric of the second
assignment: ``euclidean`` (HOMO), ``cosine`` (HOE), ``correlation`` (HOT), ``cityblock`` (HIT).
Pure functions :func:`pairwise_distance` (Eqs. 7-11), :func:`q1_assign` (Eq. 7),
:func:`q2_assign` (Eq. 8), :func:`sharpen` (Eq. 6), :func:`saip_loss` (Eq. 5) and
:func:`decay_factor` (Table II's lr rule); :class:`SaipClusterer` (the encoder and the centres
Omega); :func:`finetune`, :func:`stages.runtime.train.run_loop` with a per-epoch
:class:`ClusteringHook` (the stop rule) and a step-wise lr scheduler. Formulas as methods.md §4.2
reconstructs them: z_ij a distance ([recon] cosine and correlation as 1 - similarity, as scipy's);
Q1 = max(0, u_i - z_ij), u_i the mean Euclidean distance of sample i to the centres; Q2 =
(1 + z_ij)^-1 normalised over j, z not squared [recon]; P = (Q^2 / f_j) normalised over j, r = 2
[paper]. ``kl`` (:data:`KL_READINGS`): ``p1_p2`` KL(P1 || P2), Eq. 4 as printed, the default
(docs/reproduction/saip-reading.md); ``p2_p1`` KL(P2 || P1), Theorem 1's proof, P1's zeros
clipped to 1e-7; ``symmetric``, the sum. Choices ([default] unless marked):

* f_j = sum_i of Q row-normalised, over the mini-batch; P1 and P2 recomputed every mini-batch.
* gradients through both P1 and P2 (Algorithm 1); ``detach`` (``checks.DETACH``) fixes one
  side: ``p2`` (``detach_target: true``, P2 the target) or ``p1`` (P1, the sparse triangle
  assignment, the fixed target, the gradient through P2 only, as DEC trains against its target).
* only the encoder and Omega are trained; the decoder is discarded [paper].
* SGD, momentum 0.9 and the DAE's weight decay [paper]; lr 1e-4, batch 256; lr x de = 0.9 every
  ep = 300 epochs at most re - 1 = 9 times (mnist-test) [paper, Table II].
* stop when fewer than ``tol`` = 0.03 % of the predictions (once per epoch, all data) change
  [paper] or after ep * re epochs; prediction = argmax P1 (Eq. 12) with f over the whole
  dataset, ``predict: p2`` the argmax of P2 (Table VI). ``stop_after`` (``checks.STOP_AFTER``):
  ``start``, the rule checked from the first epoch; ``first_lr_decay``, only on epochs trained
  after the first lr decay (epoch ep), as the paper's Figs. 5 and 7 imply its runs went on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.methods.saip.checks import check_detach, resolve_detach, stop_check_after
from stages.methods.shared.common import (
    FinetuneResult,
    gradient_shares,
    target_distribution,
    target_update_row,
    to_device,
)
from stages.nets.autoencoder import Autoencoder
from stages.plumbing.errors import ConfigError
from stages.runtime.train import (
    Checkpointer,
    LoopConfig,
    PeriodicHook,
    loop_settings,
    make_optimizer,
    map_batches,
    run_loop,
    steps_per_epoch,
)

_EPS = 1e-12

#: Q2's distance -> the paper's variant name
DISTANCES: dict[str, str] = {"euclidean": "HOMO", "cosine": "HOE", "correlation": "HOT",
                             "cityblock": "HIT"}
#: which assignment gives the prediction
PREDICT = ("p1", "p2")
#: the readings of Eqs. 4-5 (``kl``): name -> what it is
KL_READINGS: dict[str, str] = {
    "p1_p2": "KL(P1 || P2), Eq. 4 as printed (P_i = P1 the predicted distribution)",
    "p2_p1": "KL(P2 || P1), the expansion in Theorem 1's proof",
    "symmetric": "KL(P1 || P2) + KL(P2 || P1), Eq. 4 summed over both ordered pairs",
}
#: Keras' clip of the KL's arguments: an entry of the second argument below it is clipped
KL_CLIP = 1e-7

# --------------------------------------------------------------------------- pure functions


def check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ConfigError(f"unknown SAIP distance '{distance}'; valid choices: "
                          f"{', '.join(DISTANCES)}")


def check_kl(kl: str) -> None:
    if kl not in KL_READINGS:
        raise ConfigError(f"unknown SAIP kl reading '{kl}'; valid choices: "
                          f"{', '.join(KL_READINGS)} (README, SAIP)")


def pairwise_distance(h: torch.Tensor, w: torch.Tensor, distance: str) -> torch.Tensor:
    """Distances z_ij between embeddings h (B, d) and centres w (K, d) -> (B, K).

    ``euclidean`` ||h - w||_2 (Eq. 7/8), ``cosine`` 1 - cos(h, w) (Eq. 9), ``correlation``
    1 - cos(h - mean(h), w - mean(w)) (Eq. 10), ``cityblock`` ||h - w||_1 (Eq. 11); the same
    values as ``scipy.spatial.distance.cdist``. Batched, no loops over samples or clusters.
    """
    check_distance(distance)
    if distance in ("euclidean", "cityblock"):
        diff = h.unsqueeze(1) - w.unsqueeze(0)                      # (B, K, d)
        if distance == "cityblock":
            return diff.abs().sum(dim=2)
        return diff.pow(2).sum(dim=2).clamp_min(_EPS).sqrt()        # finite gradient at 0
    if distance == "correlation":
        h = h - h.mean(dim=1, keepdim=True)
        w = w - w.mean(dim=1, keepdim=True)
    return 1.0 - F.normalize(h, dim=1, eps=_EPS) @ F.normalize(w, dim=1, eps=_EPS).T


def q1_assign(z: torch.Tensor) -> torch.Tensor:
    """Eq. 7: Q1_ij = max(0, u_i - z_ij), u_i = mean_j z_ij; z (B, K) Euclidean -> (B, K).

    Rows are not normalised (a row is all zeros when every z_ij is equal)."""
    return F.relu(z.mean(dim=1, keepdim=True) - z)


def q2_assign(z: torch.Tensor) -> torch.Tensor:
    """Eq. 8 [recon]: Q2_ij = (1 + z_ij)^-1 / sum_j' (1 + z_ij')^-1; z (B, K) -> (B, K)."""
    kernel = 1.0 / (1.0 + z)
    return kernel / kernel.sum(dim=1, keepdim=True)


def sharpen(q: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """Eq. 6: P_ij = (Qbar_ij^r / f_j) / sum_j' (Qbar_ij'^r / f_j'), f_j = sum_i Qbar_ij over the
    rows given, Qbar = q row-normalised (row-normalising does not change P, only f).

    q: (B, K) non-negative -> P (B, K), rows summing to one (all-zero rows stay zero)."""
    q_bar = q / q.sum(dim=1, keepdim=True).clamp_min(_EPS)
    return target_distribution(q_bar, power=power, freq_exponent=1.0)


def assignments(h: torch.Tensor, centres: torch.Tensor, distance: str,
                power: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(P1, P2), each (B, K): Eq. 6 of Q1 (Euclidean, Eq. 7) and of Q2 (``distance``, Eq. 8)."""
    z_euclidean = pairwise_distance(h, centres, "euclidean")
    z2 = z_euclidean if distance == "euclidean" else pairwise_distance(h, centres, distance)
    return sharpen(q1_assign(z_euclidean), power), sharpen(q2_assign(z2), power)


def kl_terms(p: torch.Tensor, q: torch.Tensor, eps: float = KL_CLIP) -> torch.Tensor:
    """Entries ``p_ij log(p_ij / max(q_ij, eps))`` of KL(p || q), with ``0 log 0 = 0``: (B, K).

    An entry where p is zero is exactly zero with a zero gradient (no NaN); an entry where q is
    below ``eps`` is clipped there and carries no gradient through q."""
    positive = p > 0
    safe_p = torch.where(positive, p, torch.ones_like(p))
    terms = p * (safe_p.log() - q.clamp_min(eps).log())
    return torch.where(positive, terms, torch.zeros_like(terms))


def saip_kl_parts(p1: torch.Tensor, p2: torch.Tensor, kl: str,
                  detach: str = "none") -> dict[str, torch.Tensor]:
    """The KL terms of the reading ``kl``, each summed over clusters and averaged over the batch:
    ``{"p1_p2": KL(P1 || P2)}``, ``{"p2_p1": KL(P2 || P1)}`` or both (``symmetric``).

    p1, p2: (B, K). ``detach`` (``checks.DETACH``) stops the gradient through P2 (``p2``) or
    through P1 (``p1``); the values are the same."""
    check_kl(kl)
    check_detach(detach)
    if detach == "p1":
        p1 = p1.detach()
    elif detach == "p2":
        p2 = p2.detach()
    parts: dict[str, torch.Tensor] = {}
    if kl in ("p1_p2", "symmetric"):
        parts["p1_p2"] = kl_terms(p1, p2).sum(dim=1).mean()
    if kl in ("p2_p1", "symmetric"):
        parts["p2_p1"] = kl_terms(p2, p1).sum(dim=1).mean()
    return parts


def saip_loss(p1: torch.Tensor, p2: torch.Tensor, kl: str,
              detach: str = "none") -> torch.Tensor:
    """Eq. 5 in the reading ``kl`` (:data:`KL_READINGS`): scalar, the sum of
    :func:`saip_kl_parts`; p1, p2 (B, K)."""
    return sum(saip_kl_parts(p1, p2, kl, detach).values())


def clipped_share(p1: torch.Tensor, p2: torch.Tensor, kl: str) -> float:
    """Share of the loss (reading ``kl``) that comes from entries whose denominator is clipped at
    :data:`KL_CLIP` (and so carries no gradient through it); p1, p2 (N, K) -> [0, 1].

    0 when the loss is 0."""
    check_kl(kl)
    total = clipped = p1.new_zeros(())
    pairs = [(p1, p2)] if kl == "p1_p2" else [(p2, p1)] if kl == "p2_p1" else [(p1, p2),
                                                                              (p2, p1)]
    for p, q in pairs:
        terms = kl_terms(p, q)
        total = total + terms.sum()
        clipped = clipped + terms[q < KL_CLIP].sum()
    return float(clipped / total) if float(total) > 0 else 0.0


def assignment_signals(h: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor,
                       kl: str) -> dict[str, float]:
    """SAIP's label-free signals over embeddings h (N, d) and assignments p1, p2 (N, K):
    ``disagreement`` (fraction of rows whose argmax of P1 and of P2 differ, the quantity the
    method's prior says falls), ``clipped_share`` (:func:`clipped_share`), ``p1_zero_fraction``
    (entries of P1 exactly zero), ``p2_mass_on_p1_zeros`` (mean P2 mass on them),
    ``embedding_norm`` (mean L2 norm of h) and ``loss_all`` (the loss with f over all rows)."""
    zero = p1 == 0
    return {
        "disagreement": float((p1.argmax(dim=1) != p2.argmax(dim=1)).float().mean()),
        "clipped_share": clipped_share(p1, p2, kl),
        "p1_zero_fraction": float(zero.float().mean()),
        "p2_mass_on_p1_zeros": float((p2 * zero).sum(dim=1).mean()),
        "embedding_norm": float(h.norm(dim=1).mean()),
        "loss_all": float(saip_loss(p1, p2, kl)),
    }


def trained_assignment(detach: str, predict: str) -> str:
    """The assignment (``p1`` | ``p2``) whose sharpness the history reports as ``sharpness``:
    the one the gradient moves, as DEC's Q (its target P is never the head's sharpness). With
    ``detach: p1`` (the default) P1 is the fixed target and only P2 is trained, so P2; with
    ``p2``, P1; with ``none`` both are trained and the predicting one (``predict``) is taken.
    P1 as the target is no measure of learning: the triangle kernel zeroes every centre beyond
    the mean distance, so P1 is near one-hot by construction (sharpness 0.97-0.99 before any
    step on the test data) and the loss does not act on it."""
    return {"p1": "p2", "p2": "p1"}.get(detach, predict)


def assignment_sharpness(p1: torch.Tensor, p2: torch.Tensor) -> dict[str, float]:
    """``sharpness_p1`` and ``sharpness_p2``: the mean largest probability of each assignment,
    p1, p2 (N, K); the history's ``sharpness`` is one of them (:func:`trained_assignment`)."""
    return {f"sharpness_{name}": float(p.float().max(dim=1).values.mean())
            for name, p in (("p1", p1), ("p2", p2))}


def decay_factor(step: int, steps_per_decay: int, decay: float, repeats: int) -> float:
    """Table II: lr multiplier at ``step``: ``decay ** k``, k = step // steps_per_decay, applied at
    most ``repeats - 1`` times (``repeats`` = re, ``steps_per_decay`` = ep epochs of steps)."""
    return decay ** min(step // steps_per_decay, repeats - 1)


def changed_fraction(labels: torch.Tensor, previous: torch.Tensor) -> float:
    """Fraction of the (N,) labels that differ from ``previous`` (one host sync)."""
    return float((labels != previous).float().mean())

# ------------------------------------------------------------------------------ the network


class SaipClusterer(nn.Module):
    """An encoder with the trainable centres Omega (K, d) of SAIP.

    Args:
        autoencoder: module with ``encode(x) -> (B, d)`` and an ``encoder`` submodule.
        centres: initial centres (K, d) (k-means on the pretrained embeddings [paper]).
        distance: Q2's metric, a key of :data:`DISTANCES`.
    """

    def __init__(self, autoencoder: nn.Module, centres: torch.Tensor, distance: str):
        super().__init__()
        check_distance(distance)
        self.autoencoder = autoencoder
        self.centres = nn.Parameter(centres.clone().float())
        self.distance = distance

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, ...) -> (P1, P2), each (B, K), with f over this batch."""
        return assignments(self.autoencoder.encode(x), self.centres, self.distance)

    @torch.inference_mode()
    def assign_all(self, x: torch.Tensor,
                   batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embeddings h (N, d) of x (N, ...) and (P1, P2), each (N, K), with f over all of x;
        x is encoded ``batch_size`` samples at a time."""
        h = map_batches(self.autoencoder.encode, x, batch_size)
        p1, p2 = assignments(h, self.centres, self.distance)
        return h, p1, p2

    def predict(self, x: torch.Tensor, which: str = "p1",
                batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (N,) = argmax of P1 (Eq. 12) or P2 over x (N, ...), with f over all of x,
        and the embeddings (N, d)."""
        h, p1, p2 = self.assign_all(x, batch_size)
        return (p1 if which == "p1" else p2).argmax(dim=1), h


class ClusteringHook(PeriodicHook):
    """Once per epoch: predictions on all data, SAIP's label-free signals and the stop rule.

    Stops when fewer than ``tol`` of the predictions (argmax of ``predict``: P1 or P2) changed
    since the previous epoch, at a step after ``check_after`` (0: from the first comparison;
    ``stop_after: first_lr_decay``: ep epochs of steps, so only epochs trained at a decayed lr
    count). Adds a history row per epoch with the label change, the lr,
    :func:`assignment_signals` (reading ``kl``), the cluster shares of the predictions, both
    assignments' sharpness (:func:`assignment_sharpness`), ``sharpness`` the trained one's
    (:func:`trained_assignment`, given ``detach``) and, for monitoring only, ACC/NMI against
    the true labels (never used for any decision).
    """

    def __init__(self, model: SaipClusterer, x: torch.Tensor, y_true: np.ndarray | None,
                 period: int, tol: float, optimizer: torch.optim.Optimizer, *,
                 kl: str = "p1_p2", predict: str = "p1", check_after: int = 0,
                 detach: str = "none"):
        self.model, self.x, self.y_true = model, x, y_true
        self.period, self.tol, self.optimizer = period, tol, optimizer
        self.kl, self.predict, self.check_after = kl, predict, check_after
        self.trained = trained_assignment(detach, predict)
        self.labels: torch.Tensor | None = None
        self.rows: list[dict[str, Any]] = []

    def __call__(self, step: int) -> bool:
        was_training = self.model.training
        self.model.eval()
        h, p1, p2 = self.model.assign_all(self.x)
        self.model.train(was_training)
        probabilities = p1 if self.predict == "p1" else p2
        labels = probabilities.argmax(dim=1)
        row = target_update_row(step, labels, self.labels, self.y_true, "sqrt",
                                probabilities=probabilities)
        row.update(assignment_signals(h, p1, p2, self.kl))
        row.update(assignment_sharpness(p1, p2))
        row["sharpness"] = row[f"sharpness_{self.trained}"]
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        self.labels = labels
        self.rows.append(row)
        if step <= self.check_after:
            return False
        return not math.isnan(row["delta_label"]) and row["delta_label"] < self.tol

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        (self.labels,) = to_device(self.x.device, state["labels"])
        self.rows = list(state["rows"])

# ------------------------------------------------------------------------------- the driver


def make_scheduler(optimizer: torch.optim.Optimizer, steps_per_decay: int, decay: float,
                   repeats: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Step-wise scheduler of :func:`decay_factor` (``run_loop`` steps it after every step)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: decay_factor(step, steps_per_decay, decay, repeats))


def finetune(autoencoder: Autoencoder, x: torch.Tensor, init: dict[str, np.ndarray],
             params: dict[str, Any], *, seed: int, y_true: np.ndarray | None = None,
             checkpoint: Checkpointer | None = None, log_every: int = 20) -> FinetuneResult:
    """Train the encoder and the centres on Eq. 5 in the reading ``params["kl"]``.

    Args:
        autoencoder: the pretrained DAE (or HOE(CNN)'s conv AE), on the device of ``x``.
        x: the whole dataset (N, ...) on the device.
        init: the init stage's arrays; SAIP starts from ``centres`` (K, d) (k-means).
        params: the method recipe: ``distance``, ``kl`` (:data:`KL_READINGS`),
            ``detach`` (``checks.DETACH``; or the older ``detach_target``), ``optimizer``
            ({name, lr, momentum, weight_decay}), ``lr_decay`` (de), ``decay_epochs`` (ep),
            ``decay_repeats`` (re), ``tol``, ``stop_after`` (``checks.STOP_AFTER``, default
            ``start``), ``batch_size``, ``predict`` (p1 | p2).
    """
    device = x.device
    predict = params.get("predict", "p1")
    if predict not in PREDICT:
        raise ConfigError(f"unknown SAIP predict '{predict}'; valid choices: {', '.join(PREDICT)}")
    kl = str(params["kl"])
    check_kl(kl)
    model = SaipClusterer(autoencoder, torch.as_tensor(init["centres"], device=device),
                          params["distance"])
    detach = resolve_detach(params)
    optimizer = make_optimizer([model.centres, *autoencoder.encoder.parameters()],
                               params["optimizer"])
    batch_size = int(params["batch_size"])
    spe = steps_per_epoch(x.shape[0], batch_size)
    ep, re = int(params["decay_epochs"]), int(params["decay_repeats"])
    scheduler = make_scheduler(optimizer, ep * spe, float(params["lr_decay"]), re)
    stop_after = str(params.get("stop_after", "start"))
    hook = ClusteringHook(model, x, y_true, spe, float(params["tol"]), optimizer, kl=kl,
                          predict=predict, check_after=stop_check_after(stop_after, ep * spe, re),
                          detach=detach)

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        p1, p2 = model(x[idx])
        parts = saip_kl_parts(p1, p2, kl, detach)
        out = {"loss": sum(parts.values())}
        if len(parts) > 1:
            out.update({f"kl_{name}": term.detach() for name, term in parts.items()})
        return out

    share_row = gradient_shares(
        model, {f"kl_{name}": term
                for name, term in saip_kl_parts(*model(x[:batch_size]), kl, detach).items()})
    cfg = LoopConfig(batch_size=batch_size, max_steps=ep * re * spe, shuffle=True, seed=seed,
                     log_every=min(log_every, spe),
                     **loop_settings(params))
    result = run_loop(model, optimizer, loss_fn, x.shape[0], cfg, device, hook=hook,
                      scheduler=scheduler, checkpoint=checkpoint, desc="finetune saip")
    model.eval()
    labels, h = model.predict(x, predict)
    history = [share_row] + sorted(result.history + hook.rows,
                                   key=lambda r: (r["step"], r["kind"] != "target"))
    return FinetuneResult(
        labels=labels.cpu().numpy().astype(np.int64), embedding=h.cpu().numpy().astype(np.float32),
        history=history, state_dict=model.state_dict(),
        info={"steps": result.steps, "epochs": result.steps / spe,
              "converged": result.stopped_by_hook, "variant": DISTANCES[params["distance"]],
              "predict": predict, "kl": kl, "detach": detach, "stop_after": stop_after,
              "resumed_from_step": result.resumed_from})
