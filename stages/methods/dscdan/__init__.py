"""DSCDAN (Yang et al., CVPR 2019): the dual autoencoder and its pretraining, the kNN-graph init
and the spectral head."""

from stages.methods.family import Family, Head, Init, Network, Objective

FAMILY = Family(
    name="dscdan",
    options="options.yaml",
    networks={"dscdan": Network("stages.nets.dscdan", "DualAutoencoder",
                                "stages.nets.shapes:check_dscdan_input", unit_input=True,
                                n_clusters_option="prior_clusters")},
    objectives={"dscdan": Objective("stages.methods.dscdan.pretrain", "pretrain_dscdan",
                                    network="dscdan")},
    inits={"knn-graph": Init("stages.methods.dscdan.knn_graph", "knn_graph_arrays")},
    heads={"dscdan": Head("stages.methods.dscdan.head", networks=frozenset({"dscdan"}))},
    checks=("stages.methods.dscdan.checks:check_config",),
    method_notes={
        "dscdan-convae-mi-rs": ("DSCDAN's Table 4 prints its MNIST columns as 'ACC NMI', but its "
                                "last row matches Table 3 only when read as (NMI, ACC); the "
                                "ablation rows (dscdan-convae*) are read that way."),
    },
    nmi_variant="nmi_max",
)
