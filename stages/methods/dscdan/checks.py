"""DSCDAN's configuration checks (no torch)."""

from __future__ import annotations

from typing import Any

from stages.plumbing.errors import ConfigError


def check_config(config: dict[str, Any]) -> None:
    """ConfigError when a dscdan method asks for ``bandwidth: global`` without a ``knn-graph``
    init, whose graph's sigma it reads, or for ``warm_start: prior`` on an autoencoder not
    pretrained with the mixture prior, whose classifier and means it reads."""
    for name, recipe in config["methods"].items():
        if recipe.get("family") == "baseline" or "head" not in recipe:
            continue
        merged = {**config.get("head_defaults", {}).get(recipe["head"], {}), **recipe}
        init = recipe.get("init")
        algorithm = config["inits"].get(init, {}).get("algorithm")
        if merged.get("bandwidth") == "global" and algorithm != "knn-graph":
            raise ConfigError(f"method '{name}': bandwidth 'global' needs an init with algorithm "
                              f"'knn-graph' (its graph's sigma), but init '{init}' has "
                              f"'{algorithm}'")
        if recipe.get("head") != "dscdan" or merged.get("warm_start", "prior") != "prior":
            continue
        ae = config.get("autoencoders", {}).get(recipe.get("ae"), {})
        if ae.get("objective") != "dscdan":
            continue
        prior = ae.get("prior", "mixture")
        if prior != "mixture" or float(ae.get("kl_weight", 1.0)) <= 0:
            raise ConfigError(f"method '{name}': warm_start 'prior' starts the head from the "
                              f"mixture prior of autoencoder '{recipe.get('ae')}', which is "
                              f"pretrained with prior '{prior}' and kl_weight "
                              f"{ae.get('kl_weight', 1.0)}: set its prior: mixture and a "
                              "positive kl_weight, or the method's warm_start: kmeans or none")
