"""The tables of the ``aggregate`` stage (``python -m stages.aggregate``): per-run rows, the
summary over seeds, ``paper_vs_ours.md`` beside the papers' numbers and the sweeps' table.

:func:`aggregate` writes, atomically, into its output folder:

* ``all.csv``: one row per dataset x method x seed (metrics in [0, 1], stage wall times);
* ``summary.csv``: mean and sample standard deviation (ddof = 1) over seeds per
  dataset x method, with ``n_seeds``;
* ``paper_vs_ours.md``: per dataset, our mean +- std ACC and NMI in percent beside the
  published numbers from the reference CSV, and the differences;
* ``sweeps.csv``: one row per sweep x grid point (and the sweep's base method) x dataset, the
  swept values in a column each (``value:<key>``) and the metrics' mean and std over seeds.

The reference CSV has one published number per row (columns ``paper, method, dataset,
metric, value, source``; values in percent as printed); the NMI variant for a paper's rows
comes from :data:`PAPER_NMI_VARIANT`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from stages import methods as registry
from stages.plumbing.artifacts import atomic_path, read_json
from stages.plumbing.errors import DataFileError
from stages.reporting.metrics import METRIC_KEYS

log = logging.getLogger("stages.reporting.tables")

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "paper_results.csv"

#: Stages whose wall time is reported first, in pipeline order; others follow by name.
STAGE_ORDER: tuple[str, ...] = ("prepare", "pretrain", "embed", "init", "finetune")

#: Our dataset name -> the paper's dataset column it is compared against.
DATASET_TO_PAPER: dict[str, str] = {
    "mnist": "MNIST-full",
    "mnist-test": "MNIST-test",
    "mnist5k": "MNIST-test",
    "usps": "USPS",
    "usps-11k": "USPS-11k",
    "cifar10-test": "CIFAR-10",
    "cifar100-aquatic": "CIFAR-100-aquatic",
    "coil20": "COIL-20",
    "coil100": "COIL-100",
    "fashion": "Fashion-MNIST",
    "cmu-pie": "CMU-PIE",
    "cmu-pie-41k": "CMU-PIE-41k",
    "ytf": "YTF",
    "frgc": "FRGC",
    "stl10-hog": "STL-10",
    "reuters10k": "Reuters-10K",
    "reuters4": "Reuters-4",
    "reuters20": "Reuters-20",
    "reuters20-top4": "Reuters-20-top4",
    "reuters20-top8": "Reuters-20-top8",
    "reuters20-top12": "Reuters-20-top12",
    "reuters20-top16": "Reuters-20-top16",
}

#: The note of Reuters-20 and its top-k cuts (RMN-GMM's Table 5 column "k Clust.").
_REUTERS20_NOTE = ("RMN-GMM's Reuters-20 on its {k} largest clusters (Table 5, whose layout and "
                   "baseline rows are DCN's RCV1-v2 table): documents of one second-level topic, "
                   "the largest topic dropped (DCN's code; the paper's topic list is not "
                   "published, its 365,968 documents are printed beside ours in the dataset's "
                   "preprocessing record); features as reuters10k.")

#: Notes printed under a dataset's heading in ``paper_vs_ours.md``.
DATASET_NOTES: dict[str, str] = {
    "mnist5k": ("mnist5k is a 5,000-image subset of MNIST; it is compared against the "
                "papers' figures for the 10,000-image MNIST-test set."),
    "fashion": ("fashion is all 70,000 Fashion-MNIST images. Its k-means, DEC and IDEC rows are "
                "the RMN-GMM paper's (Tables 3-4) and the DSCDAN paper's (Table 3): neither DEC "
                "paper reports Fashion, so these are other authors' runs of the public code, "
                "with pretraining of their own; they are the nearest published reference for "
                "the shared-SAE dec and idec rows, not the same recipe."),
    "usps": ("usps is the 9,298-image USPS of the DCEC and DSCDAN papers; DEPICT and RMN-GMM "
             "report on the 11,000-image version, under usps-11k."),
    "usps-11k": ("usps-11k is Roweis' 11,000-image USPS (1,100 per digit) of DEPICT's Tables "
                 "2-3 and RMN-GMM's Tables 3-4; the DCEC and DSCDAN papers' USPS is the "
                 "9,298-image set, under usps."),
    "cifar10-test": ("cifar10-test is SAIP's cifar10 (Table IV): the 10,000 CIFAR-10 test images "
                     "as raw pixels. Its DEC row is DEC's code (dec-public); the LRR row is "
                     "left out (identical to the paper's MNIST-full LRR row, a copy error)."),
    "cifar100-aquatic": ("cifar100-aquatic is SAIP's cifar100 (Table V): CIFAR-100's first "
                         "superclass, aquatic mammals, train + test, 5 classes of 600. Its DEC "
                         "row is dec-public. Left out as doubtful: LRR's NMI (OCR '0.3'), "
                         "DAE+k-means' ACC (the text's +1.03 gap implies 34.90, not the "
                         "printed 34.10) and HOE's precision (28.71, out of line with the "
                         "other variants' 23.7)."),
    "coil20": ("coil20 is RMN-GMM's COIL20 (Tables 3-4): 1,440 gray 128x128 images of 20 "
               "objects, 72 views each. Its DEC row is the paper's (dec-public)."),
    "coil100": ("coil100 is RMN-GMM's COIL100 (Tables 3-4): 7,200 128x128 images of 100 "
                "objects, kept in colour (the paper does not say). Its DEC row is the "
                "paper's (dec-public)."),
    "cmu-pie": ("cmu-pie is JULE's 2,856-image CMU-PIE subset (DEPICT's Tables 2-3); RMN-GMM "
                "reports on all 41,368 images, under cmu-pie-41k."),
    "cmu-pie-41k": ("cmu-pie-41k is the full 41,368-image CMU-PIE of RMN-GMM's Tables 3-4 (its "
                    "column CMUPIE); DEPICT's CMU-PIE numbers are for the 2,856-image subset, "
                    "under cmu-pie."),
    "stl10-hog": ("stl10-hog is RMN-GMM's STL-10: the 13,000 labelled images as HOG + 8x8 colour "
                  "map features (1,428-d, DEC's STL-HOG); its AEF+KM, AEF+GMM, DeepGMM and "
                  "RMN-GMM rows are the *-vec recipes (stage 1 for feature vectors), its DEC row "
                  "DEC's own number (dec-public). The paper's DEC NMI (0.82 at 35.9% ACC) is "
                  "printed as it is."),
    "reuters10k": ("reuters10k is DEC's REUTERS-10K, SAIP's 'reuters' (Table IV); the tf-idf "
                   "is built from the pinned LYRL2004 vectors (the 2,000 stems of highest "
                   "document frequency, LYRL2004's ltc weights, unit rows x sqrt(2000)), not "
                   "from DEC's token files (stages/data/reuters.py). SAIP's DEC row is DEC's "
                   "code (dec-public)."),
    "reuters20": _REUTERS20_NOTE.format(k=20),
    "reuters20-top4": _REUTERS20_NOTE.format(k=4),
    "reuters20-top8": _REUTERS20_NOTE.format(k=8),
    "reuters20-top12": _REUTERS20_NOTE.format(k=12),
    "reuters20-top16": _REUTERS20_NOTE.format(k=16),
    "reuters4": ("reuters4 is RMN-GMM's Reuters-4 (Tables 3-4), DEC's REUTERS: 685,071 documents "
                 "of one root topic, 4 imbalanced clusters; features as reuters10k. Its AEF+KM, "
                 "AEF+GMM, DeepGMM and RMN-GMM rows are the *-vec recipes, its DEC row "
                 "dec-public."),
}

#: Notes on published rows, printed under the tables when the method appears (each family's)
METHOD_NOTES: dict[str, str] = dict(registry.METHOD_NOTES)

#: NMI variant the paper of each method family reported (methods.md §0.1).
FAMILY_NMI_VARIANT: dict[str, str] = dict(registry.FAMILY_NMI_VARIANT)

#: NMI variant each paper (the reference CSV's ``paper`` column) reported. A row compared
#: against a paper uses that paper's variant; otherwise the family's; else sqrt.
PAPER_NMI_VARIANT: dict[str, str] = {
    "dcec": "nmi_sqrt",
    "saip": "nmi_sqrt",
    "dscdan": "nmi_max",
    "depict": "nmi_max",
    "rmn-gmm": "nmi_max",
}

DEFAULT_NMI_VARIANT = "nmi_sqrt"

REFERENCE_COLUMNS: tuple[str, ...] = ("paper", "method", "dataset", "metric", "value", "source")

_ID_COLUMNS = ("dataset", "method", "family", "seed", "schedule")
_TAIL_COLUMNS = ("device", "precision", "n", "n_clusters", "n_predicted_clusters", "config_hash",
                 "commit")
#: label-free diagnostics of the record's ``diagnostics`` (stages.evaluate) copied into all.csv
DIAGNOSTIC_COLUMNS = ("smallest_share", "largest_share", "populated", "collapsed",
                      "collapse_step", "sharpness_start", "sharpness_end", "sharper_than_start",
                      "sharpness_p1_start", "sharpness_p1_end", "sharpness_p2_start",
                      "sharpness_p2_end")
_REQUIRED_KEYS = ("dataset", "method", "seed", "metrics")


# --------------------------------------------------------------------------- per-run table


def _stage_columns(stages: set[str]) -> list[str]:
    ordered = [s for s in STAGE_ORDER if s in stages]
    ordered += sorted(stages - set(STAGE_ORDER))
    return [f"wall_s_{s}" for s in ordered]


def load_records(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read metrics JSONs written by ``stages.evaluate``; check each has what tables need."""
    records = []
    for path in paths:
        record = read_json(path)
        missing = [key for key in _REQUIRED_KEYS if key not in record]
        metrics = record.get("metrics")
        if not missing and isinstance(metrics, dict):
            missing = [f"metrics.{key}" for key in METRIC_KEYS if key not in metrics]
        elif not missing:
            missing = ["metrics (a mapping)"]
        if missing:
            raise DataFileError(f"{path}: missing {missing}; it is not a metrics file from "
                                "stages.evaluate. Delete it and rerun the evaluate stage.")
        records.append(record)
    return records


def runs_table(records: Sequence[dict[str, Any]],
               paths: Sequence[str | Path] | None = None) -> pd.DataFrame:
    """One row per dataset x method x seed (the ``all.csv`` table).

    Columns: dataset, method, family, seed, schedule, the metrics of :data:`METRIC_KEYS`, the
    label-free :data:`DIAGNOSTIC_COLUMNS`, ``wall_s_<stage>`` for every stage timed in any
    record, ``wall_s_total`` (sum of the stages present in that run), device, precision (the
    effective one of the stage that made the labels: the head's, or for a method without a head
    the pretraining's: ``fp32`` or ``bf16-mixed``; empty for a raw-input baseline), n, n_clusters,
    n_predicted_clusters, config_hash, commit.
    Raises :class:`DataFileError` when two records describe the same run.
    """
    stages = {str(s) for r in records for s in (r.get("timings") or {})}
    stage_cols = _stage_columns(stages)
    rows = []
    for record in records:
        row: dict[str, Any] = {
            "dataset": str(record["dataset"]),
            "method": str(record["method"]),
            "family": str(record.get("family", "unknown")),
            "seed": int(record["seed"]),
            "schedule": str(record.get("schedule") or "unknown"),
        }
        row.update({key: float(record["metrics"][key]) for key in METRIC_KEYS})
        diagnostics = record.get("diagnostics") or {}
        row.update({key: diagnostics.get(key) for key in DIAGNOSTIC_COLUMNS})
        timings = record.get("timings") or {}
        for col in stage_cols:
            value = timings.get(col.removeprefix("wall_s_"))
            row[col] = float(value) if value is not None else math.nan
        present = [float(v) for v in timings.values() if v is not None]
        row["wall_s_total"] = sum(present) if present else math.nan
        for key in _TAIL_COLUMNS:
            row[key] = record.get(key)
        rows.append(row)
    columns = [*_ID_COLUMNS, *METRIC_KEYS, *DIAGNOSTIC_COLUMNS, *stage_cols, "wall_s_total",
               *_TAIL_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    dup = table.duplicated(subset=["dataset", "method", "seed"], keep=False)
    if dup.any():
        where = table.loc[dup, ["dataset", "method", "seed"]].drop_duplicates()
        names = [str(p) for p, d in zip(paths or [], dup, strict=False) if d]
        raise DataFileError(f"the same run appears in several metrics files: "
                            f"{where.to_dict('records')} {names}; pass each run once.")
    return table.sort_values(["dataset", "method", "seed"], kind="stable").reset_index(drop=True)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof = 1; empty for one seed) over seeds per dataset x method.

    Columns: dataset, method, family, schedule, n_seeds, then ``<col>_mean`` and ``<col>_std``
    for every metric and wall-time column of ``runs``. Runs of several schedules are one row
    whose schedule names them all (``paper/quick``).
    """
    value_cols = [*METRIC_KEYS, *[c for c in runs.columns if c.startswith("wall_s_")]]
    grouped = runs.groupby(["dataset", "method"], sort=True)
    joined = lambda s: "/".join(sorted(set(map(str, s))))  # noqa: E731
    out = grouped.agg(family=("family", joined), schedule=("schedule", joined),
                      n_seeds=("seed", "nunique"))
    for col in value_cols:
        out[f"{col}_mean"] = grouped[col].mean()
        out[f"{col}_std"] = grouped[col].std(ddof=1)
    return out.reset_index()


# --------------------------------------------------------------------------- paper numbers


def load_reference(path: str | Path) -> pd.DataFrame:
    """Read the published-results CSV (one number per row, percent as printed).

    Checks the columns, that values are numbers and that no (paper, method, dataset,
    metric) appears twice; metric names are lower-cased.
    """
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{p}: reference file not found; pass --reference with the path "
                            f"of the published-results CSV (default {DEFAULT_REFERENCE}).")
    try:
        ref = pd.read_csv(p, dtype={"paper": str, "method": str, "dataset": str,
                                    "metric": str, "source": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataFileError(f"{p}: not a readable CSV ({err}).") from err
    missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
    if missing:
        raise DataFileError(f"{p}: missing column(s) {missing}; expected "
                            f"{list(REFERENCE_COLUMNS)}.")
    ref["metric"] = ref["metric"].str.strip().str.lower()
    values = pd.to_numeric(ref["value"], errors="coerce")
    bad = ref.loc[values.isna(), "value"]
    if len(bad):
        raise DataFileError(f"{p}: non-numeric value(s) {bad.tolist()[:5]} in column 'value'; "
                            "leave numbers the paper does not report out of the file.")
    ref["value"] = values.astype(float)
    key = ["paper", "method", "dataset", "metric"]
    dup = ref.duplicated(subset=key, keep=False)
    if dup.any():
        raise DataFileError(f"{p}: duplicated rows {ref.loc[dup, key].to_dict('records')[:5]}.")
    return ref


def nmi_variant(family: str, paper: str | None = None) -> str:
    """The NMI column (``nmi_max``/``nmi_sqrt``/...) to compare against ``paper``."""
    if paper is not None and paper in PAPER_NMI_VARIANT:
        return PAPER_NMI_VARIANT[paper]
    return FAMILY_NMI_VARIANT.get(family, DEFAULT_NMI_VARIANT)


def _pct(mean: float, std: float | None = None) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    text = f"{100 * mean:.1f}"
    if std is not None and not math.isnan(std):
        text += f" ± {100 * std:.1f}"
    return text


def _paper_pct(value: float | None) -> str:
    """A published percentage rounded half-up to 1 decimal, as printed (85.25 -> 85.3)."""
    if value is None or math.isnan(value):
        return "—"
    return str(Decimal(repr(float(value))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _diff(ours: float, paper: float | None) -> str:
    if paper is None or math.isnan(paper) or math.isnan(ours):
        return "—"
    return f"{100 * ours - paper:+.1f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


#: metrics besides ACC and NMI that some papers report (SAIP: ARI and pair-counting precision)
FURTHER_METRICS: tuple[tuple[str, str], ...] = (("ari", "ARI"), ("pair_precision", "precision"))


def _further_metrics(ours: dict[str, pd.Series], value: dict[tuple, float],
                     papers_of: dict[str, list[str]]) -> list[str]:
    """Markdown lines comparing the metrics of :data:`FURTHER_METRICS` for the (paper, method)
    pairs whose published rows have them; no lines when none has."""
    rows = []
    for method, papers in papers_of.items():
        for paper in papers:
            published = [value.get((paper, method, key)) for key, _ in FURTHER_METRICS]
            if all(v is None for v in published):
                continue
            r = ours.get(method)
            row = [method, paper, "0" if r is None else str(r["n_seeds"])]
            for (key, _), p in zip(FURTHER_METRICS, published, strict=True):
                mine = None if r is None else r[f"{key}_mean"]
                row += ["—" if r is None else _pct(mine, r[f"{key}_std"]), _paper_pct(p),
                        "—" if r is None or str(r["schedule"]) != "paper" else _diff(mine, p)]
            rows.append(row)
    if not rows:
        return []
    header = ["method", "paper", "seeds"]
    for _, label in FURTHER_METRICS:
        header += [f"{label} ours", f"{label} paper", f"Δ {label}"]
    return _md_table(header, rows) + [""]


def paper_vs_ours(summary: pd.DataFrame, reference: pd.DataFrame | None) -> str:
    """Markdown: per dataset, our mean ± std ACC/NMI (percent) beside the papers' numbers."""
    ref = reference if reference is not None else pd.DataFrame(columns=list(REFERENCE_COLUMNS))
    lines = [
        "# Our results beside the published numbers",
        "",
        "Ours: mean ± sample standard deviation over seeds, in percent (1 decimal). "
        "Paper: the number as printed, rounded half-up to 1 decimal. Δ = ours − paper "
        "(as printed) in percentage points. Rows with 0 seeds are published numbers we "
        "have no run for. NMI uses the normalisation the compared paper used (sqrt = geometric, "
        "as in the DCEC and SAIP code; max for DSCDAN, DEPICT and RMN-GMM); all three "
        "variants are in summary.csv.",
        "",
    ]
    not_paper = sorted({str(v) for v in summary["schedule"] if str(v) != "paper"})
    if not_paper:
        lines[2:2] = [
            f"**Rows with schedule {', '.join(not_paper)} are not comparable with the papers**: "
            "they ran shortened schedules (config.yaml `schedule: quick`) and show no Δ. Only "
            "`schedule: paper` rows are compared (docs/reproduction/ holds those).", ""]
    shown: set[str] = set()
    for dataset, block in summary.groupby("dataset", sort=True):
        column = DATASET_TO_PAPER.get(str(dataset))
        lines.append(f"## {dataset}" + (f" (paper column: {column})" if column else ""))
        lines.append("")
        if str(dataset) in DATASET_NOTES:
            lines += [DATASET_NOTES[str(dataset)], ""]
        if column is None:
            lines.append("No published numbers are mapped to this dataset.")
            lines.append("")
            rows = []
            for _, r in block.iterrows():
                var = nmi_variant(r["family"])
                rows.append([r["method"], r["family"], str(r["schedule"]), str(r["n_seeds"]),
                             _pct(r["acc_mean"], r["acc_std"]),
                             _pct(r[f"{var}_mean"], r[f"{var}_std"]),
                             var.removeprefix("nmi_")])
            lines += _md_table(["method", "family", "schedule", "seeds", "ACC", "NMI",
                                "NMI variant"], rows)
            lines.append("")
            continue
        sub = ref[ref["dataset"] == column]
        value = {(p, m, k): v for p, m, k, v in
                 zip(sub["paper"], sub["method"], sub["metric"], sub["value"], strict=True)}
        papers_of: dict[str, list[str]] = {}
        for paper, method in dict.fromkeys(zip(sub["paper"], sub["method"], strict=True)):
            papers_of.setdefault(method, []).append(paper)
        ours = {str(r["method"]): r for _, r in block.iterrows()}
        order = [*papers_of, *sorted(set(ours) - set(papers_of))]
        rows = []
        for method in order:
            r = ours.get(method)
            for paper in papers_of.get(method, [None]):
                p_acc = value.get((paper, method, "acc"))
                p_nmi = value.get((paper, method, "nmi"))
                if r is None:
                    rows.append([method, "—", "—", "0", "—", "—", "—", paper, column,
                                 _paper_pct(p_acc), _paper_pct(p_nmi), "—", "—"])
                    continue
                var = nmi_variant(r["family"], paper)
                comparable = str(r["schedule"]) == "paper"
                delta = _diff if comparable else (lambda ours, paper: "—")
                rows.append([method, r["family"], str(r["schedule"]), str(r["n_seeds"]),
                             _pct(r["acc_mean"], r["acc_std"]),
                             _pct(r[f"{var}_mean"], r[f"{var}_std"]),
                             var.removeprefix("nmi_"), paper or "—", column,
                             _paper_pct(p_acc), _paper_pct(p_nmi),
                             delta(r["acc_mean"], p_acc), delta(r[f"{var}_mean"], p_nmi)])
        lines += _md_table(["method", "family", "schedule", "seeds", "ACC ours", "NMI ours",
                            "NMI variant",
                            "paper", "paper dataset", "ACC paper", "NMI paper", "Δ ACC",
                            "Δ NMI"], rows)
        lines.append("")
        lines += _further_metrics(ours, value, papers_of)
        shown.update(row[0] for row in rows)
    notes = [f"* {METHOD_NOTES[m]}" for m in sorted(shown) if m in METHOD_NOTES]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- stage


def sweep_table(summary: pd.DataFrame, index: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The ``sweeps.csv`` table: each row of ``index`` (``{sweep, method, base, point,
    values}``, from :func:`stages.reporting.sweeps.sweep_index`) joined with the summary rows of its
    method.

    Columns: sweep, method, base, point (``base`` or ``grid``), dataset, n_seeds, one
    ``value:<key>`` column per swept key of any sweep (a list value as ``a-b-c``), then
    ``<metric>_mean`` / ``<metric>_std`` for every metric. A point that has not run has no row.
    """
    keys = list(dict.fromkeys(k for row in index for k in row["values"]))
    metric_cols = [f"{m}_{s}" for m in METRIC_KEYS for s in ("mean", "std")]
    columns = ["sweep", "method", "base", "point", "dataset", "n_seeds",
               *[f"value:{k}" for k in keys], *metric_cols]
    rows = []
    for entry in index:
        ran = summary[summary["method"] == entry["method"]]
        for _, result in ran.iterrows():
            row = {name: entry[name] for name in ("sweep", "method", "base", "point")}
            row.update(dataset=result["dataset"], n_seeds=int(result["n_seeds"]))
            for key, value in entry["values"].items():
                row[f"value:{key}"] = ("-".join(map(str, value)) if isinstance(value, list)
                                       else value)
            row.update({col: result[col] for col in metric_cols})
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def write_table(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def aggregate(metric_paths: Sequence[str | Path], out_dir: str | Path,
              reference_path: str | Path | None = DEFAULT_REFERENCE,
              sweeps: Sequence[dict[str, Any]] = ()) -> dict[str, Path]:
    """Build and write ``all.csv``, ``summary.csv``, ``paper_vs_ours.md`` and ``sweeps.csv``
    (rows of ``sweeps``: :func:`stages.reporting.sweeps.sweep_index`); return their paths."""
    records = load_records(metric_paths)
    if not records:
        raise DataFileError("no metrics files given; pass at least one with --metrics.")
    reference = load_reference(reference_path) if reference_path else None
    runs = runs_table(records, metric_paths)
    summary = summary_table(runs)
    markdown = paper_vs_ours(summary, reference)
    out = Path(out_dir)
    paths = {"all": out / "all.csv", "summary": out / "summary.csv",
             "paper_vs_ours": out / "paper_vs_ours.md", "sweeps": out / "sweeps.csv"}
    write_table(runs, paths["all"])
    write_table(summary, paths["summary"])
    write_text(markdown, paths["paper_vs_ours"])
    write_table(sweep_table(summary, sweeps), paths["sweeps"])
    return paths
