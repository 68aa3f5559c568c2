"""SAIP (Peng et al., TNNLS 2020): the denoising pretraining, the HOE(CNN) network and the head."""

from stages.methods.family import Family, Head, Network, Objective

FAMILY = Family(
    name="saip",
    options="options.yaml",
    networks={"saip-cnn": Network("stages.nets.saip", "SaipConvAutoencoder",
                                  "stages.nets.shapes:check_saip_cnn_input",
                                  unit_input=True)},  # sigmoid reconstruction
    objectives={"denoising": Objective("stages.methods.saip.pretrain", "pretrain_denoising")},
    checks=("stages.methods.saip.checks:check_config",),
    # the head trains ``net.encoder``, which the DEPICT network does not have
    heads={"saip": Head("stages.methods.saip.head",
                        networks=frozenset({"sae", "cae", "saip-cnn"}))},
    nmi_variant="nmi_sqrt",
)
