"""Network registry: build an autoencoder by name; check input shapes without importing torch."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

from stages.methods import FAMILIES
from stages.methods.family import Network, merged, resolve
from stages.plumbing.errors import ConfigError

#: name -> its declaration (:class:`stages.methods.family.Network`), from every family
NETWORKS: dict[str, Network] = merged(list(FAMILIES.values()), "networks")

#: networks whose embedding size is the number of clusters [DCEC and DEPICT papers]
EMBEDDING_IS_N_CLUSTERS = frozenset(n for n, spec in NETWORKS.items()
                                    if spec.embedding_is_n_clusters)

#: network -> its arch option that defaults to the dataset's number of clusters
N_CLUSTERS_OPTION = {n: spec.n_clusters_option for n, spec in NETWORKS.items()
                     if spec.n_clusters_option}

#: networks that map inputs from [0, 1] to their own range, so data must lie in [0, 1]
UNIT_INPUT = frozenset(n for n, spec in NETWORKS.items() if spec.unit_input)


def network_names() -> list[str]:
    return sorted(NETWORKS)


def network_module(net: str) -> str:
    """Dotted module that defines network ``net`` (the workflow lists its file as a rule input)."""
    return NETWORKS[net].module


def check_network_input(net: str, input_shape: Sequence[int], dataset: str = "") -> None:
    """Raise :class:`ConfigError` when network ``net`` cannot take samples of ``input_shape``."""
    if net not in NETWORKS:
        raise ConfigError(f"unknown network '{net}'; valid choices: {', '.join(network_names())}")
    try:
        resolve(NETWORKS[net].check)(input_shape)
    except ValueError as err:
        where = f" on dataset '{dataset}'" if dataset else ""
        raise ConfigError(f"network '{net}' cannot run{where}: {err}") from err


def build_network(net: str, input_shape: Sequence[int], arch: dict[str, Any] | None = None):
    """Instantiate network ``net`` (an ``nn.Module``) for samples of ``input_shape``."""
    check_network_input(net, input_shape)
    spec = NETWORKS[net]
    network = getattr(importlib.import_module(spec.module), spec.cls)
    valid = [name for name in inspect.signature(network).parameters if name != "input_shape"]
    unknown = sorted(set(arch or {}) - set(valid))
    if unknown:
        raise ConfigError(f"net '{net}': unknown arch option(s) {', '.join(map(repr, unknown))}; "
                          f"valid options: {', '.join(sorted(valid))}")
    return network(input_shape, **(arch or {}))
