"""Numerical precision of the networks: ``32`` (fp32 throughout), ``bf16-mixed``, or ``auto``.

Under ``bf16-mixed`` every ``nn.Linear``, ``nn.Conv{1,2}d`` and ``nn.ConvTranspose2d`` of a
module computes under ``torch.autocast(device, bfloat16)`` (inputs and weights cast to bf16,
fp32 accumulation inside the kernel, the weight gradients cast back to the fp32 master
weights) and returns its output as fp32. Everything between those layers, and everything the
methods compute from a network's outputs, stays in fp32 (or the fp64 its code asks for):
activations and batch norm, reconstruction losses, DEC/DEPICT/SAIP target distributions and
KL terms, DSCDAN's spectral and mutual-information terms, RMN's Cholesky factors and GMM
updates, k-means, and every metric. Code that calls ``F.linear``/``F.conv2d`` on weights
directly (RMN's RBM stage 1, parts of DSCDAN's decoder) stays fp32.

On CUDA, ``bf16-mixed`` also lets the remaining fp32 matmuls use TF32 tensor cores; ``32``
keeps them in true fp32, the setting the reproduction runs use.

``auto`` is ``bf16-mixed`` where the device computes bf16 natively (a CUDA GPU that supports
it; a CPU whose flags include ``avx512_bf16`` or ``amx_bf16``, read from ``/proc/cpuinfo``) and
``32`` elsewhere, where bf16 would be emulated and slower: the quick schedule's setting for the
recipes whose results were shown not to move with precision.

The layers are switched by changing their class to a subclass with a mixed forward, so
parameter names, ``state_dict`` keys, checkpoints and deep copies stay as they are.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from stages.plumbing.errors import ConfigError

log = logging.getLogger("stages.runtime.precision")

#: the choices of ``precision`` (Lightning's names, and ``auto``)
PRECISIONS = ("32", "bf16-mixed", "auto")
#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def check_precision(precision: Any) -> str:
    """``precision`` as a string of :data:`PRECISIONS`; ConfigError naming the choices."""
    text = str(precision)
    if text not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; valid choices: "
                          f"{', '.join(PRECISIONS)} (quote 32 in YAML or leave it as a number)")
    return text


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from ``path`` (the first ``flags`` line); empty where there is
    no such file (not Linux)."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU with bf16 support, or a CPU with
    one of :data:`BF16_CPU_FLAGS`."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(cpu_flags() & set(BF16_CPU_FLAGS))


def effective_precision(precision: Any, device: torch.device) -> str:
    """``precision`` checked, with ``auto`` resolved for ``device`` (see the module
    docstring): ``32`` or ``bf16-mixed``."""
    precision = check_precision(precision)
    if precision == "auto":
        chosen = "bf16-mixed" if native_bf16(device) else "32"
        log.info("precision auto: %s on %s", chosen, device)
        return chosen
    return precision


class _MixedForward:
    """Mixin: the layer's own forward under bf16 autocast, its output returned as fp32."""

    _amp_device: str = "cpu"

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.autocast(self._amp_device, dtype=torch.bfloat16):
            out = super().forward(x, *args, **kwargs)
        return out.float()


class MixedLinear(_MixedForward, nn.Linear):
    """``nn.Linear`` computing in bf16, returning fp32 (N, out_features)."""


class MixedConv1d(_MixedForward, nn.Conv1d):
    """``nn.Conv1d`` computing in bf16, returning fp32 (N, C_out, L_out)."""


class MixedConv2d(_MixedForward, nn.Conv2d):
    """``nn.Conv2d`` computing in bf16, returning fp32 (N, C_out, H_out, W_out)."""


class MixedConvTranspose2d(_MixedForward, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` computing in bf16, returning fp32 (N, C_out, H_out, W_out)."""


#: fp32 layer class -> its mixed subclass
_MIXED: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: MixedLinear, nn.Conv1d: MixedConv1d, nn.Conv2d: MixedConv2d,
    nn.ConvTranspose2d: MixedConvTranspose2d,
}
_PLAIN = {mixed: plain for plain, mixed in _MIXED.items()}


def use_precision(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """Switch every matmul/conv layer of ``model`` to ``precision`` in place (``auto``
    resolved for ``device``); returns ``model``.

    Idempotent, and reversible (``"32"`` restores the plain layers). Layers of classes other
    than exactly those in ``_MIXED`` (subclasses with their own forward) are left in fp32.
    """
    precision = effective_precision(precision, device)
    for module in model.modules():
        cls = type(module)
        if precision == "bf16-mixed" and cls in _MIXED:
            module.__class__ = _MIXED[cls]
        elif precision == "32" and cls in _PLAIN:
            module.__class__ = _PLAIN[cls]
        if isinstance(module, _MixedForward):
            module._amp_device = device.type
    if device.type == "cuda":
        allow = precision == "bf16-mixed"
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.backends.cudnn.allow_tf32 = allow
    return model


def mixed_layers(model: nn.Module) -> int:
    """How many of ``model``'s layers compute in bf16."""
    return sum(isinstance(m, _MixedForward) for m in model.modules())
