"""What a method family registers, and how the families are found.

A family is a package under ``stages/methods/`` whose ``__init__.py`` defines ``FAMILY``, a
:class:`Family`. Everything in it is a name and a dotted path: declaring a family imports
none of its code (and no torch), so a job's code dependencies (:mod:`stages.plumbing.codedeps`) are
the modules it runs, not its family's declaration.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from stages.plumbing.errors import ConfigError


@dataclass(frozen=True)
class Network:
    """An autoencoder class ``module.cls`` taking ``(input_shape, **arch)``.

    ``check``: ``"module:function"`` raising ValueError for an input shape it cannot take;
    ``embedding_is_n_clusters``: its embedding size defaults to the number of clusters;
    ``unit_input``: it needs inputs in [0, 1]; ``n_clusters_option``: an arch option that
    defaults to the dataset's number of clusters (the pretrain stage sets it)."""

    module: str
    cls: str
    check: str = "stages.nets.shapes:check_any"
    embedding_is_n_clusters: bool = False
    unit_input: bool = False
    n_clusters_option: str | None = None


@dataclass(frozen=True)
class Objective:
    """A pretraining objective: ``module.function(model, x, recipe, *, seed, log_every,
    checkpoint) -> stages.runtime.train.LoopResult``. ``network``: the only net it trains, if any;
    ``counts_steps``: its phases may be counted in steps instead of epochs."""

    module: str
    function: str
    network: str | None = None
    counts_steps: bool = False


@dataclass(frozen=True)
class Init:
    """An init algorithm: ``module.function(z (N, d), n_clusters, recipe, seed) -> arrays``, a
    dict holding at least ``labels`` (N,) int64."""

    module: str
    function: str


@dataclass(frozen=True)
class Head:
    """A clustering head: ``module`` defines ``finetune(...)`` (None: the init labels stand).
    ``networks``: the nets it works on (None: any); ``init``: the init algorithm it needs."""

    module: str | None
    networks: frozenset[str] | None = None
    init: str | None = None


@dataclass(frozen=True)
class Family:
    """One family's registrations.

    ``name`` is the recipes' ``family:`` value. ``options``: a YAML file in the family's folder
    with JSON-schema fragments, ``heads: {head: {properties...}}`` and ``objectives: {objective:
    {properties...}}``, the options a method recipe (and ``head_defaults``) or an autoencoder
    recipe may set beyond the shared ones. ``checks``: ``"module:function"`` called with the
    whole configuration, raising ConfigError. ``method_notes``: method -> a note printed under
    ``paper_vs_ours.md``. ``nmi_variant``: the NMI its paper reports (``nmi_max``,
    ``nmi_sqrt``). ``baseline_module``: the module of shallow baselines (``cluster_raw``).
    """

    name: str
    networks: Mapping[str, Network] = field(default_factory=dict)
    objectives: Mapping[str, Objective] = field(default_factory=dict)
    inits: Mapping[str, Init] = field(default_factory=dict)
    heads: Mapping[str, Head] = field(default_factory=dict)
    options: str | None = None
    checks: tuple[str, ...] = ()
    method_notes: Mapping[str, str] = field(default_factory=dict)
    nmi_variant: str = "nmi_sqrt"
    baseline_module: str | None = None
    package: str = ""
    folder: Path | None = None

    def option_schemas(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{"heads": {head: properties}, "objectives": {objective: properties}}`` from
        :attr:`options` (empty without one)."""
        if self.options is None or self.folder is None:
            return {"heads": {}, "objectives": {}}
        loaded = yaml.safe_load((self.folder / self.options).read_text()) or {}
        return {"heads": loaded.get("heads") or {}, "objectives": loaded.get("objectives") or {}}


def discover(package: str = "stages.methods") -> list[Family]:
    """Every family under ``package``: each subpackage whose ``__init__`` defines ``FAMILY``,
    in folder order."""
    root = importlib.import_module(package)
    found = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        declared = getattr(module, "FAMILY", None)
        if declared is None:
            continue
        if not isinstance(declared, Family):
            raise ConfigError(f"{module.__name__}.FAMILY is a {type(declared).__name__}, not a "
                              "stages.methods.family.Family")
        found.append(_located(declared, module))
    return found


def _located(family: Family, module: Any) -> Family:
    return replace(family, package=module.__name__, folder=Path(module.__file__).parent)


def merged(families: list[Family], attribute: str) -> dict[str, Any]:
    """The union of one mapping attribute (``networks``, ``heads``, ...) over ``families``;
    ConfigError when two families register the same name."""
    out: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for family in families:
        for name, value in getattr(family, attribute).items():
            if name in out:
                raise ConfigError(f"{attribute[:-1]} '{name}' is registered by both family "
                                  f"'{owner[name]}' and family '{family.name}'")
            out[name], owner[name] = value, family.name
    return out


def resolve(path: str) -> Any:
    """The object at ``"module:attribute"``."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
