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
