"""What the default run gives, as a table written from a fresh-clone run:
``python -m stages.reporting.quickstart ALL_CSV --timing TIMING_JSON --config CONFIG
[--out docs/default-run.md] [--readme README.md]``.

``bench/quickstart.sh`` makes the inputs: the clone's ``results/tables/all.csv``, its
``config.yaml`` and ``timing.json`` (commit, date, CPU, cores, seconds of the Quickstart's two
commands). For every dataset and method of the run, one row: ACC and NMI (sqrt) per seed, and
the label-free state of its head (sharpness at the start and end of fine-tuning, clusters
populated). Two checks per deep method and seed, the issue-44 bar of the default run: ACC at or
above ``kmeans`` on the raw inputs, and at or above k-means on its own pretrained embedding (the
run's method with the same autoencoder, ``init: kmeans`` and ``head: none``), where the run has
those rows. The README's Quickstart shows the timings and the first dataset's table between the
markers ``<!-- default-run:begin -->`` and ``<!-- default-run:end -->``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from stages.plumbing.artifacts import atomic_path
from stages.plumbing.cli import main_for
from stages.plumbing.errors import ConfigError, DataFileError

BEGIN, END = "<!-- default-run:begin -->", "<!-- default-run:end -->"


#: init algorithms whose labels are k-means' on the embedding (knn-graph: DSCDAN's, k-means for
#: the centres beside the graph)
KMEANS_INITS = ("kmeans", "knn-graph")


def embedding_partner(methods: dict[str, dict[str, Any]], method: str,
                      inits: dict[str, dict[str, Any]] | None = None,
                      present: set[str] | None = None) -> str | None:
    """The method that labels ``method``'s own pretrained embedding by k-means: same ``ae``,
    ``head: none``, an init whose algorithm is in :data:`KMEANS_INITS` (``inits``: the config's
    init recipes; without them only an init named ``kmeans``), among ``present`` (the methods
    that ran; default all). None for a method without a head or without such a partner."""
    recipe = methods.get(method, {})
    if recipe.get("family", "baseline") == "baseline" or recipe.get("head", "none") == "none":
        return None
    for name, other in methods.items():
        init = other.get("init")
        algorithm = (inits or {}).get(init, {}).get("algorithm", init)
        if (other.get("ae") == recipe.get("ae") and other.get("head", "none") == "none"
                and algorithm in KMEANS_INITS and (present is None or name in present)):
            return name
    return None


def _fmt(value: float, digits: int = 1) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else \
        f"{value:.{digits}f}"


def check_rows(runs: pd.DataFrame, methods: dict[str, dict[str, Any]],
               inits: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per (dataset, method) of ``runs`` (the all.csv table, several seeds) with ACC and
    NMI per seed in percent, the head's sharpness and populated clusters (last seed's), and the
    two checks per seed: ``>= kmeans`` and ``>= own k-means`` (``yes``/``no``/empty when the
    run lacks the row to compare with)."""
    seeds = sorted(runs["seed"].unique())
    acc = runs.set_index(["dataset", "method", "seed"])["acc"]
    out = []
    for (dataset, method), group in runs.groupby(["dataset", "method"], sort=False):
        by_seed = group.set_index("seed")
        row: dict[str, Any] = {"dataset": dataset, "method": method,
                               "family": group["family"].iloc[0]}
        partner = embedding_partner(methods, method, inits, set(runs["method"]))
        deep = row["family"] != "baseline"
        fails = []
        for seed in seeds:
            a = by_seed["acc"].get(seed, math.nan)
            row[f"acc_seed{seed}"] = 100 * a
            row[f"nmi_seed{seed}"] = 100 * by_seed["nmi_sqrt"].get(seed, math.nan)
            if not deep or math.isnan(a):
                continue
            for name, other in (("kmeans", "kmeans"), ("own k-means", partner)):
                ref = acc.get((dataset, other, seed), math.nan) if other else math.nan
                if not math.isnan(ref) and other != method and a < ref:
                    fails.append(f"below {name if other == 'kmeans' else other} (seed {seed})")
        last = by_seed.iloc[-1]
        row["sharpness"] = (f"{last['sharpness_start']:.2f} → {last['sharpness_end']:.2f}"
                            if not pd.isna(last.get("sharpness_start")) else "")
        row["clusters"] = f"{int(last['populated'])}/{int(last['n_clusters'])}" \
            if not pd.isna(last.get("populated")) else ""
        row["partner"] = partner or ""
        row["bar"] = ("" if not deep else "; ".join(fails) if fails else "met")
        out.append(row)
    return pd.DataFrame(out)


def markdown_table(table: pd.DataFrame, seeds: list[int]) -> str:
    """The rows of one dataset as a Markdown table."""
    head = (["method"] + [f"ACC s{s}" for s in seeds] + [f"NMI s{s}" for s in seeds]
            + ["head sharpness", "clusters", "k-means on its embedding", "bar"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = ([r["method"]] + [_fmt(r[f"acc_seed{s}"]) for s in seeds]
                 + [_fmt(r[f"nmi_seed{s}"]) for s in seeds]
                 + [r["sharpness"], r["clusters"], r["partner"], r["bar"]])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def timing_lines(timing: dict[str, Any]) -> list[str]:
    """The Quickstart's measured figures as Markdown lines."""
    where = f"{timing['cpu']}, {timing['cores']} cores, {timing['date']}, commit {timing['commit']}"
    lines = [f"- Command 1 (install + default run): **{timing['command1_s'] / 60:.1f} min** "
             f"({timing['command1_s']:.0f} s, {timing['command1_jobs']} jobs), fresh clone, "
             f"new virtual environment; {where}."]
    if timing.get("command2_s") is not None:
        lines.append(f"- Command 2 (install + tests): **{timing['command2_s'] / 60:.1f} min** "
                     f"({timing['command2_s']:.0f} s; {timing.get('command2_result') or ''}).")
    return lines


def render(runs: pd.DataFrame, config: dict[str, Any], timing: dict[str, Any]) -> tuple[str, str]:
    """(the page docs/default-run.md, the README block) from the run's table and settings."""
    methods = config.get("methods", {})
    seeds = [int(s) for s in sorted(runs["seed"].unique())]
    order = [d for d in config.get("datasets", {}) if d in set(runs["dataset"])]
    order += [d for d in runs["dataset"].unique() if d not in order]
    table = check_rows(runs, methods, config.get("inits", {}))
    sections, first = [], ""
    for dataset in order:
        md = markdown_table(table[table["dataset"] == dataset], seeds)
        sections.append(f"## {dataset}\n\n{md}\n")
        first = first or f"{dataset}, `schedule: {runs['schedule'].iloc[0]}`:\n\n{md}"
    intro = timing_lines(timing)
    bar = ("`bar`: for a deep method, whether its ACC is at or above `kmeans` on the raw inputs "
           "and at or above k-means on its own pretrained embedding for every seed (issue 44); "
           "`head sharpness`: mean largest assignment probability at the start and end of "
           "fine-tuning (last seed).")
    page = "\n".join([
        "# What the default run gives", "",
        "Written by `bench/quickstart.sh` (`python -m stages.reporting.quickstart`) from a "
        "fresh-clone run; do not edit by hand.", "", *intro, "",
        f"Seeds {', '.join(map(str, seeds))}; ACC and NMI (sqrt) in percent. {bar}", "",
        *sections])
    block = "\n".join([BEGIN, *intro, "", first, "",
                       "All datasets, NMI and the checks: [docs/default-run.md]"
                       "(docs/default-run.md).", END])
    return page, block


def replace_block(readme: str, block: str) -> str:
    """``readme`` with the text between the markers replaced by ``block`` (markers included)."""
    if (readme.count(BEGIN) != 1 or readme.count(END) != 1
            or readme.index(BEGIN) > readme.index(END)):
        raise ConfigError(f"the README needs one '{BEGIN}' line followed by one '{END}' line "
                          "where the default run's table goes (its Quickstart section); add "
                          "them and rerun")
    start, stop = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + block + readme[stop:]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.reporting.quickstart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("all_csv", type=Path, help="results/tables/all.csv of the fresh-clone run")
    p.add_argument("--timing", type=Path, required=True, help="bench/quickstart.sh's timing.json")
    p.add_argument("--config", type=Path, required=True, help="the run's config.yaml")
    p.add_argument("--out", type=Path, default=Path("docs/default-run.md"))
    p.add_argument("--readme", type=Path, default=None,
                   help="also replace the README's block between the default-run markers")
    return p


def run(args: argparse.Namespace) -> None:
    for path in (args.all_csv, args.timing, args.config):
        if not path.exists():
            raise DataFileError(f"{path}: not found; run bench/quickstart.sh WORKDIR to make it")
    runs = pd.read_csv(args.all_csv)
    missing = {"dataset", "method", "family", "seed", "acc", "nmi_sqrt", "schedule"} - set(runs)
    if missing:
        raise DataFileError(f"{args.all_csv}: not a results table (missing columns "
                            f"{', '.join(sorted(missing))}); give results/tables/all.csv")
    config = yaml.safe_load(args.config.read_text())
    timing = json.loads(args.timing.read_text())
    page, block = render(runs, config, timing)
    readme = None if args.readme is None else replace_block(args.readme.read_text(), block)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(page)
    if readme is not None:
        with atomic_path(args.readme) as tmp:
            Path(tmp).write_text(readme)


if __name__ == "__main__":
    main_for(build_parser, run)
