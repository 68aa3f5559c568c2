"""The registry of method families: what each name in a recipe refers to.

Each family package (``stages/methods/<family>/``) declares its networks, pretraining
objectives, init algorithms, heads, option schemas, config checks and report notes in one
``FAMILY`` (:mod:`stages.methods.family`); this module finds them and merges them into the
look-up tables below. A new family is a new folder: nothing here changes.
"""

from __future__ import annotations

from stages.methods.family import Family, discover, merged
from stages.plumbing.errors import ConfigError

#: recipe ``family`` -> its declaration
FAMILIES: dict[str, Family] = {f.name: f for f in discover(__name__)}
_ALL = list(FAMILIES.values())
_HEADS = merged(_ALL, "heads")
_OBJECTIVES = merged(_ALL, "objectives")

#: head name -> module holding ``finetune(...)``; ``None``: no fine-tuning, the init labels stand
HEADS: dict[str, str | None] = {"none": None,
                                **{k: h.module for k, h in _HEADS.items()}}
#: heads that only work on some networks: head -> nets
HEAD_NETWORKS: dict[str, frozenset[str]] = {k: h.networks for k, h in _HEADS.items()
                                            if h.networks is not None}
#: heads that need the arrays of one init algorithm: head -> algorithm
HEAD_INIT: dict[str, str] = {k: h.init for k, h in _HEADS.items() if h.init}
#: head -> the family declaring it
HEAD_FAMILY: dict[str, str] = {k: f.name for f in _ALL for k in f.heads}

#: pretraining objective -> (module, function); see :class:`stages.methods.family.Objective`
PRETRAIN_OBJECTIVES: dict[str, tuple[str, str]] = {
    k: (o.module, o.function) for k, o in _OBJECTIVES.items()}
#: objectives that only work on one network: objective -> net
OBJECTIVE_NETWORK: dict[str, str] = {k: o.network for k, o in _OBJECTIVES.items()
                                     if o.network}
#: objectives whose phases may be counted in steps (``steps``, ``layer_steps``,
#: ``lr_step_steps``) instead of epochs
STEP_COUNTED_OBJECTIVES: tuple[str, ...] = tuple(
    k for k, o in _OBJECTIVES.items() if o.counts_steps)
#: objective -> the family declaring it
OBJECTIVE_FAMILY: dict[str, str] = {k: f.name for f in _ALL for k in f.objectives}

#: init algorithm -> (module, function); see :class:`stages.methods.family.Init`
INIT_ALGORITHMS: dict[str, tuple[str, str]] = {
    k: (i.module, i.function) for k, i in merged(_ALL, "inits").items()}

#: shallow baselines clustering raw inputs, all in one module
BASELINE_MODULE: str = next(f.baseline_module for f in _ALL if f.baseline_module)

#: config checks of every family, ``"module:function"`` called with the whole configuration
CONFIG_CHECKS: tuple[str, ...] = tuple(c for f in _ALL for c in f.checks)

#: method -> note printed under the tables of ``paper_vs_ours.md``
METHOD_NOTES: dict[str, str] = merged(_ALL, "method_notes")

#: NMI variant the paper of each family reported (methods.md §0.1)
FAMILY_NMI_VARIANT: dict[str, str] = {f.name: f.nmi_variant for f in _ALL}


def head_module(head: str) -> str | None:
    if head not in HEADS:
        raise ConfigError(f"unknown head '{head}'; valid choices: {', '.join(sorted(HEADS))}")
    return HEADS[head]


def pretrain_objective(objective: str) -> tuple[str, str]:
    """(module, function) of a pretraining objective; ConfigError naming the valid choices."""
    if objective not in PRETRAIN_OBJECTIVES:
        raise ConfigError(f"unknown pretraining objective '{objective}'; valid choices: "
                          f"{', '.join(sorted(PRETRAIN_OBJECTIVES))}")
    return PRETRAIN_OBJECTIVES[objective]


def init_algorithm(algorithm: str) -> tuple[str, str]:
    """(module, function) of an init algorithm; ConfigError naming the valid choices."""
    if algorithm not in INIT_ALGORITHMS:
        raise ConfigError(f"unknown init algorithm '{algorithm}'; valid choices: "
                          f"{', '.join(sorted(INIT_ALGORITHMS))}")
    return INIT_ALGORITHMS[algorithm]
