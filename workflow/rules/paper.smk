# The papers' tables from our runs: results/paper/{paper}/{table}.{md,tex,html}, one index per
# paper (results/paper/{paper}/all) and one for all papers (results/paper/all).

from stages.paper_tables import PAPERS, table_files  # noqa: E402


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
        code=sources("stages.paper_index"),
    output:
        "results/paper/{paper}/all",
    log:
        "logs/paper/{paper}.log",
    conda:
        CONDA_ENV
    params:
        files=lambda w: quoted(PAPER_TABLES.get(w.paper, [])),
    shell:
        "python -m stages.paper_index --paper {wildcards.paper} --files {params.files}"
        " --out {output} 2> {log}"


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
