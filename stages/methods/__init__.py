"""Clustering heads: which module fine-tunes each kind of method.

A method recipe in ``config.yaml`` names a ``head``; the finetune stage looks it up here. The
workflow lists the head's module file as an input of the jobs that use it, so editing it reruns
exactly those jobs.
"""

from __future__ import annotations

from stages.errors import ConfigError

#: head name -> module holding ``finetune(...)``; ``None``: no fine-tuning, the init labels stand
HEADS: dict[str, str | None] = {
    "none": None,
    "dec": "stages.methods.dec",
    "depict": "stages.methods.depict",
    "saip": "stages.methods.saip",
    "rmn": "stages.methods.rmn",
    "dscdan": "stages.methods.dscdan",
}

#: heads that only work on some networks: head -> nets (DEPICT's head needs its own network;
#: SAIP trains ``net.encoder``, which the DEPICT network does not have)
HEAD_NETWORKS: dict[str, frozenset[str]] = {
    "depict": frozenset({"depict"}),
    "dscdan": frozenset({"dscdan"}),
    "saip": frozenset({"sae", "cae", "saip-cnn"}),
}

#: heads that need the arrays of one init algorithm: head -> algorithm
HEAD_INIT: dict[str, str] = {"rmn": "gmm"}

#: pretraining objective (an autoencoder recipe's ``objective``) -> (module, function) with
#: signature ``f(model, x, recipe, *, seed, log_every, checkpoint) -> stages.train.LoopResult``
PRETRAIN_OBJECTIVES: dict[str, tuple[str, str]] = {
    "reconstruction": ("stages.pretrain", "pretrain_autoencoder"),
    "depict-mda": ("stages.methods.depict_pretrain", "pretrain_mda"),
    "depict-sda": ("stages.methods.depict_pretrain", "pretrain_sda"),
    "depict-rda": ("stages.methods.depict_pretrain", "pretrain_rda"),
    "denoising": ("stages.methods.saip_pretrain", "pretrain_denoising"),
    "rmn-rbm": ("stages.methods.rmn_pretrain", "pretrain_rbm"),
    "rmn-sda": ("stages.methods.rmn_pretrain", "pretrain_sda"),
    "dscdan": ("stages.methods.dscdan_pretrain", "pretrain_dscdan"),
}

#: objectives that only work on one network: objective -> net
OBJECTIVE_NETWORK: dict[str, str] = {name: "depict" for name in PRETRAIN_OBJECTIVES
                                     if name.startswith("depict-")}
OBJECTIVE_NETWORK.update({"rmn-rbm": "rmn-sae", "rmn-sda": "rmn-sae", "dscdan": "dscdan"})

#: shallow baselines clustering raw inputs, all in one module
BASELINE_MODULE = "stages.methods.baselines"

#: init algorithm (an init recipe's ``algorithm``) -> (module, function) with signature
#: ``f(z (N, d) float32, n_clusters, recipe, seed) -> dict[str, np.ndarray]``; the dict always
#: holds ``labels`` (N,) int64 (the prediction of the methods without fine-tuning) and whatever
#: the heads that use it read (``centres`` (K, d) for k-means)
INIT_ALGORITHMS: dict[str, tuple[str, str]] = {
    "kmeans": ("stages.init", "kmeans_arrays"),
    "gmm": ("stages.methods.gmm_init", "gmm_arrays"),
    "knn-graph": ("stages.methods.knn_graph", "knn_graph_arrays"),
    "acpic": ("stages.methods.acpic", "acpic_arrays"),
}


def head_module(head: str) -> str | None:
    if head not in HEADS:
        raise ConfigError(f"unknown head '{head}'; valid choices: {', '.join(sorted(HEADS))}")
    return HEADS[head]


def pretrain_objective(objective: str) -> tuple[str, str]:
    """(module, function) of a pretraining objective; ConfigError naming the valid choices."""
    if objective not in PRETRAIN_OBJECTIVES:
        raise ConfigError(f"unknown pretraining objective '{objective}'; valid choices: "
                          f"{', '.join(sorted(PRETRAIN_OBJECTIVES))}")
    return PRETRAIN_OBJECTIVES[objective]


def init_algorithm(algorithm: str) -> tuple[str, str]:
    """(module, function) of an init algorithm; ConfigError naming the valid choices."""
    if algorithm not in INIT_ALGORITHMS:
        raise ConfigError(f"unknown init algorithm '{algorithm}'; valid choices: "
                          f"{', '.join(sorted(INIT_ALGORITHMS))}")
    return INIT_ALGORITHMS[algorithm]
