"""Where a workload's matmul and convolution time goes, op shape by op shape (used by
``bench_training.py --ops``; not a test).

:class:`OpRecorder` is a ``TorchDispatchMode`` that counts every call of the counted ops
(:data:`COUNTED`: convolutions and matmuls, forward and backward, as autograd dispatches them;
composite ops such as ``linear`` under ``inference_mode`` are decomposed into them first)
by its exact signature (the shapes, strides and dtypes of its tensors and its other
arguments). :func:`replay` then runs each distinct call alone on fresh tensors of the same
layout, times it and counts its FLOPs with PyTorch's FLOP counter. A call run alone finds its
operands in cache, so its replayed time is a lower bound on its time inside the workload, and
``total FLOP / replayed seconds`` an upper bound on the rate the workload could reach if
everything else in it (elementwise ops, copies, the optimiser) took no time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten
#: the ops whose calls are recorded and replayed
COUNTED = {aten.convolution.default, aten.convolution_backward.default, aten.mm.default,
           aten.addmm.default, aten.bmm.default, aten.baddbmm.default}


@dataclass(frozen=True)
class TensorSpec:
    """Layout of one tensor argument: enough to rebuild one like it."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: str

    def make(self) -> torch.Tensor:
        """A tensor of this layout (expanded dimensions, stride 0, included) viewing fresh
        N(0, 1) values."""
        size = 1 + sum((n - 1) * st for n, st in zip(self.shape, self.stride, strict=True)) if all(
            self.shape) else 0
        storage = torch.empty(size, dtype=self.dtype, device=self.device)
        storage = storage.normal_() if storage.is_floating_point() else storage.zero_()
        return storage.as_strided(self.shape, self.stride)

    def __str__(self) -> str:
        dims = "x".join(str(s) for s in self.shape)
        if len(self.shape) == 4 and not _contiguous(self):
            dims += " (channels last)" if _channels_last(self) else " (strided)"
        elif len(self.shape) == 2 and self.stride == (1, self.shape[0]):
            dims += "ᵀ"
        return dims


def _contiguous(spec: TensorSpec) -> bool:
    strides, step = [], 1
    for n in reversed(spec.shape):
        strides.insert(0, step)
        step *= n
    return tuple(strides) == spec.stride or 0 in spec.shape


def _channels_last(spec: TensorSpec) -> bool:
    _, c, h, w = spec.shape
    return spec.stride == (c * h * w, 1, w * c, c)


def _freeze(value: Any) -> Any:
    """An argument as a hashable, rebuildable spec."""
    if isinstance(value, torch.Tensor):
        return TensorSpec(tuple(value.shape), tuple(value.stride()), value.dtype,
                          str(value.device))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, TensorSpec):
        return value.make()
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


class OpRecorder(TorchDispatchMode):
    """Counts the calls of :data:`COUNTED` ops run inside it, by signature: ``calls`` maps
    (op, frozen args, frozen kwargs) to the number of calls."""

    def __init__(self):
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in COUNTED:
            key = (func, _freeze(args), tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
            self.calls[key] += 1
        else:
            # under inference_mode composite ops (conv2d, linear) arrive undecomposed: split
            # them into the counted ops, as FlopCounterMode does
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs)


@dataclass
class Replayed:
    """One distinct call, replayed: its op, tensor shapes, calls in the workload, FLOPs and
    seconds per call."""

    op: str
    shapes: str
    calls: int
    flop: float
    seconds: float

    @property
    def total_s(self) -> float:
        return self.calls * self.seconds

    @property
    def gflops(self) -> float:
        return self.flop / self.seconds / 1e9 if self.seconds else 0.0


def replay(calls: Counter, sync: Callable[[], None] = lambda: None,
           min_seconds: float = 0.05) -> list[Replayed]:
    """Run each recorded call alone (warm-up, then repeated for at least ``min_seconds``) on
    fresh tensors of its layout, ``sync`` waiting for the device around the timed part;
    returns them sorted by total replayed time, largest first."""
    out = []
    for (func, args, kwargs), count in calls.items():
        real_args, real_kwargs = _thaw(args), {k: _thaw(v) for k, v in kwargs}
        with torch.no_grad():
            with FlopCounterMode(display=False) as counter:
                func(*real_args, **real_kwargs)
            sync()
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < min_seconds or reps < 3:
                func(*real_args, **real_kwargs)
                reps += 1
            sync()
            seconds = (time.perf_counter() - t0) / reps
        shapes = ", ".join(str(a) for a in args if isinstance(a, TensorSpec))
        out.append(Replayed(str(func).removeprefix("aten."), shapes, count,
                            counter.get_total_flops(), seconds))
    return sorted(out, key=lambda r: -r.total_s)


def ops_table(replayed: list[Replayed], wall_s: float, matmul_gflops: float,
              top: int = 20) -> str:
    """Markdown: a summary (time in the counted ops when replayed alone against the workload's
    wall time, and the rate ceiling that implies) and the ``top`` call signatures by total
    replayed time, each with its GFLOP/s and its share of the matmul rate."""
    op_s = sum(r.total_s for r in replayed)
    flop = sum(r.calls * r.flop for r in replayed)
    ceiling = flop / op_s / 1e9 if op_s else 0.0
    lines = [
        f"Timed run {wall_s:.2f} s, {flop / 1e9:.1f} GFLOP ({flop / 1e9 / wall_s:.1f} GFLOP/s, "
        f"{100 * flop / 1e9 / wall_s / matmul_gflops:.0f}% of the matmul rate "
        f"{matmul_gflops:.1f} GFLOP/s of the run's dtype measured in the same process).",
        "",
        f"Its {sum(r.calls for r in replayed)} convolution and matmul calls ({len(replayed)} "
        f"distinct signatures), each replayed alone: {op_s:.2f} s ({100 * op_s / wall_s:.0f}% of "
        f"the run; the rest is elementwise ops, copies, reductions and the optimiser). Even with "
        f"that rest at zero the workload would run at most at {ceiling:.1f} GFLOP/s = "
        f"{100 * ceiling / matmul_gflops:.0f}% of the matmul rate.",
        "",
        "| op | tensor shapes | calls | GFLOP/call | ms/call | GFLOP/s | of matmul | total s | "
        "share of run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in replayed[:top]:
        lines.append(
            f"| `{r.op}` | {r.shapes} | {r.calls} | {r.flop / 1e9:.4f} | {1e3 * r.seconds:.3f} | "
            f"{r.gflops:.1f} | {100 * r.gflops / matmul_gflops:.0f}% | {r.total_s:.2f} | "
            f"{100 * r.total_s / wall_s:.1f}% |")
    if len(replayed) > top:
        rest = replayed[top:]
        lines.append(f"| ({len(rest)} more) | | {sum(r.calls for r in rest)} | | | | | "
                     f"{sum(r.total_s for r in rest):.2f} | "
                     f"{100 * sum(r.total_s for r in rest) / wall_s:.1f}% |")
    return "\n".join(lines) + "\n"
