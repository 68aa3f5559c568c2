"""Markdown tables of ``bench/results.csv``: the latest row of each workload at each precision
(and compiled or not), with its seconds per epoch and, where counted, its achieved GFLOP/s
against the matmul throughput of its dtype measured in the same process.

    python bench/summary.py --threads 1 --commit f72baf4          # the fp32/bf16 table
    python bench/summary.py --threads 2 --commit fe3e1d2 --flops  # rows with FLOPs only
    python bench/summary.py --threads 1 --commit db06cc5 6f42423 --compile  # eager vs compiled

``--compile`` pairs each workload's eager and compiled rows of the same precision and adds the
compiled run's speed-up per epoch and its warm-up (compilation included).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results.csv"


def latest_rows(results: pd.DataFrame, threads: int | None = None,
                commit: str | list[str] | None = None, dataset: str = "mnist5k",
                flops: bool = False) -> pd.DataFrame:
    """The last row of every (workload, precision, compile) among the rows of ``dataset`` made
    on ``threads`` threads by a commit starting with ``commit`` (or any of a list), in the
    file's workload order; with ``flops``, among the rows of runs that counted FLOPs only
    (those with a measured matmul throughput)."""
    rows = results[results["dataset"] == dataset]
    if flops:
        rows = rows[rows["matmul_gflops"].notna()]
    if threads is not None:
        rows = rows[rows["threads"] == threads]
    if commit:
        prefixes = (commit,) if isinstance(commit, str) else tuple(commit)
        rows = rows[rows["commit"].astype(str).str.startswith(prefixes)]
    rows = rows.assign(compile=rows["compile"].fillna(0).astype(int))
    order = {name: i for i, name in enumerate(dict.fromkeys(rows["workload"]))}
    last = rows.groupby(["workload", "precision", "compile"], sort=False).tail(1)
    return last.sort_values(["workload", "precision", "compile"],
                            key=lambda c: c.map(order) if c.name == "workload" else c,
                            kind="stable").reset_index(drop=True)


def _num(value, digits: int = 1) -> str:
    return "" if pd.isna(value) else f"{float(value):.{digits}f}"


def throughput_table(rows: pd.DataFrame) -> str:
    """One line per row: s/epoch, GFLOP, achieved GFLOP/s, the dtype's matmul GFLOP/s, share."""
    lines = ["| workload | precision | compiled | s/epoch | GFLOP | GFLOP/s | matmul GFLOP/s "
             "| of matmul |", "|---|---|---|---|---|---|---|---|"]
    for _, r in rows.iterrows():
        if not float(r.get("gflop") or 0) > 0:  # not counted, or no matmuls (the kNN graphs)
            r = r.drop(["gflop", "achieved_gflops", "of_matmul"], errors="ignore")
        share = "" if pd.isna(r.get("of_matmul")) else f"{100 * float(r['of_matmul']):.0f}%"
        lines.append(f"| {r['workload']} | {r['precision']} | {'yes' if r['compile'] else 'no'} "
                     f"| {_num(r['s_per_epoch'], 3)} | {_num(r.get('gflop'))} "
                     f"| {_num(r.get('achieved_gflops'))} | {_num(r.get('matmul_gflops'))} "
                     f"| {share} |")
    return "\n".join(lines)


def compile_table(rows: pd.DataFrame) -> str:
    """One line per workload and precision with both an eager and a compiled row: their
    s/epoch, the compiled run's speed-up (eager / compiled) and its warm-up seconds."""
    lines = ["| workload | precision | eager s/epoch | compiled s/epoch | speed-up "
             "| warm-up s (compiling) |", "|---|---|---|---|---|---|"]
    for (workload, precision), pair in rows.groupby(["workload", "precision"], sort=False):
        eager, compiled = pair[pair["compile"] == 0], pair[pair["compile"] == 1]
        if eager.empty or compiled.empty:
            continue
        e, c = float(eager["s_per_epoch"].iloc[-1]), float(compiled["s_per_epoch"].iloc[-1])
        lines.append(f"| {workload} | {precision} | {e:.3f} | {c:.3f} | {e / c:.2f}× "
                     f"| {_num(compiled['warmup_s'].iloc[-1])} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--commit", nargs="+", default=None,
                   help="rows of commits starting with one of these only")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--compile", action="store_true", help="eager against compiled instead")
    p.add_argument("--flops", action="store_true",
                   help="rows of runs that counted FLOPs (bench_training.py --flops) only")
    args = p.parse_args()
    rows = latest_rows(pd.read_csv(args.results), args.threads, args.commit, args.dataset,
                       args.flops)
    if rows.empty:
        raise SystemExit(f"{args.results}: no rows of {args.dataset} with threads={args.threads} "
                         f"and commit {args.commit!r}; drop a filter or run bench_training.py")
    cpus = rows["cpu"].dropna().unique() if "cpu" in rows else []
    print("CPU: " + ("; ".join(map(str, cpus)) if len(cpus) else "not recorded") + "\n")
    print(compile_table(rows) if args.compile else throughput_table(rows))


if __name__ == "__main__":
    main()
