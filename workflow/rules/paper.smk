# The papers' tables and figures from our runs: results/paper/{paper}/{table}.{md,tex,html},
# results/paper/{paper}/{figure}.png (stages/reporting/figure_plan.py plans them), one index per paper
# (results/paper/{paper}/all) and one for all papers (results/paper/all).

from stages.reporting.figure_plan import figure_jobs, missing_figures  # noqa: E402
from stages.reporting.paper_tables import PAPERS, table_files  # noqa: E402


localrules:
    paper_tables,
    paper_index,
    papers_index,


wildcard_constraints:
    paper=alternatives(PAPERS),


# every sweep's points, each with its base method's family (which paper it belongs to)
SWEEPS = [
    {**row, "family": config["methods"][row["base"]]["family"]}
    for row in sweep_index(config, SWEEP_POINTS)
]
PAPER_TABLES = table_files(
    str(REPO / "stages/reference/paper_results.csv"), "results/paper", SWEEPS
)
FIGURES = figure_jobs(config, RUNS, SWEEPS)
PAPER_FIGURES = {paper: [job.output for job in FIGURES if job.paper == paper] for paper in PAPERS}


# one rule per figure: each reads its own files (a benchmark file is read once its job's
# output exists: Snakemake does not track benchmark files as outputs)
for _job in FIGURES:

    rule:
        name:
            _job.rule_name
        input:
            [path for path in _job.inputs.values() if not path.startswith("benchmarks/")],
            after=list(_job.after),
            code=sources("stages.paper_figures"),
        output:
            report(
                _job.output,
                caption=f"../report/figure_{_job.kind}.rst",
                category="Papers' figures",
                subcategory=_job.paper,
                labels={"paper": _job.paper, "figure": _job.figure, "file": _job.name},
            ),
        log:
            f"logs/paper/{_job.paper}/{_job.name}.log",
        localrule: True
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=4000,
            runtime=20,
        params:
            kind=_job.kind,
            inputs=quoted(_job.inputs),
            spec=quoted(_job.spec),
        shell:
            "OMP_NUM_THREADS={threads} python -m stages.paper_figures --kind {params.kind}"
            " --inputs {params.inputs} --spec {params.spec} --threads {threads} --out {output}"
            " 2> {log}"


rule paper_tables:
    input:
        summary="results/tables/summary.csv",
        sweeps="results/tables/sweeps.csv",
        reference=str(REPO / "stages/reference/paper_results.csv"),
        code=sources("stages.papers"),
    output:
        [
            (
                report(
                    path,
                    caption="../report/paper_table.rst",
                    category="Papers' tables",
                    subcategory=Path(path).parent.name,
                    labels={"paper": Path(path).parent.name, "table": Path(path).stem},
                )
                if path.endswith(".html")
                else path
            )
            for paths in PAPER_TABLES.values()
            for path in paths
        ],
    log:
        "logs/paper/tables.log",
    conda:
        CONDA_ENV
    params:
        sweeps=quoted(SWEEPS),
    shell:
        "python -m stages.papers --summary {input.summary} --reference {input.reference}"
        " --sweeps-csv {input.sweeps} --sweeps {params.sweeps} --out-dir results/paper"
        " 2> {log}"


rule paper_index:
    input:
        lambda w: PAPER_TABLES.get(w.paper, []),
        lambda w: PAPER_FIGURES[w.paper],
        code=sources("stages.paper_index"),
    output:
        "results/paper/{paper}/all",
    log:
        "logs/paper/{paper}.log",
    conda:
        CONDA_ENV
    params:
        files=lambda w: quoted(PAPER_TABLES.get(w.paper, []) + PAPER_FIGURES[w.paper]),
        missing=lambda w: quoted(missing_figures(FIGURES, w.paper)),
    shell:
        "python -m stages.paper_index --paper {wildcards.paper} --files {params.files}"
        " --missing {params.missing} --out {output} 2> {log}"


rule papers_index:
    input:
        indexes=expand("results/paper/{paper}/all", paper=PAPERS),
        code=sources("stages.paper_index"),
    output:
        "results/paper/all",
    log:
        "logs/paper/all.log",
    conda:
        CONDA_ENV
    shell:
        "python -m stages.paper_index --combine {input.indexes} --out {output} 2> {log}"
