"""Which of the papers' figures a configuration can draw, and from which files.

:func:`figure_jobs` turns the configuration (its runs and sweeps) into one :class:`FigureJob`
per figure: the paper, the file name under ``results/paper/{paper}/``, the kind of drawing
(:data:`KINDS`, drawn by :mod:`stages.reporting.paper_figures`), the files it reads (each one a file
the workflow writes anyway) and what to draw from them. :func:`missing_figures` says, for the
figures no run allows, what they need. Importing this module is cheap (no torch, no
matplotlib): the Snakefile plans the figures on every invocation.

The figures (first seed of each run):

* DCEC Fig. 3 and DSCDAN Fig. 6 (``embeddings``): t-SNE of raw data, the pretrained
  autoencoder, DEC and the method (DSCDAN: and its ablations), one panel per run;
* DEPICT Fig. 4 (Fig. 5 for its face datasets) (``stages``): the first two principal
  components of DEPICT's embedding at the initial stage (the untrained network: pretraining's
  first snapshot), the intermediate stage (after pretraining, before the clustering loss) and
  the final stage (after fine-tuning);
* DEPICT Fig. 3 (``running_time``): wall seconds per dataset and method, from the benchmark
  files of the pretraining, embedding, init and fine-tuning jobs;
* SAIP Fig. 1(a) (``agreement``): ACC and the P1/P2 assignment disagreement over epochs;
* one ``sensitivity`` figure per sweep, under its base method's paper (SAIP Figs. 4-6, DSCDAN
  Fig. 5, RMN-GMM Table 6 as a figure);
* RMN-GMM Fig. 5 (``snapshots``): t-SNE of the representation at four epochs of fine-tuning;
  Fig. 6 (``covariances``): covariance matrices of the autoencoder's features per class;
  Fig. 7 (``nearest_farthest``): the images nearest to and farthest from their centres.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stages.reporting.paper_tables import FAMILY_PAPER

#: the kinds of drawing stages.reporting.paper_figures knows
KINDS = ("embeddings", "stages", "running_time", "agreement", "sensitivity", "snapshots",
         "covariances", "nearest_farthest")
#: embedding figures: (paper, figure, the method it is about, panels (title, source)); a source
#: is "raw", "pretrained:<method>" (the method's autoencoder, coloured by its init's labels) or
#: a method (its fine-tuned embedding and clusters)
EMBEDDING_FIGURES = (
    ("dcec", "Fig. 3", "dcec", (("Raw data", "raw"), ("CAE", "pretrained:dcec"), ("DEC", "dec"),
                                ("DEC-conv", "dec-conv"), ("DCEC", "dcec"))),
    ("dscdan", "Fig. 6", "dscdan", (
        ("Raw data", "raw"), ("ConvAE", "dscdan-convae"), ("DEC", "dec"),
        ("ConvAE+MI", "dscdan-convae-mi"), ("ConvAE+RS", "dscdan-convae-rs"),
        ("ConvAE+MI+RS", "dscdan-convae-mi-rs"),
        ("ConvAE+MI+RS (pretrained)", "pretrained:dscdan"), ("DSCDAN", "dscdan"))),
)
#: DEPICT's Fig. 5 shows its face datasets, Fig. 4 the digits
DEPICT_FIG5_DATASETS = frozenset({"frgc", "ytf", "cmu-pie", "cmu-pie-41k"})
#: the SAIP method whose history Fig. 1(a) shows, and the RMN-GMM method of Figs. 5-8
SAIP_METHOD = "saip-hoe"
RMN_METHOD = "rmn-gmm"
DEPICT_METHOD = "depict"


@dataclass(frozen=True)
class FigureJob:
    """One figure: ``results/paper/{paper}/{name}.png``, drawn as ``kind`` from ``inputs``
    (name -> path) with ``spec`` (what to draw; JSON-serialisable). ``after``: files that must
    exist first (the outputs of the jobs whose benchmark files ``inputs`` names: Snakemake does
    not track benchmark files as outputs)."""

    paper: str
    figure: str
    name: str
    kind: str
    inputs: dict[str, str]
    spec: dict[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()

    @property
    def output(self) -> str:
        return f"results/paper/{self.paper}/{self.name}.png"

    @property
    def rule_name(self) -> str:
        return "figure_" + re.sub(r"\W", "_", f"{self.paper}_{self.name}")


def _runs_by_dataset(runs: Sequence[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """dataset -> method -> first seed, in the runs' order."""
    out: dict[str, dict[str, int]] = {}
    for dataset, method, seed in runs:
        out.setdefault(dataset, {}).setdefault(method, seed)
    return out


def _finetuned(dataset: str, method: str, seed: int) -> str:
    return f"results/finetune/{dataset}/{method}/seed{seed}/labels.h5"


def _embedding_job(config: Mapping[str, Any], paper: str, figure: str, dataset: str,
                   seed: int, methods: Mapping[str, int],
                   panels: Sequence[tuple[str, str]]) -> FigureJob:
    inputs = {"data": f"results/data/{dataset}.h5"}
    drawn, left_out = [], []
    for title, source in panels:
        if source == "raw":
            colours = "kmeans" if "kmeans" in methods else None
            if colours:
                inputs["kmeans"] = _finetuned(dataset, "kmeans", methods["kmeans"])
            drawn.append({"title": title, "features": ["data", "X"],
                          "labels": [colours, "labels"] if colours else None})
            continue
        if source.startswith("pretrained:"):
            method = source.split(":", 1)[1]
            entry = config["methods"][method]
            key = f"pretrained_{len(drawn)}"
            inputs[key] = f"results/embed/{dataset}/{entry['ae']}/seed{seed}.h5"
            inputs[key + "_init"] = (f"results/init/{dataset}/{entry['ae']}/seed{seed}/"
                                     f"{entry['init']}.h5")
            drawn.append({"title": f"{title}: {entry['ae']}", "features": [key, "Z"],
                          "labels": [key + "_init", "labels"]})
            continue
        if source not in methods:
            left_out.append(f"{title} ({source})")
            continue
        inputs[source] = _finetuned(dataset, source, methods[source])
        drawn.append({"title": title, "features": [source, "embedding"],
                      "labels": [source, "labels"]})
    return FigureJob(paper, figure, f"{_slug(figure)}-{dataset}", "embeddings", inputs,
                     {"dataset": dataset, "seed": seed, "panels": drawn, "not_run": left_out})


def _slug(figure: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", figure.lower().replace("fig.", "fig"))


def figure_jobs(config: Mapping[str, Any], runs: Sequence[tuple[str, str, int]],
                sweeps: Sequence[Mapping[str, Any]] = ()) -> list[FigureJob]:
    """Every figure the runs allow. ``runs``: (dataset, method, seed) (stages.plumbing.config.runs);
    ``sweeps``: stages.reporting.sweeps.sweep_index rows with the base method's ``family`` added."""
    by_dataset = _runs_by_dataset(runs)
    jobs: list[FigureJob] = []
    for paper, figure, method, panels in EMBEDDING_FIGURES:
        for dataset, methods in by_dataset.items():
            if method in methods:
                jobs.append(_embedding_job(config, paper, figure, dataset, methods[method],
                                           methods, panels))
    for dataset, methods in by_dataset.items():
        if DEPICT_METHOD in methods:
            seed = methods[DEPICT_METHOD]
            ae = config["methods"][DEPICT_METHOD]["ae"]
            figure = "Fig. 5" if dataset in DEPICT_FIG5_DATASETS else "Fig. 4"
            jobs.append(FigureJob("depict", figure, f"{_slug(figure)}-{dataset}", "stages", {
                "data": f"results/data/{dataset}.h5",
                "initial": f"results/pretrain/{dataset}/{ae}/seed{seed}/snapshots.h5",
                "intermediate": f"results/embed/{dataset}/{ae}/seed{seed}.h5",
                "final": _finetuned(dataset, DEPICT_METHOD, seed)},
                {"dataset": dataset, "seed": seed, "method": DEPICT_METHOD}))
    timed, done = {}, []
    for dataset, methods in by_dataset.items():
        for method, seed in methods.items():
            timed.update({f"{dataset}|{method}|{stage}": path for stage, path
                          in benchmark_files(config, dataset, method, seed).items()})
            done.append(_finetuned(dataset, method, seed))  # after every job of the run
    if timed:
        jobs.append(FigureJob("depict", "Fig. 3", "fig3-running-time", "running_time", timed,
                              {"datasets": list(by_dataset)}, tuple(done)))
    for dataset, methods in by_dataset.items():
        if SAIP_METHOD in methods:
            seed = methods[SAIP_METHOD]
            jobs.append(FigureJob("saip", "Fig. 1(a)", f"fig1a-{dataset}", "agreement", {
                "history": f"results/finetune/{dataset}/{SAIP_METHOD}/seed{seed}/history.csv"},
                {"dataset": dataset, "seed": seed, "method": SAIP_METHOD}))
        if RMN_METHOD in methods:
            seed = methods[RMN_METHOD]
            ae = config["methods"][RMN_METHOD]["ae"]
            data = f"results/data/{dataset}.h5"
            run = f"results/finetune/{dataset}/{RMN_METHOD}/seed{seed}"
            spec = {"dataset": dataset, "seed": seed, "method": RMN_METHOD}
            jobs += [
                FigureJob("rmn-gmm", "Fig. 5", f"fig5-{dataset}", "snapshots",
                          {"data": data, "snapshots": f"{run}/snapshots.h5"}, spec),
                FigureJob("rmn-gmm", "Fig. 6", f"fig6-{dataset}", "covariances",
                          {"data": data,
                           "embedding": f"results/embed/{dataset}/{ae}/seed{seed}.h5"}, spec)]
            if _is_image(dataset):
                jobs.append(FigureJob("rmn-gmm", "Fig. 7", f"fig7-{dataset}",
                                      "nearest_farthest",
                                      {"data": data, "labels": f"{run}/labels.h5"}, spec))
    for sweep in dict.fromkeys(row["sweep"] for row in sweeps):
        family = next(row["family"] for row in sweeps if row["sweep"] == sweep)
        paper = FAMILY_PAPER.get(family)
        if paper is not None:
            jobs.append(FigureJob(paper, f"Sweep {sweep}", f"sweep-{sweep}", "sensitivity",
                                  {"sweeps": "results/tables/sweeps.csv"},
                                  {"sweep": sweep, "paper": paper}))
    return jobs


def _is_image(dataset: str) -> bool:
    """Whether the dataset's samples are images that can be shown (not Reuters' tf-idf or
    STL-10's HOG features)."""
    return not dataset.startswith(("reuters", "stl10-hog"))


def benchmark_files(config: Mapping[str, Any], dataset: str, method: str,
                    seed: int) -> dict[str, str]:
    """The benchmark files (stage -> path) of every job one run took: a baseline's one job, a
    deep method's pretraining, embedding, init and fine-tuning (a shared autoencoder counted in
    each method that uses it)."""
    entry = config["methods"][method]
    if entry.get("family") == "baseline":
        return {"baseline": f"benchmarks/baseline/{dataset}/{method}/seed{seed}.tsv"}
    ae, init = entry["ae"], entry["init"]
    return {"pretrain": f"benchmarks/pretrain/{dataset}/{ae}/seed{seed}.tsv",
            "embed": f"benchmarks/embed/{dataset}/{ae}/seed{seed}.tsv",
            "init": f"benchmarks/init/{dataset}/{ae}/seed{seed}/{init}.tsv",
            "finetune": f"benchmarks/finetune/{dataset}/{method}/seed{seed}.tsv"}


#: every figure the planner knows, per paper: (figure, what it needs)
NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "dcec": (("Fig. 3", "dcec on a dataset"),),
    "depict": (("Fig. 3", "any run"), ("Fig. 4", "depict on a digits dataset (MNIST, USPS)"),
               ("Fig. 5", "depict on FRGC, YTF or CMU-PIE")),
    "dscdan": (("Fig. 5", "a sweep of dscdan (its Fig. 5 sweeps beta and gamma)"),
               ("Fig. 6", "dscdan on a dataset")),
    "saip": (("Fig. 1(a)", f"{SAIP_METHOD} on a dataset"),
             ("Figs. 4-6", "sweeps of a SAIP method (noise ratio, lr decay, d)")),
    "rmn-gmm": (("Table 6", "a sweep of rmn-gmm's eta"),
                ("Fig. 5", f"{RMN_METHOD} on a dataset"), ("Fig. 6", f"{RMN_METHOD} on a dataset"),
                ("Fig. 7", f"{RMN_METHOD} on MNIST"),
                ("Fig. 8", f"{RMN_METHOD} on STL-10 images (stl10-hog holds HOG features)")),
}


def missing_figures(jobs: Sequence[FigureJob], paper: str) -> list[str]:
    """Lines naming the figures of ``paper`` that no job draws, with what each needs."""
    drawn = {job.figure for job in jobs if job.paper == paper}
    has_sweep = any(job.kind == "sensitivity" for job in jobs if job.paper == paper)
    out = []
    for figure, need in NEEDS.get(paper, ()):
        sweep_figure = "sweep" in need
        if (sweep_figure and has_sweep) or (not sweep_figure and figure in drawn):
            continue
        out.append(f"{figure}: not drawn; it needs {need}")
    return out
