"""The papers' tables filled from the reproduction records (``python -m stages.records papers``),
and the default run's tables saying which rows are not at the paper's schedule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from stages.plumbing.errors import DataFileError
from stages.reporting import paper_tables, records

REPO = Path(__file__).resolve().parents[1]
REFERENCE = """paper,method,dataset,metric,value,source
dcec,kmeans,MNIST-test,acc,54.63,Table 1
dcec,dec,MNIST-test,acc,69.94,Table 1
dcec,dec,MNIST-test,nmi,67.69,Table 1
dcec,dcec,MNIST-test,acc,85.29,Table 1
"""


def _row(method: str, seed: int, acc: float, commit: str, config: str,
         variant_of: str | None = None, family: str = "dec") -> dict:
    return {"dataset": "mnist5k", "method": method, "family": family, "seed": seed,
            "schedule": "paper", "config": config, "variant_of": variant_of, "acc": acc,
            "nmi_max": 0.5, "nmi_sqrt": 0.6, "nmi_arithmetic": 0.6, "ari": 0.4,
            "pair_precision": 0.5, "commit": commit}


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    """A small records CSV: dec over two seeds at two commits, k-means at one, and a bf16
    variant of dec that must stay out of the tables."""
    rows = [_row("dec", 0, 0.70, "616975c" + "0" * 33, "config/reproduce-dec.yaml"),
            _row("dec", 1, 0.74, "c5df2a5" + "1" * 33, "config/reproduce-dec.yaml"),
            _row("kmeans", 0, 0.51, "616975c" + "0" * 33, "config/reproduce-dec.yaml",
                 family="baseline"),
            _row("dec", 0, 0.10, "d0fb0e8" + "2" * 33, "config/reproduce-dec-bf16.yaml",
                 variant_of="config/reproduce-dec.yaml")]
    source = tmp_path / "records" / "all.csv"
    source.parent.mkdir()
    pd.DataFrame(rows).to_csv(source, index=False)
    reference = tmp_path / "ref.csv"
    reference.write_text(REFERENCE)
    return source, reference


def test_the_command_writes_each_papers_tables_from_the_records(recorded, tmp_path):
    source, reference = recorded
    out = tmp_path / "papers"
    proc = subprocess.run([sys.executable, "-m", "stages.records", "papers", "--records",
                           str(source), "--out-dir", str(out), "--reference", str(reference)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (out / "dcec").iterdir()} == {"table-1.md", "table-1.tex",
                                                          "table-1.html"}
    md = (out / "dcec" / "table-1.md").read_text()
    lines = md.splitlines()
    assert lines[2] == "| Method | MNIST-test ACC | MNIST-test NMI |"
    # dec: the mean of the two recorded seeds, not of the variant's
    assert "| dec | 72.0 ± 2.8 (69.94) | 60.0 ± 0.0 (67.69) |" in lines
    assert "| kmeans | 51.0 (54.63) | 60.0 |" in lines   # one seed: no std
    assert "| dcec | — (85.29) | — |" in lines
    assert "schedule paper" in md and "not at schedule paper" not in md
    # each of our rows labelled with the config and the commits the records carry
    assert ("dec on mnist5k: config/reproduce-dec.yaml at 616975c, c5df2a5" in md)
    assert "kmeans on mnist5k: config/reproduce-dec.yaml at 616975c" in md
    assert "d0fb0e8" not in md and "bf16" not in md
    assert "616975c, c5df2a5" in (out / "dcec" / "table-1.tex").read_text()
    assert "616975c, c5df2a5" in (out / "dcec" / "table-1.html").read_text()
    index = (out / "README.md").read_text()
    assert "[dcec, Table 1](dcec/table-1.md)" in index
    assert "[all.csv](../records/all.csv)" in index


def test_without_records_the_command_says_what_to_do(tmp_path):
    with pytest.raises(DataFileError, match="record a paper-schedule run first"):
        records.paper_tables_from_records(tmp_path / "all.csv", tmp_path / "papers")


def test_rebuilding_the_records_rebuilds_their_paper_tables(recorded, tmp_path):
    source, reference = recorded
    records.rebuild_table(source.parent, reference)
    assert (source.parent / "paper_vs_ours.md").is_file()
    assert "72.0 ± 2.8 (69.94)" in (source.parent / "papers" / "dcec" / "table-1.md").read_text()


def test_the_default_runs_tables_say_which_rows_are_quick(tmp_path):
    reference = tmp_path / "ref.csv"
    reference.write_text(REFERENCE)
    summary = pd.DataFrame([
        {"dataset": "mnist5k", "method": "dec", "family": "dec", "schedule": "quick",
         "n_seeds": 1, "acc_mean": 0.5, "acc_std": float("nan"), "nmi_sqrt_mean": 0.4,
         "nmi_sqrt_std": float("nan")},
        {"dataset": "mnist5k", "method": "kmeans", "family": "baseline", "schedule": "paper",
         "n_seeds": 1, "acc_mean": 0.52, "acc_std": float("nan"), "nmi_sqrt_mean": 0.45,
         "nmi_sqrt_std": float("nan")}])
    summary.to_csv(tmp_path / "summary.csv", index=False)
    paper_tables.write_paper_tables(tmp_path / "summary.csv", tmp_path / "out", reference)
    md = (tmp_path / "out" / "dcec" / "table-1.md").read_text()
    assert "schedule paper, quick" in md
    assert "Rows not at schedule paper (scaled down, not comparable with the paper's " \
           "numbers): dec (quick)." in md
    assert "config at commit" not in md   # a summary.csv carries no commits


def test_the_committed_tables_are_those_of_the_committed_records(tmp_path):
    """docs/reproduction/papers/ is what the command writes from docs/reproduction/all.csv
    (after appending or renaming records: python -m stages.records table)."""
    committed = REPO / "docs" / "reproduction" / "papers"
    records.paper_tables_from_records(REPO / "docs" / "reproduction" / "all.csv",
                                      tmp_path / "papers")
    fresh = {p.relative_to(tmp_path / "papers").as_posix(): p.read_text()
             for p in (tmp_path / "papers").rglob("*") if p.is_file()}
    have = {p.relative_to(committed).as_posix(): p.read_text()
            for p in committed.rglob("*") if p.is_file()}
    assert sorted(have) == sorted(fresh)
    for name in have:
        if name != "README.md":
            assert have[name] == fresh[name], f"{name} is stale: python -m stages.records table"
