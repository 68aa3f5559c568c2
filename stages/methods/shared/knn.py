"""Nearest neighbours of embeddings: exact (blockwise, any torch device) and approximate
(pynndescent's NN-descent)."""

from __future__ import annotations

import numpy as np
import torch

#: points beyond which the approximate search is used [default]
APPROXIMATE_ABOVE = 100_000


def exact_knn(z: np.ndarray | torch.Tensor, n_neighbors: int, block: int = 2048,
              device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (excluding the point itself) of every row of z (N, d).

    Rows are processed in blocks of ``block``: each block's distances to all N points (block, N)
    are computed with ``torch.cdist`` and reduced with ``topk``.

    Returns:
        (indices (N, k) int64, Euclidean distances (N, k) float32), nearest first.
    """
    zt = torch.as_tensor(np.asarray(z, dtype=np.float32) if not torch.is_tensor(z) else z,
                         dtype=torch.float32, device=device)
    n = zt.shape[0]
    if not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must lie in [1, {n - 1}] for {n} points; got {n_neighbors}")
    indices, distances = [], []
    with torch.inference_mode():
        for start in range(0, n, block):
            stop = min(start + block, n)
            d2 = torch.cdist(zt[start:stop], zt).pow(2)                 # (block, N)
            rows = torch.arange(stop - start, device=zt.device)
            d2[rows, rows + start] = float("inf")
            dist, idx = torch.topk(d2, n_neighbors, dim=1, largest=False)
            indices.append(idx.cpu())
            distances.append(dist.sqrt().cpu())
    return torch.cat(indices).numpy().astype(np.int64), torch.cat(distances).numpy()


def approximate_knn(z: np.ndarray, n_neighbors: int, seed: int = 0,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours (excluding the point itself) with pynndescent, on as
    many threads as torch has (numba's and torch's counts are both left at that).

    Returns:
        (indices (N, k) int64, Euclidean distances (N, k) float32), nearest first.
    """
    threads = torch.get_num_threads()
    import numba
    from pynndescent import NNDescent

    # importing numba resets OpenMP's thread count, torch's included, to every core: keep the
    # stage's (the rule's ``threads``) for both
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    z = np.ascontiguousarray(z, dtype=np.float32)
    index = NNDescent(z, n_neighbors=n_neighbors + 1, metric="euclidean", random_state=seed,
                      n_jobs=1, low_memory=True)
    idx, dist = index.neighbor_graph
    own = idx == np.arange(z.shape[0])[:, None]
    # drop each row's own entry (or, where NN-descent missed it, the farthest one)
    drop = np.where(own.any(axis=1), own.argmax(axis=1), n_neighbors)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(z.shape[0]), drop] = False
    n = z.shape[0]
    return (idx[keep].reshape(n, n_neighbors).astype(np.int64),
            dist[keep].reshape(n, n_neighbors).astype(np.float32))
