"""SAIP's option rules (no torch): which assignment's gradient is stopped (``detach``) and from
when the label-change stop rule is checked (``stop_after``), and the configuration check that
applies them to every SAIP method before a run starts."""

from __future__ import annotations

from typing import Any

from stages.plumbing.errors import ConfigError

#: which assignment's gradient is stopped (``detach``): name -> what it is
DETACH: dict[str, str] = {
    "none": "gradients through P1 and P2 (Algorithm 1 updates {Theta, Omega} on Eq. 5)",
    "p2": "P2 fixed, the gradient through P1 only (P2 the target; detach_target: true)",
    "p1": "P1 fixed, the gradient through P2 only (P1 the target, as DEC trains against its own)",
}
#: from when the label-change stop rule is checked (``stop_after``)
STOP_AFTER: dict[str, str] = {
    "start": "from the first epoch (Table II's rule as printed)",
    "first_lr_decay": "only on epochs trained after the first lr decay (epoch ep)",
}


def check_detach(detach: str) -> None:
    if detach not in DETACH:
        raise ConfigError(f"unknown SAIP detach '{detach}'; valid choices: "
                          f"{', '.join(DETACH)} (README, SAIP)")


def resolve_detach(params: dict[str, Any]) -> str:
    """The side whose gradient is stopped (a key of :data:`DETACH`) from a recipe's ``detach``
    and the older ``detach_target`` (true: ``p2``), which must not say otherwise."""
    legacy = bool(params.get("detach_target", False))
    if "detach" not in params:
        return "p2" if legacy else "none"
    detach = str(params["detach"])
    check_detach(detach)
    if legacy and detach != "p2":
        raise ConfigError(f"SAIP: detach_target: true fixes P2 but detach: {detach} says "
                          f"otherwise; set only detach (p2 is what detach_target: true meant)")
    return detach


def stop_check_after(stop_after: str, steps_per_decay: int, repeats: int) -> int:
    """The step after which the stop rule is checked (``ClusteringHook``'s ``check_after``): 0
    for ``start``, ``steps_per_decay`` (ep epochs of steps) for ``first_lr_decay``, which needs
    a decay to happen (``repeats`` = re >= 2)."""
    if stop_after not in STOP_AFTER:
        raise ConfigError(f"unknown SAIP stop_after '{stop_after}'; valid choices: "
                          f"{', '.join(STOP_AFTER)} (README, SAIP)")
    if stop_after == "start":
        return 0
    if repeats < 2:
        raise ConfigError("SAIP: stop_after: first_lr_decay with decay_repeats: 1 never checks "
                          "the stop rule (the lr is never decayed); set decay_repeats >= 2 or "
                          "stop_after: start")
    return steps_per_decay


def check_config(config: dict[str, Any]) -> None:
    """ConfigError, naming the method, when a SAIP method's ``detach`` contradicts its
    ``detach_target`` or its ``stop_after: first_lr_decay`` comes with ``decay_repeats: 1``
    (under either schedule)."""
    for name, recipe in config["methods"].items():
        if recipe.get("head") != "saip":
            continue
        merged = {**config.get("head_defaults", {}).get("saip", {}), **recipe}
        repeats = merged.get("decay_repeats", 2)
        try:
            resolve_detach(merged)
            for value in (repeats.values() if isinstance(repeats, dict) else [repeats]):
                stop_check_after(str(merged.get("stop_after", "start")), 1, int(value))
        except ConfigError as err:
            raise ConfigError(f"method '{name}': {err}") from None
