"""A seeded random subset of a dataset's rows, the same wherever it is drawn: the samples of
the t-SNE maps (stages.reporting.plots, stages.reporting.paper_figures) and of the embedding
snapshots (stages.runtime.snapshots). Imports numpy only, so training stages can use it."""

from __future__ import annotations

import numpy as np


def subset_indices(n: int, n_points: int, seed: int) -> np.ndarray:
    """Sorted random subset of ``min(n, n_points)`` indices drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, n_points), replace=False))
