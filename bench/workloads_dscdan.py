"""DSCDAN workloads for bench/bench_training.py (see its docstring).

* ``dscdan-pretrain``: Eq. 13 on the dual autoencoder at the paper's sizes (120-d code, both MI
  discriminators 120 wide), batch 100 [code];
* ``dscdan-finetune``: the clustering phase (Eq. 20) at the paper's sizes, batch 1024 [code], on
  an untrained autoencoder (the cost does not depend on the weights); one epoch is one pass over
  the data (``ceil(N / 1024)`` steps);
* ``knn-exact`` / ``knn-approx``: the init stage's kNN graph (k=3, plus the 2nd neighbour for the
  bandwidth) of the 120-d codes of an untrained encoder, with the blockwise exact search or
  pynndescent; the embedding pass is not timed. ``epochs`` is 1 and ``batch_size`` the block.
"""

from __future__ import annotations

import math

WORKLOADS = ("dscdan-pretrain", "dscdan-finetune", "knn-exact", "knn-approx")


def run(workload: str, data, x, epochs: int, region) -> tuple[int, int, float]:
    """Run ``workload``: returns (batch_size, steps, epochs); the timed
    part runs inside ``region`` (``bench_training.Region``)."""
    import numpy as np

    from stages.methods import dscdan, dscdan_pretrain, knn_graph
    from stages.nets import build_network
    from stages.train import map_batches

    device = x.device
    model = build_network("dscdan", data.input_shape, {"latent_dim": 120}).to(device)
    if workload == "dscdan-pretrain":
        recipe = {"epochs": epochs, "batch_size": 100, "optimizer": {"name": "adam", "lr": 1e-3},
                  "checkpoint_every": 10**9}
        with region:
            res = dscdan_pretrain.pretrain_dscdan(model, x, recipe, seed=0, log_every=10**9)
        return 100, res.steps, epochs
    z = map_batches(model.encode, x).cpu().numpy()
    if workload == "dscdan-finetune":
        batch = 1024
        spe = math.ceil(x.shape[0] / batch)
        centres = z[np.random.default_rng(0).choice(len(z), data.n_clusters, replace=False)]
        params = {"batch_size": batch, "lr": 1e-3, "steps_per_check": spe, "tol": 0.0,
                  "max_epochs": epochs, "checkpoint_every": 10**9}
        with region:
            res = dscdan.finetune(model, x, {"centres": centres}, params, seed=0, log_every=spe)
        return batch, res.info["steps"], res.info["steps"] / spe
    threshold = 0 if workload == "knn-approx" else 10**12
    with region:
        graph = knn_graph.knn_graph(z, 3, 2, approximate_above=threshold, seed=0)
    assert graph["neighbors"].shape == (len(z), 3)
    return 2048, 1, 1.0
