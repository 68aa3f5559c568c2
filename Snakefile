# Deep-clustering workflow: fetch -> prepare -> pretrain -> embed -> init -> finetune
# -> evaluate -> aggregate / figures. Every rule runs one stage module of the `stages` package.
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


if workflow.basedir not in sys.path:  # the stages package, when not pip-installed
    sys.path.insert(0, workflow.basedir)

# --config seeds=[0,1,2] arrives as strings (snakemake's YAML BaseLoader); make them integers.
# Unknown keys are named with the valid ones before the schema checks types and ranges.
from stages.plumbing.config import check_recipe_keys, coerce_command_line  # noqa: E402
from stages.plumbing.errors import ConfigError  # noqa: E402
from stages.reporting.sweeps import expand_sweeps  # noqa: E402

coerce_command_line(config)
try:
    SWEEP_POINTS = expand_sweeps(config)  # each grid point a method (stages/reporting/sweeps.py)
    check_recipe_keys(config)
except ConfigError as err:
    raise WorkflowError(f"configuration (config.yaml, --configfile, --config): {err}") from None
validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset=alternatives(DATASETS),
    seed=r"\d+",
    ae=alternatives(config["autoencoders"]),
    init=alternatives(config["inits"]),


include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        "results/tables/all.csv",
        "results/tables/summary.csv",
        "results/tables/paper_vs_ours.md",
        "results/tables/sweeps.csv",
        "results/paper/all",
        expand_runs("results/figures/{dataset}/{method}/seed{seed}.png"),
