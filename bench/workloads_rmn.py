"""RMN-GMM workloads for ``bench/bench_training.py`` (see its docstring):

* ``rmn-rbm``: step 1 of stage 1, the four greedy CD-1 RBMs (784-500-500-2000-10), ``epochs``
  each (one epoch = one pass of every RBM over the data), batch 256;
* ``rmn-dae``: step 3 of stage 1, the denoising fine-tune of all eight layers with DEC-DA's
  augmentation, batch 256;
* ``rmn-joint``: stage 3, the encoder with the RMN (Eqs. 8, 10-12), batch 128, after the gmm init
  on the untrained encoder's representations (not timed).
"""

from __future__ import annotations

WORKLOADS = ("rmn-rbm", "rmn-dae", "rmn-joint")


def run(workload: str, data, x, epochs: int, region, precision: str = "32", *,
        compile: bool = False) -> tuple[int, int, float]:
    """Run ``workload``; returns (batch size, steps, epochs); the timed
    part runs inside ``region`` (``bench_training.Region``)."""
    loop = {"checkpoint_every": 10**9, "precision": precision, "compile": compile}  # no ckpts

    from stages.methods.rmn import head as rmn
    from stages.methods.rmn import pretrain as rmn_pretrain
    from stages.methods.rmn.gmm_init import gmm_arrays
    from stages.nets import build_network
    from stages.runtime.train import map_batches

    device = x.device
    model = build_network("rmn-sae", data.input_shape, {}).to(device)
    recipe = {"batch_size": 256, "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
              "noise": 0.2, "augment": x.dim() == 4, "reconstruction": "sum",
              "gaussian_rbm_lr": 0.001, "layer_epochs": epochs, "epochs": 0,
              **loop}
    if workload == "rmn-rbm":
        with region:
            res = rmn_pretrain.pretrain_rbm(model, x, recipe, seed=0, log_every=10**9)
        return 256, res.steps, epochs * model.n_levels
    if workload == "rmn-dae":
        with region:
            res = rmn_pretrain.finetune_denoising(model, x, {**recipe, "epochs": epochs}, seed=0,
                                                  log_every=10**9,
                                                  checkpoint=rmn_pretrain.Checkpointer(None))
        return 256, res.steps, epochs
    z = map_batches(model.encode, x).cpu().numpy()
    init = gmm_arrays(z, data.n_clusters, {}, seed=0)
    params = {"eta": "auto", "epochs": epochs, "lr": 0.01, "encoder_lr": 1e-5,
              "batch_size": 128, **loop}
    with region:
        res = rmn.finetune(model, x, init, params, seed=0, log_every=10**9)
    return 128, res.info["steps"], epochs
