"""SAIP workloads for ``bench/bench_training.py`` (see its docstring).

* ``saip-dae-pretrain``: the DAE's denoising pretraining (m-500-500-2000-10, centred inputs,
  Gaussian noise 0.3, SGD), batch 256;
* ``saip-hoe``: HOE's clustering epochs (encoder + centres on Eq. 5 in the reading ``KL``,
  P1/P2 every batch, one prediction pass over all data per epoch for the stop rule), batch 256,
  after one DAE epoch and k-means; the stop rule is off (tol 0) so every epoch runs;
* ``saip-hoe-cnn-pretrain`` / ``saip-hoe-cnn``: the same for HOE(CNN)'s conv autoencoder.
"""

from __future__ import annotations

WORKLOADS = ("saip-dae-pretrain", "saip-hoe", "saip-hoe-cnn-pretrain", "saip-hoe-cnn")

#: the reading of the objective the default run uses (``head_defaults.saip.kl``)
KL = "p1_p2"
_OPTIMIZER = {"name": "sgd", "lr": 0.003, "momentum": 0.9, "weight_decay": 1e-9}


def run(workload: str, data, x, epochs: int, region) -> tuple[int, int, float]:
    """(batch_size, steps, epochs) of ``workload`` on ``x`` (N, ...) on the device; the timed
    part runs inside ``region`` (``bench_training.Region``)."""
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
        with region:
            res = pretrain_denoising(model, x, {**recipe, "epochs": epochs}, seed=0, log_every=spe)
        return batch, res.steps, res.steps / spe
    pretrain_denoising(model, x, {**recipe, "epochs": 1}, seed=0, log_every=spe)
    centres, _ = kmeans_init(map_batches(model.encode, x).cpu().numpy(), data.n_clusters, 20, 0)
    params = {"distance": "cosine", "kl": KL, "optimizer": {**_OPTIMIZER, "lr": 1e-4},
              "lr_decay": 0.9, "decay_epochs": epochs, "decay_repeats": 1, "tol": 0.0,
              "batch_size": batch,
              "checkpoint_every": 10**9}
    with region:
        res = saip.finetune(model, x, {"centres": centres}, params, seed=0, log_every=spe)
    return batch, res.info["steps"], res.info["steps"] / spe
