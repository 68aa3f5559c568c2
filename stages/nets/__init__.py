"""Network registry: build an autoencoder by name; check input shapes without importing torch."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from stages.errors import ConfigError
from stages.nets.shapes import (
    check_any,
    check_conv_input,
    check_depict_input,
    check_dscdan_input,
    check_saip_cnn_input,
)

#: name -> (module, class, input check raising ValueError); modules import torch lazily
NETWORKS: dict[str, tuple[str, str, Callable[[Sequence[int]], None]]] = {
    "sae": ("stages.nets.dec", "StackedAutoencoder", check_any),
    "cae": ("stages.nets.dec", "ConvAutoencoder", check_conv_input),
    "depict": ("stages.nets.depict", "DepictAutoencoder", check_depict_input),
    "saip-cnn": ("stages.nets.saip", "SaipConvAutoencoder", check_saip_cnn_input),
    "rmn-sae": ("stages.nets.rmn", "RBMAutoencoder", check_any),
    "dscdan": ("stages.nets.dscdan", "DualAutoencoder", check_dscdan_input),
}


#: networks whose embedding size is the number of clusters [DCEC and DEPICT papers]
EMBEDDING_IS_N_CLUSTERS = frozenset({"cae", "depict"})

#: networks that map inputs from [0, 1] to their own range, so data must lie in [0, 1]
UNIT_INPUT = frozenset({"depict", "dscdan", "saip-cnn"})  # HOE(CNN): sigmoid reconstruction


def network_names() -> list[str]:
    return sorted(NETWORKS)


def network_module(net: str) -> str:
    """Dotted module that defines network ``net`` (the workflow lists its file as a rule input)."""
    return NETWORKS[net][0]


def check_network_input(net: str, input_shape: Sequence[int], dataset: str = "") -> None:
    """Raise :class:`ConfigError` when network ``net`` cannot take samples of ``input_shape``."""
    if net not in NETWORKS:
        raise ConfigError(f"unknown network '{net}'; valid choices: {', '.join(network_names())}")
    try:
        NETWORKS[net][2](input_shape)
    except ValueError as err:
        where = f" on dataset '{dataset}'" if dataset else ""
        raise ConfigError(f"network '{net}' cannot run{where}: {err}") from err


def build_network(net: str, input_shape: Sequence[int], arch: dict[str, Any] | None = None):
    """Instantiate network ``net`` (an ``nn.Module``) for samples of ``input_shape``."""
    check_network_input(net, input_shape)
    module, cls, _ = NETWORKS[net]
    network = getattr(importlib.import_module(module), cls)
    valid = [name for name in inspect.signature(network).parameters if name != "input_shape"]
    unknown = sorted(set(arch or {}) - set(valid))
    if unknown:
        raise ConfigError(f"net '{net}': unknown arch option(s) {', '.join(map(repr, unknown))}; "
                          f"valid options: {', '.join(sorted(valid))}")
    return network(input_shape, **(arch or {}))
