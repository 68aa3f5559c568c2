# Metrics per run, the results tables, and figures.

localrules:
    aggregate,
    figures,


def _history(w):
    """The fine-tuning history of deep methods (baselines have none)."""
    if config["methods"][w.method]["family"] == "baseline":
        return []
    return [f"results/finetune/{w.dataset}/{w.method}/seed{w.seed}/history.csv"]


def _pretrain_history(w):
    if config["methods"][w.method]["family"] == "baseline":
        return []
    return [f"results/pretrain/{w.dataset}/{ae_of(w.method)}/seed{w.seed}/history.csv"]


rule evaluate:
    input:
        data="results/data/{dataset}.h5",
        labels="results/finetune/{dataset}/{method}/seed{seed}/labels.h5",
        history=_history,
        code=sources("stages.evaluate"),
    output:
        "results/metrics/{dataset}/{method}/seed{seed}.json",
    params:
        upstream=upstream_of("evaluate"),
        history=lambda w, input: f"--history {input.history}" if input.history else "",
        schedule=config["schedule"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/evaluate/{dataset}/{method}/seed{seed}.log",
    shell:
        "python -m stages.evaluate --data {input.data} --labels {input.labels} {params.history}"
        " --schedule {params.schedule} --out {output} 2> {log}"


rule aggregate:
    input:
        metrics=expand_runs("results/metrics/{dataset}/{method}/seed{seed}.json"),
        reference=str(REPO / "stages/reference/paper_results.csv"),
        code=sources("stages.aggregate"),
    output:
        all="results/tables/all.csv",
        summary="results/tables/summary.csv",
        paper="results/tables/paper_vs_ours.md",
        sweeps="results/tables/sweeps.csv",
    params:
        upstream=upstream_of_results,
        sweeps=quoted({"points": sweep_index(config, SWEEP_POINTS)}),
    log:
        "logs/aggregate.log",
    shell:
        "python -m stages.aggregate --metrics {input.metrics} --reference {input.reference}"
        " --sweeps {params.sweeps} --out-dir results/tables 2> {log}"


rule figures:
    input:
        data="results/data/{dataset}.h5",
        labels="results/finetune/{dataset}/{method}/seed{seed}/labels.h5",
        history=_history,
        pretrain_history=_pretrain_history,
        code=sources("stages.figures"),
    output:
        "results/figures/{dataset}/{method}/seed{seed}.png",
    params:
        upstream=upstream_of("figures"),
        history=lambda w, input: f"--history {input.history}" if input.history else "",
        pretrain=lambda w, input: (
            f"--pretrain-history {input.pretrain_history}" if input.pretrain_history else ""
        ),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    log:
        "logs/figures/{dataset}/{method}/seed{seed}.log",
    shell:
        "OMP_NUM_THREADS={threads} python -m stages.figures --data {input.data}"
        " --labels {input.labels} {params.history} {params.pretrain} --seed {wildcards.seed}"
        " --threads {threads} --out {output} 2> {log}"
