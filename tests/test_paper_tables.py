"""stages.reporting.paper_tables / stages.papers: the papers' tables in their layout, ours beside
theirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from stages.plumbing.errors import DataFileError
from stages.reporting import paper_tables

REFERENCE = """paper,method,dataset,metric,value,source
dcec,kmeans,MNIST-full,acc,54.24,Table 1
dcec,kmeans,MNIST-full,nmi,48.52,Table 1
dcec,dcec,MNIST-full,acc,88.97,Table 1
dcec,dcec,MNIST-full,nmi,86.08,Table 1
dcec,dcec,MNIST-test,acc,85.29,Table 1
rmn-gmm,rmn-gmm,Fashion-MNIST,acc,63.5,Table 3
rmn-gmm,rmn-gmm-vec,STL-10,acc,91.7,Table 3
rmn-gmm,kmeans,STL-10,acc,28.4,Table 3
"""


def _summary(rows: list[dict]) -> pd.DataFrame:
    base = {"family": "dec", "schedule": "paper", "n_seeds": 3}
    return pd.DataFrame([{**base, **r} for r in rows])


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "ref.csv"
    path.write_text(REFERENCE)
    return path


def test_cells_are_ours_beside_the_papers_in_the_papers_layout(reference, tmp_path):
    summary = _summary([
        {"dataset": "mnist5k", "method": "dcec", "acc_mean": 0.8, "acc_std": 0.02,
         "nmi_sqrt_mean": 0.7, "nmi_sqrt_std": 0.01, "nmi_max_mean": 0.6, "nmi_max_std": 0.0},
        {"dataset": "mnist", "method": "kmeans", "family": "baseline", "n_seeds": 1,
         "acc_mean": 0.55, "acc_std": float("nan"), "nmi_sqrt_mean": 0.5,
         "nmi_sqrt_std": float("nan")},
    ])
    summary.to_csv(tmp_path / "summary.csv", index=False)
    paths = paper_tables.write_paper_tables(tmp_path / "summary.csv", tmp_path / "out",
                                            reference, papers=["dcec"])
    assert [p.name for p in paths] == ["table-1.md", "table-1.tex", "table-1.html"]
    md = (tmp_path / "out/dcec/table-1.md").read_text().splitlines()
    assert md[2] == "| Method | MNIST-full ACC | MNIST-full NMI | MNIST-test ACC |"
    # rows and columns in the reference's order; one seed: no std; DCEC's NMI is sqrt
    assert md[4] == "| kmeans | 55.0 (54.24) | 50.0 (48.52) | — |"
    assert md[5] == "| dcec | — (88.97) | — (86.08) | 80.0 ± 2.0 (85.29) |"
    text = "\n".join(md)
    assert "over 1, 3 seed(s), schedule paper" in text
    assert "mnist5k for MNIST-test" in text and "sqrt of the entropies" in text
    tex = (tmp_path / "out/dcec/table-1.tex").read_text()
    assert r"\multicolumn{2}{c}{MNIST-full} & \multicolumn{1}{c}{MNIST-test} \\" in tex
    assert r"dcec & --- (88.97) & --- (86.08) & 80.0 $\pm$ 2.0 (85.29) \\" in tex


def test_vector_recipes_share_their_methods_row_and_unrun_tables_stay_empty(reference,
                                                                             tmp_path):
    summary = _summary([{"dataset": "stl10-hog", "method": "rmn-gmm-vec", "family": "rmn-gmm",
                         "n_seeds": 1, "acc_mean": 0.5, "acc_std": float("nan")}])
    table = paper_tables.build_table(pd.read_csv(reference), summary, "rmn-gmm", "Table 3")
    assert [row for row, _ in table.rows] == ["rmn-gmm", "kmeans"]
    assert [paper_tables.cell_text(c) for c in table.rows[0][1]] == ["— (63.5)", "50.0 (91.7)"]
    empty = paper_tables.build_table(pd.read_csv(reference), summary.iloc[:0], "dcec",
                                     "Table 1")
    assert all(c[0] is None for _, cells in empty.rows for c in cells)
    assert "No run of ours" in empty.notes[0]


def test_unknown_paper_is_an_error_naming_the_known_ones(reference, tmp_path):
    _summary([{"dataset": "mnist", "method": "dec"}]).to_csv(tmp_path / "summary.csv",
                                                             index=False)
    with pytest.raises(DataFileError, match="no reference rows for paper.*dcec, rmn-gmm"):
        paper_tables.write_paper_tables(tmp_path / "summary.csv", tmp_path / "out", reference,
                                        papers=["jule"])


def test_the_stage_writes_every_papers_tables_from_the_real_reference(tmp_path):
    pd.DataFrame(columns=["dataset", "method", "family", "schedule", "n_seeds"]).to_csv(
        tmp_path / "summary.csv", index=False)
    subprocess.run([sys.executable, "-m", "stages.papers", "--summary",
                    str(tmp_path / "summary.csv"), "--out-dir", str(tmp_path / "paper")],
                   check=True, capture_output=True, text=True)
    written = sorted(p.relative_to(tmp_path / "paper").as_posix()
                     for p in (tmp_path / "paper").rglob("*.md"))
    assert {"dcec/table-1.md", "depict/table-2.md", "depict/table-3.md", "dscdan/table-3.md",
            "dscdan/table-4.md", "rmn-gmm/table-3.md", "rmn-gmm/table-4.md",
            "rmn-gmm/table-5.md", "saip/table-iii.md", "saip/table-iv.md",
            "saip/table-v.md"} <= set(written)


SWEEP_INDEX = [
    {"sweep": "rmn-eta", "method": "rmn-gmm", "base": "rmn-gmm", "point": "base",
     "values": {"eta": 0.01}, "family": "rmn-gmm"},
    {"sweep": "rmn-eta", "method": "rmn-gmm@eta=0.1", "base": "rmn-gmm", "point": "grid",
     "values": {"eta": 0.1}, "family": "rmn-gmm"},
    {"sweep": "km", "method": "kmeans@n_init=2", "base": "kmeans", "point": "grid",
     "values": {"n_init": 2}, "family": "baseline"},
]


def _sweeps_csv(path: Path) -> Path:
    pd.DataFrame([
        {"sweep": "rmn-eta", "method": "rmn-gmm", "base": "rmn-gmm", "point": "base",
         "dataset": "mnist5k", "n_seeds": 2, "value:eta": 0.01, "acc_mean": 0.6,
         "acc_std": 0.01, "nmi_max_mean": 0.5, "nmi_max_std": 0.02},
        {"sweep": "rmn-eta", "method": "rmn-gmm@eta=0.1", "base": "rmn-gmm", "point": "grid",
         "dataset": "mnist5k", "n_seeds": 2, "value:eta": 0.1, "acc_mean": 0.4,
         "acc_std": 0.03, "nmi_max_mean": 0.3, "nmi_max_std": 0.01},
        {"sweep": "rmn-eta", "method": "rmn-gmm@eta=0.1", "base": "rmn-gmm", "point": "grid",
         "dataset": "fashion", "n_seeds": 1, "value:eta": 0.1, "acc_mean": 0.45,
         "acc_std": float("nan"), "nmi_max_mean": 0.35, "nmi_max_std": float("nan")},
    ]).to_csv(path, index=False)
    return path


def test_a_sweep_is_a_table_under_its_base_methods_paper(reference, tmp_path):
    """RMN-GMM Table 6's kind: a row per eta, ACC and NMI per dataset; an unrun cell empty."""
    table = paper_tables.sweep_table(pd.read_csv(_sweeps_csv(tmp_path / "s.csv")), "rmn-eta",
                                     "rmn-gmm")
    assert table.slug == "sweep-rmn-eta"
    assert table.columns == [("mnist5k", "acc"), ("mnist5k", "nmi"), ("fashion", "acc"),
                             ("fashion", "nmi")]
    assert [(name, [paper_tables.cell_text(c) for c in cells]) for name, cells in table.rows] \
        == [("eta=0.01 (base)", ["60.0 ± 1.0", "50.0 ± 2.0", "—", "—"]),
            ("eta=0.1", ["40.0 ± 3.0", "30.0 ± 1.0", "45.0", "35.0"])]
    # baselines belong to no paper: no table for their sweeps
    assert paper_tables.sweep_sources(SWEEP_INDEX) == {"rmn-gmm": [("rmn-eta", "Sweep rmn-eta")]}


def test_table_files_lists_what_the_stage_writes(reference, tmp_path):
    summary = _summary([{"dataset": "mnist5k", "method": "rmn-gmm", "family": "rmn-gmm",
                         "acc_mean": 0.6, "acc_std": 0.01}])
    summary.to_csv(tmp_path / "summary.csv", index=False)
    written = paper_tables.write_paper_tables(
        tmp_path / "summary.csv", tmp_path / "out", reference,
        sweeps_path=_sweeps_csv(tmp_path / "s.csv"), sweeps=SWEEP_INDEX)
    planned = paper_tables.table_files(reference, tmp_path / "out", SWEEP_INDEX)
    assert sorted(map(str, written)) == sorted(p for paths in planned.values() for p in paths)
    assert str(tmp_path / "out/rmn-gmm/sweep-rmn-eta.html") in planned["rmn-gmm"]
    page = (tmp_path / "out/rmn-gmm/table-3.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<td>— (63.5)</td>" in page


def test_the_index_inlines_the_tables_and_links_their_other_formats(tmp_path):
    from stages.reporting.paper_index import paper_index

    out = tmp_path / "results/paper/dcec/all"
    out.parent.mkdir(parents=True)
    (out.parent / "table-1.md").write_text("# dcec, Table 1\n\n| a |\n|---|\n| 1 |\n\nnote\n")
    files = [str(out.parent / f"table-1.{s}") for s in ("md", "tex", "html")]
    text = paper_index("dcec", files, ["fig3: not drawn"], out)
    assert "## dcec, Table 1" in text and "| 1 |" in text
    assert "Also as [tex](table-1.tex), [html](table-1.html)." in text
    assert "## Not drawn\n\n- fig3: not drawn" in text
    (out.parent / "table-1.md").unlink()
    with pytest.raises(DataFileError, match="table-1.md: the table is missing"):
        paper_index("dcec", files, [], out)


def test_the_index_stage_combines_indexes_and_rejects_bad_json(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("# a\n")
    b.write_text("# b\n")
    subprocess.run([sys.executable, "-m", "stages.paper_index", "--combine", str(a), str(b),
                    "--out", str(tmp_path / "all")], check=True)
    assert (tmp_path / "all").read_text() == "# a\n\n# b\n"
    bad = subprocess.run([sys.executable, "-m", "stages.paper_index", "--paper", "dcec",
                          "--files", "{}", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "expected a JSON list" in bad.stderr
