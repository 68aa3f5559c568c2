"""DSCDAN's configuration checks (no torch)."""

from __future__ import annotations

from typing import Any

from stages.errors import ConfigError


def check_config(config: dict[str, Any]) -> None:
    """ConfigError when a method asks for ``bandwidth: global`` without a ``knn-graph`` init,
    whose graph's sigma it reads."""
    for name, recipe in config["methods"].items():
        if recipe.get("family") == "baseline" or "head" not in recipe:
            continue
        bandwidth = {**config.get("head_defaults", {}).get(recipe["head"], {}),
                     **recipe}.get("bandwidth")
        init = recipe.get("init")
        algorithm = config["inits"].get(init, {}).get("algorithm")
        if bandwidth == "global" and algorithm != "knn-graph":
            raise ConfigError(f"method '{name}': bandwidth 'global' needs an init with algorithm "
                              f"'knn-graph' (its graph's sigma), but init '{init}' has "
                              f"'{algorithm}'")
