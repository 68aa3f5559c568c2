"""The label-free criteria of docs/reproduction/saip-reading.md, from SAIP's ``history.csv``.

A fine-tuning history's monitor rows (``kind == "target"``, one per epoch, over all the data)
carry the signals the criteria read; ACC/NMI in them are reported for information only and
never used to choose. Two rules (written down before the runs, issue 42):

* ``reading``: the candidate that meets criteria 1-4 (:func:`criteria`); of several, the one
  with the largest relative fall of the P1/P2 disagreement, the default when it is within 10%
  (relative) of that; of none, the one failing the fewest, criteria ranked 1 > 2 > 3 > 4; a
  tie keeps the default.
* ``lr``: of the candidates meeting criteria 1-3, the one with the lowest final loss over all
  data; none: the default.

Usage::

    python -m stages.methods.saip.criteria reading --clusters 10 --default A A=path B=path
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import pandas as pd

from stages.plumbing.errors import ConfigError

#: criterion 1: the largest share of the loss from clipped entries
MAX_CLIPPED_SHARE = 0.01
#: criterion 2: the smallest cluster at least, the largest at most, this share of the points
MIN_SHARE, MAX_SHARE = 0.01, 0.90
#: criterion 3: the mean embedding norm stays within [LOW, HIGH] x its value at the start
NORM_LOW, NORM_HIGH = 0.5, 2.0
#: ``reading``: falls of the disagreement within this relative margin count as equal
MARGIN = 0.10
#: the monitor-row columns the criteria read
NEEDED = ("step", "clipped_share", "populated", "smallest_share", "largest_share",
          "embedding_norm", "disagreement", "loss_all")


def monitor_rows(history: pd.DataFrame) -> pd.DataFrame:
    """The monitor rows (``kind == "target"``) of a SAIP history, in step order; ConfigError
    naming the missing columns when it is not one."""
    if "kind" not in history.columns:
        raise ConfigError("not a fine-tuning history: no 'kind' column")
    rows = history[history["kind"] == "target"].sort_values("step", kind="stable")
    missing = [c for c in NEEDED if c not in rows.columns]
    if missing or rows.empty:
        raise ConfigError(f"not a SAIP history: no monitor rows with {', '.join(missing or NEEDED)}"
                          f" (made before the SAIP signals were recorded?)")
    return rows.reset_index(drop=True)


def criteria(history: pd.DataFrame, n_clusters: int) -> dict[str, Any]:
    """Criteria 1-4 of saip-reading.md (issue 42) over the monitor rows of ``history``.

    1. every row: ``clipped_share`` < 0.01;
    2. every row: all ``n_clusters`` clusters populated, smallest share >= 1%, largest <= 90%;
    3. every row: mean embedding norm within [1/2, 2] x the first row's;
    4. last row against the first: the P1/P2 disagreement and the loss over all data lower.

    Returns the signals, ``fails`` (the failed criteria's numbers) and, for information only,
    ``acc_start``/``acc_end`` when the rows carry ACC."""
    rows = monitor_rows(history)
    first, last = rows.iloc[0], rows.iloc[-1]
    ratio = rows["embedding_norm"] / float(first["embedding_norm"])
    out: dict[str, Any] = {
        "monitor_rows": len(rows), "last_step": int(last["step"]),
        "clipped_share_max": float(rows["clipped_share"].max()),
        "populated_min": int(rows["populated"].min()),
        "smallest_share_min": float(rows["smallest_share"].min()),
        "largest_share_max": float(rows["largest_share"].max()),
        "norm_start": float(first["embedding_norm"]), "norm_end": float(last["embedding_norm"]),
        "norm_ratio_min": float(ratio.min()), "norm_ratio_max": float(ratio.max()),
        "disagreement_start": float(first["disagreement"]),
        "disagreement_end": float(last["disagreement"]),
        "loss_start": float(first["loss_all"]), "loss_end": float(last["loss_all"]),
    }
    start = out["disagreement_start"]
    out["disagreement_fall"] = ((start - out["disagreement_end"]) / start if start > 0
                                else -math.inf if out["disagreement_end"] > 0 else 0.0)
    checks = {
        1: out["clipped_share_max"] < MAX_CLIPPED_SHARE,
        2: (out["populated_min"] == n_clusters and out["smallest_share_min"] >= MIN_SHARE
            and out["largest_share_max"] <= MAX_SHARE),
        3: NORM_LOW <= out["norm_ratio_min"] and out["norm_ratio_max"] <= NORM_HIGH,
        4: out["disagreement_end"] < start and out["loss_end"] < out["loss_start"],
    }
    out["fails"] = [k for k, ok in checks.items() if not ok]
    if "acc" in rows.columns:
        out.update(acc_start=float(first["acc"]), acc_end=float(last["acc"]))
    return out


def _check_default(results: dict[str, dict[str, Any]], default: str) -> None:
    if default not in results:
        raise ConfigError(f"--default {default}: not among the candidates "
                          f"({', '.join(results)})")


def choose_reading(results: dict[str, dict[str, Any]], default: str) -> tuple[str, str]:
    """(name, why) by the ``reading`` rule over :func:`criteria` results keyed by name."""
    _check_default(results, default)
    passing = [n for n, r in results.items() if not r["fails"]]
    if passing:
        falls = {n: results[n]["disagreement_fall"] for n in passing}
        best = max(passing, key=lambda n: (falls[n], n == default))
        if default in passing and falls[best] - falls[default] <= MARGIN * abs(falls[best]):
            return default, ("meets criteria 1-4 and its fall of the disagreement is within 10% "
                             "of the largest")
        return best, ("meets criteria 1-4 with the largest relative fall of the disagreement"
                      if len(passing) > 1 else "the only candidate meeting criteria 1-4")

    def badness(name: str) -> tuple[int, tuple[int, ...]]:
        fails = sorted(results[name]["fails"])
        return len(fails), tuple(-f for f in fails)   # fewer, then less important ones

    least = min(badness(n) for n in results)
    tied = [n for n in results if badness(n) == least]
    chosen = default if default in tied else sorted(tied)[0]
    return chosen, (f"none meets all four; fails the fewest (criteria "
                    f"{', '.join(map(str, results[chosen]['fails']))})"
                    + ("; tied, the default kept" if len(tied) > 1 else ""))


def choose_lr(results: dict[str, dict[str, Any]], default: str) -> tuple[str, str]:
    """(name, why) by the ``lr`` rule: of the candidates meeting criteria 1-3, the lowest final
    loss over all data; none: ``default``."""
    _check_default(results, default)
    ok = [n for n, r in results.items() if not set(r["fails"]) & {1, 2, 3}]
    if not ok:
        return default, "none meets criteria 1-3; the default kept"
    best = min(ok, key=lambda n: (results[n]["loss_end"], n != default))
    return best, "meets criteria 1-3 with the lowest final loss over all data"


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per candidate, the criteria's signals (ACC for information)."""
    lines = ["| candidate | last step (monitor rows) | 1: largest clipped share | 2: populated "
             "min, smallest / largest share, all epochs | 3: embedding norm start -> end "
             "(min, max x start) | 4: disagreement start -> end; loss start -> end | fails | "
             "ACC start -> end (information) |", "|" + "---|" * 8]
    for name, r in results.items():
        acc = (f"{100 * r['acc_start']:.1f} -> {100 * r['acc_end']:.1f}" if "acc_start" in r
               else "-")
        lines.append(
            f"| {name} | {r['last_step']} ({r['monitor_rows']}) | {r['clipped_share_max']:.3f} "
            f"| {r['populated_min']}, {r['smallest_share_min']:.3f} / "
            f"{r['largest_share_max']:.3f} | {r['norm_start']:.2f} -> {r['norm_end']:.2f} "
            f"({r['norm_ratio_min']:.2f}x, {r['norm_ratio_max']:.2f}x) | "
            f"{r['disagreement_start']:.3f} -> {r['disagreement_end']:.3f}; "
            f"{r['loss_start']:.3f} -> {r['loss_end']:.3f} | "
            f"{', '.join(map(str, r['fails'])) or 'none'} | {acc} |")
    return "\n".join(lines)


def _candidate(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"'{text}': give a candidate as NAME=PATH/history.csv")
    return name, Path(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.methods.saip.criteria",
        description="SAIP's label-free choice (docs/reproduction/saip-reading.md) from the "
                    "candidates' fine-tuning histories.")
    parser.add_argument("rule", choices=["reading", "lr"])
    parser.add_argument("candidates", nargs="+", type=_candidate,
                        help="NAME=results/finetune/DATASET/METHOD/seedS/history.csv")
    parser.add_argument("--default", required=True, help="the candidate a tie keeps")
    parser.add_argument("--clusters", type=int, required=True, help="K (10 for MNIST)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    results = {}
    for name, path in args.candidates:
        if not path.exists():
            raise SystemExit(f"{path}: no such history (candidate {name}); run it first")
        try:
            results[name] = criteria(pd.read_csv(path), args.clusters)
        except ConfigError as err:
            raise SystemExit(f"{path}: {err}") from None
    choose = choose_reading if args.rule == "reading" else choose_lr
    try:
        chosen, why = choose(results, args.default)
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    print(table(results))
    print(f"\nchosen ({args.rule}): {chosen}: {why}")


if __name__ == "__main__":
    main()
