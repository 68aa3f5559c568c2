"""Parts every family uses (targets, noise, reconstruction pretraining, k-means, neighbours) and
the shallow baselines, registered as the ``baseline`` family."""

from stages.methods.family import Family, Init, Objective

FAMILY = Family(
    name="baseline",
    options="options.yaml",
    objectives={"reconstruction": Objective("stages.methods.shared.reconstruction",
                                            "pretrain_autoencoder")},
    inits={"kmeans": Init("stages.methods.shared.kmeans", "kmeans_arrays")},
    baseline_module="stages.methods.shared.baselines",
    nmi_variant="nmi_sqrt",
)
