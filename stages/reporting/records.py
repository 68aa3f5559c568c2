"""Reproduction records: the ``schedule: paper`` rows kept in ``docs/reproduction/``.

The library of the ``python -m stages.records`` command (:mod:`stages.records`, whose docstring
says what each subcommand accepts and refuses): :func:`append` records a finished run's rows
after :func:`check_rows`, :func:`rename` gives recorded rows the name of the method that runs
their recipe today, and :func:`rebuild_table` writes ``paper_vs_ours.md`` (the reference rows
beside the papers, :mod:`stages.reporting.tables`) and ``variants.md``
(:func:`variant_comparison`: each variant run against its reference, seed by seed).
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pandas as pd
from scipy import stats

from stages.plumbing.errors import ConfigError, DataFileError
from stages.reporting.paper_tables import PAPERS, write_paper_tables
from stages.reporting.tables import (
    DEFAULT_REFERENCE,
    _md_table,
    _pct,
    load_reference,
    paper_vs_ours,
    summary_table,
    write_table,
    write_text,
)

REPO = Path(__file__).resolve().parents[2]
RECORDS = REPO / "docs" / "reproduction"
KEY = ["dataset", "method", "seed", "config"]
#: the columns variants.md compares: ACC, NMI (sqrt) and the wall time of each stage
VARIANT_METRICS = ("acc", "nmi_sqrt")
VARIANT_TIMES = ("wall_s_pretrain", "wall_s_finetune")


def is_ancestor(commit: str, repo: Path = REPO) -> bool:
    """Whether ``commit`` is an ancestor of (or equal to) HEAD of the git checkout ``repo``."""
    done = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", commit, "HEAD"],
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise ConfigError(f"git cannot compare commit {commit!r} with HEAD of {repo}: "
                          f"{done.stderr.strip()}")
    return done.returncode == 0


def check_rows(rows: pd.DataFrame, source: str | Path, repo: Path = REPO) -> None:
    """Raise :class:`DataFileError` naming every row that may not be recorded (see module)."""
    for column in ("schedule", "commit", *KEY[:-1]):
        if column not in rows.columns:
            raise DataFileError(f"{source}: no column '{column}'; it is not an all.csv written "
                                "by this version of stages.aggregate. Rerun the aggregate rule.")
    problems = []
    for _, row in rows.iterrows():
        what = f"{row['dataset']}/{row['method']}/seed{row['seed']}"
        if str(row["schedule"]) != "paper":
            problems.append(f"{what}: schedule '{row['schedule']}', not 'paper'")
        elif pd.isna(row["commit"]) or not str(row["commit"]).strip():
            problems.append(f"{what}: no commit recorded (run from a git checkout)")
        elif not is_ancestor(str(row["commit"]), repo):
            problems.append(f"{what}: commit {row['commit']} is not an ancestor of HEAD "
                            "(commit and merge the code it ran first)")
    if problems:
        raise DataFileError(f"{source}: {len(problems)} row(s) cannot be recorded: "
                            + "; ".join(problems))


def reference_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` that are not variants of another config (``variant_of`` empty)."""
    if "variant_of" not in table.columns:
        return table
    return table[table["variant_of"].isna() | (table["variant_of"].astype(str) == "")]


def _spread(values: pd.Series) -> str:
    """``mean ± std [min, max]`` in percent (1 decimal) of a column of fractions."""
    v = values.astype(float)
    if len(v) < 2:
        return _pct(v.mean())
    return f"{_pct(v.mean(), v.std(ddof=1))} [{100 * v.min():.1f}, {100 * v.max():.1f}]"


def paired_shift(reference: pd.Series, variant: pd.Series,
                 level: float = 0.95) -> tuple[float, float, float, float, str]:
    """The variant's shift from the reference, paired by seed, against the seeds' own spread.

    ``reference`` and ``variant`` hold one value per seed (index: seed); only seeds in both
    count. Returns ``(mean, low, high, margin, verdict)``: the mean of the per-seed differences
    ``variant - reference``, its two-sided ``level`` paired-t interval, the margin (the sample
    standard deviation of ``reference`` over those seeds), and the verdict: ``"within"`` when
    the interval lies inside (-margin, +margin) (two one-sided tests), ``"beyond"`` when it
    lies wholly outside, else ``"not settled"`` (a variant equal to the reference at every seed
    is ``"within"``, whatever the margin). Fewer than two common seeds: NaNs and ``"—"``.
    """
    seeds = reference.index.intersection(variant.index)
    diff = (variant.loc[seeds].astype(float) - reference.loc[seeds].astype(float)).to_numpy()
    if len(diff) < 2:
        nan = float("nan")
        return nan, nan, nan, nan, "—"
    mean = float(diff.mean())
    half = float(stats.t.ppf(0.5 + level / 2, len(diff) - 1) * diff.std(ddof=1)
                 / math.sqrt(len(diff)))
    margin = float(reference.loc[seeds].astype(float).std(ddof=1))
    low, high = mean - half, mean + half
    if (-margin < low and high < margin) or not diff.any():    # (no shift at all: within)
        verdict = "within"
    elif low >= margin or high <= -margin:
        verdict = "beyond"
    else:
        verdict = "not settled"
    return mean, low, high, margin, verdict


def variant_comparison(table: pd.DataFrame) -> str:
    """Markdown: each variant config's runs beside the runs of the config it is a variant of.

    Per (variant, dataset, method): the seeds both configs ran, ACC and NMI (sqrt) of each as
    ``mean ± std [min, max]`` over those seeds, Δ of the means, whether the variant's mean lies
    inside the reference's [min, max] over seeds, Welch's t-test p of the ACC, the ACC and NMI
    shifts paired by seed with its 95% interval and verdict against the reference's seed spread
    (:func:`paired_shift`), and the reference's over the variant's mean wall seconds per stage
    (pretraining, fine-tuning; > 1: the variant is faster).
    """
    lines = ["# Variants beside the runs they vary", "",
             "Each variant config ran the same methods and seeds as a recorded reference run, "
             "with one thing changed (its config file says what). ACC and NMI (sqrt, the DCEC "
             "code's) in percent: mean ± sample std [min, max] over the seeds both ran. "
             "\"inside\": the variant's mean lies inside the reference's [min, max] over seeds; "
             "p: Welch's two-sided t-test of the two sets of ACC over seeds. "
             "Paired Δ (ACC, NMI): the mean over seeds of (variant - reference), the same seed "
             "at both, with its 95% paired-t interval; ± s: the reference's standard "
             "deviation over the seeds; \"within\" when the interval lies inside ± s (the two "
             "one-sided tests at 5% reject a shift of one seed-to-seed standard deviation), "
             "\"beyond\" when it lies wholly outside, \"not settled\" otherwise. "
             "Speed-up: the reference's mean wall seconds over the variant's, per stage (a stage "
             "shared by several methods, such as one autoencoder, is counted in each). The two "
             "runs were made in different sittings, whatever else the machine ran: "
             "bench/results.csv holds the controlled, same-process speed comparison.", ""]
    variants = table[~table.index.isin(reference_rows(table).index)]
    if variants.empty:
        return "\n".join(lines + ["No variant runs are recorded.", ""])
    header = ["dataset", "method", "seeds", "ACC reference", "ACC variant", "Δ ACC",
              "NMI reference", "NMI variant", "Δ NMI", "ACC inside", "p (Welch, ACC)",
              *(f"{name} {part}" for name in ("ACC", "NMI")
                for part in ("paired Δ [95%]", "± s", "seed spread")),
              "speed-up pretraining", "speed-up fine-tuning"]
    for (config, base), block in variants.groupby(["config", "variant_of"], sort=True):
        lines += [f"## `{config}` beside `{base}`", ""]
        rows = []
        reference = table[table["config"] == base]
        for (dataset, method), ours in block.groupby(["dataset", "method"], sort=False):
            ref = reference[(reference["dataset"] == dataset) & (reference["method"] == method)]
            seeds = sorted(set(ours["seed"]) & set(ref["seed"]))
            if not seeds:
                rows.append([str(dataset), str(method), "0", *["—"] * (len(header) - 3)])
                continue
            a = ref[ref["seed"].isin(seeds)]
            b = ours[ours["seed"].isin(seeds)]
            cells = [str(dataset), str(method), str(len(seeds))]
            for metric in VARIANT_METRICS:
                cells += [_spread(a[metric]), _spread(b[metric]),
                          f"{100 * (b[metric].mean() - a[metric].mean()):+.1f}"]
            inside = a["acc"].min() <= b["acc"].mean() <= a["acc"].max()
            cells.append("yes" if inside else "no")
            if len(seeds) > 1:
                test = stats.ttest_ind(b["acc"].astype(float), a["acc"].astype(float),
                                       equal_var=False)
                cells.append("—" if math.isnan(test.pvalue) else f"{test.pvalue:.2f}")
            else:
                cells.append("—")
            for metric in VARIANT_METRICS:
                mean, low, high, margin, verdict = paired_shift(
                    a.set_index("seed")[metric], b.set_index("seed")[metric])
                if verdict == "—":
                    cells += ["—", "—", "—"]
                else:
                    cells += [f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]",
                              f"{100 * margin:.2f}", verdict]
            for col in VARIANT_TIMES:
                if col in a and col in b and b[col].mean() > 0 and a[col].notna().all():
                    cells.append(f"{a[col].mean() / b[col].mean():.2f}×")
                else:
                    cells.append("—")
            rows.append(cells)
        lines += _md_table(header, rows) + [""]
    return "\n".join(lines).rstrip() + "\n"


def rebuild_table(records: Path = RECORDS,
                  reference: str | Path | None = DEFAULT_REFERENCE) -> Path:
    """Write ``records/paper_vs_ours.md`` (reference rows) and ``records/variants.md`` from
    ``records/all.csv``; return the path of the first."""
    runs = pd.read_csv(records / "all.csv")
    ref = load_reference(reference) if reference else None
    text = paper_vs_ours(summary_table(reference_rows(runs)), ref)
    header = ("<!-- Generated by `python -m stages.records table` from all.csv; do not edit. -->"
              "\n\n")
    out = records / "paper_vs_ours.md"
    write_text(header + text, out)
    if "variant_of" in runs.columns:
        write_text(header + variant_comparison(runs), records / "variants.md")
    if reference:
        paper_tables_from_records(records / "all.csv", records / "papers", reference)
    return out


def records_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`stages.reporting.tables.summary_table` of the recorded rows that are not variants,
    with the ``config`` and ``commit`` (7 characters) of each dataset x method's rows, joined by
    ", "."""
    rows = reference_rows(runs)
    summary = summary_table(rows)
    joined = lambda s: ", ".join(sorted(set(map(str, s))))  # noqa: E731
    short = lambda s: ", ".join(sorted({str(c)[:7] for c in s}))  # noqa: E731
    made = rows.groupby(["dataset", "method"], sort=True).agg(config=("config", joined),
                                                              commit=("commit", short))
    return summary.merge(made.reset_index(), on=["dataset", "method"], how="left")


def paper_tables_from_records(source: str | Path = RECORDS / "all.csv",
                              out_dir: str | Path | None = None,
                              reference: str | Path = DEFAULT_REFERENCE) -> list[Path]:
    """Write every paper's tables from the records ``source`` under ``out_dir`` (default
    ``papers/`` beside ``source``), and ``README.md`` there linking them; return the tables'
    paths."""
    source = Path(source)
    if not source.exists():
        raise DataFileError(f"{source}: not found; record a paper-schedule run first "
                            "(python -m stages.records append RUN/results/tables/all.csv ...)")
    out = Path(out_dir) if out_dir is not None else source.parent / "papers"
    back = Path(os.path.relpath(source.resolve(), out.resolve())).as_posix()
    paths = write_paper_tables(records_summary(pd.read_csv(source)), out, reference)
    lines = [f"<!-- Generated by `python -m stages.records papers` from {back}; do not edit. "
             "-->", "", "# The papers' tables from the reproduction records", "",
             "Each paper's tables in its own layout, our paper-schedule rows of "
             f"[{source.name}]({back}) (variants left out) beside the paper's numbers in brackets; "
             "under each table the seeds, the config and the commit of each of our rows. "
             "The same tables as the workflow's `results/paper/`.", ""]
    md = [p for p in paths if p.suffix == ".md"]
    for paper in [*[p for p in PAPERS if any(m.parent.name == p for m in md)],
                  *sorted({m.parent.name for m in md} - set(PAPERS))]:
        lines += [f"## {paper}", ""]
        for table in (m for m in md if m.parent.name == paper):
            rel = table.relative_to(out).as_posix()
            title = table.read_text().splitlines()[0].removeprefix("# ")
            lines.append(f"- [{title}]({rel}) ([tex]({rel[:-3]}.tex), [html]({rel[:-3]}.html))")
        lines.append("")
    write_text("\n".join(lines).rstrip() + "\n", out / "README.md")
    return paths


def append(run_table: str | Path, config: str, *, records: Path = RECORDS,
           replace: bool = False, repo: Path = REPO, variant_of: str | None = None) -> int:
    """Add the rows of ``run_table`` (a run's all.csv) made with ``config``; return how many.

    ``variant_of``: the config of recorded rows these rows are a variant of (see module).
    """
    path = Path(run_table)
    if not path.exists():
        raise DataFileError(f"{path}: not found; pass the all.csv of a finished run "
                            "(RUN_DIR/results/tables/all.csv)")
    if not (repo / config).is_file():
        raise ConfigError(f"--config {config}: no such file in {repo}; commit the config the "
                          "run was made with (e.g. config/reproduce-dec.yaml) and name it")
    rows = pd.read_csv(path)
    if rows.empty:
        raise DataFileError(f"{path}: no rows")
    check_rows(rows, path, repo)
    rows.insert(list(rows.columns).index("schedule") + 1, "config", config)
    target = records / "all.csv"
    old = pd.read_csv(target) if target.exists() else rows.iloc[:0]
    if variant_of is not None:
        if variant_of == config:
            raise ConfigError(f"--variant-of {variant_of}: a config cannot be a variant of "
                              "itself; name the config of the recorded run it varies")
        if "config" not in old.columns or not (old["config"] == variant_of).any():
            known = sorted(set(old["config"])) if "config" in old.columns else []
            raise ConfigError(f"--variant-of {variant_of}: no recorded rows were made with it; "
                              f"recorded configs: {known}. Record the reference run first.")
    rows.insert(list(rows.columns).index("config") + 1, "variant_of", variant_of)
    clash = old.merge(rows[KEY], on=KEY, how="inner")
    if len(clash) and not replace:
        raise DataFileError(f"{target}: already holds {clash[KEY].to_dict('records')}; pass "
                            "--replace to replace those rows")
    keep = old.merge(rows[KEY], on=KEY, how="left", indicator=True)
    old = old[(keep["_merge"] == "left_only").to_numpy()]
    table = pd.concat([old, rows], ignore_index=True)
    table = table.sort_values(KEY, kind="stable").reset_index(drop=True)
    records.mkdir(parents=True, exist_ok=True)
    write_table(table, target)
    rebuild_table(records)
    return len(rows)


def rename(old: str, new: str, *, commit: str, config: str,
           datasets: list[str] | None = None, records: Path = RECORDS) -> int:
    """Rename the recorded rows of method ``old`` to ``new``; return how many (see module).

    The rows renamed are those with ``method == old``, ``config == config`` and a commit that
    starts with ``commit`` (at least 7 characters), in ``datasets`` when given. Raises
    :class:`ConfigError` for an empty selection or a name clash, writing nothing.
    """
    if old == new:
        raise ConfigError(f"--from and --to are both {old!r}; name the method to rename to")
    if len(commit) < 7:
        raise ConfigError(f"--commit {commit!r}: give at least 7 characters of the commit the "
                          "rows were made at")
    target = records / "all.csv"
    if not target.exists():
        raise DataFileError(f"{target}: not found; nothing is recorded there")
    table = pd.read_csv(target)
    chosen = ((table["method"] == old) & (table["config"] == config)
              & table["commit"].astype(str).str.startswith(commit))
    if datasets:
        chosen &= table["dataset"].isin(datasets)
    if not chosen.any():
        same = table[table["method"] == old]
        found = sorted({(str(r.dataset), str(r.config), str(r.commit)[:7])
                        for r in same.itertuples()})
        raise ConfigError(f"{target}: no row of method {old!r} made with {config} at commit "
                          f"{commit}" + (f" on {datasets}" if datasets else "")
                          + f"; rows of {old!r} (dataset, config, commit): {found or 'none'}")
    renamed = table.loc[chosen, KEY].assign(method=new)
    clash = table[~chosen].merge(renamed, on=KEY, how="inner")
    if len(clash):
        raise ConfigError(f"{target}: renaming {old!r} to {new!r} would clash with the recorded "
                          f"rows {clash[KEY].to_dict('records')}; rename those first")
    table.loc[chosen, "method"] = new
    table = table.sort_values(KEY, kind="stable").reset_index(drop=True)
    write_table(table, target)
    rebuild_table(records)
    return int(chosen.sum())
