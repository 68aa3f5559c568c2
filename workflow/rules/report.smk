# Metrics per run, the results tables, and figures.


localrules:
    aggregate,
    figures,


rule evaluate:
    input:
        data="results/data/{dataset}.h5",
        labels="results/finetune/{dataset}/{method}/seed{seed}/labels.h5",
        history=finetune_history,
        code=sources("stages.evaluate"),
    output:
        "results/metrics/{dataset}/{method}/seed{seed}.json",
    log:
        "logs/evaluate/{dataset}/{method}/seed{seed}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        upstream=upstream_of("evaluate"),
        history=lambda w, input: f"--history {input.history}" if input.history else "",
        schedule=config["schedule"],
    shell:
        "python -m stages.evaluate --data {input.data} --labels {input.labels} {params.history}"
        " --schedule {params.schedule} --out {output} 2> {log}"


rule aggregate:
    input:
        metrics=expand_runs("results/metrics/{dataset}/{method}/seed{seed}.json"),
        reference=str(REPO / "stages/reference/paper_results.csv"),
        code=sources("stages.aggregate"),
    output:
        all=report("results/tables/all.csv", caption="../report/tables.rst", category="Tables"),
        summary=report(
            "results/tables/summary.csv", caption="../report/tables.rst", category="Tables"
        ),
        paper=report(
            "results/tables/paper_vs_ours.md", caption="../report/tables.rst", category="Tables"
        ),
        sweeps=report(
            "results/tables/sweeps.csv", caption="../report/tables.rst", category="Tables"
        ),
    log:
        "logs/aggregate.log",
    conda:
        CONDA_ENV
    params:
        upstream=upstream_of_results,
        sweeps=quoted({"points": sweep_index(config, SWEEP_POINTS)}),
    shell:
        "python -m stages.aggregate --metrics {input.metrics} --reference {input.reference}"
        " --sweeps {params.sweeps} --out-dir results/tables 2> {log}"


rule figures:
    input:
        data="results/data/{dataset}.h5",
        labels="results/finetune/{dataset}/{method}/seed{seed}/labels.h5",
        history=finetune_history,
        pretrain_history=pretrain_history,
        code=sources("stages.figures"),
    output:
        report(
            "results/figures/{dataset}/{method}/seed{seed}.png",
            caption="../report/run_figure.rst",
            category="Runs",
            subcategory="{dataset}",
            labels={"method": "{method}", "seed": "{seed}"},
        ),
    log:
        "logs/figures/{dataset}/{method}/seed{seed}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        upstream=upstream_of("figures"),
        history=lambda w, input: f"--history {input.history}" if input.history else "",
        pretrain=lambda w, input: (
            f"--pretrain-history {input.pretrain_history}" if input.pretrain_history else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m stages.figures --data {input.data}"
        " --labels {input.labels} {params.history} {params.pretrain} --seed {wildcards.seed}"
        " --threads {threads} --out {output} 2> {log}"
