"""RMN-GMM's configuration checks (no torch)."""

from __future__ import annotations

from typing import Any

from stages.plumbing.errors import ConfigError


def check_config(config: dict[str, Any]) -> None:
    """ConfigError when an ``rmn-rbm`` autoencoder asks for units other than logistic ones:
    RBMs unroll into sigmoid layers."""
    for ae_name, ae in config["autoencoders"].items():
        activation = ae.get("arch", {}).get("activation", "sigmoid")
        if ae.get("objective") == "rmn-rbm" and activation != "sigmoid":
            raise ConfigError(f"autoencoder '{ae_name}': objective 'rmn-rbm' unrolls RBMs into "
                              f"logistic layers and needs arch.activation 'sigmoid', not "
                              f"'{activation}'; use objective 'rmn-sda' for other activations")
