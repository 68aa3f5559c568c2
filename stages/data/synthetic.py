"""A small, deterministic, clusterable image dataset for tests: noisy bars at distinct places.

Cluster ``c`` is a bar ``width = max(1, side // 8)`` pixels thick: horizontal for even ``c``,
vertical for odd ``c``, at the ``c // 2``-th of ``ceil(k / 2)`` evenly spaced positions. Each
sample jitters the bar by -1..+1 pixel across its length, scales it by an intensity drawn from
U(0.6, 1), adds N(0, noise^2) pixel noise and clips to [0, 1]. Samples are shuffled. k-means on
the raw pixels separates the clusters almost perfectly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from stages.plumbing.errors import ConfigError


def _positive_int(params: Mapping[str, Any], key: str, minimum: int) -> int:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"synthetic: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def make_synthetic(params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """Generate the dataset from ``params`` (n_clusters, n_per_cluster, side, noise, seed).

    Returns ``X`` float32 ``(k * n_per_cluster, 1, side, side)`` in [0, 1], ``y`` int64 in
    0..k-1, and a sentence describing the generation for the ``preprocessing`` attribute.
    """
    k = _positive_int(params, "n_clusters", 2)
    n = _positive_int(params, "n_per_cluster", 1)
    side = _positive_int(params, "side", 4)
    seed = _positive_int(params, "seed", 0)
    noise = params["noise"]
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise <= 1:
        raise ConfigError(f"synthetic: noise must be a number in [0, 1], got {noise!r}")

    width = max(1, side // 8)
    n_positions = math.ceil(k / 2)
    spacing = side / (n_positions + 1)
    if spacing < width + 2:
        raise ConfigError(f"synthetic: side={side} is too small for {k} clusters (bars would "
                          f"overlap); use side >= {(width + 2) * (n_positions + 1)}")
    starts = [round((i + 1) * spacing - width / 2) for i in range(n_positions)]

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k, dtype=np.int64), n)
    jitter = rng.integers(-1, 2, size=labels.size)
    intensity = rng.uniform(0.6, 1.0, size=labels.size).astype(np.float32)
    images = np.zeros((labels.size, side, side), dtype=np.float32)
    for i, (c, shift) in enumerate(zip(labels, jitter, strict=True)):
        lo = min(max(starts[c // 2] + shift, 0), side - width)
        if c % 2 == 0:
            images[i, lo:lo + width, :] = intensity[i]
        else:
            images[i, :, lo:lo + width] = intensity[i]
    images += rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    order = rng.permutation(labels.size)
    description = (f"synthetic: {k} clusters x {n} samples of {side}x{side} noisy bars "
                   f"(width {width}, jitter +-1 px, intensity U(0.6,1), noise N(0,{noise}^2), "
                   f"clipped to [0,1]), shuffled; numpy default_rng(seed={seed})")
    return images[order, None], labels[order], description
