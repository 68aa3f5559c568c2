"""Semantic checks of the workflow configuration and the resolved recipes each job receives.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks types and ranges; this module
checks what a schema cannot: names that refer to each other, dataset/network pairs that cannot
work, and it resolves ``{paper: A, quick: B}`` values by the chosen schedule. It imports no torch,
so the Snakefile can call it on every invocation cheaply.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stages.data.registry import dataset_names, get_dataset_spec
from stages.methods import (
    BASELINE_MODULE,
    CONFIG_CHECKS,
    FAMILIES,
    HEAD_INIT,
    HEAD_NETWORKS,
    HEADS,
    OBJECTIVE_NETWORK,
    PRETRAIN_OBJECTIVES,
    STEP_COUNTED_OBJECTIVES,
    head_module,
    init_algorithm,
    pretrain_objective,
)
from stages.methods.family import resolve
from stages.nets import check_network_input, network_module, network_names
from stages.plumbing.errors import ConfigError

SCHEDULES = ("quick", "paper")


def resolve_schedule(value: Any, schedule: str) -> Any:
    """Pick ``value[schedule]`` from ``{paper: A, quick: B}``; recurse into dicts and lists."""
    if isinstance(value, dict):
        if set(value) == set(SCHEDULES):
            return value[schedule]
        return {k: resolve_schedule(v, schedule) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_schedule(v, schedule) for v in value]
    return value


_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
#: top-level sections whose values ``--config`` may set inside dicts
_RECIPE_SECTIONS = ("autoencoders", "inits", "methods", "head_defaults", "datasets", "sweeps")


def _number(value: Any) -> Any:
    """A decimal or float string as int / float, 'true' / 'false' as bool; others unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def _coerce(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    return _number(value)


#: top-level settings that take true / false (the schema's booleans, and gpu_resources's)
_TOP_LEVEL_SWITCHES = ("gpu_resources", "compile")


def coerce_command_line(config: dict[str, Any]) -> None:
    """Turn the strings of ``--config`` values back into numbers and booleans, in place.

    Snakemake parses a ``--config`` list or dict with YAML's BaseLoader, so
    ``seeds=[0,1,2]`` arrives as ``['0', '1', '2']`` and ``methods={"dec":{"lr":0.002}}`` as
    ``{'lr': '0.002'}``, and would fail the schema. Number-shaped strings in ``seeds`` and in the
    recipe sections become numbers (also YAML 1.1's unquoted ``1e-5``, which PyYAML reads as a
    string); other strings are left for the schema to judge. ``true`` / ``false`` given to a
    top-level switch (``gpu_resources``, ``compile``) become booleans.
    """
    for key in _TOP_LEVEL_SWITCHES:  # `--config gpu_resources=false` arrives as 'false'
        if key in config:
            config[key] = _number(config[key])
    seeds = config.get("seeds")
    if isinstance(seeds, list):
        config["seeds"] = [int(s) if isinstance(s, str) and s.strip().isdecimal() else s
                           for s in seeds]
    for section in _RECIPE_SECTIONS:
        if isinstance(config.get(section), dict):
            config[section] = _coerce(config[section])


def _choices(names: Any) -> str:
    return ", ".join(sorted(names))


SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text())


@cache
def recipe_keys(section: str = "methods") -> frozenset[str]:
    """The options every entry of ``section`` (methods, autoencoders, inits) may set: the
    schema's list. A method's head and an autoencoder's objective add their own
    (:func:`option_schema`)."""
    return frozenset(_schema()["properties"][section]["additionalProperties"]["properties"])


@cache
def _family_options() -> dict[str, dict[str, dict[str, Any]]]:
    """``{"heads": {head: properties}, "objectives": {...}, "baseline": {...}}`` of every
    family's ``options`` file."""
    out: dict[str, dict[str, dict[str, Any]]] = {"heads": {}, "objectives": {}}
    for family in FAMILIES.values():
        for kind, fragments in family.option_schemas().items():
            out.setdefault(kind, {}).update(fragments)
    return out


def option_schema(section: str, name: str) -> dict[str, Any]:
    """The JSON schema of an entry of ``section`` ("methods" or "autoencoders") whose head
    (``name`` "baseline" for the shallow baselines) or objective is ``name``: the shared
    properties and that head's or objective's, no others."""
    kind = "heads" if section == "methods" else "objectives"
    entry = _schema()["properties"][section]["additionalProperties"]
    own = _family_options()[kind].get(name, {})
    return {"type": "object", "properties": {**entry["properties"], **own},
            "additionalProperties": False, "definitions": _schema().get("definitions", {})}


def entry_options(section: str, entry: dict[str, Any]) -> frozenset[str]:
    """The options an entry of ``section`` (methods, autoencoders, inits) may set: the shared
    ones and those of its head (a method) or objective (an autoencoder)."""
    if section == "inits":
        return recipe_keys("inits")
    return frozenset(option_schema(section, _owner(section, entry) or "")["properties"])


def top_level_keys() -> tuple[frozenset[str], frozenset[str]]:
    """The schema's top-level keys and the keys of a ``datasets`` entry."""
    props = _schema()["properties"]
    return (frozenset(props),
            frozenset(props["datasets"]["additionalProperties"]["properties"]))


def _owner(section: str, entry: dict[str, Any]) -> str | None:
    """Whose options an entry may set: a method's head ("baseline" for a shallow baseline),
    an autoencoder's objective."""
    if section == "methods":
        return "baseline" if entry.get("family") == "baseline" else entry.get("head")
    return entry.get("objective", "reconstruction")


def _option_places(config: dict[str, Any]) -> list[tuple[str, dict[str, Any], str, str | None]]:
    """(where, entry, section, head or objective) of every method, ``head_defaults`` and
    autoencoder entry whose head or objective is registered (an unknown one is reported by
    :func:`validate` by its name)."""
    places = [(f"methods.{name}", entry, "methods", _owner("methods", entry))
              for name, entry in (config.get("methods") or {}).items() if isinstance(entry, dict)]
    places += [(f"head_defaults.{head}", entry, "methods", head)
               for head, entry in (config.get("head_defaults") or {}).items()
               if isinstance(entry, dict)]
    places += [(f"autoencoders.{name}", entry, "autoencoders", _owner("autoencoders", entry))
               for name, entry in (config.get("autoencoders") or {}).items()
               if isinstance(entry, dict)]
    known = {"methods": {*HEADS, "baseline"}, "autoencoders": set(PRETRAIN_OBJECTIVES)}
    return [place for place in places if place[3] in known[place[2]]]


def check_recipe_keys(config: dict[str, Any]) -> None:
    """ConfigError naming an unknown key anywhere in the configuration (top level, a
    ``datasets`` entry, an init, a method recipe or ``head_defaults`` entry by its head's
    options, an autoencoder by its objective's), where it is, and the valid keys. Run before
    the schema, whose messages do not list them."""
    top, dataset_keys = top_level_keys()
    places = [("the top level", config, top)]
    places += [(f"datasets.{name}", entry, dataset_keys)
               for name, entry in (config.get("datasets") or {}).items()
               if isinstance(entry, dict)]
    places += [(f"inits.{name}", entry, recipe_keys("inits"))
               for name, entry in (config.get("inits") or {}).items() if isinstance(entry, dict)]
    places += [(where, entry, frozenset(option_schema(section, owner or "")["properties"]))
               for where, entry, section, owner in _option_places(config)]
    for where, entry, valid in places:
        unknown = sorted(set(entry) - valid)
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; "
                              f"valid options: {_choices(valid)}")


def check_recipe_options(config: dict[str, Any]) -> None:
    """ConfigError when a method, ``head_defaults`` or autoencoder entry breaks its head's or
    objective's option schema (a type, a range, a choice), naming the entry, the option and
    the rule. A ``{paper: A, quick: B}`` value is checked as A and as B."""
    for where, entry, section, owner in _option_places(config):
        validator = jsonschema.Draft7Validator(option_schema(section, owner or ""))
        errors = [e for schedule in SCHEDULES
                  for e in validator.iter_errors(resolve_schedule(entry, schedule))]
        error = jsonschema.exceptions.best_match(errors)
        if error is not None:
            path = ".".join(str(p) for p in error.absolute_path)
            raise ConfigError(f"{where}{'.' + path if path else ''}: {error.message}")


def validate(config: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` on the first inconsistency, naming the value and valid choices."""
    methods = config["methods"]
    for name, recipe in methods.items():
        family = recipe["family"]
        if family == "baseline":
            if "algorithm" not in recipe:
                raise ConfigError(f"method '{name}': a baseline needs 'algorithm' "
                                  "(kmeans, gmm, spectral or acpic)")
            continue
        for key in ("ae", "init", "head"):
            if key not in recipe:
                raise ConfigError(f"method '{name}': missing '{key}'")
        if recipe["ae"] not in config["autoencoders"]:
            raise ConfigError(f"method '{name}': unknown autoencoder '{recipe['ae']}'; valid "
                              f"choices: {_choices(config['autoencoders'])}")
        if recipe["init"] not in config["inits"]:
            raise ConfigError(f"method '{name}': unknown init '{recipe['init']}'; valid choices: "
                              f"{_choices(config['inits'])}")
        head_module(recipe["head"])
        net = config["autoencoders"][recipe["ae"]]["net"]
        allowed = HEAD_NETWORKS.get(recipe["head"])
        if allowed is not None and net not in allowed:
            nets = (f"net '{next(iter(allowed))}'" if len(allowed) == 1
                    else f"net one of {_choices(allowed)}")
            raise ConfigError(f"method '{name}': head '{recipe['head']}' needs an autoencoder "
                              f"with {nets}, but '{recipe['ae']}' has net '{net}'")
        needed = HEAD_INIT.get(recipe["head"])
        algorithm = config["inits"][recipe["init"]]["algorithm"]
        if needed is not None and algorithm != needed:
            raise ConfigError(f"method '{name}': head '{recipe['head']}' needs an init with "
                              f"algorithm '{needed}', but '{recipe['init']}' has algorithm "
                              f"'{algorithm}'")
    for init_name, init in config["inits"].items():
        try:
            init_algorithm(init["algorithm"])
        except ConfigError as err:
            raise ConfigError(f"init '{init_name}': {err}") from None
    for ae_name, ae in config["autoencoders"].items():
        if ae["net"] not in network_names():
            raise ConfigError(f"autoencoder '{ae_name}': unknown net '{ae['net']}'; valid "
                              f"choices: {_choices(network_names())}")
        objective = ae.get("objective", "reconstruction")
        try:
            pretrain_objective(objective)
        except ConfigError as err:
            raise ConfigError(f"autoencoder '{ae_name}': {err}") from None
        counts_steps = objective in STEP_COUNTED_OBJECTIVES and "steps" in ae
        if "epochs" not in ae and not counts_steps:
            raise ConfigError(f"autoencoder '{ae_name}': no 'epochs' (its length); objectives "
                              f"{', '.join(STEP_COUNTED_OBJECTIVES)} may give 'steps' instead")
        if objective not in STEP_COUNTED_OBJECTIVES:
            extra = sorted({"steps", "layer_steps", "lr_step_steps"} & set(ae))
            if extra:
                raise ConfigError(f"autoencoder '{ae_name}': objective '{objective}' counts "
                                  f"epochs; {', '.join(extra)} only apply to objectives "
                                  f"{', '.join(STEP_COUNTED_OBJECTIVES)}")
        needed = OBJECTIVE_NETWORK.get(objective)
        if needed is not None and ae["net"] != needed:
            raise ConfigError(f"autoencoder '{ae_name}': objective '{objective}' needs net "
                              f"'{needed}', not '{ae['net']}'")
    check_recipe_keys(config)  # after the names: a head or objective's options need its name
    check_recipe_options(config)
    for check in CONFIG_CHECKS:  # the families' own checks
        resolve(check)(config)
    selected_datasets(config)
    for dataset, entry in config["datasets"].items():
        if dataset not in dataset_names():
            raise ConfigError(f"unknown dataset '{dataset}'; valid choices: "
                              f"{_choices(dataset_names())}")
        spec = get_dataset_spec(dataset)
        for method in entry["methods"]:
            if method not in methods:
                raise ConfigError(f"dataset '{dataset}': unknown method '{method}'; valid "
                                  f"choices: {_choices(methods)}")
            recipe = methods[method]
            if recipe["family"] != "baseline":
                net = config["autoencoders"][recipe["ae"]]["net"]
                try:
                    check_network_input(net, spec.input_shape, dataset)
                except ConfigError as err:
                    raise ConfigError(f"method '{method}' on dataset '{dataset}': {err}. Remove "
                                      f"'{method}' from datasets.{dataset}.methods.") from err


def method_recipe(config: dict[str, Any], method: str) -> dict[str, Any]:
    """The fully resolved recipe of ``method``: head defaults merged, schedule applied."""
    recipe = copy.deepcopy(config["methods"][method])
    head = recipe.get("head")
    merged = {**copy.deepcopy(config.get("head_defaults", {}).get(head, {})), **recipe}
    merged["name"] = method
    if merged["family"] == "baseline":  # shallow baselines train no network
        return resolve_schedule(merged, config["schedule"])
    merged.update(_compile_setting(config))
    return _with_precision(resolve_schedule(merged, config["schedule"]), config)


def autoencoder_recipe(config: dict[str, Any], ae: str) -> dict[str, Any]:
    """The resolved recipe of autoencoder ``ae`` (schedule applied)."""
    recipe = copy.deepcopy(config["autoencoders"][ae])
    recipe["name"] = ae
    recipe.update(_compile_setting(config))
    return _with_precision(resolve_schedule(recipe, config["schedule"]), config)


def _with_precision(recipe: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` (schedule resolved) with its ``precision``: the recipe's own where it sets one
    for the schedule (``{paper: null, quick: auto}``: the quick schedule only), else the
    config's top-level ``precision``. Schema: 32, bf16-mixed, auto."""
    own = recipe.get("precision")
    recipe["precision"] = str(own if own is not None else config.get("precision", "32"))
    return recipe


def _compile_setting(config: dict[str, Any]) -> dict[str, bool]:
    """``{"compile": True}`` when the config turns ``compile`` on, else nothing: a recipe (and
    the key of its jobs) carries the setting only when it is on, so runs made before the
    option existed stay up to date."""
    return {"compile": True} if config.get("compile", False) else {}


def gpu_resources(config: dict[str, Any]) -> bool:
    """Whether the trained stages' jobs (pretrain, embed, finetune) ask for Snakemake's ``gpu``
    resource, which the default profile limits to one job at a time.

    ``gpu_resources: auto`` (the default) asks for it only where those jobs can use a GPU: not
    with ``device: cpu``, and otherwise only when torch sees a usable GPU on the machine that
    plans the run. On a CPU-only machine the jobs are then limited by cores alone and run side
    by side, ``threads`` cores each. ``true`` and ``false`` force it either way (a SLURM profile
    asks for its GPUs in ``set-resources``, whatever this says).
    """
    value = config.get("gpu_resources", "auto")
    if value != "auto":
        return bool(value)
    if str(config.get("device", "auto")) == "cpu":
        return False
    import torch  # only here: planning a run on a CPU-only config needs no torch

    return bool(torch.cuda.is_available())


def method_and_autoencoder(config: dict[str, Any], method: str,
                           schedule: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(autoencoder recipe, method recipe) of ``method`` as a run of ``schedule`` (default the
    config's own) trains them: what the benchmarks time."""
    if schedule is not None:
        config = {**config, "schedule": schedule}
    recipe = method_recipe(config, method)
    return autoencoder_recipe(config, recipe["ae"]), recipe


def init_recipe(config: dict[str, Any], init: str) -> dict[str, Any]:
    return resolve_schedule({**copy.deepcopy(config["inits"][init]), "name": init},
                            config["schedule"])


def selected_datasets(config: dict[str, Any]) -> list[str]:
    """The datasets this run covers: ``run_datasets`` when given (a subset of ``datasets``,
    for a layered config file: Snakemake merges the ``datasets`` of several files), else every
    entry of ``datasets``."""
    chosen = config.get("run_datasets")
    if not chosen:
        return list(config["datasets"])
    unknown = [d for d in chosen if d not in config["datasets"]]
    if unknown:
        raise ConfigError(f"run_datasets: {', '.join(map(repr, unknown))} not in datasets; valid "
                          f"choices: {_choices(config['datasets'])}")
    return list(chosen)


def runs(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Every (dataset, method, seed) the configuration asks for (see :func:`selected_datasets`)."""
    return [(d, m, s) for d in selected_datasets(config)
            for m in config["datasets"][d]["methods"] for s in config["seeds"]]


def autoencoder_modules(config: dict[str, Any], ae: str) -> list[str]:
    """Dotted modules that the pretrain job of autoencoder ``ae`` executes (besides the stage)."""
    recipe = config["autoencoders"][ae]
    objective_module, _ = pretrain_objective(recipe.get("objective", "reconstruction"))
    return list(dict.fromkeys([network_module(recipe["net"]), objective_module]))


def init_modules(config: dict[str, Any], init: str) -> list[str]:
    """Dotted modules that the init job of ``init`` executes (besides the stage)."""
    return [init_algorithm(config["inits"][init]["algorithm"])[0]]


def method_modules(config: dict[str, Any], method: str) -> list[str]:
    """Dotted modules that the finetune/baseline job of ``method`` executes."""
    recipe = config["methods"][method]
    if recipe["family"] == "baseline":
        return [BASELINE_MODULE]
    modules = [network_module(config["autoencoders"][recipe["ae"]]["net"])]
    head = head_module(recipe["head"])
    return modules + ([head] if head else [])
