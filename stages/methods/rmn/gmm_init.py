"""The ``gmm`` init algorithm: a diagonal-covariance GMM fitted by EM on the embeddings.

RMN-GMM's second stage (Wang & Jiang 2021, Sect. 3.3 and 4.3) [paper]: encode all samples, fit a
GMM with K components by EM, and copy (mu_k, sigma²_k, omega_k) into the RMN's Λ layer; its EM
assignment is the AEF+GMM method. scikit-learn's ``GaussianMixture(K, covariance_type='diag',
init_params='kmeans', reg_covar=1e-6, max_iter=100)`` [default, methods.md §5.3], keeping the
best likelihood of the recipe's ``n_init`` runs (config.yaml: 20); ``n_init``, ``reg_covar`` and
``max_iter`` are set in the init recipe (1 when it has none).

[default] The GMM is fitted on z / s, s² the codes' mean per-dimension variance (the spread
within dimensions, not the offsets between them), and its parameters are mapped back (mu s,
sigma² s²): the same fit for codes of any scale, with ``reg_covar`` relative to that variance.
Fitted on the raw codes, an absolute 1e-6 swamped the per-dimension variances (about 1e-8) of
a briefly trained RBM stack and put every point in one component (measured on the workflow
test's synthetic data: one component, against three populated on z / s).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.mixture import GaussianMixture


def fit_gmm(z: np.ndarray, n_clusters: int, recipe: dict[str, Any],
            seed: int) -> tuple[GaussianMixture, float]:
    """The fitted ``GaussianMixture`` on z / s (N, d) and the scale s (see the module
    docstring); ``recipe``: ``n_init`` (default 1), ``reg_covar``, ``max_iter``."""
    z = np.asarray(z, dtype=np.float64)
    scale = float(np.sqrt(z.var(axis=0).mean())) or 1.0
    gmm = GaussianMixture(n_clusters, covariance_type="diag",
                          reg_covar=float(recipe.get("reg_covar", 1e-6)),
                          n_init=int(recipe.get("n_init", 1)),
                          max_iter=int(recipe.get("max_iter", 100)), init_params="kmeans",
                          random_state=seed)
    gmm.fit(z / scale)
    return gmm, scale


def gmm_arrays(z: np.ndarray, n_clusters: int, recipe: dict[str, Any],
               seed: int) -> dict[str, np.ndarray]:
    """Fit a diagonal GMM to z (N, d), scale-invariantly (see the module docstring).

    Returns:
        ``means`` (K, d) float32, ``variances`` (K, d) float32, ``weights`` (K,) float32 summing
        to one, ``labels`` (N,) int64 (argmax posterior) and ``converged`` () bool.
    """
    gmm, scale = fit_gmm(z, n_clusters, recipe, seed)
    labels = gmm.predict(np.asarray(z, dtype=np.float64) / scale)
    weights = gmm.weights_ / gmm.weights_.sum()
    return {"means": (gmm.means_ * scale).astype(np.float32),
            "variances": (gmm.covariances_ * scale ** 2).astype(np.float32),
            "weights": weights.astype(np.float32),
            "labels": labels.astype(np.int64),
            "converged": np.asarray(bool(gmm.converged_))}
