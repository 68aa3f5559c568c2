# Raw files and prepared datasets.

localrules:
    fetch,


rule fetch:
    """Place the raw files in data/raw/{dataset} (download with pinned checksums, or local)."""
    output:
        "data/raw/{dataset}/manifest.json",
    input:
        sources("stages.fetch"),
    params:
        source=lambda w: (
            f"--source-dir {shlex.quote(config['datasets'][w.dataset]['source_dir'])}"
            if "source_dir" in config["datasets"][w.dataset]
            else ""
        ),
    log:
        "logs/fetch/{dataset}.log",
    shell:
        "python -m stages.fetch --dataset {wildcards.dataset} --raw-dir data/raw/{wildcards.dataset}"
        " {params.source} 2> {log}"


rule prepare:
    """Turn raw files into results/data/{dataset}.h5 (X float32, y int64, attributes)."""
    input:
        manifest="data/raw/{dataset}/manifest.json",
        code=sources("stages.prepare"),
    output:
        "results/data/{dataset}.h5",
    params:
        dataset=lambda w: quoted(config["datasets"][w.dataset].get("params", {})),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    shell:
        "python -m stages.prepare --dataset {wildcards.dataset} --manifest {input.manifest}"
        " --params {params.dataset} --out {output} 2> {log}"
