"""RMN-GMM (Wang & Jiang, Neurocomputing 2021): RBM / denoising stage 1, the GMM init and the
RMN head."""

from stages.methods.family import Family, Head, Init, Network, Objective

_PRETRAIN = "stages.methods.rmn.pretrain"

FAMILY = Family(
    name="rmn-gmm",
    options="options.yaml",
    networks={"rmn-sae": Network("stages.nets.rmn", "RBMAutoencoder")},
    # Table 1 gives iterations: both objectives may count their phases in steps
    objectives={
        "rmn-rbm": Objective(_PRETRAIN, "pretrain_rbm", network="rmn-sae", counts_steps=True),
        "rmn-sda": Objective(_PRETRAIN, "pretrain_sda", network="rmn-sae", counts_steps=True),
    },
    inits={"gmm": Init("stages.methods.rmn.gmm_init", "gmm_arrays")},
    heads={"rmn": Head("stages.methods.rmn.head", init="gmm")},
    checks=("stages.methods.rmn.checks:check_config",),
    method_notes={
        "rmn-gmm": ("rmn-gmm, deepgmm, aef-gmm and aef-kmeans: the RMN-GMM paper reports MNIST "
                    "with all 70,000 images (the MNIST-full rows), not MNIST-test."),
    },
    nmi_variant="nmi_max",
)
