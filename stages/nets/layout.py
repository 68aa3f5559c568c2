"""Memory layout of image batches for the CPU's convolution kernels."""

from __future__ import annotations

import torch


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) with channels-last strides, the layout oneDNN's convolutions and PyTorch's
    max-pooling run fastest on (measured: ``bench/profiles``).

    ``x.contiguous(memory_format=torch.channels_last)`` leaves a one-channel batch with its NCHW
    strides (both layouts hold its values in the same order), and a convolution then writes its
    output channels-first. For C = 1 the same memory is viewed with channels-last strides
    instead: no copy, and the next convolution's output is channels-last."""
    if x.shape[1] != 1:
        return x.contiguous(memory_format=torch.channels_last)
    b, _, h, w = x.shape
    return x.contiguous().as_strided((b, 1, h, w), (h * w, 1, w, 1))
