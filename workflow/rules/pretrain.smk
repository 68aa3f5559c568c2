# Autoencoder pretraining and embedding: one autoencoder per (dataset, ae, seed), shared by
# every method whose recipe names it.


rule pretrain:
    input:
        data="results/data/{dataset}.h5",
        code=lambda w: sources(
            "stages.pretrain",
            *stage_config.autoencoder_modules(config, w.ae),
        ),
    output:
        model="results/pretrain/{dataset}/{ae}/seed{seed}/model.pt",
        history="results/pretrain/{dataset}/{ae}/seed{seed}/history.csv",
        snapshots="results/pretrain/{dataset}/{ae}/seed{seed}/snapshots.h5",
    log:
        "logs/pretrain/{dataset}/{ae}/seed{seed}.log",
    benchmark:
        "benchmarks/pretrain/{dataset}/{ae}/seed{seed}.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=240,
    params:
        recipe=lambda w: quoted(stage_config.autoencoder_recipe(config, w.ae)),
        out_dir=lambda w, output: str(Path(output.model).parent),
        upstream=upstream_of("pretrain"),
        job_key=lambda w: job_key(config, "pretrain", w.dataset, ae=w.ae),
    shell:
        "python -m stages.pretrain --data {input.data} --params {params.recipe}"
        " --seed {wildcards.seed} --out-dir {params.out_dir} --device $STAGES_DEVICE"
        " --threads {threads} --log-every $STAGES_LOG_EVERY"
        " --checkpoint-every $STAGES_CHECKPOINT_EVERY --job-key {params.job_key} 2> {log}"


rule embed:
    input:
        data="results/data/{dataset}.h5",
        model="results/pretrain/{dataset}/{ae}/seed{seed}/model.pt",
        code=lambda w: sources(
            "stages.embed", stage_config.network_module(config["autoencoders"][w.ae]["net"])
        ),
    output:
        "results/embed/{dataset}/{ae}/seed{seed}.h5",
    log:
        "logs/embed/{dataset}/{ae}/seed{seed}.log",
    benchmark:
        "benchmarks/embed/{dataset}/{ae}/seed{seed}.tsv"
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=20,
    params:
        upstream=upstream_of("embed"),
    shell:
        "python -m stages.embed --data {input.data} --model {input.model} --out {output}"
        " --device $STAGES_DEVICE --threads {threads} 2> {log}"
