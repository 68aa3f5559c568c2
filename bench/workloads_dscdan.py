"""DSCDAN workloads for bench/bench_training.py (see its docstring).

* ``dscdan-pretrain``: Eq. 13 on the dual autoencoder with config.yaml's ``dscdan`` autoencoder
  recipe at ``schedule: paper`` (the run's network, loss terms and batch of 100; only the epochs
  are the bench's);
* ``dscdan-finetune``: the clustering phase (Eq. 20) with config.yaml's ``dscdan`` method recipe
  at ``schedule: paper`` (batch 1024, the run's loss weights), on an untrained autoencoder (the
  cost does not depend on the weights), without its stop rule; one epoch is one pass over the
  data (``ceil(N / 1024)`` steps);
* ``knn-exact`` / ``knn-approx``: the init stage's kNN graph (k=3, plus the 2nd neighbour for the
  bandwidth) of the 120-d codes of an untrained encoder, with the blockwise exact search or
  pynndescent; the embedding pass is not timed. ``epochs`` is 1 and ``batch_size`` the block.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

WORKLOADS = ("dscdan-pretrain", "dscdan-finetune", "knn-exact", "knn-approx")


CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def paper_recipes() -> tuple[dict[str, Any], dict[str, Any]]:
    """config.yaml's ``dscdan`` autoencoder and method recipes, resolved for ``schedule:
    paper``: what the reproduction run trains."""
    import yaml

    from stages.plumbing.config import method_and_autoencoder

    return method_and_autoencoder(yaml.safe_load(CONFIG.read_text()), "dscdan", "paper")


def run(workload: str, data, x, epochs: int, region, precision: str = "32", *,
        compile: bool = False) -> tuple[int, int, float]:
    """Run ``workload``: returns (batch_size, steps, epochs); the timed
    part runs inside ``region`` (``bench_training.Region``)."""
    loop = {"checkpoint_every": 10**9, "precision": precision, "compile": compile}  # no ckpts
    import numpy as np

    from stages.methods.dscdan import head as dscdan
    from stages.methods.dscdan import knn_graph
    from stages.methods.dscdan import pretrain as dscdan_pretrain
    from stages.nets import build_network
    from stages.runtime.train import map_batches

    device = x.device
    ae_recipe, method = paper_recipes()
    arch = {**ae_recipe["arch"], "prior_clusters": data.n_clusters}  # as the pretrain stage sets
    model = build_network(ae_recipe["net"], data.input_shape, arch).to(device)
    if workload == "dscdan-pretrain":
        recipe = {**ae_recipe, "epochs": epochs, **loop}
        with region:
            res = dscdan_pretrain.pretrain_dscdan(model, x, recipe, seed=0, log_every=10**9)
        return int(recipe["batch_size"]), res.steps, epochs
    z = map_batches(model.encode, x).cpu().numpy()
    if workload == "dscdan-finetune":
        batch = int(method["batch_size"])
        spe = math.ceil(x.shape[0] / batch)
        centres = z[np.random.default_rng(0).choice(len(z), data.n_clusters, replace=False)]
        # the clustering steps alone: no warm start (its head-only steps are timed nowhere)
        params = {**method, "steps_per_check": spe, "tol": 0.0, "max_epochs": epochs,
                  "warm_start": "none", **loop}
        with region:
            res = dscdan.finetune(model, x, {"centres": centres}, params, seed=0, log_every=spe)
        return batch, res.info["steps"], res.info["steps"] / spe
    threshold = 0 if workload == "knn-approx" else 10**12
    with region:
        graph = knn_graph.knn_graph(z, 3, 2, approximate_above=threshold, seed=0)
    assert graph["neighbors"].shape == (len(z), 3)
    return 2048, 1, 1.0
