"""DEPICT (Ghasedi Dizaji et al., ICCV 2017): the soft-max clustering layer and the joint phase.

:class:`DepictClusterer` (the autoencoder with Eq. 1's soft-max clustering layer),
:class:`ClusteringHook` (Q refreshed once per epoch, Algorithm 1 lines 4-5, and the stop rule)
and :func:`finetune` (the joint phase, Algorithm 1, Eq. 12). The pure functions are in
:mod:`stages.methods.depict.losses`, the reconstruction-only phases (MdA; SdA / RdA of Table 3)
in :mod:`stages.methods.depict.pretrain`. Choices where the paper is silent ([code]: the
authors' Theano code, [default]: ours):

* Adam lr 1e-4 [paper], batch 100 [code].
* Q starts from the init's labels (Algorithm 1, line 1); by default (``initial_q: warm-start``)
  [code] the first M-step runs with Q fixed to them (early-stopped on the NMI between held-out
  predictions and those labels, never the true ones), then Q is refreshed from the network.
* Q refreshed once per epoch [code] from the clean soft-max outputs of that epoch; stop when
  mean((Q_t - Q_{t-1})^2) < 1e-7 [code] or at the epoch cap. ``target: dec`` (default) is the
  code's p^2/f, ``target: sqrt`` Eq. 7; ``hidden_weight`` weighs the hidden layers'
  reconstruction terms (0.1 [code], paper 1).
* The soft-max layer has a bias; its weights start as the unit-norm init centres [code]
  (``head_init: centres``). ``head_init: transposed`` [code-bug] starts them as the authors'
  AC-PIC branch does, from the transposed centre matrix (:func:`initial_head_weight`).
* The warm start stops on the held-out agreement with the init labels (``warm_start_rule:
  heldout-nmi``, the code's HEAD) or, as the first public commit ``a0ea650`` did, trains on
  all data until the epoch's mean training cross-entropy to them falls below ``warm_start_ce``
  (``train-ce``).
* SdA and RdA fine-tune with the clustering loss only (``reconstruction_weight: 0``), as the
  paper describes them ("the encoder pathway is then fine-tuned using the clustering objective").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.methods.depict.losses import (
    depict_target,
    layerwise_reconstruction,
    q_change,
    soft_cross_entropy,
)
from stages.methods.shared.common import (
    FinetuneResult,
    gradient_shares,
    target_update_row,
    to_device,
)
from stages.nets.autoencoder import Autoencoder
from stages.reporting.metrics import nmi
from stages.runtime.train import (
    Checkpointer,
    EarlyStopping,
    LoopConfig,
    PeriodicHook,
    loop_settings,
    make_optimizer,
    map_batches,
    run_loop,
    steps_per_epoch,
    validation_split,
)

#: how the first Q is made (see :func:`finetune`)
INITIAL_Q = ("warm-start", "labels", "softmax")
#: how the warm start stops (see :func:`warm_start`)
WARM_START_RULES = ("heldout-nmi", "train-ce")
#: how the soft-max layer's weights start (see :func:`initial_head_weight`)
HEAD_INITS = ("centres", "transposed")


def initial_head_weight(centres: torch.Tensor, head_init: str = "centres") -> torch.Tensor:
    """The soft-max layer's initial weight (K, d) from the init's centres c_k, the rows of
    ``centres`` (K, d).

    ``centres`` [code]: row k is c_k / ||c_k||, so a point at c_k scores highest on cluster k
    (the code's k-means branch). ``transposed`` [code-bug]: what the authors' AC-PIC branch
    computes (``centroids = centroids_acpic / sqrt(diag(C C^T))`` after a stray transpose,
    ``functions.py:685-690``): row k is (c_1[k], ..., c_K[k]) / ||c_k||, the k-th coordinate of
    every centre. It needs d = K (their code runs only then: MNIST-test and USPS have d = K =
    10); otherwise a ValueError.
    """
    centres = centres.float()
    if head_init == "centres":
        return F.normalize(centres, dim=1)
    if head_init == "transposed":
        n_clusters, dim = centres.shape
        if n_clusters != dim:
            raise ValueError(f"head_init 'transposed' needs an embedding of as many dimensions "
                             f"as clusters (the authors' code only runs it then), got {dim} "
                             f"dimensions for {n_clusters} clusters; use head_init: centres")
        return centres.T / centres.norm(dim=1, keepdim=True)
    raise ValueError(f"unknown head_init '{head_init}'; valid choices: {', '.join(HEAD_INITS)}")


# ------------------------------------------------------------------------------ the network

class DepictClusterer(nn.Module):
    """DEPICT's autoencoder with the soft-max clustering layer of Eq. 1.

    Args:
        autoencoder: a :class:`stages.nets.depict.DepictAutoencoder` (pretrained).
        centres: the init's centres (K, d) of the clean embeddings (AC-PIC cluster means or
            k-means centres); the soft-max weights start from them (:func:`initial_head_weight`
            with ``head_init``), the bias at zero [code].
    """

    def __init__(self, autoencoder: nn.Module, centres: torch.Tensor,
                 head_init: str = "centres"):
        super().__init__()
        self.autoencoder = autoencoder
        n_clusters, dim = centres.shape
        self.head = nn.Linear(dim, n_clusters)
        with torch.no_grad():
            self.head.weight.copy_(initial_head_weight(centres, head_init))
            self.head.bias.zero_()

    def clean_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Clean-pathway soft-max P: x (B, C, H, W) -> (B, K)."""
        return F.softmax(self.head(self.autoencoder.encode(x)), dim=1)


# ---------------------------------------------------------------------------- the joint phase

class ClusteringHook(PeriodicHook):
    """Algorithm 1, lines 4-5: once per epoch, Q from the clean P stored during the epoch.

    At step 0, Q is ``initial_q`` when given (one-hot k-means labels), else computed from a
    clean pass over all data with the initial weights. ``p_epoch``
    (N, K) is filled by the loss function with the clean soft-max of each batch. Stops when
    :func:`q_change` falls below ``tol``. Adds a history row per refresh with the change of Q,
    the fraction of changed labels, ``nmi_start`` (the NMI, max-normalised, between the labels
    and ``start_labels``, the init's labels the joint phase started from: how far it has moved
    from its start, label-free) and, for monitoring only, ACC/NMI against the true labels.
    """

    def __init__(self, model: DepictClusterer, x: torch.Tensor, y_true: np.ndarray | None,
                 period: int, tol: float, rule: str, initial_q: torch.Tensor | None = None,
                 eval_batch: int = 1000, start_labels: np.ndarray | None = None):
        self.model, self.x, self.y_true = model, x, y_true
        self.period, self.tol, self.rule, self.eval_batch = period, tol, rule, eval_batch
        self.initial_q = initial_q
        self.start_labels = start_labels
        self.q: torch.Tensor | None = None
        self.p_epoch: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.rows: list[dict[str, Any]] = []

    def __call__(self, step: int) -> bool:
        if self.p_epoch is None and self.initial_q is not None:  # step 0, Q from the labels
            self.p_epoch = torch.zeros_like(self.initial_q)
            q_new = self.initial_q
            labels = q_new.argmax(dim=1)
        else:
            if self.p_epoch is None:  # step 0: clean pass with the initial weights
                # clone: map_batches returns an inference tensor; the loss writes into this one
                self.p_epoch = map_batches(self.model.clean_probabilities, self.x,
                                           self.eval_batch).clone()
            q_new = depict_target(self.p_epoch, self.rule)
            labels = self.p_epoch.argmax(dim=1)  # the predictions made during the epoch
        change = (math.nan if self.q is None else float(q_change(q_new, self.q)))
        # sharpness of the clean P the new Q is made from (of Q itself at the one-hot start)
        probabilities = q_new if self.initial_q is not None and step == 0 else self.p_epoch
        row = {**target_update_row(step, labels, self.labels, self.y_true, "max",
                                   probabilities=probabilities),
               "q_change": change, "target_sharpness": float(q_new.max(dim=1).values.mean()),
               **code_diagnostics(map_batches(self.model.autoencoder.encode, self.x,
                                              self.eval_batch))}
        if self.start_labels is not None:
            row["nmi_start"] = nmi(self.start_labels, labels.cpu().numpy(), "max")
        self.q, self.labels = q_new, labels
        self.rows.append(row)
        return step > 0 and change < self.tol

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q, "p_epoch": self.p_epoch, "labels": self.labels, "rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # checkpoints load on the CPU; the loss indexes these with device indices
        self.q, self.p_epoch, self.labels = to_device(self.x.device, state["q"],
                                                      state["p_epoch"], state["labels"])
        self.rows = list(state["rows"])


def code_diagnostics(z: torch.Tensor, saturation: float = 0.95,
                     dead_std: float = 1e-2) -> dict[str, Any]:
    """Label-free state of the tanh codes z (N, d): the share of entries with |z| above
    ``saturation`` and the number of dimensions whose standard deviation is below ``dead_std``."""
    return {"code_saturated": float((z.abs() > saturation).float().mean()),
            "code_dead_dims": int((z.float().std(dim=0) < dead_std).sum())}


def initial_gradient_shares(model: DepictClusterer, x: torch.Tensor, q: torch.Tensor,
                            w_rec: float, hidden_weight: float, batch: int) -> dict[str, Any]:
    """Gradient shares of Eq. 12's weighted terms on the first ``batch`` samples with targets q
    (N, K), computed with a forked RNG so that training draws the same dropout masks."""
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        terms, _ = _eq12_terms(model, x[:batch], q[:batch], w_rec, hidden_weight)
        weighted = {"clustering": terms["clustering"]}
        if "reconstruction" in terms:
            weighted["reconstruction"] = w_rec * terms["reconstruction"]
        return gradient_shares(model, weighted)


def _eq12_terms(model: DepictClusterer, xb: torch.Tensor, q_rows: torch.Tensor, w_rec: float,
                hidden_weight: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Eq. 12 on a batch xb (B, C, H, W) with target rows q_rows (B, K).

    Returns the loss terms (``clustering``: cross-entropy of Q and the corrupted soft-max;
    ``reconstruction``: layer-wise, when ``w_rec`` > 0; ``loss``: their sum) and the clean
    soft-max (B, K), detached.
    """
    autoencoder = model.autoencoder
    clean = autoencoder.encoder_activations(xb, corrupt=False)
    noisy = autoencoder.encoder_activations(xb, corrupt=True)
    with torch.no_grad():
        p_clean = F.softmax(model.head(clean[-1]), dim=1)
    clustering = soft_cross_entropy(q_rows, model.head(noisy[-1]))
    terms = {"clustering": clustering, "loss": clustering}
    if w_rec > 0:
        reconstruction = layerwise_reconstruction(
            clean[:-1], autoencoder.decoder_activations(noisy[-1]), hidden_weight)
        terms["reconstruction"] = reconstruction
        terms["loss"] = clustering + w_rec * reconstruction
    return terms, p_clean


class TrainingLossStop:
    """A :class:`~stages.runtime.train.PeriodicHook` for the warm start of ``a0ea650``: once per
    epoch (``period`` steps) it records the epoch's mean training cross-entropy to the pseudo-labels
    (the sum and count the loss function adds to) and the NMI between the clean predictions on
    all data and the pseudo-labels, and stops when that mean falls below ``threshold``. Labels
    are never involved; the last weights are kept."""

    def __init__(self, model: DepictClusterer, x: torch.Tensor, pseudo: np.ndarray,
                 period: int, threshold: float, eval_batch: int = 1000):
        self.model, self.x, self.pseudo = model, x, pseudo
        self.period, self.threshold, self.eval_batch = period, threshold, eval_batch
        self.ce_sum = torch.zeros((), device=x.device)
        self.count = 0
        self.rows: list[dict[str, Any]] = []

    def add(self, clustering: torch.Tensor) -> None:
        """Count one step's cross-entropy (a scalar tensor; no host sync)."""
        self.ce_sum = self.ce_sum + clustering.detach().float()
        self.count += 1

    def __call__(self, step: int) -> bool:
        if self.count == 0:  # step 0 (or just resumed at an epoch's start): nothing to judge
            return False
        mean = float(self.ce_sum) / self.count
        self.ce_sum, self.count = torch.zeros((), device=self.x.device), 0
        was_training = self.model.training
        self.model.eval()
        pred = map_batches(self.model.clean_probabilities, self.x, self.eval_batch).argmax(dim=1)
        self.model.train(was_training)
        self.rows.append({"kind": "warm-start-epoch", "step": step, "train_ce": mean,
                          "nmi_pseudo": nmi(self.pseudo, pred.cpu().numpy(), "max")})
        return mean < self.threshold

    def state_dict(self) -> dict[str, Any]:
        return {"ce_sum": self.ce_sum, "count": self.count, "rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ce_sum = state["ce_sum"].to(self.x.device)
        self.count, self.rows = int(state["count"]), list(state["rows"])


def warm_start(model: DepictClusterer, x: torch.Tensor, pseudo_labels: torch.Tensor,
               params: dict[str, Any], *, seed: int, log_every: int,
               checkpoint: Checkpointer) -> list[dict[str, Any]]:
    """The first M-step with Q fixed to the one-hot init labels (AC-PIC or k-means), trained
    to convergence [code]. ``warm_start_rule``:

    * ``heldout-nmi`` (the code's HEAD): Eq. 12 on a random training split, stopped when the
      NMI between the clean predictions and the pseudo-labels of the held-out split has not
      improved for ``warm_start_patience`` epochs (at most ``warm_start_epochs``); the best
      weights are kept.
    * ``train-ce`` (the first public commit ``a0ea650``): Eq. 12 on all data, stopped after the
      first epoch whose mean training cross-entropy to the pseudo-labels (the noisy pathway's,
      as trained) is below ``warm_start_ce`` (0.2 in that code), at most ``warm_start_epochs``;
      the last weights are kept (:class:`TrainingLossStop`).

    Only the init's labels are used, never the true ones. Returns the history rows.
    """
    rule = str(params.get("warm_start_rule", "heldout-nmi"))
    if rule not in WARM_START_RULES:
        raise ValueError(f"unknown warm_start_rule '{rule}'; valid choices: "
                         f"{', '.join(WARM_START_RULES)}")
    n_clusters = model.head.out_features
    q_fixed = F.one_hot(pseudo_labels, n_clusters).float()
    if rule == "train-ce":
        return _warm_start_train_ce(model, x, pseudo_labels, q_fixed, params, seed=seed,
                                    log_every=log_every, checkpoint=checkpoint)
    train_idx, val_idx = validation_split(x.shape[0], float(params["validation_fraction"]),
                                          seed, x.device)
    x_val, pseudo_val = x[val_idx], pseudo_labels[val_idx].cpu().numpy()
    batch = int(params["batch_size"])
    spe = steps_per_epoch(train_idx.shape[0], batch)
    w_rec = float(params["reconstruction_weight"])
    hidden_weight = float(params.get("hidden_weight", 1.0))

    def val_loss() -> torch.Tensor:  # minus the NMI with the pseudo-labels: lower is better
        pred = map_batches(model.clean_probabilities, x_val, 1000).argmax(dim=1)
        return torch.tensor(-nmi(pseudo_val, pred.cpu().numpy(), "max"))

    stopper = EarlyStopping(model, val_loss, period=spe,
                            patience=int(params["warm_start_patience"]))

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = train_idx[idx]
        return _eq12_terms(model, x[rows], q_fixed[rows], w_rec, hidden_weight)[0]

    cfg = LoopConfig(batch_size=batch, max_steps=int(params["warm_start_epochs"]) * spe,
                     shuffle=True, seed=seed, log_every=min(log_every, spe),
                     **loop_settings(params))
    optimizer = make_optimizer(list(model.parameters()),
                               {"name": "adam", "lr": float(params["lr"])})
    result = run_loop(model, optimizer, loss_fn, train_idx.shape[0], cfg, x.device,
                      hook=stopper, checkpoint=checkpoint, desc="finetune depict warm start")
    stopper.finish(result.steps)
    rows = result.history + [{**r, "kind": "warm-start-validation", "nmi_pseudo": -r["loss"],
                              "loss": None} for r in stopper.rows]
    for row in rows:  # steps up to 0: the warm start precedes the joint phase's step 1
        row.update(phase="warm-start", step=row["step"] - result.steps)
    return sorted(rows, key=lambda r: r["step"])


def _warm_start_train_ce(model: DepictClusterer, x: torch.Tensor, pseudo_labels: torch.Tensor,
                         q_fixed: torch.Tensor, params: dict[str, Any], *, seed: int,
                         log_every: int, checkpoint: Checkpointer) -> list[dict[str, Any]]:
    """``warm_start_rule: train-ce`` of :func:`warm_start`."""
    batch = int(params["batch_size"])
    n = x.shape[0]
    spe = steps_per_epoch(n, batch)
    w_rec = float(params["reconstruction_weight"])
    hidden_weight = float(params.get("hidden_weight", 1.0))
    stopper = TrainingLossStop(model, x, pseudo_labels.cpu().numpy(), period=spe,
                               threshold=float(params.get("warm_start_ce", 0.2)))

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = _eq12_terms(model, x[idx], q_fixed[idx], w_rec, hidden_weight)[0]
        stopper.add(terms["clustering"])
        return terms

    cfg = LoopConfig(batch_size=batch, max_steps=int(params["warm_start_epochs"]) * spe,
                     shuffle=True, seed=seed, log_every=min(log_every, spe),
                     **loop_settings(params))
    optimizer = make_optimizer(list(model.parameters()),
                               {"name": "adam", "lr": float(params["lr"])})
    result = run_loop(model, optimizer, loss_fn, n, cfg, x.device, hook=stopper,
                      checkpoint=checkpoint, desc="finetune depict warm start")
    if stopper.count:  # the cap ended the loop before the last epoch was judged
        stopper(result.steps)
    rows = result.history + stopper.rows
    for row in rows:  # steps up to 0: the warm start precedes the joint phase's step 1
        row.update(phase="warm-start", step=row["step"] - result.steps)
    return sorted(rows, key=lambda r: r["step"])


def finetune(autoencoder: Autoencoder, x: torch.Tensor, init: dict[str, np.ndarray],
             params: dict[str, Any], *, seed: int, y_true: np.ndarray | None = None,
             checkpoint: Checkpointer | None = None, log_every: int = 20) -> FinetuneResult:
    """DEPICT's joint phase (Algorithm 1) on a pretrained DEPICT autoencoder.

    Each step: cross-entropy between the current Q rows and the corrupted pathway's soft-max,
    plus ``reconstruction_weight`` x the layer-wise reconstruction of the clean encoder layers
    from the corrupted embedding (Eq. 12); the clean soft-max of the batch is stored for the
    next Q. Prediction: argmax of the clean soft-max.

    Args:
        autoencoder: pretrained :class:`~stages.nets.depict.DepictAutoencoder` on x's device.
        x: the whole dataset (N, C, H, W) in [0, 1] on the device.
        init: the init stage's arrays: ``centres`` (K, d) of the clean embeddings and their
            ``labels`` (N,) (AC-PIC [code, MNIST-test and USPS] or k-means).
        params: the method recipe: ``reconstruction_weight``, ``hidden_weight``, ``target``
            (sqrt|dec), ``tol``, ``max_epochs``, ``batch_size``, ``lr``, ``initial_q``.
            ``initial_q`` says how the k-means labels start Q (Algorithm 1, line 1:
            "initialize Q using a clustering algorithm"): ``warm-start`` (default, [code])
            first runs :func:`warm_start` on them, then Q is Eq. 7 of the clean soft-max;
            ``labels`` makes them the first epoch's Q directly; ``softmax`` ignores them and
            starts from Eq. 7 of the initial network's clean soft-max. ``warm_start_rule``
            (``heldout-nmi`` | ``train-ce``, with ``warm_start_ce``): :func:`warm_start`;
            ``head_init`` (``centres`` | ``transposed``): :func:`initial_head_weight`.
    """
    device = x.device
    centres = torch.as_tensor(init["centres"], device=device)
    init_labels = init.get("labels")
    model = DepictClusterer(autoencoder, centres,
                            str(params.get("head_init", "centres"))).to(device)
    w_rec = float(params["reconstruction_weight"])
    hidden_weight = float(params.get("hidden_weight", 1.0))
    batch = int(params["batch_size"])
    spe = steps_per_epoch(x.shape[0], batch)
    start = params.get("initial_q", "warm-start")
    if start not in INITIAL_Q:
        raise ValueError(f"unknown initial_q '{start}'; valid choices: {', '.join(INITIAL_Q)}")
    initial_q, warm_rows = None, []
    if start != "softmax":
        if init_labels is None:
            raise ValueError(f"initial_q '{start}' needs the init stage's labels (init['labels'])")
        pseudo = torch.as_tensor(np.asarray(init_labels), device=device, dtype=torch.long)
        if start == "labels":
            initial_q = F.one_hot(pseudo, centres.shape[0]).float()
        else:
            checkpoint = checkpoint or Checkpointer(None)
            warm_rows = warm_start(model, x, pseudo, params, seed=seed, log_every=log_every,
                                   checkpoint=checkpoint.phase("warmstart"))
    hook = ClusteringHook(model, x, y_true, period=spe, tol=float(params["tol"]),
                         rule=str(params.get("target", "dec")), initial_q=initial_q,
                         start_labels=None if init_labels is None else np.asarray(init_labels))
    optimizer = make_optimizer(list(model.parameters()),
                               {"name": "adam", "lr": float(params["lr"])})
    if initial_q is None:  # the clean pass of step 0, made once: the hook's first Q reuses it
        # clone: map_batches returns an inference tensor; the loss writes into this one
        hook.p_epoch = map_batches(model.clean_probabilities, x, hook.eval_batch).clone()
    q0 = initial_q if initial_q is not None else depict_target(hook.p_epoch, hook.rule)
    share_row = initial_gradient_shares(model, x, q0, w_rec, hidden_weight, batch)

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        terms, p_clean = _eq12_terms(model, x[idx], hook.q[idx], w_rec, hidden_weight)
        hook.p_epoch[idx] = p_clean
        return terms

    cfg = LoopConfig(batch_size=batch, max_steps=int(params["max_epochs"]) * spe, shuffle=True,
                     seed=seed, log_every=min(log_every, spe),
                     **loop_settings(params))
    result = run_loop(model, optimizer, loss_fn, x.shape[0], cfg, device, hook=hook,
                      checkpoint=checkpoint, desc="finetune depict")
    model.eval()
    p = map_batches(model.clean_probabilities, x, 1000)
    z = map_batches(autoencoder.encode, x, 1000)
    history = warm_rows + [share_row] + sorted(result.history + hook.rows,
                                 key=lambda r: (r["step"], r["kind"] != "target"))
    return FinetuneResult(
        labels=p.argmax(dim=1).cpu().numpy().astype(np.int64),
        embedding=z.cpu().numpy().astype(np.float32), history=history,
        state_dict=model.state_dict(),
        info={"steps": result.steps, "epochs": result.steps / spe,
              "converged": result.stopped_by_hook, "target_updates": len(hook.rows),
              "resumed_from_step": result.resumed_from})
