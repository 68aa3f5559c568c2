"""The benchmark's measuring parts (not its speeds): FLOP counting and the results file."""

import csv
import importlib.util
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_training",
                                                  REPO / "bench" / "bench_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_region_counts_the_flops_inside_it_only():
    bench = _bench()
    a, b = torch.randn(16, 32), torch.randn(32, 8)
    region = bench.Region(torch.device("cpu"), count_flops=True)
    a @ b                                   # outside: not counted
    with region:
        a @ b
    with region:                            # entered twice: both counted
        (a @ b).sum()
    assert region.flops == 2 * (2 * 16 * 32 * 8)
    assert region.seconds > 0
    timed = bench.Region(torch.device("cpu"))
    with timed:
        a @ b
    assert timed.flops == 0 and timed.seconds > 0


def test_upgrade_header_keeps_the_old_rows(tmp_path):
    bench = _bench()
    old = tmp_path / "results.csv"
    old.write_text("date,workload,seconds\n2026-11-22,sae-pretrain,4.55\n")
    bench.upgrade_header(old)
    with old.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == bench.COLUMNS
    assert rows[0]["workload"] == "sae-pretrain" and rows[0]["seconds"] == "4.55"
    assert rows[0]["gflop"] == ""


def test_matmul_throughput_is_positive():
    assert _bench().matmul_gflops(torch.device("cpu"), n=64, seconds=0.05) > 0


def test_samples_per_second_count_the_workloads_passes_over_its_data():
    """A kNN search is one step over a block of 2,048 but covers all N samples."""
    bench = _bench()
    x = torch.zeros(70_000, 1)
    knn = bench._row("knn-exact", "fashion", torch.device("cpu"), 1, x, 2048, 1, 1.0, 100.0)
    assert knn["samples_per_s"] == 700.0 and knn["n_samples"] == 70_000
    # training: 3 epochs of 69 steps of 1,024 (the last one short)
    train = bench._row("dscdan-finetune", "fashion", torch.device("cpu"), 1, x, 1024, 207,
                       3.0, 30.0)
    assert train["samples_per_s"] == 7000.0


def test_profile_region_records_each_ops_self_time_and_table():
    bench = _bench()
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    region = bench.Region(torch.device("cpu"), profile=True)
    with region:
        for _ in range(3):
            (a @ b).relu()
    assert region.ops["aten::mm"][1] == 3 and region.ops["aten::mm"][2] == 3 * 2 * 64 ** 3
    assert region.ops["aten::relu"][1] == 3 and region.ops["aten::relu"][0] >= 0
    table = bench.profile_table(region.ops, region.seconds)
    assert table.splitlines()[0].startswith("| op |") and "`aten::mm`" in table
