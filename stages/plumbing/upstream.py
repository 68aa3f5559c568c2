"""What a job's inputs were computed from, as one short key for the rule's ``params``.

Snakemake reruns a job whose own params, code or inputs changed, and everything downstream of
it, but it never regenerates a *missing* intermediate file when the files downstream of it
exist (that is how it treats temporary files). So when a rerun job fails or is killed (a SLURM
time limit, ``scancel``) after its old outputs were removed, the next run finds the old
metrics and tables downstream, sees nothing to do, and reports results of the old recipe.

Each rule therefore carries, as a param, the key of everything upstream of its inputs: the
recipes (dataset, autoencoder, init, method) and the content of every ``stages`` file the
upstream jobs run. A change anywhere upstream changes the key of every job below it, so they
stay stale until they have run with the new recipe, however the intermediate jobs ended. The
key changes exactly when an upstream job would rerun, so it never adds jobs to a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from stages.methods import BASELINE_MODULE
from stages.nets import network_module
from stages.plumbing import config as stage_config
from stages.plumbing.codedeps import module_files

#: Stages whose jobs carry an upstream key.
STAGES = ("pretrain", "embed", "init", "finetune", "baseline", "evaluate", "figures")


@lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def code_digest(modules: Iterable[str]) -> str:
    """SHA-256 over the files of ``modules`` and the ``stages`` modules they import."""
    h = hashlib.sha256()
    for path in module_files(modules):
        st = os.stat(path)
        h.update(f"{os.path.basename(path)}:{_file_digest(path, st.st_mtime_ns, st.st_size)}\n"
                 .encode())
    return h.hexdigest()


def _data(config: dict[str, Any], dataset: str) -> list[Any]:
    entry = config["datasets"][dataset]
    return ["data", dataset, entry.get("params", {}), entry.get("source_dir"),
            code_digest(["stages.fetch", "stages.prepare"])]


def _pretrain(config: dict[str, Any], ae: str) -> list[Any]:
    return ["pretrain", stage_config.autoencoder_recipe(config, ae),
            code_digest(["stages.pretrain", *stage_config.autoencoder_modules(config, ae)])]


def _embed(config: dict[str, Any], ae: str) -> list[Any]:
    net = config["autoencoders"][ae]["net"]
    return ["embed", code_digest(["stages.embed", network_module(net)])]


def _init(config: dict[str, Any], init: str) -> list[Any]:
    return ["init", stage_config.init_recipe(config, init),
            code_digest(["stages.init", *stage_config.init_modules(config, init)])]


def _method(config: dict[str, Any], method: str) -> list[Any]:
    recipe = stage_config.method_recipe(config, method)
    if recipe["family"] == "baseline":
        return ["baseline", recipe, code_digest(["stages.baseline", BASELINE_MODULE])]
    return ["finetune", recipe,
            code_digest(["stages.finetune", *stage_config.method_modules(config, method)])]


def upstream(config: dict[str, Any], stage: str, dataset: str, *, ae: str | None = None,
             init: str | None = None, method: str | None = None) -> list[Any]:
    """The recipes and code digests that the inputs of a ``stage`` job derive from.

    ``ae`` (pretrain, embed, init), ``init`` (init) and ``method`` (finetune, baseline,
    evaluate, figures) name the job like its wildcards do; a method implies its ae and init.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage '{stage}'; valid choices: {', '.join(STAGES)}")
    parts = [_data(config, dataset)]
    if stage in ("pretrain", "baseline"):
        return parts
    if method is not None and config["methods"][method]["family"] == "baseline":
        return parts + [_method(config, method)]  # evaluate, figures of a shallow baseline
    if method is not None:
        ae, init = config["methods"][method]["ae"], config["methods"][method]["init"]
    parts += [_pretrain(config, ae)]
    if stage == "embed":
        return parts
    parts += [_embed(config, ae)]
    if stage == "init":
        return parts
    parts += [_init(config, init)]
    if stage == "finetune":
        return parts
    return parts + [_method(config, method)]


def job_key(config: dict[str, Any], stage: str, dataset: str, *, ae: str | None = None,
            method: str | None = None) -> str:
    """Key of everything that determines a checkpointing job's result: its inputs' recipes and
    code (:func:`upstream`), its own recipe and code. ``stage``: pretrain (``ae``) or finetune
    (``method``); its checkpoints carry it, so a changed job never resumes a stale one."""
    if stage == "pretrain":
        return key(upstream(config, "embed", dataset, ae=ae))
    if stage == "finetune":
        return key(upstream(config, "evaluate", dataset, method=method))
    raise ValueError(f"stage '{stage}' does not checkpoint; valid choices: pretrain, finetune")


def key(parts: Any) -> str:
    """A short stable hash of JSON-able ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def upstream_key(config: dict[str, Any], stage: str, dataset: str, **names: str | None) -> str:
    """:func:`key` of :func:`upstream`."""
    return key(upstream(config, stage, dataset, **names))


def results_key(config: dict[str, Any]) -> str:
    """Key of every run's evaluate upstream: the aggregate job's inputs derive from all."""
    return key(sorted({upstream_key(config, "evaluate", d, method=m)
                       for d, m, _ in stage_config.runs(config)}))
