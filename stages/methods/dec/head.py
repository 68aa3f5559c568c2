"""DEC, IDEC, DEC-conv and DCEC: a Student-t clustering layer on an autoencoder's embedding.

Three layers, as ClustPy keeps them:

1. pure functions: :func:`student_t_assign`;
2. :class:`ClusteringAutoencoder`, an ``nn.Module`` holding the autoencoder and the centres;
3. :func:`finetune`, the driver that plugs the loss and the target update into
   :func:`stages.runtime.train.run_loop`.

Faithful to the DCEC paper (Guo et al. 2017): loss ``w_r * L_r + gamma * KL(P || Q)`` (DEC and
DEC-conv: w_r = 0, gamma = 1, decoder dropped; IDEC and DCEC: w_r = 1, gamma = 0.1); P from all
points every T = 140 iterations; stop when fewer than tol = 0.1% of labels changed between two
updates; prediction = argmax q. Choices where the paper is silent, from the authors' code: Keras
normalisation (per-element MSE, per-sample KL), Adam lr 1e-3, batch 256, sequential batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from stages.methods.shared.common import (
    FinetuneResult,
    gradient_shares,
    kl_divergence,
    reconstruction_mse,
    target_distribution,
    target_update_row,
    to_device,
)
from stages.nets.autoencoder import Autoencoder
from stages.runtime.train import (
    Checkpointer,
    LoopConfig,
    PeriodicHook,
    loop_settings,
    make_optimizer,
    map_batches,
    run_loop,
)


def student_t_assign(z: torch.Tensor, centres: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Soft assignment of DEC Eq. 6 / DCEC Eq. 6.

    Args:
        z: embeddings (N, d); centres: (K, d); alpha: Student-t degrees of freedom.
    Returns:
        q: (N, K), rows summing to one.
    """
    dist2 = (z.unsqueeze(1) - centres.unsqueeze(0)).pow(2).sum(dim=2)  # finite grad at 0
    kernel = (1.0 + dist2 / alpha).pow(-(alpha + 1.0) / 2.0)
    return kernel / kernel.sum(dim=1, keepdim=True)


class ClusteringAutoencoder(nn.Module):
    """An autoencoder with trainable cluster centres on its embedding.

    Args:
        autoencoder: module with ``encode(x) -> (B, d)`` and ``decode(z) -> x_hat``.
        centres: initial centres (K, d), e.g. from k-means.
        alpha: Student-t degrees of freedom (1 in DEC).
    """

    def __init__(self, autoencoder: nn.Module, centres: torch.Tensor, alpha: float = 1.0):
        super().__init__()
        self.autoencoder = autoencoder
        self.centres = nn.Parameter(centres.clone().float())
        self.alpha = alpha

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, ...) -> q: (B, K)."""
        return student_t_assign(self.autoencoder.encode(x), self.centres, self.alpha)


class ClusteringHook(PeriodicHook):
    """DEC's periodic step: q on all points, P = target(q), labels, and the stop rule.

    Adds a history row per update with the label change and, for monitoring only, ACC/NMI
    against the true labels (never used for any decision).
    """

    def __init__(self, model: ClusteringAutoencoder, x: torch.Tensor, y_true: np.ndarray | None,
                 period: int, tol: float, eval_batch: int = 4096):
        self.model, self.x, self.y_true = model, x, y_true
        self.period, self.tol, self.eval_batch = period, tol, eval_batch
        self.p: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.rows: list[dict[str, Any]] = []

    def __call__(self, step: int) -> bool:
        self.model.eval()
        q = map_batches(self.model.assign, self.x, self.eval_batch)
        self.model.train()
        self.p = target_distribution(q)
        labels = q.argmax(dim=1)
        row = target_update_row(step, labels, self.labels, self.y_true, "sqrt", probabilities=q)
        self.labels = labels
        self.rows.append(row)
        return step > 0 and row["delta_label"] < self.tol

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "labels": self.labels, "rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # checkpoints load on the CPU; the loss indexes these with device indices
        self.p, self.labels = to_device(self.x.device, state["p"], state["labels"])
        self.rows = list(state["rows"])


def initial_gradient_shares(model: ClusteringAutoencoder, x: torch.Tensor, gamma: float,
                            w_rec: float, batch: int) -> dict[str, Any]:
    """Gradient shares of the weighted clustering (and reconstruction) terms on the first
    ``batch`` samples of x, with the target P of the initial soft assignments of all of x."""
    p = target_distribution(map_batches(model.assign, x))[:batch]
    xb = x[:batch]
    z = model.autoencoder.encode(xb)
    q = student_t_assign(z, model.centres, model.alpha)
    terms = {"clustering": gamma * kl_divergence(p, q)}
    if w_rec > 0:
        terms["reconstruction"] = w_rec * reconstruction_mse(model.autoencoder.decode(z), xb)
    return gradient_shares(model, terms)


def finetune(autoencoder: Autoencoder, x: torch.Tensor, init: dict[str, np.ndarray],
             params: dict[str, Any], *, seed: int, y_true: np.ndarray | None = None,
             checkpoint: Checkpointer | None = None, log_every: int = 20) -> FinetuneResult:
    """Fine-tune ``autoencoder`` with a DEC clustering layer.

    Args:
        autoencoder: pretrained SAE or CAE, on the same device as ``x``.
        x: the whole dataset (N, ...) on the device.
        init: the init stage's arrays; DEC starts from ``centres`` (K, d) (k-means).
        params: the method recipe: ``reconstruction_weight``, ``clustering_weight`` (gamma),
            ``update_interval`` (T), ``tol``, ``max_iter``, ``batch_size``, ``lr``, ``shuffle``,
            ``alpha`` and, optionally, ``optimizer`` ({name, lr, ...}; default Adam at ``lr``).
    """
    device = x.device
    centres = torch.as_tensor(init["centres"], device=device)
    model = ClusteringAutoencoder(autoencoder, centres, params.get("alpha", 1.0))
    w_rec = float(params["reconstruction_weight"])
    gamma = float(params["clustering_weight"])
    trainable = [model.centres, *autoencoder.encoder.parameters()] if w_rec == 0 else \
        list(model.parameters())
    # [code] DEC-keras: SGD(0.01, 0.9) via ``optimizer``; IDEC and DCEC: Adam(lr)
    optimizer = make_optimizer(trainable, params.get("optimizer")
                               or {"name": "adam", "lr": float(params["lr"])})
    hook = ClusteringHook(model, x, y_true, int(params["update_interval"]), float(params["tol"]))

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb = x[idx]
        z = autoencoder.encode(xb)
        q = student_t_assign(z, model.centres, model.alpha)
        clustering = kl_divergence(hook.p[idx], q)
        terms = {"clustering": clustering, "loss": gamma * clustering}
        if w_rec > 0:
            reconstruction = reconstruction_mse(autoencoder.decode(z), xb)
            terms["reconstruction"] = reconstruction
            terms["loss"] = terms["loss"] + w_rec * reconstruction
        return terms

    share_row = initial_gradient_shares(model, x, gamma, w_rec, int(params["batch_size"]))
    cfg = LoopConfig(batch_size=int(params["batch_size"]), max_steps=int(params["max_iter"]),
                     shuffle=bool(params.get("shuffle", False)), seed=seed, log_every=log_every,
                     **loop_settings(params))
    result = run_loop(model, optimizer, loss_fn, x.shape[0], cfg, device, hook=hook,
                      checkpoint=checkpoint, desc="finetune")
    model.eval()
    z = map_batches(autoencoder.encode, x)
    with torch.inference_mode():
        labels = student_t_assign(z, model.centres, model.alpha).argmax(dim=1)
    history = [share_row] + sorted(result.history + hook.rows,
                                   key=lambda r: (r["step"], r["kind"] != "target"))
    return FinetuneResult(
        labels=labels.cpu().numpy().astype(np.int64), embedding=z.cpu().numpy().astype(np.float32),
        history=history, state_dict=model.state_dict(),
        info={"steps": result.steps, "converged": result.stopped_by_hook,
              "target_updates": len(hook.rows), "resumed_from_step": result.resumed_from})
