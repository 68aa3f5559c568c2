# Clustering: initialisation on the embeddings, fine-tuning, and shallow baselines.


rule init:
    input:
        embedding="results/embed/{dataset}/{ae}/seed{seed}.h5",
        code=lambda w: sources("stages.init", *stage_config.init_modules(config, w.init)),
    output:
        "results/init/{dataset}/{ae}/seed{seed}/{init}.h5",
    log:
        "logs/init/{dataset}/{ae}/seed{seed}/{init}.log",
    benchmark:
        "benchmarks/init/{dataset}/{ae}/seed{seed}/{init}.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        recipe=lambda w: quoted(stage_config.init_recipe(config, w.init)),
        upstream=upstream_of("init"),
    shell:
        "python -m stages.init --embedding {input.embedding} --params {params.recipe}"
        " --seed {wildcards.seed} --threads {threads} --out {output} 2> {log}"


rule finetune:
    input:
        data="results/data/{dataset}.h5",
        model=lambda w: f"results/pretrain/{w.dataset}/{ae_of(w.method)}/seed{w.seed}/model.pt",
        embedding=lambda w: f"results/embed/{w.dataset}/{ae_of(w.method)}/seed{w.seed}.h5",
        init=lambda w: (
            f"results/init/{w.dataset}/{ae_of(w.method)}/seed{w.seed}/{init_of(w.method)}.h5"
        ),
        code=lambda w: sources(
            "stages.finetune",
            *stage_config.method_modules(config, w.method),
        ),
    output:
        labels="results/finetune/{dataset}/{method}/seed{seed}/labels.h5",
        history="results/finetune/{dataset}/{method}/seed{seed}/history.csv",
        snapshots="results/finetune/{dataset}/{method}/seed{seed}/snapshots.h5",
    log:
        "logs/finetune/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/finetune/{dataset}/{method}/seed{seed}.tsv"
    wildcard_constraints:
        method=alternatives(DEEP_METHODS),
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=240,
    params:
        recipe=lambda w: quoted(recipe(w.method)),
        out_dir=lambda w, output: str(Path(output.labels).parent),
        upstream=upstream_of("finetune"),
        job_key=lambda w: job_key(config, "finetune", w.dataset, method=w.method),
    shell:
        "python -m stages.finetune --data {input.data} --model {input.model}"
        " --embedding {input.embedding} --init {input.init} --params {params.recipe}"
        " --seed {wildcards.seed} --out-dir {params.out_dir} --device $STAGES_DEVICE"
        " --threads {threads} --log-every $STAGES_LOG_EVERY"
        " --checkpoint-every $STAGES_CHECKPOINT_EVERY --job-key {params.job_key} 2> {log}"


rule baseline:
    input:
        data="results/data/{dataset}.h5",
        code=lambda w: sources("stages.baseline", *stage_config.method_modules(config, w.method)),
    output:
        labels="results/finetune/{dataset}/{method}/seed{seed}/labels.h5",
    log:
        "logs/baseline/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/baseline/{dataset}/{method}/seed{seed}.tsv"
    wildcard_constraints:
        method=alternatives(BASELINES),
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        recipe=lambda w: quoted(recipe(w.method)),
        upstream=upstream_of("baseline"),
    shell:
        "python -m stages.baseline --data {input.data} --params {params.recipe}"
        " --seed {wildcards.seed} --out {output.labels} --threads {threads} 2> {log}"
