"""The papers' result tables in their own layout, our numbers beside theirs.

:func:`write_paper_tables` writes, for every (paper, table) of the reference CSV,
``{out_dir}/{paper}/{table}.md`` and ``.tex`` (the stage: ``python -m stages.papers``): the
table's rows (methods; our ``*-vec`` recipes share their method's row) and columns (dataset x
metric) in the order the reference CSV lists them, the order printed in the paper. Each cell
is ``ours (paper)`` in percent, ours the mean ± std over seeds of the run whose dataset stands
for the paper's column (:data:`stages.reporting.tables.DATASET_TO_PAPER`), NMI normalised as that
paper does (:data:`stages.reporting.tables.PAPER_NMI_VARIANT`); ``—`` where we have no run. Under
each table: the seeds and schedules of our numbers (naming the rows not at schedule ``paper``),
which of our datasets fill which column and, for rows from the reproduction records
(``python -m stages.records papers``), the config and commit each was run with.
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.plumbing.artifacts import atomic_path
from stages.plumbing.errors import DataFileError
from stages.reporting.tables import DATASET_TO_PAPER, DEFAULT_REFERENCE, load_reference, nmi_variant

log = logging.getLogger("stages.reporting.paper_tables")

#: column labels of the reference CSV's metrics
METRIC_LABELS = {"acc": "ACC", "nmi": "NMI", "ari": "ARI", "pair_precision": "Precision"}
#: the papers, in the order the README and the report list them
PAPERS: tuple[str, ...] = ("dcec", "depict", "dscdan", "saip", "rmn-gmm")
#: the paper each method family reproduces (a sweep's tables go under its base's paper)
FAMILY_PAPER: dict[str, str] = {"dec": "dcec", "depict": "depict", "dscdan": "dscdan",
                                "saip": "saip", "rmn-gmm": "rmn-gmm"}
#: what is printed for a number we do not have
EMPTY = "—"


@dataclass
class PaperTable:
    """One paper's table: ``columns`` (dataset, metric) pairs, ``rows`` (method, cells), where
    a cell is (ours or None, ours' std or None, n seeds, paper or None), and the notes."""

    paper: str
    source: str
    columns: list[tuple[str, str]]
    rows: list[tuple[str, list[tuple[float | None, float | None, int, float | None]]]]
    notes: list[str]

    @property
    def slug(self) -> str:
        return _slug(self.source)


def _ours_for(summary: pd.DataFrame, paper_dataset: str, method: str) -> pd.Series | None:
    """Our summary row standing for ``paper_dataset``: the first of our datasets mapped to it
    (in :data:`DATASET_TO_PAPER` order) that ran ``method``."""
    for ours, theirs in DATASET_TO_PAPER.items():
        if theirs != paper_dataset:
            continue
        match = summary[(summary.dataset == ours) & (summary.method == method)]
        if len(match):
            return match.iloc[0]
    return None


def _metric_column(paper: str, family: str, metric: str) -> str:
    return nmi_variant(family, paper) if metric == "nmi" else metric


def row_name(method: str) -> str:
    """The paper row a reference method belongs to: our ``*-vec`` recipes (the same method with
    stage 1 for feature vectors) share their image recipe's row."""
    return method[:-len("-vec")] if method.endswith("-vec") else method


def build_table(reference: pd.DataFrame, summary: pd.DataFrame, paper: str,
                source: str) -> PaperTable:
    """The table ``source`` of ``paper`` from the reference rows and our summary."""
    ref = reference[(reference.paper == paper) & (reference.source == source)]
    if ref.empty:
        raise DataFileError(f"the reference has no rows for {paper} {source}")
    columns = list(dict.fromkeys(zip(ref.dataset, ref.metric, strict=True)))
    # (row, dataset, metric) -> (the reference's method name there, the published value)
    value = {(row_name(m), d, k): (m, v)
             for m, d, k, v in zip(ref.method, ref.dataset, ref.metric, ref.value, strict=True)}
    rows, seeds, schedules, stand_ins = [], set(), set(), set()
    row_schedules: dict[str, set[str]] = {}
    provenance: dict[tuple[str, str], str] = {}  # (row, our dataset) -> config at commit(s)
    for row in dict.fromkeys(map(row_name, ref.method)):
        cells = []
        for dataset, metric in columns:
            method, published = value.get((row, dataset, metric), (row, None))
            ours = _ours_for(summary, dataset, method)
            mean = std = None
            n = 0
            if ours is not None:
                col = _metric_column(paper, str(ours["family"]), metric)
                mean = float(ours[f"{col}_mean"]) * 100
                raw_std = ours.get(f"{col}_std")
                std = None if raw_std is None or pd.isna(raw_std) else float(raw_std) * 100
                n = int(ours["n_seeds"])
                seeds.add(n)
                schedules.add(str(ours["schedule"]))
                row_schedules.setdefault(row, set()).add(str(ours["schedule"]))
                stand_ins.add((str(ours["dataset"]), dataset))
                if "commit" in ours.index:  # rows from docs/reproduction (stages.records)
                    provenance[(row, str(ours["dataset"]))] = \
                        f"{ours['config']} at {ours['commit']}"
            cells.append((mean, std, n, published))
        rows.append((row, cells))
    notes = []
    if seeds:
        notes.append(f"Ours: mean ± std over {', '.join(map(str, sorted(seeds)))} seed(s), "
                     f"schedule {', '.join(sorted(schedules))}; the paper's numbers in "
                     "brackets, as printed; — where we have no run.")
        if schedules != {"paper"}:
            notes.append("Rows not at schedule paper (scaled down, not comparable with the "
                         "paper's numbers): " + "; ".join(
                             f"{row} ({', '.join(sorted(s))})"
                             for row, s in row_schedules.items() if s != {"paper"}) + ".")
    else:
        notes.append("No run of ours for this table yet (—); the paper's numbers in brackets.")
    if any(metric == "nmi" for _, metric in columns):
        variant = nmi_variant("", paper).removeprefix("nmi_")
        notes.append(f"Our NMI normalised as the paper's: by the {variant} of the entropies.")
    renamed = sorted((o, t) for o, t in stand_ins if o.lower() != t.lower())
    if renamed:
        notes.append("Our datasets for the paper's columns: "
                     + "; ".join(f"{o} for {t}" for o, t in renamed) + ".")
    if provenance:
        notes.append("Our rows were run with (config at commit): " + "; ".join(
            f"{row} on {dataset}: {text}" for (row, dataset), text in provenance.items()) + ".")
    return PaperTable(paper, source, columns, rows, notes)


def _printed(value: float) -> str:
    """A published number as printed: one decimal, or two where the paper gives two."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return EMPTY if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.1f}"


def cell_text(cell: tuple[float | None, float | None, int, float | None]) -> str:
    """``ours ± std (paper)``; ``—`` for a number we do not have, no brackets without one."""
    mean, std, _, paper = cell
    ours = _pct(mean) if std is None or mean is None else f"{mean:.1f} ± {std:.1f}"
    return ours if paper is None else f"{ours} ({_printed(paper)})"


def to_markdown(table: PaperTable) -> str:
    header = ["Method", *[f"{d} {METRIC_LABELS.get(m, m)}" for d, m in table.columns]]
    lines = [f"# {table.paper}, {table.source}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([method, *map(cell_text, cells)]) + " |"
              for method, cells in table.rows]
    return "\n".join([*lines, "", *table.notes, ""])


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "±": r"$\pm$", "—": "---"}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: PaperTable) -> str:
    """A ``tabular`` with one header row of datasets (``\\multicolumn``) and one of metrics."""
    datasets = list(dict.fromkeys(d for d, _ in table.columns))
    spans = [sum(1 for d, _ in table.columns if d == name) for name in datasets]
    lines = [r"\begin{tabular}{l" + "c" * len(table.columns) + "}", r"\hline",
             " & ".join(["", *[rf"\multicolumn{{{n}}}{{c}}{{{_tex(d)}}}"
                               for d, n in zip(datasets, spans, strict=True)]]) + r" \\",
             " & ".join(["Method", *[_tex(METRIC_LABELS.get(m, m)) for _, m in table.columns]])
             + r" \\", r"\hline"]
    lines += [" & ".join([_tex(method), *[_tex(cell_text(c)) for c in cells]]) + r" \\"
              for method, cells in table.rows]
    lines += [r"\hline", r"\end{tabular}", *[f"% {_tex(note)}" for note in table.notes]]
    return "\n".join(lines) + "\n"


def _slug(source: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")


def to_html(table: PaperTable) -> str:
    """A standalone HTML page of the table (for the Snakemake report)."""
    header = ["Method", *[f"{d} {METRIC_LABELS.get(m, m)}" for d, m in table.columns]]
    body = [[method, *map(cell_text, cells)] for method, cells in table.rows]
    frame = pd.DataFrame(body, columns=header)
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in table.notes)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(table.paper)}"
            f" {html.escape(table.source)}</title></head><body><h1>{html.escape(table.paper)}, "
            f"{html.escape(table.source)}</h1>{frame.to_html(index=False, border=1)}{notes}"
            "</body></html>\n")


#: the formats every table is written in
FORMATS: tuple[tuple[str, Any], ...] = ((".md", to_markdown), (".tex", to_latex),
                                        (".html", to_html))


def sweep_sources(sweeps: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Per paper, the (sweep, table source) of every sweep whose base method's family reproduces
    that paper. ``sweeps``: :func:`stages.reporting.sweeps.sweep_index` rows with the base method's
    ``family`` added."""
    out: dict[str, list[tuple[str, str]]] = {}
    for sweep in dict.fromkeys(row["sweep"] for row in sweeps):
        family = next(row["family"] for row in sweeps if row["sweep"] == sweep)
        paper = FAMILY_PAPER.get(family)
        if paper is not None:
            out.setdefault(paper, []).append((sweep, f"Sweep {sweep}"))
    return out


def table_files(reference_path: str | Path, out_dir: str | Path,
                sweeps: Sequence[Mapping[str, Any]] = ()) -> dict[str, list[str]]:
    """Per paper, the files :func:`write_paper_tables` writes (every format of every table)."""
    reference = load_reference(reference_path)
    sources = {paper: list(dict.fromkeys(reference[reference.paper == paper].source))
               for paper in dict.fromkeys(reference.paper)}
    for paper, entries in sweep_sources(sweeps).items():
        sources.setdefault(paper, []).extend(source for _, source in entries)
    return {paper: [str(Path(out_dir) / paper / f"{_slug(s)}{suffix}")
                    for s in names for suffix, _ in FORMATS]
            for paper, names in sources.items()}


def sweep_table(sweeps: pd.DataFrame, sweep: str, paper: str) -> PaperTable:
    """Sweep ``sweep`` of ``sweeps.csv`` as a paper-style table: a row per point (its values;
    the base method's row marked), a column per dataset x (ACC, NMI), our numbers only
    (RMN-GMM Table 6 is of this kind: ACC per dataset against eta)."""
    rows_in = sweeps[sweeps.sweep == sweep]
    keys = [c for c in sweeps.columns if c.startswith("value:")
            and rows_in[c].notna().any()]
    datasets = list(dict.fromkeys(rows_in.dataset))
    metrics = [("acc", "acc"), ("nmi", nmi_variant("", paper))]
    columns = [(d, label) for d in datasets for label, _ in metrics]
    rows = []
    for method in dict.fromkeys(rows_in.method):
        mine = rows_in[rows_in.method == method]
        first = mine.iloc[0]
        name = ", ".join(f"{k.removeprefix('value:')}={first[k]}" for k in keys)
        if first["point"] == "base":
            name += " (base)"
        cells = []
        for dataset in datasets:
            hit = mine[mine.dataset == dataset]
            for _, col in metrics:
                if hit.empty:
                    cells.append((None, None, 0, None))
                    continue
                std = hit.iloc[0][f"{col}_std"]
                cells.append((float(hit.iloc[0][f"{col}_mean"]) * 100,
                              None if pd.isna(std) else float(std) * 100,
                              int(hit.iloc[0]["n_seeds"]), None))
        rows.append((name, cells))
    seeds = sorted({int(n) for n in rows_in.n_seeds}) if len(rows_in) else []
    notes = [f"Sweep {sweep}: ours only, mean ± std over {', '.join(map(str, seeds)) or 'no'} "
             "seed(s); — where a point has not run on a dataset."]
    return PaperTable(paper, f"Sweep {sweep}", columns, rows, notes)


def _write(table: PaperTable, out_dir: str | Path) -> list[Path]:
    written = []
    for suffix, render in FORMATS:
        path = Path(out_dir) / table.paper / f"{table.slug}{suffix}"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(render(table))
        written.append(path)
    return written


def write_paper_tables(summary_path: str | Path | pd.DataFrame, out_dir: str | Path,
                       reference_path: str | Path = DEFAULT_REFERENCE,
                       papers: Sequence[str] | None = None,
                       sweeps_path: str | Path | None = None,
                       sweeps: Sequence[Mapping[str, Any]] = ()) -> list[Path]:
    """Write every table of ``papers`` (default: all in the reference) in every format, and,
    given ``sweeps.csv`` and its index (``sweeps``, as :func:`sweep_sources` takes it), a table
    per sweep under its paper; returns the paths. ``summary_path``: summary.csv or its frame;
    with ``config`` and ``commit`` columns
    (:func:`stages.reporting.records.records_summary`) each table says which config and commit
    each of our rows was run with."""
    summary = summary_path if isinstance(summary_path, pd.DataFrame) else pd.read_csv(summary_path)
    reference = load_reference(reference_path)
    chosen = list(dict.fromkeys(reference.paper)) if papers is None else list(papers)
    unknown = sorted(set(chosen) - set(reference.paper))
    if unknown:
        raise DataFileError(f"no reference rows for paper(s) {', '.join(unknown)}; the "
                            f"reference has {', '.join(sorted(set(reference.paper)))}")
    written = []
    for paper in chosen:
        for source in dict.fromkeys(reference[reference.paper == paper].source):
            written += _write(build_table(reference, summary, paper, source), out_dir)
    if sweeps_path is not None:
        table = pd.read_csv(sweeps_path)
        for paper, entries in sweep_sources(sweeps).items():
            if paper in chosen:
                for sweep, _ in entries:
                    written += _write(sweep_table(table, sweep, paper), out_dir)
    return written
