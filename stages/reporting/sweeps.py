"""Sweeps: one recipe expanded over a grid of parameter values, each grid point a method.

A ``sweeps`` entry of the configuration names a base method and a grid::

    sweeps:
      dcec-gamma:
        method: dcec
        grid: {clustering_weight: [0.01, 0.1, 1.0]}
        datasets: [mnist5k]          # default: every dataset whose methods list the base

The grid is the product of the value lists. Each point becomes a method named by its values,
``dcec@clustering_weight=0.1`` (keys in the grid's order, each ``@key=value``), added to the
methods of the sweep's datasets. A key names an option of the method recipe (dotted for a nested
one: ``optimizer.lr``), of its autoencoder (``ae.arch.hidden``) or of its init
(``init.n_init``). A point that changes the autoencoder or the init gets its own, named the same
way (``sae@arch.hidden=500-500-2000-20``) and shared by every point with the same values; a point
that changes neither reuses the base method's pretraining and init, so only its fine-tuning runs.
Adding a value to a grid adds jobs for that point only: the other points' names and recipes are
unchanged.

Importing this module is cheap (no torch): the Snakefile expands the sweeps on every invocation.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stages.plumbing.config import autoencoder_recipe, entry_options, init_recipe, method_recipe
from stages.plumbing.errors import ConfigError

#: separator of a sweep point's name from its base and between its key=value pairs
SEPARATOR = "@"
#: what a formatted value may contain (it becomes part of file paths and shell words)
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._+-]+$")
#: the sections a grid key may point into: prefix -> (config section, recipe key naming it)
_TARGETS = {"ae": ("autoencoders", "ae"), "init": ("inits", "init")}


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: the method it adds and the values it sets.

    ``values`` maps each grid key (as written, e.g. ``ae.arch.hidden``) to its value; ``ae`` and
    ``init`` are the autoencoder and init the point's method uses (new ones when a key points
    into them, else the base method's).
    """

    sweep: str
    base: str
    method: str
    values: Mapping[str, Any]
    ae: str | None = None
    init: str | None = None
    changes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def format_value(value: Any, where: str) -> str:
    """``value`` as it appears in a point's name: numbers by ``repr`` (unique: 0.1, 1e-05),
    booleans as true/false, lists joined by ``-``; :class:`ConfigError` for anything that would
    not be a safe file-name word."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list | tuple):
        text = "-".join(format_value(v, where) for v in value)
    else:
        raise ConfigError(f"{where}: value {value!r} cannot name a grid point; use numbers, "
                          "booleans, words or lists of them (a nested option: a dotted key)")
    if not _SAFE_VALUE.match(text):
        raise ConfigError(f"{where}: value {value!r} cannot name a grid point (only letters, "
                          "digits and . _ + - may appear in it)")
    return text


def point_name(base: str, values: Mapping[str, Any], where: str) -> str:
    """``base@key=value@...`` for the keys of ``values`` in their order."""
    return base + "".join(f"{SEPARATOR}{key}={format_value(value, f'{where}.{key}')}"
                          for key, value in values.items())


def point_values(name: str) -> dict[str, str]:
    """The inverse of :func:`point_name`: ``{key: value text}`` for ``base@key=value@...``,
    ``{}`` for a plain method name; :class:`ConfigError` for a part that is not key=value."""
    values = {}
    for part in name.split(SEPARATOR)[1:]:
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"'{name}': '{part}' is not key=value, so '{name}' is no sweep "
                              f"point's name (base{SEPARATOR}key=value...)")
        values[key] = value
    return values


def _split_key(key: str) -> tuple[str, list[str]]:
    """(target, path): target ``methods``, ``ae`` or ``init``; path the dotted option."""
    head, _, rest = key.partition(".")
    if head in _TARGETS and rest:
        return head, rest.split(".")
    return "methods", key.split(".")


def set_dotted(recipe: dict[str, Any], path: Sequence[str], value: Any, where: str) -> None:
    """Set ``recipe[p0][p1]...`` to a copy of ``value``, creating missing dicts on the way."""
    node = recipe
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: '{part}' is {child!r}, not a group of options, so "
                              f"'{'.'.join(path)}' cannot be set")
        node = child
    node[path[-1]] = copy.deepcopy(value)


def get_dotted(recipe: Mapping[str, Any], path: Sequence[str]) -> Any:
    """``recipe[p0][p1]...``, or None where a part is missing."""
    node: Any = recipe
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _check_entry(name: str, entry: Any, config: Mapping[str, Any]) -> None:
    where = f"sweeps.{name}"
    if SEPARATOR in name:
        raise ConfigError(f"{where}: a sweep's name may not contain '{SEPARATOR}'")
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'method' and 'grid'")
    unknown = sorted(set(entry) - {"method", "grid", "datasets"})
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown}; valid options: datasets, "
                          "grid, method")
    base = entry.get("method")
    if base not in config.get("methods", {}):
        raise ConfigError(f"{where}.method: unknown method {base!r}; valid choices: "
                          f"{', '.join(sorted(config.get('methods', {})))}")
    grid = entry.get("grid")
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError(f"{where}.grid: expected a mapping of option -> list of values, e.g. "
                          "{lr: [0.001, 0.01]}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.grid.{key}: expected a non-empty list of values, got "
                              f"{values!r}")


def _check_key(key: str, recipe: Mapping[str, Any], config: Mapping[str, Any],
               where: str) -> None:
    """The first part of a grid key must be an option its entry accepts (the shared options
    and those of the method's head, the autoencoder's objective)."""
    target, path = _split_key(key)
    section = "methods" if target == "methods" else _TARGETS[target][0]
    if recipe.get("family") == "baseline" and target != "methods":
        raise ConfigError(f"{where}: the baseline {recipe.get('name', '')!r} has no "
                          f"autoencoder or init to sweep; sweep its own options")
    entry = recipe if target == "methods" else \
        config.get(section, {}).get(recipe.get(target, ""), {})
    valid = entry_options(section, dict(entry))
    if path[0] not in valid:
        raise ConfigError(f"{where}: {path[0]!r} is not an option of {section}; valid options: "
                          f"{', '.join(sorted(valid))}")


def sweep_points(config: Mapping[str, Any]) -> list[SweepPoint]:
    """Every grid point of every sweep in ``config['sweeps']``, in order (grid product order).

    Raises :class:`ConfigError` naming the sweep and what is wrong: an unknown base method or
    option, an empty grid, a value that cannot name a point, or a point whose name is already a
    method of another recipe.
    """
    points = []
    for name, entry in (config.get("sweeps") or {}).items():
        _check_entry(name, entry, config)
        base = entry["method"]
        base_recipe = {"name": base, **config["methods"][base]}
        grid = entry["grid"]
        for key in grid:
            _check_key(key, base_recipe, config, f"sweeps.{name}.grid.{key}")
        for combo in itertools.product(*grid.values()):
            values = dict(zip(grid, combo, strict=True))
            where = f"sweeps.{name}"
            changes: dict[str, dict[str, Any]] = {"methods": {}, "ae": {}, "init": {}}
            for key, value in values.items():
                target, path = _split_key(key)
                changes[target][".".join(path)] = value
            ae = init = None
            if changes["ae"]:
                ae = point_name(config["methods"][base]["ae"], changes["ae"], where)
            if changes["init"]:
                init = point_name(config["methods"][base]["init"], changes["init"], where)
            points.append(SweepPoint(sweep=name, base=base,
                                     method=point_name(base, values, where), values=values,
                                     ae=ae, init=init,
                                     changes={k: v for k, v in changes.items() if v}))
    return points


def _derived(section: dict[str, Any], name: str, base: str, changes: Mapping[str, Any],
             where: str) -> None:
    """Add ``section[name]``: ``section[base]`` with ``changes`` (dotted keys) applied; an
    existing entry must be that same recipe."""
    recipe = copy.deepcopy(section[base])
    for key, value in changes.items():
        set_dotted(recipe, key.split("."), value, where)
    if name in section and section[name] != recipe:
        raise ConfigError(f"{where}: '{name}' is already defined with another recipe; rename "
                          "one of them")
    section[name] = recipe


def expand_sweeps(config: dict[str, Any]) -> list[SweepPoint]:
    """Add every sweep point to ``config`` in place and return the points.

    Each point's method recipe is its base's with the point's values set; a point that changes
    the autoencoder or the init refers to a derived one (added to ``autoencoders`` / ``inits``).
    The point is appended to the methods of the sweep's ``datasets`` (default: every dataset
    whose methods list the base method). Expanding twice adds nothing new.
    """
    points = sweep_points(config)
    for point in points:
        where = f"sweeps.{point.sweep} (point {point.method})"
        base = config["methods"][point.base]
        if point.ae:
            _derived(config["autoencoders"], point.ae, base["ae"], point.changes["ae"], where)
        if point.init:
            _derived(config["inits"], point.init, base["init"], point.changes["init"], where)
        recipe = copy.deepcopy(base)
        for key, value in point.changes.get("methods", {}).items():
            set_dotted(recipe, key.split("."), value, where)
        recipe.update({k: v for k, v in (("ae", point.ae), ("init", point.init)) if v})
        existing = config["methods"].get(point.method)
        if existing is not None and existing != recipe:
            raise ConfigError(f"{where}: method '{point.method}' is already defined with another "
                              "recipe; rename one of them")
        config["methods"][point.method] = recipe
        entry = config["sweeps"][point.sweep]
        datasets = entry.get("datasets")
        if datasets is None:
            datasets = [d for d, spec in config["datasets"].items()
                        if point.base in (spec or {}).get("methods", [])]
        for dataset in datasets:
            if dataset not in config["datasets"]:
                raise ConfigError(f"sweeps.{point.sweep}.datasets: {dataset!r} not in datasets; "
                                  f"valid choices: {', '.join(sorted(config['datasets']))}")
            methods = config["datasets"][dataset].setdefault("methods", [])
            if point.method not in methods:
                methods.append(point.method)
    return points


def base_values(config: Mapping[str, Any], point: SweepPoint) -> dict[str, Any]:
    """The values the base method's recipes give the point's grid keys (schedule resolved)."""
    base = config["methods"][point.base]
    resolved = {"methods": method_recipe(config, point.base)}
    if base.get("family") != "baseline":
        resolved["ae"] = autoencoder_recipe(config, base["ae"])
        resolved["init"] = init_recipe(config, base["init"])
    out = {}
    for key in point.values:
        target, path = _split_key(key)
        out[key] = get_dotted(resolved.get(target, {}), path)
    return out


def sweep_index(config: Mapping[str, Any], points: Sequence[SweepPoint]) -> list[dict[str, Any]]:
    """Rows ``{sweep, method, base, point, values}`` for the aggregate stage: every point, and
    per sweep its base method (``point: base``, with the values its recipe gives the keys)."""
    rows, seen = [], set()
    for point in points:
        if (point.sweep, point.base) not in seen:
            seen.add((point.sweep, point.base))
            rows.append({"sweep": point.sweep, "method": point.base, "base": point.base,
                         "point": "base", "values": base_values(config, point)})
        rows.append({"sweep": point.sweep, "method": point.method, "base": point.base,
                     "point": "grid", "values": dict(point.values)})
    return rows
