"""DEPICT (Ghasedi Dizaji et al., ICCV 2017): its network, MdA/SdA/RdA pretraining, AC-PIC and
the head."""

from stages.methods.family import Family, Head, Init, Network, Objective

_PRETRAIN = "stages.methods.depict.pretrain"

FAMILY = Family(
    name="depict",
    options="options.yaml",
    networks={"depict": Network("stages.nets.depict", "DepictAutoencoder",
                                "stages.nets.shapes:check_depict_input",
                                embedding_is_n_clusters=True, unit_input=True)},
    objectives={
        "depict-mda": Objective(_PRETRAIN, "pretrain_mda", network="depict"),
        "depict-sda": Objective(_PRETRAIN, "pretrain_sda", network="depict"),
        "depict-rda": Objective(_PRETRAIN, "pretrain_rda", network="depict"),
    },
    inits={"acpic": Init("stages.methods.depict.acpic", "acpic_arrays")},
    heads={"depict": Head("stages.methods.depict.head", networks=frozenset({"depict"}))},
    method_notes={
        "depict-convae-kmeans": ("depict-convae-kmeans (k-means++ on the MdA embeddings, as the "
                                 "DEPICT code starts its MNIST-full runs) has no published row; "
                                 "depict-convae-acpic is the paper's Deep-ConvAE + AC-PIC (MdA)."),
    },
    nmi_variant="nmi_max",
)
