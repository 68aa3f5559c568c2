# Helpers shared by the rule files: config checks, recipes passed to the stages, code inputs.
import json
import shlex
from pathlib import Path

REPO = Path(workflow.basedir)

from stages import config as stage_config  # noqa: E402
from stages.codedeps import module_files  # noqa: E402
from stages.errors import ConfigError  # noqa: E402
from stages.sweeps import sweep_index  # noqa: E402

try:
    stage_config.validate(config)
except ConfigError as err:
    raise WorkflowError(f"configuration (config.yaml, --configfile, --config): {err}") from None

RUNS = stage_config.runs(config)
DATASETS = sorted(stage_config.selected_datasets(config))
METHODS = sorted({m for _, m, _ in RUNS})
DEEP_METHODS = [m for m in METHODS if config["methods"][m]["family"] != "baseline"]
BASELINES = [m for m in METHODS if config["methods"][m]["family"] == "baseline"]
DEVICE = config["device"]
THREADS = config["threads"]
GPU = 1 if config["gpu_resources"] else 0


def _alternatives(names):
    return "|".join(map(__import__("re").escape, names)) or "(?!x)x"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    seed=r"\d+",
    ae=_alternatives(config["autoencoders"]),
    init=_alternatives(config["inits"]),


def expand_runs(pattern):
    """``pattern`` formatted for every (dataset, method, seed) the config asks for."""
    return [pattern.format(dataset=d, method=m, seed=s) for d, m, s in RUNS]


def sources(*modules):
    """Files of the modules a job executes and of every stages module they import: listed as
    inputs, so that editing one reruns exactly the jobs that run it (stages/codedeps.py)."""
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




from stages.upstream import job_key, results_key, upstream_key  # noqa: E402


def upstream_of(stage):
    """A params function: the key of every recipe and stages file upstream of the job's inputs,
    so that a job whose upstream changed stays stale even when an intermediate job failed and
    its outputs were removed (stages/upstream.py)."""
    return lambda w: upstream_key(
        config, stage, w.dataset, **{name: w.get(name) for name in ("ae", "init", "method")}
    )


def upstream_of_results(wildcards):
    """The aggregate job's params: the upstream keys of every run."""
    return results_key(config)
