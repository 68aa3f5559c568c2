"""SAIP workloads for ``bench/bench_training.py`` (see its docstring).

* ``saip-dae-pretrain``: the DAE's denoising pretraining (m-500-500-2000-10, centred inputs,
  Gaussian noise 0.3, SGD), batch 256;
* ``saip-hoe``: HOE's clustering epochs (encoder + centres on KL(P2 || P1), P1/P2 every batch,
  one prediction pass over all data per epoch for the stop rule), batch 256, after one DAE
  epoch and k-means; the stop rule is off (tol 0) so every epoch runs;
* ``saip-hoe-cnn-pretrain`` / ``saip-hoe-cnn``: the same for HOE(CNN)'s conv autoencoder.
"""

from __future__ import annotations

import time

WORKLOADS = ("saip-dae-pretrain", "saip-hoe", "saip-hoe-cnn-pretrain", "saip-hoe-cnn")

_OPTIMIZER = {"name": "sgd", "lr": 0.003, "momentum": 0.9, "weight_decay": 1e-9}


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def run(workload: str, data, x, epochs: int) -> tuple[int, int, float, float]:
    """(batch_size, steps, epochs, seconds) of ``workload`` on ``x`` (N, ...) on the device."""
    from stages.init import kmeans_init
    from stages.methods import saip
    from stages.methods.saip_pretrain import pretrain_denoising
    from stages.nets import build_network
    from stages.train import map_batches, steps_per_epoch

    cnn = "cnn" in workload
    net, arch = ("saip-cnn", {}) if cnn else ("sae", {"centre_input": True})
    model = build_network(net, data.input_shape, arch).to(x.device)
    batch = 256
    spe = steps_per_epoch(x.shape[0], batch)
    recipe = {"batch_size": batch, "optimizer": _OPTIMIZER, "noise": 0.3,
              "checkpoint_every": 10**9}
    if workload.endswith("pretrain"):
        _sync(x.device)
        t0 = time.perf_counter()
        res = pretrain_denoising(model, x, {**recipe, "epochs": epochs}, seed=0, log_every=spe)
        _sync(x.device)
        return batch, res.steps, res.steps / spe, time.perf_counter() - t0
    pretrain_denoising(model, x, {**recipe, "epochs": 1}, seed=0, log_every=spe)
    centres, _ = kmeans_init(map_batches(model.encode, x).cpu().numpy(), data.n_clusters, 20, 0)
    params = {"distance": "cosine", "optimizer": {**_OPTIMIZER, "lr": 1e-4}, "lr_decay": 0.9,
              "decay_epochs": epochs, "decay_repeats": 1, "tol": 0.0, "batch_size": batch,
              "checkpoint_every": 10**9}
    _sync(x.device)
    t0 = time.perf_counter()
    res = saip.finetune(model, x, {"centres": centres}, params, seed=0, log_every=spe)
    _sync(x.device)
    return batch, res.info["steps"], res.info["steps"] / spe, time.perf_counter() - t0
