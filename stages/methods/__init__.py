"""Clustering heads: which module fine-tunes each kind of method.

A method recipe in ``config.yaml`` names a ``head``; the finetune stage looks it up here. The
workflow lists the head's module file as an input of the jobs that use it, so editing it reruns
exactly those jobs.
"""

from __future__ import annotations

from stages.errors import ConfigError

#: head name -> module holding ``finetune(...)``; ``None``: no fine-tuning, the init labels stand
HEADS: dict[str, str | None] = {
    "none": None,
    "dec": "stages.methods.dec",
}

#: shallow baselines clustering raw inputs, all in one module
BASELINE_MODULE = "stages.methods.baselines"



def head_module(head: str) -> str | None:
    if head not in HEADS:
        raise ConfigError(f"unknown head '{head}'; valid choices: {', '.join(sorted(HEADS))}")
    return HEADS[head]
