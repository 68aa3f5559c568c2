# Raw files and prepared datasets.


localrules:
    fetch,


# Place the raw files in data/raw/{dataset} (download with pinned checksums, or local).
rule fetch:
    input:
        sources("stages.fetch"),
    output:
        "data/raw/{dataset}/manifest.json",
    log:
        "logs/fetch/{dataset}.log",
    conda:
        CONDA_ENV
    params:
        source=lambda w: (
            f"--source-dir {shlex.quote(config['datasets'][w.dataset]['source_dir'])}"
            if "source_dir" in config["datasets"][w.dataset]
            else ""
        ),
    shell:
        "python -m stages.fetch --dataset {wildcards.dataset} --raw-dir data/raw/{wildcards.dataset}"
        " {params.source} 2> {log}"


# Turn raw files into results/data/{dataset}.h5 (X float32, y int64, attributes).
rule prepare:
    input:
        manifest="data/raw/{dataset}/manifest.json",
        code=sources("stages.prepare"),
    output:
        "results/data/{dataset}.h5",
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        dataset=lambda w: quoted(config["datasets"][w.dataset].get("params", {})),
    shell:
        "python -m stages.prepare --dataset {wildcards.dataset} --manifest {input.manifest}"
        " --params {params.dataset} --out {output} 2> {log}"
