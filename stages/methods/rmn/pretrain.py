"""RMN-GMM's first training stage (Wang & Jiang, Neurocomputing 2021, Sect. 4.3, Table 1): the
pretraining objectives ``rmn-rbm`` (:func:`pretrain_rbm` [paper]: four greedy CD-1 RBMs of 500,
500, 2000 and 10 hidden units, unrolled into :class:`stages.nets.rmn.RBMAutoencoder`) and
``rmn-sda`` (:func:`pretrain_sda`, methods.md §5.3: greedy denoising autoencoders instead), each
followed by all eight layers fine-tuned as a denoising autoencoder on DEC-DA-augmented images.

Every phase: :func:`stages.runtime.train.run_loop`, SGD lr 0.01 divided by 10 every
``lr_step_epochs``, batch 256, no weight decay [paper], momentum 0.9 [default], its own checkpoint
(``checkpoint-rbm1.pt`` ... ``checkpoint-finetune.pt``; a restarted job skips finished phases).
RBMs [default, Hinton & Salakhutdinov 2006; Hinton's practical guide]: CD-1 as a surrogate loss
(:func:`cd1`); Bernoulli hidden units, Gaussian in the top RBM; Bernoulli visible units
(Gaussian for a linear output); weights N(0, 0.01²), biases 0; "dropout rate 20%" [paper] drops
hidden units in both CD phases (Srivastava et al. 2014, Sect. 8), and unrolled, the decoder's
weights are scaled by the retain probability. Corruption: masking noise at the same rate
[default]; augmentation (:func:`augment_images`): rotation within ±10°, shifts within ±10 %,
border pixels repeated (Keras' ``fill_mode='nearest'``) [code DEC-DA]; the target is the clean
augmented image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stages.methods.shared.common import reconstruction_mse
from stages.methods.shared.noise import corrupt
from stages.methods.shared.reconstruction import held_out_monitor, held_out_split
from stages.plumbing.errors import ConfigError
from stages.runtime.train import (
    Checkpointer,
    LoopConfig,
    LoopResult,
    ValidationMonitor,
    chain_results,
    loop_settings,
    make_optimizer,
    phase_steps,
    run_loop,
    steps_per_epoch,
)

# --------------------------------------------------------------------------- pure functions


def augment_images(x: torch.Tensor, max_rotation: float = 10.0,
                   max_shift: float = 0.1) -> torch.Tensor:
    """DEC-DA augmentation of a batch, on its device.

    Args:
        x: images (B, C, H, W).
        max_rotation: rotation angles are uniform in ±``max_rotation`` degrees.
        max_shift: shifts are uniform in ±``max_shift`` of the width / height.
    Returns:
        (B, C, H, W), each image rotated about its centre and shifted; pixels that come from
        outside repeat the border.
    """
    if x.dim() != 4:
        raise ValueError(f"augmentation needs images (B, C, H, W); got shape {tuple(x.shape)}")
    b = x.shape[0]
    angle = (torch.rand(b, device=x.device) * 2 - 1) * math.radians(max_rotation)
    shift = (torch.rand(b, 2, device=x.device) * 2 - 1) * (2 * max_shift)  # [-1, 1] coordinates
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], dim=1),
                         torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _mean_activation(pre: torch.Tensor, kind: str) -> torch.Tensor:
    """Expected unit value given its input ``pre``: logistic (bernoulli) or linear (gaussian)."""
    return torch.sigmoid(pre) if kind == "bernoulli" else pre


def free_energy(v: torch.Tensor, weight: torch.Tensor, hbias: torch.Tensor, vbias: torch.Tensor,
                visible: str, hidden: str, hidden_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Free energy F(v) of an RBM, per sample.

    Args:
        v: visible vectors (B, V); weight: (H, V); hbias: (H,); vbias: (V,).
        visible: ``bernoulli`` or ``gaussian`` (unit variance) visible units.
        hidden: ``bernoulli`` or ``gaussian`` (unit variance) hidden units.
        hidden_mask: (B, H) 0/1, hidden units dropped for each sample (dropout RBM), or None.
    Returns:
        (B,): ``-v·c - Σ_j softplus(x_j)`` (Bernoulli hidden) or ``-v·c - Σ_j x_j²/2`` (Gaussian
        hidden), plus ``|v|²/2`` for Gaussian visible units, where ``x = v Wᵀ + b``.
    """
    pre = F.linear(v, weight, hbias)
    per_unit = F.softplus(pre) if hidden == "bernoulli" else 0.5 * pre.pow(2)
    if hidden_mask is not None:
        per_unit = per_unit * hidden_mask
    energy = -(v @ vbias) - per_unit.sum(dim=1)
    if visible == "gaussian":
        energy = energy + 0.5 * v.pow(2).sum(dim=1)
    return energy


def cd1(v0: torch.Tensor, weight: torch.Tensor, hbias: torch.Tensor, vbias: torch.Tensor,
        visible: str, hidden: str, dropout: float = 0.0) -> dict[str, torch.Tensor]:
    """One contrastive-divergence (CD-1) step as a surrogate loss.

    Samples h0 ~ p(h | v0) (dropped hidden units are 0), reconstructs v1 = E[v | h0], and returns
    ``loss = mean F(v0) - mean F(v1)`` with v1 detached: its gradient with respect to (W, b, c)
    is minus the CD-1 statistics ``<v h>_data - <v h>_recon`` (hidden probabilities), so one
    descent step on it is one CD-1 update.

    Args:
        v0: data (B, V); weight (H, V); hbias (H,); vbias (V,); ``visible``/``hidden`` as in
            :func:`free_energy`; dropout: probability of dropping each hidden unit.
    Returns:
        ``loss`` (scalar, differentiable) and ``reconstruction``: mean_b |v0 - v1|² (detached).
    """
    mask = None
    if dropout > 0:
        mask = torch.bernoulli(torch.full((v0.shape[0], weight.shape[0]), 1.0 - dropout,
                                          device=v0.device, dtype=v0.dtype))
    with torch.no_grad():
        pre = F.linear(v0, weight, hbias)
        if hidden == "bernoulli":
            h0 = torch.bernoulli(torch.sigmoid(pre))
        else:
            h0 = pre + torch.randn_like(pre)
        if mask is not None:
            h0 = h0 * mask
        v1 = _mean_activation(F.linear(h0, weight.t(), vbias), visible)
    loss = (free_energy(v0, weight, hbias, vbias, visible, hidden, mask).mean()
            - free_energy(v1, weight, hbias, vbias, visible, hidden, mask).mean())
    return {"loss": loss, "reconstruction": (v0 - v1).pow(2).sum(dim=1).mean()}


class RBM(nn.Module):
    """Restricted Boltzmann machine with V visible and H hidden units.

    Args:
        n_visible, n_hidden: sizes; visible, hidden: ``bernoulli`` or ``gaussian``.
    """

    def __init__(self, n_visible: int, n_hidden: int, visible: str = "bernoulli",
                 hidden: str = "bernoulli"):
        super().__init__()
        self.visible, self.hidden = visible, hidden
        self.weight = nn.Parameter(torch.randn(n_hidden, n_visible) * 0.01)   # (H, V)
        self.hbias = nn.Parameter(torch.zeros(n_hidden))
        self.vbias = nn.Parameter(torch.zeros(n_visible))

    def cd1(self, v0: torch.Tensor, dropout: float = 0.0) -> dict[str, torch.Tensor]:
        """:func:`cd1` with this RBM's parameters; v0: (B, V)."""
        return cd1(v0, self.weight, self.hbias, self.vbias, self.visible, self.hidden, dropout)

    def hidden_mean(self, v: torch.Tensor) -> torch.Tensor:
        """E[h | v]: (B, V) -> (B, H)."""
        return _mean_activation(F.linear(v, self.weight, self.hbias), self.hidden)

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """E[v | h]: (B, H) -> (B, V)."""
        return _mean_activation(F.linear(h, self.weight.t(), self.vbias), self.visible)


# --------------------------------------------------------------------------- drivers

_UNIT_KIND = {"sigmoid": "bernoulli", "linear": "gaussian"}


def _unit_kind(activation: str, what: str) -> str:
    if activation not in _UNIT_KIND:
        raise ConfigError(f"objective 'rmn-rbm' cannot unroll RBMs into {what} with activation "
                          f"'{activation}'; valid choices: {', '.join(sorted(_UNIT_KIND))} "
                          "(arch.activation: sigmoid, arch.output: sigmoid or linear), or use "
                          "objective 'rmn-sda'")
    return _UNIT_KIND[activation]


def _check_unit_range(x: torch.Tensor, visible: str) -> None:
    if visible != "bernoulli":
        return
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ConfigError(f"Bernoulli visible units need inputs in [0, 1], but the data span "
                          f"[{low:.3g}, {high:.3g}]; set arch.output: linear (Gaussian visible "
                          "units) for such data")


def _sgd_phase(model: nn.Module, params: list[nn.Parameter], loss_fn, n_samples: int,
               recipe: dict[str, Any], length: str, *, seed: int, log_every: int,
               checkpoint: Checkpointer, phase: str, step_offset: int,
               device: torch.device, lr: float | None = None,
               monitor: ValidationMonitor | None = None,
               optimizer_spec: dict[str, Any] | None = None) -> LoopResult:
    """One stage-1 phase: SGD with the stepped lr on ``loss_fn`` for the recipe's
    ``<length>_steps`` (or ``<length>_epochs``, :func:`stages.runtime.train.phase_steps`); the lr
    drops tenfold every ``lr_step_steps`` (or ``lr_step_epochs``) steps.

    ``lr`` overrides the recipe's base rate. ``optimizer_spec`` (an ``optimizer`` entry, e.g.
    ``{name: adam, lr: 0.001}``) replaces the recipe's SGD for this phase. ``monitor``: its rows
    (and one at the end) join the history. History rows get ``phase`` and steps shifted by
    ``step_offset``.
    """
    batch = int(recipe["batch_size"])
    spe = steps_per_epoch(n_samples, batch)
    spec = dict(optimizer_spec) if optimizer_spec else {**recipe["optimizer"], "name": "sgd"}
    lr = float(spec["lr"]) if lr is None else lr
    optimizer = make_optimizer(params, {**spec, "lr": lr})
    step_size = max(1, phase_steps(recipe, "lr_step", spe, default_epochs=10 ** 9))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.1)
    cfg = LoopConfig(batch_size=batch, max_steps=phase_steps(recipe, length, spe), shuffle=True,
                     seed=seed,
                     log_every=min(log_every, spe),
                     **loop_settings(recipe))
    result = run_loop(model, optimizer, loss_fn, n_samples, cfg, device, scheduler=scheduler,
                      checkpoint=checkpoint, desc=f"pretrain {phase}", hook=monitor)
    if monitor is not None:
        result = monitor.merge_into(result)
    for row in result.history:
        row.update(phase=phase, step=row["step"] + step_offset)
    return result


def finetune_denoising(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                       log_every: int, checkpoint: Checkpointer,
                       step_offset: int = 0, x_val: torch.Tensor | None = None) -> LoopResult:
    """Step 3: all layers trained to reconstruct the (augmented) clean x from a corrupted copy.

    ``recipe``: ``steps`` or ``epochs``, ``noise`` (masking rate), ``augment`` (images only),
    ``reconstruction`` (``sum`` [default]: squared error summed over a sample, |x - x_r|² as in
    the paper; or ``mean``), ``finetune_optimizer`` (null [paper]: the recipe's SGD; or an
    optimizer entry for this phase alone, a quick-schedule lever), and those of the SGD phases.
    ``x_val`` (V, ...): held-out samples
    (not in x), whose clean reconstruction is recorded once per epoch of x and at the end
    (:func:`~stages.methods.shared.reconstruction.held_out_reconstruction`).
    """
    augment = bool(recipe.get("augment", False))
    if augment and x.dim() != 4:
        raise ConfigError(f"augment: true needs image data (N, C, H, W), but the samples have "
                          f"shape {tuple(x.shape[1:])}; set augment: false for feature vectors")
    noise = float(recipe.get("noise", 0.2))
    reduction = str(recipe.get("reconstruction", "sum"))

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        clean = x[idx]
        if augment:
            clean = augment_images(clean)
        x_hat = model.decode(model.encode(corrupt(clean, noise, "masking")))
        return {"loss": reconstruction_mse(x_hat, clean, reduction)}

    monitor = None
    if x_val is not None:
        monitor = held_out_monitor(model, x_val,
                                   steps_per_epoch(x.shape[0], int(recipe["batch_size"])))
    return _sgd_phase(model, list(model.parameters()), loss_fn, x.shape[0], recipe,
                      "", seed=seed, log_every=log_every,
                      checkpoint=checkpoint.phase("finetune"), phase="finetune",
                      step_offset=step_offset, device=x.device, monitor=monitor,
                      optimizer_spec=recipe.get("finetune_optimizer"))


def _held_out_row(model: nn.Module, x_val: torch.Tensor, phase: str, step: int) -> dict[str, Any]:
    """The ``kind='validation'`` row of the whole autoencoder ``model`` as it stands (after a
    greedy phase, unrolled): its clean reconstruction of x_val (V, ...) in eval mode."""
    monitor = held_out_monitor(model, x_val, period=1)
    monitor(step)
    return {**monitor.rows[0], "phase": phase}


def pretrain_rbm(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                 log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Stage 1 as in the paper: greedy CD-1 RBMs, unrolled, then the denoising fine-tune.

    Args:
        model: an :class:`~stages.nets.rmn.RBMAutoencoder` (sigmoid hidden layers).
        x: the whole dataset (N, ...) on the device.
        recipe: ``layer_steps`` or ``layer_epochs`` (per RBM), ``noise`` (hidden dropout of
            the RBMs and masking rate of the fine-tune), ``gaussian_rbm_lr`` (base lr of the
            top RBM, whose hidden units are linear: 0.001 [default]; with the paper's 0.01 its
            CD-1 diverges on MNIST (measured), and Hinton & Salakhutdinov's code also gives
            that layer a 100x smaller rate than the others), ``rbm_lr`` (base lr of the other
            RBMs: null, the recipe optimizer's lr [paper]; a number, a quick-schedule lever:
            Hinton & Salakhutdinov's code uses 0.1), and those of
            :func:`finetune_denoising`; ``validation_fraction``: every phase trains on a random
            split of the rest only, and the whole autoencoder's clean reconstruction of the
            held-out samples is recorded after each RBM (unrolled; the layers above it still
            hold their initial weights) and once per epoch of the fine-tune
            (``kind='validation'`` rows with ``phase``).
    """
    checkpoint = checkpoint or Checkpointer(None)
    noise = float(recipe.get("noise", 0.2))
    _check_unit_range(x, _unit_kind(model.visible_kind(1), "the output layer"))
    x, x_val = held_out_split(x, recipe, seed)  # x: the samples trained on, from here on
    results: list[LoopResult] = []
    for level in range(1, model.n_levels + 1):
        enc, dec = model.encoder_linear(level), model.decoder_linear(level)
        rbm = RBM(enc.in_features, enc.out_features,
                  visible=_unit_kind(model.visible_kind(level), f"visible layer {level}"),
                  hidden=_unit_kind(model.hidden_kind(level), f"hidden layer {level}"))
        rbm = rbm.to(x.device)

        def loss_fn(idx: torch.Tensor, level: int = level,
                    rbm: RBM = rbm) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                v0 = model.encode_below(x[idx], level)
            return rbm.cd1(v0, noise)

        if rbm.hidden == "bernoulli":
            lr = None if recipe.get("rbm_lr") is None else float(recipe["rbm_lr"])
        else:
            lr = float(recipe.get("gaussian_rbm_lr", 0.001))
        results.append(_sgd_phase(rbm, list(rbm.parameters()), loss_fn, x.shape[0], recipe,
                                  "layer", seed=seed, log_every=log_every,
                                  checkpoint=checkpoint.phase(f"rbm{level}"),
                                  phase=f"rbm{level}", step_offset=sum(r.steps for r in results),
                                  device=x.device, lr=lr))
        with torch.no_grad():  # unroll: the encoder is p(h | v), which hidden-unit dropout
            # leaves as it is; the decoder's weights leave the dropped (hidden) units, so they
            # are scaled by the retain probability
            enc.weight.copy_(rbm.weight)
            enc.bias.copy_(rbm.hbias)
            dec.weight.copy_(rbm.weight.t() * (1.0 - noise))
            dec.bias.copy_(rbm.vbias)
        if x_val is not None:
            results[-1].history.append(_held_out_row(model, x_val, f"rbm{level}",
                                                     sum(r.steps for r in results)))
    results.append(finetune_denoising(model, x, recipe, seed=seed, log_every=log_every,
                                      checkpoint=checkpoint,
                                      step_offset=sum(r.steps for r in results), x_val=x_val))
    return chain_results(results)


_ACTIVATION_FN = {"sigmoid": torch.sigmoid, "relu": torch.relu, "linear": lambda h: h}


def pretrain_sda(model: nn.Module, x: torch.Tensor, recipe: dict[str, Any], *, seed: int,
                 log_every: int = 20, checkpoint: Checkpointer | None = None) -> LoopResult:
    """Stage 1 with the substitute of methods.md §5.3: greedy layer-wise denoising autoencoders.

    Layer pair ``level`` learns to reconstruct its clean input (the output of the trained layers
    below, without gradients) from a masked copy (rate ``noise``) for ``layer_steps`` (or
    ``layer_epochs``); then the
    denoising fine-tune of :func:`finetune_denoising`. ``validation_fraction``: as for
    :func:`pretrain_rbm` (a held-out row after each layer pair and each fine-tune epoch).
    """
    checkpoint = checkpoint or Checkpointer(None)
    noise = float(recipe.get("noise", 0.2))
    reduction = str(recipe.get("reconstruction", "sum"))
    x, x_val = held_out_split(x, recipe, seed)  # x: the samples trained on, from here on
    results: list[LoopResult] = []
    for level in range(1, model.n_levels + 1):
        enc, dec = model.encoder_linear(level), model.decoder_linear(level)
        act_h = _ACTIVATION_FN[model.hidden_kind(level)]
        act_v = _ACTIVATION_FN[model.visible_kind(level)]

        def loss_fn(idx: torch.Tensor, level: int = level, enc: nn.Linear = enc,
                    dec: nn.Linear = dec, act_h=act_h, act_v=act_v) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                h = model.encode_below(x[idx], level)
            h_hat = act_v(dec(act_h(enc(corrupt(h, noise, "masking")))))
            return {"loss": reconstruction_mse(h_hat, h, reduction)}

        results.append(_sgd_phase(model, model.layer_parameters(level), loss_fn, x.shape[0],
                                  recipe, "layer", seed=seed,
                                  log_every=log_every, checkpoint=checkpoint.phase(f"sda{level}"),
                                  phase=f"sda{level}", step_offset=sum(r.steps for r in results),
                                  device=x.device))
        if x_val is not None:
            results[-1].history.append(_held_out_row(model, x_val, f"sda{level}",
                                                     sum(r.steps for r in results)))
    results.append(finetune_denoising(model, x, recipe, seed=seed, log_every=log_every,
                                      checkpoint=checkpoint,
                                      step_offset=sum(r.steps for r in results), x_val=x_val))
    return chain_results(results)
