"""The DEC family (DEC, IDEC, DCEC): stacked and convolutional autoencoders, the DEC head."""

from stages.methods.family import Family, Head, Network

FAMILY = Family(
    name="dec",
    options="options.yaml",
    networks={
        "sae": Network("stages.nets.dec", "StackedAutoencoder"),
        "cae": Network("stages.nets.dec", "ConvAutoencoder", "stages.nets.shapes:check_conv_input",
                       embedding_is_n_clusters=True),  # [paper] DCEC: embedding = #clusters
    },
    heads={"dec": Head("stages.methods.dec.head")},
    method_notes={
        "dec-public": ("dec-public is DEC† of the DCEC paper, obtained with DEC's public code "
                       "and its own pretraining; it is not comparable to the shared-SAE dec row."),
        "sec": ("sec is Spectral Embedded Clustering, reported by the DCEC paper for MNIST-full "
                "only."),
    },
    nmi_variant="nmi_sqrt",
)
