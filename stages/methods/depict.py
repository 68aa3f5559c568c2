"""DEPICT (Ghasedi Dizaji et al., ICCV 2017) and its learning-approach ablations (Table 3).

Layers, as in :mod:`stages.methods.dec`:

1. pure functions: :func:`depict_target` (Eq. 7), :func:`soft_cross_entropy` (Eq. 8),
   :func:`layerwise_reconstruction` (second term of Eq. 12), :func:`validation_split`,
   :func:`q_change`;
2. :class:`DepictClusterer`, the autoencoder with its soft-max clustering layer (Eq. 1);
3. drivers: the pretraining objectives :func:`pretrain_mda` (DEPICT's own reconstruction-only
   phase), :func:`pretrain_sda` (layer-wise denoising pretraining) and :func:`pretrain_rda`
   (SdA, then clean whole-network retraining), and :func:`finetune` (Algorithm 1).

Choices where the paper is silent ([code]: the authors' Theano code, [default]: ours):

* Adam lr 1e-4 [paper], batch 100 [code] in every phase.
* Reconstruction-only phases stop early on a held-out split of the data (10 %, drawn at random,
  never using labels) when the clean reconstruction loss has not improved for ``patience``
  epochs, and keep the best weights [code: patience 100, at most 4,000 epochs].
* Joint phase: Q from the clean pathway once per epoch [code], from the clean soft-max outputs
  stored while training that epoch; stop when mean((Q_t - Q_{t-1})^2) < 1e-7 [code] or at the
  epoch cap. ``target: sqrt`` is the paper's Eq. 7, ``target: dec`` the code's p^2/f.
  ``hidden_weight`` weighs the hidden layers' reconstruction terms (paper 1, code 0.1).
* The soft-max layer has a bias; its weights start as the unit-norm k-means centres [code].
* SdA's per-layer denoising uses dropout with rate ``noise`` (0.1, the paper's dropout rate)
  on each layer's input [default].
* SdA and RdA fine-tune with the clustering loss only (``reconstruction_weight: 0``), as the
  paper describes them ("the encoder pathway is then fine-tuned using the clustering objective").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stages.methods.common import FinetuneResult, target_distribution
from stages.metrics import cluster_acc, nmi
from stages.train import (
    Checkpointer,
    EarlyStopping,
    LoopConfig,
    LoopResult,
    map_batches,
    run_loop,
    steps_per_epoch,
)

#: target rule -> (power, frequency exponent) of :func:`target_distribution`
TARGET_RULES: dict[str, tuple[float, float]] = {
    "sqrt": (1.0, 0.5),  # Eq. 7 [paper]
    "dec": (2.0, 1.0),   # the authors' code (DEC's target)
}


# ---------------------------------------------------------------------------- pure functions

def depict_target(p: torch.Tensor, rule: str = "sqrt") -> torch.Tensor:
    """Target Q from the clean predictions P (N, K) over the whole dataset: Eq. 7.

    ``sqrt``: ``q_ik ∝ p_ik / (Σ_i' p_i'k)^(1/2)``; ``dec``: ``q_ik ∝ p_ik^2 / Σ_i' p_i'k``.
    Returns Q (N, K), rows summing to one.
    """
    if rule not in TARGET_RULES:
        raise ValueError(f"unknown DEPICT target rule '{rule}'; valid choices: "
                         f"{', '.join(TARGET_RULES)}")
    power, freq_exponent = TARGET_RULES[rule]
    return target_distribution(p, power=power, freq_exponent=freq_exponent)


def soft_cross_entropy(q: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``-(1/B) Σ_i Σ_k q_ik log softmax(logits)_ik`` for q, logits (B, K): Eq. 8 / Eq. 12."""
    return -(q * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def layerwise_reconstruction(clean: Sequence[torch.Tensor], reconstructed: Sequence[torch.Tensor],
                             hidden_weight: float = 1.0) -> torch.Tensor:
    """Second term of Eq. 12: ``Σ_l w_l mean_i (1/|z^l|) ||z_i^l - ẑ_i^l||²``.

    Args:
        clean: clean encoder layers [z^0 (B, ...), z^1, ..., z^{L-1}] (z^0 = the input).
        reconstructed: the decoder's reconstructions of the same layers, same order and shapes.
        hidden_weight: w_l for l >= 1 (w_0 = 1); the paper uses 1, the authors' code 0.1.
    Returns:
        scalar: each layer's per-element mean squared error, weighted and summed.
    """
    if len(clean) != len(reconstructed):
        raise ValueError(f"{len(clean)} clean layers but {len(reconstructed)} reconstructions")
    total = torch.zeros((), device=clean[0].device)
    for level, (z, z_hat) in enumerate(zip(clean, reconstructed, strict=True)):
        weight = 1.0 if level == 0 else hidden_weight
        if weight:
            total = total + weight * F.mse_loss(z_hat, z)
    return total


def validation_split(n_samples: int, fraction: float, seed: int,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train (N - V,), validation (V,)) index split, V = round(fraction * N) >= 1.

    Drawn without labels (the authors' code stratifies by label; that would leak them).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must lie in (0, 1); got {fraction}")
    n_val = min(n_samples - 1, max(1, round(fraction * n_samples)))
    perm = torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed + 7919))
    return perm[n_val:].to(device), perm[:n_val].to(device)


def q_change(q_new: torch.Tensor, q_old: torch.Tensor) -> torch.Tensor:
    """Mean squared change of the target between two epochs (the stop rule): scalar."""
    return (q_new - q_old).pow(2).mean()


# ------------------------------------------------------------------------------ the network

class DepictClusterer(nn.Module):
    """DEPICT's autoencoder with the soft-max clustering layer of Eq. 1.

    Args:
        autoencoder: a :class:`stages.nets.depict.DepictAutoencoder` (pretrained).
        centres: k-means centres (K, d) of the clean embeddings; the soft-max weights start as
            the unit-norm centres, the bias at zero [code].
    """

    def __init__(self, autoencoder: nn.Module, centres: torch.Tensor):
        super().__init__()
        self.autoencoder = autoencoder
        n_clusters, dim = centres.shape
        self.head = nn.Linear(dim, n_clusters)
        with torch.no_grad():
            self.head.weight.copy_(F.normalize(centres.float(), dim=1))
            self.head.bias.zero_()

    def clean_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Clean-pathway soft-max P: x (B, C, H, W) -> (B, K)."""
        return F.softmax(self.head(self.autoencoder.encode(x)), dim=1)


# ------------------------------------------------------------------ reconstruction-only phases

def _mean_over_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       batch_size: int = 1000) -> torch.Tensor:
    """Sample-weighted mean of the batch-mean loss ``fn`` over x (N, ...): scalar."""
    total = torch.zeros((), device=x.device)
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        total = total + fn(xb) * xb.shape[0]
    return total / x.shape[0]


def _fit_early_stopped(params: list[nn.Parameter], model: nn.Module, x: torch.Tensor,
                       loss_fn: Callable[[torch.Tensor], torch.Tensor],
                       val_loss_fn: Callable[[torch.Tensor], torch.Tensor], recipe: dict[str, Any],
                       epochs: int, *, seed: int, log_every: int, checkpoint: Checkpointer,
                       phase: str, step_offset: int) -> LoopResult:
    """Adam on ``loss_fn`` over a random training split, early-stopped on ``val_loss_fn``.

    ``loss_fn(xb) -> scalar`` takes a training batch, ``val_loss_fn(xb) -> scalar`` a validation
    batch. The best weights (by validation loss) are loaded at the end. History rows get
    ``phase`` and steps shifted by ``step_offset`` so that phases follow one another.
    """
    train_idx, val_idx = validation_split(x.shape[0], float(recipe["validation_fraction"]), seed,
                                          x.device)
    x_val = x[val_idx]
    batch = int(recipe["batch_size"])
    spe = steps_per_epoch(train_idx.shape[0], batch)
    stopper = EarlyStopping(model, lambda: _mean_over_batches(val_loss_fn, x_val), period=spe,
                            patience=int(recipe["patience"]))
    optimizer = torch.optim.Adam(params, lr=float(recipe["optimizer"]["lr"]))
    cfg = LoopConfig(batch_size=batch, max_steps=epochs * spe, shuffle=True, seed=seed,
                     log_every=min(log_every, spe),
                     checkpoint_every=int(recipe.get("checkpoint_every", 1000)))
    result = run_loop(model, optimizer, lambda idx: {"loss": loss_fn(x[train_idx[idx]])},
                      train_idx.shape[0], cfg, x.device, hook=stopper, checkpoint=checkpoint,
                      desc=f"pretrain {phase}")
    stopper.finish(result.steps)
    rows = sorted(result.history + stopper.rows, key=lambda r: (r["step"], r["kind"]))
    for row in rows:  # validation rows: epoch = epochs completed when it was measured
        row.update(phase=phase, step=row["step"] + step_offset,
                   epoch=row.get("epoch", row["step"] // spe))
    return LoopResult(result.steps, result.stopped_by_hook, rows, result.resumed_from)


def _chain(results: list[LoopResult]) -> LoopResult:
    history = [row for r in results for row in r.history]
    resumed = next((r.resumed_from for r in results if r.resumed_from is not None), None)
    return LoopResult(sum(r.steps for r in results), any(r.stopped_by_hook for r in results),
                      history, resumed)


def pretrain_mda(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                 log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """DEPICT's reconstruction-only phase (MdA): Eq. 12 without the clustering term.

    The corrupted pathway's embedding is decoded and every decoder layer is compared with the
    clean encoder layer it mirrors. Validation loss: the same with the clean pathway.
    ``recipe``: ``epochs``, ``batch_size``, ``optimizer.lr``, ``patience``,
    ``validation_fraction``, ``hidden_weight``.
    """
    hidden_weight = float(recipe.get("hidden_weight", 1.0))

    def loss(xb: torch.Tensor) -> torch.Tensor:
        clean = model.encoder_activations(xb, corrupt=False)
        noisy = model.encoder_activations(xb, corrupt=True)
        return layerwise_reconstruction(clean[:-1], model.decoder_activations(noisy[-1]),
                                        hidden_weight)

    def val_loss(xb: torch.Tensor) -> torch.Tensor:
        clean = model.encoder_activations(xb)
        return layerwise_reconstruction(clean[:-1], model.decoder_activations(clean[-1]),
                                        hidden_weight)

    checkpoint = checkpoint or Checkpointer(None)
    return _fit_early_stopped(list(model.parameters()), model, x, loss, val_loss, recipe,
                              int(recipe["epochs"]), seed=seed, log_every=log_every,
                              checkpoint=checkpoint.phase("mda"), phase="mda", step_offset=0)


def pretrain_sda(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                 log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Greedy layer-wise denoising pretraining (SdA): layer l learns to reconstruct its clean
    input (the output of the frozen layers below) from a dropout-corrupted copy.

    ``recipe``: ``layer_epochs`` (per layer), ``noise`` (dropout rate of each layer's input),
    and those of :func:`pretrain_mda`.
    """
    checkpoint = checkpoint or Checkpointer(None)
    noise = float(recipe.get("noise", 0.1))
    results: list[LoopResult] = []

    for level in (1, 2, 3):
        def below(xb: torch.Tensor, level: int = level) -> torch.Tensor:
            with torch.no_grad():
                h = model.scale_input(xb)
                for lower in range(1, level):
                    h = model.encoder_layer(lower, h)
            return h

        def loss(xb: torch.Tensor, level: int = level) -> torch.Tensor:
            h = below(xb)
            code = model.encoder_layer(level, F.dropout(h, noise, training=True))
            return F.mse_loss(model.decoder_layer(level, code), h)

        def val_loss(xb: torch.Tensor, level: int = level) -> torch.Tensor:
            h = below(xb)
            return F.mse_loss(model.decoder_layer(level, model.encoder_layer(level, h)), h)

        offset = sum(r.steps for r in results)
        results.append(_fit_early_stopped(
            model.layer_parameters(level), model, x, loss, val_loss, recipe,
            int(recipe["layer_epochs"]), seed=seed, log_every=log_every,
            checkpoint=checkpoint.phase(f"sda{level}"), phase=f"sda-layer{level}",
            step_offset=offset))
    return _chain(results)


def pretrain_rda(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                 log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """RdA: :func:`pretrain_sda`, then the whole network retrained to reconstruct the clean
    input from the clean input (no corruption, input-layer loss only) for ``epochs``."""
    checkpoint = checkpoint or Checkpointer(None)
    sda = pretrain_sda(model, x, recipe, seed=seed, log_every=log_every, checkpoint=checkpoint)

    def loss(xb: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(model.decode(model.encode(xb)), model.scale_input(xb))

    retrain = _fit_early_stopped(list(model.parameters()), model, x, loss, loss, recipe,
                                 int(recipe["epochs"]), seed=seed, log_every=log_every,
                                 checkpoint=checkpoint.phase("rda"), phase="rda-retrain",
                                 step_offset=sda.steps)
    return _chain([sda, retrain])


# ---------------------------------------------------------------------------- the joint phase

class TargetRefresh:
    """Algorithm 1, lines 4-5: once per epoch, Q from the clean P stored during the epoch.

    At step 0, Q is ``initial_q`` when given (one-hot k-means labels), else computed from a
    clean pass over all data with the initial weights. ``p_epoch``
    (N, K) is filled by the loss function with the clean soft-max of each batch. Stops when
    :func:`q_change` falls below ``tol``. Adds a history row per refresh with the change of Q,
    the fraction of changed labels and, for monitoring only, ACC/NMI against the true labels.
    """

    def __init__(self, model: DepictClusterer, x: torch.Tensor, y_true: np.ndarray | None,
                 period: int, tol: float, rule: str, initial_q: torch.Tensor | None = None,
                 eval_batch: int = 1000):
        self.model, self.x, self.y_true = model, x, y_true
        self.period, self.tol, self.rule, self.eval_batch = period, tol, rule, eval_batch
        self.initial_q = initial_q
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
        delta = (math.nan if self.labels is None
                 else float((labels != self.labels).float().mean()))
        self.q, self.labels = q_new, labels
        row: dict[str, Any] = {"kind": "target", "step": step, "q_change": change,
                               "delta_label": delta}
        if self.y_true is not None:
            pred = labels.cpu().numpy()
            row.update(acc=cluster_acc(self.y_true, pred), nmi=nmi(self.y_true, pred, "max"))
        self.rows.append(row)
        return step > 0 and change < self.tol

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q, "p_epoch": self.p_epoch, "labels": self.labels, "rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # checkpoints load on the CPU; the loss indexes these with device indices
        self.q, self.p_epoch, self.labels = (None if t is None else t.to(self.x.device)
                                             for t in (state["q"], state["p_epoch"],
                                                       state["labels"]))
        self.rows = list(state["rows"])


def finetune(autoencoder: nn.Module, x: torch.Tensor, centres: torch.Tensor,
             params: dict[str, Any], *, seed: int, y_true: np.ndarray | None = None,
             init_labels: np.ndarray | None = None, checkpoint: Checkpointer | None = None,
             log_every: int = 20) -> FinetuneResult:
    """DEPICT's joint phase (Algorithm 1) on a pretrained DEPICT autoencoder.

    Each step: cross-entropy between the current Q rows and the corrupted pathway's soft-max,
    plus ``reconstruction_weight`` x the layer-wise reconstruction of the clean encoder layers
    from the corrupted embedding (Eq. 12); the clean soft-max of the batch is stored for the
    next Q. Prediction: argmax of the clean soft-max.

    Args:
        autoencoder: pretrained :class:`~stages.nets.depict.DepictAutoencoder` on x's device.
        x: the whole dataset (N, C, H, W) in [0, 1] on the device.
        centres: k-means centres (K, d) of the clean embeddings.
        params: the method recipe: ``reconstruction_weight``, ``hidden_weight``, ``target``
            (sqrt|dec), ``tol``, ``max_epochs``, ``batch_size``, ``lr``, ``initial_q``.
        init_labels: the init stage's k-means labels (N,). With ``initial_q: labels`` (default)
            the first epoch's Q is their one-hot encoding (Algorithm 1, line 1: "initialize Q
            using a clustering algorithm"); with ``initial_q: softmax`` it is Eq. 7 of the clean
            soft-max of the initial network.
    """
    device = x.device
    model = DepictClusterer(autoencoder, centres.to(device)).to(device)
    w_rec = float(params["reconstruction_weight"])
    hidden_weight = float(params.get("hidden_weight", 1.0))
    batch = int(params["batch_size"])
    spe = steps_per_epoch(x.shape[0], batch)
    initial_q = None
    if params.get("initial_q", "labels") == "labels":
        if init_labels is None:
            raise ValueError("initial_q 'labels' needs the init stage's labels (init_labels)")
        labels = torch.as_tensor(np.asarray(init_labels), device=device, dtype=torch.long)
        initial_q = F.one_hot(labels, centres.shape[0]).float()
    hook = TargetRefresh(model, x, y_true, period=spe, tol=float(params["tol"]),
                         rule=str(params.get("target", "sqrt")), initial_q=initial_q)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb = x[idx]
        clean = autoencoder.encoder_activations(xb, corrupt=False)
        noisy = autoencoder.encoder_activations(xb, corrupt=True)
        with torch.no_grad():
            hook.p_epoch[idx] = F.softmax(model.head(clean[-1]), dim=1)
        clustering = soft_cross_entropy(hook.q[idx], model.head(noisy[-1]))
        terms = {"clustering": clustering, "loss": clustering}
        if w_rec > 0:
            reconstruction = layerwise_reconstruction(
                clean[:-1], autoencoder.decoder_activations(noisy[-1]), hidden_weight)
            terms["reconstruction"] = reconstruction
            terms["loss"] = clustering + w_rec * reconstruction
        return terms

    cfg = LoopConfig(batch_size=batch, max_steps=int(params["max_epochs"]) * spe, shuffle=True,
                     seed=seed, log_every=min(log_every, spe),
                     checkpoint_every=int(params.get("checkpoint_every", 1000)))
    result = run_loop(model, optimizer, loss_fn, x.shape[0], cfg, device, hook=hook,
                      checkpoint=checkpoint, desc="finetune depict")
    model.eval()
    p = map_batches(model.clean_probabilities, x, 1000)
    z = map_batches(autoencoder.encode, x, 1000)
    history = sorted(result.history + hook.rows, key=lambda r: (r["step"], r["kind"] != "target"))
    return FinetuneResult(
        labels=p.argmax(dim=1).cpu().numpy().astype(np.int64),
        embedding=z.cpu().numpy().astype(np.float32), history=history,
        state_dict=model.state_dict(),
        info={"steps": result.steps, "epochs": result.steps / spe,
              "converged": result.stopped_by_hook, "target_updates": len(hook.rows),
              "resumed_from_step": result.resumed_from})
