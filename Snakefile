# Deep-clustering workflow: fetch -> prepare -> pretrain -> embed -> init -> finetune
# -> evaluate -> aggregate / figures. Every rule runs one stage module of the `stages` package.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/tables/all.csv",
        "results/tables/summary.csv",
        "results/tables/paper_vs_ours.md",
        expand_runs("results/figures/{dataset}/{method}/seed{seed}.png"),
    default_target: True
