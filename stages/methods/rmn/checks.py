"""RMN-GMM's configuration checks (no torch)."""

from __future__ import annotations

from typing import Any

from stages.plumbing.errors import ConfigError


def check_config(config: dict[str, Any]) -> None:
    """ConfigError when an ``rmn-rbm`` autoencoder asks for units other than logistic ones
    (RBMs unroll into sigmoid layers), or when a method with head ``rmn`` sets ``target_beta``
    itself while its ``eta`` (its own or ``head_defaults.rmn``'s) is not ``auto_beta``: the
    target would be ignored."""
    defaults = config.get("head_defaults", {}).get("rmn", {})
    for name, recipe in config["methods"].items():
        if recipe.get("head") != "rmn" or "target_beta" not in recipe:
            continue
        eta = recipe.get("eta", defaults.get("eta", "auto"))
        if eta != "auto_beta":
            raise ConfigError(f"method '{name}': target_beta ({recipe['target_beta']}) applies "
                              f"only with eta: auto_beta, not eta: {eta!r}; set eta: auto_beta "
                              "or drop the method's target_beta")
    for ae_name, ae in config["autoencoders"].items():
        activation = ae.get("arch", {}).get("activation", "sigmoid")
        if ae.get("objective") == "rmn-rbm" and activation != "sigmoid":
            raise ConfigError(f"autoencoder '{ae_name}': objective 'rmn-rbm' unrolls RBMs into "
                              f"logistic layers and needs arch.activation 'sigmoid', not "
                              f"'{activation}'; use objective 'rmn-sda' for other activations")
