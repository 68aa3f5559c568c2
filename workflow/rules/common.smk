# Helpers for the rule files (config checks, recipes passed to the stages, code inputs).
import json
import os
import re
import shlex
from pathlib import Path

REPO = Path(workflow.basedir)

from stages.plumbing import config as stage_config  # noqa: E402
from stages.plumbing.codedeps import module_files  # noqa: E402
from stages.plumbing.errors import ConfigError  # noqa: E402
from stages.reporting.sweeps import sweep_index  # noqa: E402

try:
    stage_config.validate(config)
except ConfigError as err:
    raise WorkflowError(f"configuration (config.yaml, --configfile, --config): {err}") from None

RUNS = stage_config.runs(config)
DATASETS = sorted(stage_config.selected_datasets(config))
METHODS = sorted({m for _, m, _ in RUNS})
DEEP_METHODS = [m for m in METHODS if config["methods"][m]["family"] != "baseline"]
BASELINES = [m for m in METHODS if config["methods"][m]["family"] == "baseline"]
THREADS = config["threads"]
GPU = 1 if stage_config.gpu_resources(config) else 0


# Every rule's software environment under `--sdm conda` (the same requirements as pyproject.toml).
CONDA_ENV = "../../envs/stages.yaml"

# Operational settings reach the stages as environment variables, not params: Snakemake compares
# params to decide what is stale, and changing where or how verbosely a job runs must rerun
# nothing (docs/reliability.md). Set here, they hold in every job, local or on a SLURM node,
# since each job's Snakemake reads this file again.
os.environ.update(
    STAGES_DEVICE=str(config["device"]),
    STAGES_LOG_EVERY=str(config["log_every"]),
    STAGES_CHECKPOINT_EVERY=str(config["checkpoint_every"]),
)


def alternatives(names):
    """A wildcard constraint matching exactly one of ``names``."""
    return "|".join(map(re.escape, names)) or "(?!x)x"


def expand_runs(pattern):
    """``pattern`` formatted for every (dataset, method, seed) the config asks for."""
    return [pattern.format(dataset=d, method=m, seed=s) for d, m, s in RUNS]


def sources(*modules):
    """Files of the modules a job executes and of every stages module they import: listed as
    inputs, so that editing one reruns exactly the jobs that run it (stages.plumbing.codedeps)."""
    return module_files(modules)


def quoted(obj):
    """A JSON argument for the shell command (params are compared to decide what is stale)."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def recipe(method):
    return stage_config.method_recipe(config, method)


def ae_of(method):
    return config["methods"][method]["ae"]


def init_of(method):
    return config["methods"][method]["init"]


from stages.plumbing.upstream import job_key, results_key, upstream_key  # noqa: E402


def upstream_of(stage):
    """A params function: the key of every recipe and stages file upstream of the job's inputs,
    so that a job whose upstream changed stays stale even when an intermediate job failed and
    its outputs were removed (stages/plumbing/upstream.py)."""
    return lambda w: upstream_key(
        config, stage, w.dataset, **{name: w.get(name) for name in ("ae", "init", "method")}
    )


def upstream_of_results(wildcards):
    """The aggregate job's params: the upstream keys of every run."""
    return results_key(config)


def finetune_history(w):
    """The fine-tuning history of deep methods (baselines have none)."""
    if config["methods"][w.method]["family"] == "baseline":
        return []
    return [f"results/finetune/{w.dataset}/{w.method}/seed{w.seed}/history.csv"]


def pretrain_history(w):
    """The pretraining history of a deep method's autoencoder (baselines have none)."""
    if config["methods"][w.method]["family"] == "baseline":
        return []
    return [f"results/pretrain/{w.dataset}/{ae_of(w.method)}/seed{w.seed}/history.csv"]
