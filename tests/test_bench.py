"""The benchmark's measuring parts (not its speeds): FLOP counting and the results file."""

import csv
import importlib.util
from pathlib import Path

import pytest
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
    assert rows[0]["precision"] == "32"  # rows from before the column were fp32
    assert rows[0]["compile"] == "0"  # nor were they compiled
    assert rows[0]["cpu"] == ""       # unknown for rows from before the column


def test_the_clustpy_file_gains_the_cpu_column_and_rows_name_their_cpu(tmp_path):
    bench = _bench()
    spec = importlib.util.spec_from_file_location("clustpy_compare",
                                                  REPO / "bench" / "clustpy_compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    old = tmp_path / "clustpy.csv"
    old.write_text("date,threads,clustpy_s,precision,ours_s\n2026-12-02,2,163.8,32,148.7\n")
    bench.upgrade_header(old, compare.COLUMNS)
    with old.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == compare.COLUMNS and "compile" not in rows[0]
    assert rows[0]["ours_s"] == "148.7" and rows[0]["cpu"] == ""
    if Path("/proc/cpuinfo").exists():
        assert bench.cpu_model()


def test_the_summary_takes_each_workloads_latest_row_and_pairs_eager_with_compiled(tmp_path):
    spec = importlib.util.spec_from_file_location("summary", REPO / "bench" / "summary.py")
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    import pandas as pd

    rows = pd.DataFrame([
        # workload, precision, compile, s/epoch, gflop, achieved, matmul, share, warm-up, commit
        ("sae-pretrain", "32", None, 4.0, 100.0, 25.0, 80.0, 0.3125, None, "aaa"),  # old row
        ("sae-pretrain", "32", 0, 2.0, 100.0, 50.0, 80.0, 0.625, None, "bbb"),
        ("sae-pretrain", "32", 1, 1.6, 100.0, 62.5, 80.0, 0.78125, 9.0, "bbb"),
        ("knn-exact", "32", 0, 0.2, 0.0, 0.0, 80.0, 0.0, None, "bbb"),
        ("sae-pretrain", "bf16-mixed", 0, 1.0, 100.0, 100.0, 300.0, 0.333, None, "bbb"),
    ], columns=["workload", "precision", "compile", "s_per_epoch", "gflop", "achieved_gflops",
                "matmul_gflops", "of_matmul", "warmup_s", "commit"])
    rows = rows.assign(dataset="mnist5k", threads=1)
    latest = summary.latest_rows(rows, threads=1)
    assert len(latest) == 4 and list(latest["workload"]).count("sae-pretrain") == 3
    table = summary.throughput_table(latest)
    assert "| sae-pretrain | 32 | no | 2.000 | 100.0 | 50.0 | 80.0 | 62% |" in table
    assert "| knn-exact | 32 | no | 0.200 |  |  | 80.0 |  |" in table  # no matmuls: no share
    assert "| sae-pretrain | 32 | 2.000 | 1.600 | 1.25× | 9.0 |" in summary.compile_table(latest)
    assert "bf16-mixed" not in summary.compile_table(latest)  # no compiled row to pair with
    assert summary.latest_rows(rows, commit="aaa")["s_per_epoch"].tolist() == [4.0]
    later = pd.concat([rows, rows.iloc[[1]].assign(s_per_epoch=3.0, gflop=None,
                                                   achieved_gflops=None, matmul_gflops=None,
                                                   of_matmul=None)])  # a run without --flops
    assert summary.latest_rows(later, threads=1)["s_per_epoch"].tolist()[0] == 3.0
    counted = summary.latest_rows(later, threads=1, flops=True)
    assert counted["s_per_epoch"].tolist()[0] == 2.0 and counted["gflop"].notna().all()


def test_matmul_throughput_is_positive_in_fp32_and_bf16():
    cpu = torch.device("cpu")
    assert _bench().matmul_gflops(cpu, n=64, seconds=0.05) > 0
    assert _bench().matmul_gflops(cpu, torch.bfloat16, n=64, seconds=0.05) > 0


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


def test_op_recorder_counts_each_call_signature_and_replay_keeps_its_flops():
    """A conv layer trained for 3 steps on channels-last maps: forward and backward calls are
    counted by signature, the replayed FLOPs sum to what the FLOP counter counted in the run,
    and the table's ceiling is total FLOP over replayed seconds."""
    from torch.utils.flop_counter import FlopCounterMode

    bench = _bench()
    conv, lin = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Linear(8 * 6 * 6, 5)
    x = torch.randn(4, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    region = bench.Region(torch.device("cpu"), record_ops=True)

    def steps():
        for _ in range(3):
            lin(torch.relu(conv(x)).flatten(1)).sum().backward()

    def steps_and_inference():
        steps()
        with torch.inference_mode():   # composite conv2d / linear, decomposed for counting
            lin(conv(x).flatten(1))

    with region:
        steps_and_inference()
    with FlopCounterMode(display=False) as counter:
        steps_and_inference()
    names = {key[0].__name__ for key in region.calls}
    assert {"convolution.default", "convolution_backward.default", "addmm.default",
            "mm.default"} <= names
    conv_fwd = [key for key in region.calls if key[0].__name__ == "convolution.default"]
    assert len(conv_fwd) == 1 and region.calls[conv_fwd[0]] == 4   # 3 steps + 1 inference
    assert conv_fwd[0][1][0].stride == x.stride()        # the layout is part of the signature
    replayed = bench.OP_REPLAY.replay(region.calls, min_seconds=0.001)
    assert sum(r.calls * r.flop for r in replayed) == counter.get_total_flops()
    assert [r.total_s for r in replayed] == sorted((r.total_s for r in replayed), reverse=True)
    table = bench.OP_REPLAY.ops_table(replayed, wall_s=1.0, matmul_gflops=100.0, top=2)
    op_s = sum(r.total_s for r in replayed)
    ceiling = counter.get_total_flops() / op_s / 1e9
    assert f"at most at {ceiling:.1f} GFLOP/s" in table
    assert f"({len(replayed) - 2} more)" in table
    # which calls make the top 2 depends on their timings: the layout is checked in the full table
    full = bench.OP_REPLAY.ops_table(replayed, wall_s=1.0, matmul_gflops=100.0,
                                     top=len(replayed))
    assert "(channels last)" in full


def _spy_recipes(monkeypatch, pretrain: tuple, finetune: tuple) -> dict:
    """Wrap a family's pretraining function (module, name) and its ``finetune``; the returned
    dict gets the recipe each was called with (``pretrain``: 3rd argument, ``finetune``: 4th)."""
    seen: dict = {}
    for key, (module, name), index in (("pretrain", pretrain, 2), ("finetune", finetune, 3)):
        real = getattr(module, name)

        def wrapped(*args, _real=real, _key=key, _index=index, **kwargs):
            seen[_key] = args[_index]
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)
    return seen


@pytest.mark.parametrize("workload", ["dscdan-pretrain", "dscdan-finetune"])
def test_dscdan_workloads_train_the_configured_paper_recipes(workload, monkeypatch):
    """The DSCDAN workloads time config.yaml's paper recipes (the reproduction run's loss terms
    and batch sizes), not recipes of their own."""
    import contextlib
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("workloads_dscdan",
                                                  REPO / "bench" / "workloads_dscdan.py")
    workloads_dscdan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(workloads_dscdan)

    ae, method = workloads_dscdan.paper_recipes()
    assert ae["batch_size"] == 100 and ae["local_mi_weight"] == 0 and ae["epochs"] == 100
    assert method["batch_size"] == 1024 and method["max_epochs"] == 500
    from stages.methods.dscdan import head as dscdan
    from stages.methods.dscdan import pretrain as dscdan_pretrain

    seen = _spy_recipes(monkeypatch, (dscdan_pretrain, "pretrain_dscdan"), (dscdan, "finetune"))
    x = torch.rand(64, 1, 28, 28)
    data = SimpleNamespace(input_shape=(1, 28, 28), n_clusters=3)
    batch, steps, epochs = workloads_dscdan.run(workload, data, x, 1, contextlib.nullcontext())
    used = seen["pretrain" if workload == "dscdan-pretrain" else "finetune"]
    expected = ae if workload == "dscdan-pretrain" else method
    assert batch == expected["batch_size"] and steps == 1 and epochs == 1
    # the schedule is the workload's; the finetune workload times the clustering steps alone
    own = ("epochs", "max_epochs", "tol", "steps_per_check", "warm_start")
    assert {k: used[k] for k in expected if k not in own} == {
        k: v for k, v in expected.items() if k not in own}
    if workload == "dscdan-finetune":
        assert used["warm_start"] == "none"


@pytest.mark.parametrize("workload", ["saip-dae-pretrain", "saip-hoe", "saip-hoe-cnn-pretrain",
                                      "saip-hoe-cnn"])
def test_saip_workloads_train_the_configured_paper_recipes(workload, monkeypatch):
    """The SAIP workloads time config.yaml's paper recipes (HOE(CNN)'s Adam and output bias,
    the configured KL reading), not recipes of their own."""
    import contextlib
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("workloads_saip",
                                                  REPO / "bench" / "workloads_saip.py")
    workloads_saip = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(workloads_saip)

    ae, method = workloads_saip.paper_recipes(workload)
    cnn = "cnn" in workload
    assert ae["name"] == ("dae-cnn" if cnn else "dae") and ae["epochs"] == 200
    assert (ae["optimizer"]["name"] == "adam") == cnn and method["kl"] == "p1_p2"
    from stages.methods.saip import head as saip
    from stages.methods.saip import pretrain as saip_pretrain

    seen = _spy_recipes(monkeypatch, (saip_pretrain, "pretrain_denoising"), (saip, "finetune"))
    x = torch.rand(300, 1, 28, 28)
    data = SimpleNamespace(input_shape=(1, 28, 28), n_clusters=3)
    batch, steps, epochs = workloads_saip.run(workload, data, x, 1, contextlib.nullcontext())
    assert batch == 256 and steps == 2 and epochs == 1
    skip = {"epochs", "checkpoint_every", "decay_epochs", "decay_repeats", "tol", "stop_after"}
    expected = ae if workload.endswith("pretrain") else method
    used = seen["pretrain" if workload.endswith("pretrain") else "finetune"]
    assert {k: used[k] for k in expected if k not in skip} == {
        k: v for k, v in expected.items() if k not in skip}


def test_the_gpu_check_smoke_runs_every_part_and_each_workload_at_its_precision(
        tmp_path, monkeypatch):
    """``bench/gpu_check.sh --device cpu --smoke`` (CI runs it here, so that it cannot rot):
    the CUDA tests (skipped without a GPU), every workload at 32 and bf16-mixed with every
    training loop of it at that precision (the kNN graphs once, the approximate one left out),
    the workflow's dcec, and one CSV of them."""
    import sys

    import stages.runtime.train

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    import bench_training  # as gpu_check imports it (bench/ on sys.path)

    current: list[tuple[str, str]] = []
    seen: dict[tuple[str, str], set] = {}
    run_one, use_precision = bench_training.run_one, stages.runtime.train.use_precision

    def spy_run_one(workload, *args, precision="32", **kwargs):
        current[:] = [(workload, precision)]
        seen[(workload, precision)] = set()
        return run_one(workload, *args, precision=precision, **kwargs)

    def spy_precision(model, precision, device):
        seen[current[0]].add(precision)
        return use_precision(model, precision, device)

    monkeypatch.setattr(bench_training, "run_one", spy_run_one)
    monkeypatch.setattr(stages.runtime.train, "use_precision", spy_precision)
    rows = gpu_check.cuda_tests("cpu") + gpu_check.workloads("cpu", smoke=True)
    rows += gpu_check.dcec_paper("cpu", smoke=True)
    assert sys.modules["bench_training"] is bench_training
    assert all(r["status"] in ("ok", "skipped") for r in rows), [
        r for r in rows if r["status"] not in ("ok", "skipped")]
    bench = _bench()
    expected = {(w, p) for w in bench.WORKLOADS if w != "knn-approx"
                for p in bench.precisions_of(w, ["32", "bf16-mixed"])}
    assert {(r["name"], r["precision"]) for r in rows if r["part"] == "bench"} == expected
    assert set(seen) == expected
    for (workload, precision), precisions in seen.items():
        assert precisions == (set() if workload in bench.NO_NETWORK else {precision}), workload
    (dcec,) = [r for r in rows if r["part"] == "workflow"]
    assert 0 < dcec["acc"] <= 1 and "pretrain" in dcec["detail"]
    out = gpu_check.write_rows(rows, tmp_path / "gpu_check.csv")
    with out.open(newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["name"] for r in written] == [r["name"] for r in rows]
    assert {r["part"] for r in written} == {"tests", "bench", "workflow"}


def test_the_denormal_bench_counts_denormals_and_flushes_them_in_its_runs(tmp_path):
    """bench/denormals.py: the share of denormal values, and a smoke run of both settings at
    both precisions (no denormal survives a flushed run)."""
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("denormals", REPO / "bench" / "denormals.py")
    denormals = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(denormals)
    # from bits, whatever this process flushes: 0, two denormals (one negative), 1.0, -0.0
    values = torch.tensor([0, 1, 0x807FFFFF - (1 << 32), 0x3F800000, -(1 << 31)],
                          dtype=torch.int32).view(torch.float32)
    assert denormals.denormal_share([values]) == pytest.approx(0.4)
    halves = torch.tensor([0x0001, 0x0080, 0x8040 - (1 << 16)],   # denormal, normal, denormal
                          dtype=torch.int16).view(torch.bfloat16)
    assert denormals.denormal_share([halves, values]) == pytest.approx(4 / 8)
    out = tmp_path / "denormals.csv"
    subprocess.run([sys.executable, str(REPO / "bench" / "denormals.py"), "--threads", "1",
                    "--epochs", "2", "--block", "1", "--limit", "512", "--out", str(out)],
                   check=True, capture_output=True, cwd=REPO)
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["precision"], r["flush"]) for r in rows] == [
        ("32", "off"), ("32", "on"), ("bf16-mixed", "off"), ("bf16-mixed", "on")]
    for row in rows:
        assert len(row["block_s"].split()) == 2 and float(row["final_loss"]) > 0
        if row["flush"] == "on":
            assert float(row["denormal_exp_avg"]) == 0.0 == float(row["denormal_weights"])
