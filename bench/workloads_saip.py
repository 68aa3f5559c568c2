"""SAIP workloads for ``bench/bench_training.py`` (see its docstring), on config.yaml's recipes at
``schedule: paper`` (the reproduction runs' networks, optimisers and batch sizes; only the epochs
are the bench's):

* ``saip-dae-pretrain``: the ``dae`` autoencoder's denoising pretraining (m-500-500-2000-10,
  centred inputs, Gaussian noise 0.3, SGD), batch 256;
* ``saip-hoe``: ``saip-hoe``'s clustering epochs (encoder + centres on Eq. 5 in the configured
  reading, P1/P2 every batch, one prediction pass over all data per epoch for the stop rule),
  batch 256, after one DAE epoch and k-means; the stop rule is off (tol 0) and the lr is not
  decayed, so every epoch runs alike;
* ``saip-hoe-cnn-pretrain`` / ``saip-hoe-cnn``: the same for HOE(CNN)'s ``dae-cnn``
  autoencoder (Adam, mean reconstruction error, output bias from the mean image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORKLOADS = ("saip-dae-pretrain", "saip-hoe", "saip-hoe-cnn-pretrain", "saip-hoe-cnn")

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def paper_recipes(workload: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(autoencoder recipe, method recipe) that ``workload``'s reproduction run trains."""
    import yaml

    from stages.plumbing.config import method_and_autoencoder

    method = "saip-hoe-cnn" if "cnn" in workload else "saip-hoe"
    return method_and_autoencoder(yaml.safe_load(CONFIG.read_text()), method, "paper")


def run(workload: str, data, x, epochs: int, region, precision: str = "32", *,
        compile: bool = False) -> tuple[int, int, float]:
    """(batch_size, steps, epochs) of ``workload`` on ``x`` (N, ...) on the device; the timed
    part runs inside ``region`` (``bench_training.Region``)."""
    loop = {"checkpoint_every": 10**9, "precision": precision, "compile": compile}  # no ckpts
    from stages.methods.saip import head as saip
    from stages.methods.saip.pretrain import pretrain_denoising
    from stages.methods.shared.kmeans import kmeans_init
    from stages.nets import build_network
    from stages.runtime.train import map_batches, steps_per_epoch

    ae, method = paper_recipes(workload)
    model = build_network(ae["net"], data.input_shape, ae.get("arch", {})).to(x.device)
    ae = {**ae, **loop}
    if workload.endswith("pretrain"):
        batch = int(ae["batch_size"])
        with region:
            res = pretrain_denoising(model, x, {**ae, "epochs": epochs}, seed=0,
                                     log_every=steps_per_epoch(x.shape[0], batch))
        return batch, res.steps, res.steps / steps_per_epoch(x.shape[0], batch)
    pretrain_denoising(model, x, {**ae, "epochs": 1}, seed=0, log_every=10**9)
    centres, _ = kmeans_init(map_batches(model.encode, x).cpu().numpy(), data.n_clusters, 20, 0)
    batch = int(method["batch_size"])
    spe = steps_per_epoch(x.shape[0], batch)
    # a fixed number of epochs: one lr period and no stop rule (tol 0, checked from the start)
    params = {**method, "decay_epochs": epochs, "decay_repeats": 1, "tol": 0.0,
              "stop_after": "start", **loop}
    with region:
        res = saip.finetune(model, x, {"centres": centres}, params, seed=0, log_every=spe)
    return batch, res.info["steps"], res.info["steps"] / spe
