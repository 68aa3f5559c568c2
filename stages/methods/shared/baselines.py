"""Shallow baselines on raw inputs: k-means, diagonal GMM and spectral clustering (scikit-learn),
and AC-PIC (DEPICT's :mod:`stages.methods.depict.acpic`, the graph clustering its Table 2
prints on raw pixels)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.mixture import GaussianMixture

from stages.methods.depict.acpic import acpic
from stages.plumbing.errors import ConfigError

#: the options of each algorithm (besides the recipe's ``name``, ``family`` and ``algorithm``)
OPTIONS: dict[str, tuple[str, ...]] = {
    "kmeans": ("n_init",), "gmm": ("n_init", "reg_covar"),
    "spectral": ("n_neighbors", "assign_labels"), "acpic": ("n_neighbors", "a", "zeta")}
#: scikit-learn's ways of labelling the spectral embedding
ASSIGN_LABELS = ("cluster_qr", "discretize", "kmeans")


def check_options(algorithm: str, params: dict[str, Any], n_samples: int) -> None:
    """ConfigError naming an unknown algorithm, an option the algorithm does not take, or an
    option's bad value (counts below 1, ``n_neighbors`` above ``n_samples``, a negative
    ``reg_covar``, an unknown ``assign_labels``, ``a`` not above 0, ``zeta`` outside (0, 1)),
    with the valid ones."""
    if algorithm not in OPTIONS:
        raise ConfigError(f"unknown baseline algorithm '{algorithm}'; valid choices: "
                          f"{', '.join(OPTIONS)}")
    unknown = sorted(set(params) - {"name", "family", "algorithm"} - set(OPTIONS[algorithm]))
    if unknown:
        raise ConfigError(f"baseline '{algorithm}': unknown option(s) "
                          f"{', '.join(map(repr, unknown))}; valid options: "
                          f"{', '.join(OPTIONS[algorithm])}")
    for key in ("n_init", "n_neighbors"):
        value = params.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"baseline '{algorithm}': {key} must be a whole number of at "
                              f"least 1, got {value!r}")
    if params.get("n_neighbors", 1) > n_samples:
        raise ConfigError(f"baseline '{algorithm}': n_neighbors {params['n_neighbors']} is more "
                          f"than the {n_samples} samples")
    reg_covar = params.get("reg_covar", 0.0)
    if isinstance(reg_covar, bool) or not isinstance(reg_covar, int | float) or reg_covar < 0:
        raise ConfigError(f"baseline '{algorithm}': reg_covar must be a number >= 0, got "
                          f"{reg_covar!r}")
    a = params.get("a", 1.0)
    if isinstance(a, bool) or not isinstance(a, int | float) or a <= 0:
        raise ConfigError(f"baseline '{algorithm}': a (the kernel width, sigma^2 = a x the mean "
                          f"squared neighbour distance) must be a number > 0, got {a!r}")
    zeta = params.get("zeta", 0.01)
    if isinstance(zeta, bool) or not isinstance(zeta, int | float) or not 0 < zeta < 1:
        raise ConfigError(f"baseline '{algorithm}': zeta must be a number in (0, 1), got "
                          f"{zeta!r}")
    if params.get("assign_labels", "cluster_qr") not in ASSIGN_LABELS:
        raise ConfigError(f"baseline '{algorithm}': unknown assign_labels "
                          f"{params['assign_labels']!r}; valid choices: {', '.join(ASSIGN_LABELS)}")


def cluster_raw(x: np.ndarray, n_clusters: int, algorithm: str, params: dict[str, Any],
                seed: int) -> np.ndarray:
    """Cluster flattened inputs.

    Args:
        x: samples (N, ...), flattened to (N, D).
        algorithm: ``kmeans`` (``n_init``), ``gmm`` (diagonal covariances, ``reg_covar``,
            ``n_init``), ``spectral`` (kNN affinity, ``n_neighbors``, ``assign_labels``) or
            ``acpic`` (``n_neighbors`` K, ``a``, ``zeta``; deterministic: ``seed`` unused).
    Returns:
        labels (N,) int64.
    Raises:
        ConfigError: see :func:`check_options`.
    """
    check_options(algorithm, params, x.shape[0])
    flat = x.reshape(x.shape[0], -1).astype(np.float64 if algorithm == "gmm" else np.float32)
    if algorithm == "acpic":
        labels, _ = acpic(flat, n_clusters, int(params.get("n_neighbors", 20)),
                          float(params.get("a", 1.0)), float(params.get("zeta", 0.01)))
        return labels
    if algorithm == "kmeans":
        model = KMeans(n_clusters, n_init=int(params.get("n_init", 10)), random_state=seed)
        labels = model.fit_predict(flat)
    elif algorithm == "gmm":
        model = GaussianMixture(n_clusters, covariance_type="diag",
                                reg_covar=float(params.get("reg_covar", 1e-3)),
                                n_init=int(params.get("n_init", 1)), init_params="kmeans",
                                random_state=seed)
        labels = model.fit_predict(flat)
    else:  # spectral
        model = SpectralClustering(n_clusters, affinity="nearest_neighbors",
                                   n_neighbors=int(params.get("n_neighbors", 10)),
                                   assign_labels=str(params.get("assign_labels", "cluster_qr")),
                                   random_state=seed, n_jobs=1)
        labels = model.fit_predict(flat)
    return np.asarray(labels, dtype=np.int64)
