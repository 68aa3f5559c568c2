"""RMN-GMM stage 3's label-free criteria (docs/reproduction/rmn-stage3.md), on monitor rows.

    python -m stages.methods.rmn.criteria judge results/finetune/fashion/*/seed0/history.csv

prints, per fine-tuning history, whether the run passes each criterion, its first and last
between/within ratio R and the verdict, and, among the runs that pass, the one the decision
rule picks (the largest final R). ACC and NMI are not read.

    python -m stages.methods.rmn.criteria decide \
        --primary results/finetune/fashion/rmn-gmm*/seed0/history.csv \
        --secondary results/finetune/mnist5k/rmn-gmm*/seed0/history.csv

applies the whole decision rule of rmn-stage3.md across the two datasets (the primary is
Fashion-MNIST, the paper's own dataset): it prints both datasets' verdicts side by side, the rule
that decided and the new ``head_defaults.rmn`` options, or that today's defaults stay.

    python -m stages.methods.rmn.criteria start results/init/fashion/rmn/seed0/gmm.h5 \
        --target-beta 0.5 1 2

prints, before any stage-3 run, what ``eta: auto_beta`` gives at the start of stage 3 on the
raw code of that GMM init (``standardise: false``): the eta per sample, beta, kappa_max and R
per distance and target beta. A point that starts with kappa_max >= 1 is out by criterion 3
without running.

    python -m stages.methods.rmn.criteria restarts results/embed/mnist5k/rmn/seed0.h5 \
        --seed 0 --n-init 1 5 10 20

prints, per code (``Z`` of an embedding file) and number of EM runs, the mean log-likelihood
per sample of stage 2's GMM (fitted as the ``gmm`` init fits it, on z / s, with the given seed),
whether it converged and the fit's seconds (docs/reproduction/rmn-choices.md, "Stage 2's EM
restarts").
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from stages.methods.rmn.gmm_init import fit_gmm
from stages.methods.rmn.head import eta_for_beta, project_gmm, stability
from stages.plumbing.artifacts import read_arrays
from stages.plumbing.cli import main_for, print_table
from stages.plumbing.errors import DataFileError
from stages.reporting.sweeps import point_values

#: the code scale (``code_std``) of every monitor row must stay within these factors of the first
CODE_SCALE_RANGE = (0.5, 2.0)
#: every component's share of the points at every monitor row
SHARE_RANGE = (0.01, 0.5)
#: a centre detaches from its points at kappa >= 1 (head.stability)
KAPPA_LIMIT = 1.0
#: the columns the criteria read
COLUMNS = ("step", "code_std", "smallest_share", "largest_share", "kappa_max",
           "separation_ratio")


def verdict(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The criteria of docs/reproduction/rmn-stage3.md on one run's monitor rows.

    Args:
        rows: the ``kind == 'target'`` rows of a stage-3 history, in step order, the first at
            step 0 (the GMM init), each with the :data:`COLUMNS`.
    Returns:
        ``{"bounded_scale", "shares", "attached", "ratio_rises", "passes", "scale_min",
        "scale_max", "smallest_share", "largest_share", "kappa_max", "ratio_first",
        "ratio_last"}``: each criterion a bool, ``passes`` all of them, and the numbers they
        were judged on (scales relative to the first row; shares and kappa over all rows).
    """
    if len(rows) < 2:
        raise DataFileError(f"the criteria need at least two monitor rows (the start and one "
                            f"more); got {len(rows)}")
    missing = sorted({c for r in rows for c in COLUMNS if c not in r})
    if missing:
        raise DataFileError(f"monitor rows lack {missing}: a history written before issue 41's "
                            "monitor columns; rerun its fine-tuning")
    first = float(rows[0]["code_std"])
    scales = [float(r["code_std"]) / first for r in rows]
    out: dict[str, Any] = {
        "scale_min": min(scales), "scale_max": max(scales),
        "smallest_share": min(float(r["smallest_share"]) for r in rows),
        "largest_share": max(float(r["largest_share"]) for r in rows),
        "kappa_max": max(float(r["kappa_max"]) for r in rows),
        "ratio_first": float(rows[0]["separation_ratio"]),
        "ratio_last": float(rows[-1]["separation_ratio"]),
    }
    finite = all(math.isfinite(v) for v in out.values())
    out["bounded_scale"] = finite and CODE_SCALE_RANGE[0] <= out["scale_min"] \
        and out["scale_max"] <= CODE_SCALE_RANGE[1]
    out["shares"] = SHARE_RANGE[0] <= out["smallest_share"] \
        and out["largest_share"] <= SHARE_RANGE[1]
    out["attached"] = finite and out["kappa_max"] < KAPPA_LIMIT
    out["ratio_rises"] = finite and out["ratio_last"] > out["ratio_first"]
    out["passes"] = all(out[k] for k in ("bounded_scale", "shares", "attached", "ratio_rises"))
    return out


def history_rows(path: str | Path) -> list[dict[str, Any]]:
    """The monitor rows (``kind == 'target'``) of a fine-tuning ``history.csv``, by step."""
    table = pd.read_csv(path)
    if "kind" not in table.columns:
        raise DataFileError(f"{path}: no 'kind' column; pass a fine-tuning history.csv")
    rows = table[table["kind"] == "target"].sort_values("step", kind="stable")
    return rows.to_dict("records")


def run_label(path: str | Path) -> str:
    """``dataset/method/seedN`` for ``.../finetune/dataset/method/seedN/history.csv``, else the
    path as given."""
    parts = Path(path).parts
    if "finetune" in parts and len(parts) - parts.index("finetune") == 5:
        return "/".join(parts[parts.index("finetune") + 1:-1])
    return str(path)


def choose(verdicts: dict[str, dict[str, Any]]) -> str | None:
    """The decision rule: among the runs that pass, the largest final R (None if none pass)."""
    passing = {name: v for name, v in verdicts.items() if v["passes"]}
    if not passing:
        return None
    return max(passing, key=lambda name: passing[name]["ratio_last"])


#: final R within this fraction of the best counts as a tie (decision rule 2)
TIE_FRACTION = 0.01
#: the paper's encoder lr (line 279), preferred in a tie
PAPER_ENCODER_LR = 0.01


def _paper_order(method: str, ratio_last: float) -> tuple[float, ...]:
    """Sort key of a tie: encoder lr 0.01 first, then ``euclidean``, then target beta nearest 1
    on the halving ladder (|log2 beta|), then the larger final R."""
    options = point_values(method)
    try:
        lr_is_paper = math.isclose(float(options.get("encoder_lr", "nan")), PAPER_ENCODER_LR)
        beta_distance = abs(math.log2(float(options.get("target_beta", "inf"))))
    except ValueError as err:
        raise DataFileError(f"'{method}': a non-numeric encoder_lr or target_beta ({err})") \
            from err
    return (not lr_is_paper, options.get("separation_distance") != "euclidean",
            beta_distance, -ratio_last)


def decide(primary: dict[str, dict[str, Any]], secondary: dict[str, dict[str, Any]],
           base: str = "rmn-gmm") -> dict[str, Any]:
    """rmn-stage3.md's decision rule over two datasets.

    Args:
        primary, secondary: :func:`verdict` per method name (the base and its sweep points,
            ``base@key=value...``) on Fashion-MNIST and on mnist5k.
        base: the method whose defaults are in question (today's defaults run under it).
    Returns:
        ``{"rule", "chosen", "options", "why"}``: the rule that decided (2: a point passes on
        both datasets; 3: only on the primary; 4: the base passes with a larger final R than
        the point rules 2-3 pick; 5: nothing passes on the primary), the chosen point (None when
        today's defaults stay), its options and a sentence. A tie (final R within
        :data:`TIE_FRACTION` of the best) goes to the paper's reading (:func:`_paper_order`).
    """
    points = [m for m in primary if m.startswith(base + "@")]
    on_primary = [m for m in points if primary[m]["passes"]]
    on_both = [m for m in on_primary if m in secondary and secondary[m]["passes"]]
    rule, candidates = (2, on_both) if on_both else (3, on_primary)
    chosen = None
    if candidates:
        best = max(primary[m]["ratio_last"] for m in candidates)
        tied = [m for m in candidates if primary[m]["ratio_last"] >= best * (1 - TIE_FRACTION)]
        chosen = min(tied, key=lambda m: _paper_order(m, primary[m]["ratio_last"]))
    base_verdict = primary.get(base)
    if chosen is None:
        return {"rule": 5, "chosen": None, "options": {},
                "why": "no grid point passes on the primary dataset: today's defaults stay"}
    if base_verdict is not None and base_verdict["passes"] \
            and base_verdict["ratio_last"] > primary[chosen]["ratio_last"]:
        return {"rule": 4, "chosen": None, "options": {},
                "why": f"the base {base} passes with a larger final R "
                       f"({base_verdict['ratio_last']:.4g}) than {chosen} "
                       f"({primary[chosen]['ratio_last']:.4g}): today's defaults stay"}
    where = "on both datasets" if rule == 2 else "on the primary dataset only"
    return {"rule": rule, "chosen": chosen, "options": point_values(chosen),
            "why": f"passes {where}, the largest final R on the primary "
                   f"({primary[chosen]['ratio_last']:.4g}; {len(tied)} within "
                   f"{TIE_FRACTION:.0%}, broken towards the paper's reading)"}


def start_values(means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor,
                 target_betas: Sequence[float], distances: Sequence[str],
                 min_variance: float = 0.01, min_weight: float = 1e-8) -> list[dict[str, Any]]:
    """What ``eta: auto_beta`` starts stage 3 with, per (distance, target beta).

    Args:
        means, variances: (K, D), weights: (K,): a GMM init, clamped as the head clamps it
            (``min_variance``, ``min_weight``); |n(k)| = K // 2 as in the head.
    Returns:
        one row per pair: ``distance``, ``target_beta``, ``eta_per_sample`` and
        :func:`stability`'s ``beta``, ``kappa_max``, ``separation_ratio``.
    """
    variances, weights = project_gmm(variances, weights, min_variance, min_weight)
    n_neighbours = means.shape[0] // 2
    rows = []
    for distance in distances:
        for target in target_betas:
            eta = eta_for_beta(float(target), means, n_neighbours, distance)
            rows.append({"distance": distance, "target_beta": float(target),
                         "eta_per_sample": eta,
                         **stability(means, variances, weights, eta, n_neighbours, distance)})
    return rows


def restart_likelihoods(z: np.ndarray, n_clusters: int, n_inits: Sequence[int], seed: int,
                        reg_covar: float = 1e-6) -> list[dict[str, Any]]:
    """Stage 2's GMM on codes z (N, d) per number of EM runs: one row per ``n_init`` with the
    mean log-likelihood per sample of z / s (``loglik``), ``converged`` and ``seconds``."""
    rows = []
    for n_init in n_inits:
        start = time.perf_counter()
        gmm, scale = fit_gmm(z, n_clusters, {"n_init": n_init, "reg_covar": reg_covar}, seed)
        rows.append({"n_init": int(n_init),
                     "loglik": float(gmm.score(np.asarray(z, dtype=np.float64) / scale)),
                     "converged": bool(gmm.converged_),
                     "seconds": time.perf_counter() - start})
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.methods.rmn.criteria",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    judge = sub.add_parser("judge", help="the criteria on stage-3 histories")
    judge.add_argument("histories", nargs="+", help="stage-3 history.csv files")
    judge.add_argument("--out", help="also write the table here (CSV)")
    decide_p = sub.add_parser("decide", help="the decision rule over Fashion and mnist5k")
    decide_p.add_argument("--primary", nargs="+", required=True,
                          help="stage-3 histories on the primary dataset (Fashion-MNIST)")
    decide_p.add_argument("--secondary", nargs="+", required=True,
                          help="stage-3 histories on the second dataset (mnist5k)")
    decide_p.add_argument("--base", default="rmn-gmm", help="the method of today's defaults")
    decide_p.add_argument("--out", help="also write both datasets' verdicts here (CSV)")
    start = sub.add_parser("start", help="eta: auto_beta's start values on a GMM init")
    start.add_argument("init", help="a gmm init artifact, results/init/D/AE/seedS/gmm.h5")
    start.add_argument("--target-beta", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    start.add_argument("--distance", nargs="+", default=["euclidean", "normalized"],
                       choices=["euclidean", "normalized"])
    start.add_argument("--min-variance", type=float, default=0.01,
                       help="the head's variance floor (config: min_variance)")
    restarts = sub.add_parser("restarts", help="stage 2's likelihood per number of EM runs")
    restarts.add_argument("embeddings", nargs="+", help="embedding files with the codes Z")
    restarts.add_argument("--seed", type=int, default=0, help="the init's seed")
    restarts.add_argument("--n-init", type=int, nargs="+", default=[1, 5, 10, 20])
    restarts.add_argument("--n-clusters", type=int, default=10)
    restarts.add_argument("--reg-covar", type=float, default=1e-6)
    return parser


def run(args: argparse.Namespace) -> None:
    if args.command == "start":
        arrays, _ = read_arrays(args.init, required=("means", "variances", "weights"))
        means, variances, weights = (torch.as_tensor(arrays[k], dtype=torch.float64)
                                     for k in ("means", "variances", "weights"))
        print_table(pd.DataFrame(start_values(means, variances, weights, args.target_beta,
                                              args.distance, args.min_variance)))
        return
    if args.command == "restarts":
        rows = []
        for path in args.embeddings:
            z = read_arrays(path, required=["Z"])[0]["Z"]
            rows += [{"code": path, **row} for row in restart_likelihoods(
                z, args.n_clusters, args.n_init, args.seed, args.reg_covar)]
        print_table(pd.DataFrame(rows))
        return
    if args.command == "decide":
        _decide(args)
        return
    verdicts = {run_label(path): verdict(history_rows(path)) for path in args.histories}
    table = pd.DataFrame.from_dict(verdicts, orient="index")
    table.index.name = "run"
    print_table(table)
    print(f"chosen (largest final R among the runs that pass): {choose(verdicts)}")
    if args.out:
        table.to_csv(args.out)


def _method_verdicts(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`verdict` per method name (``D/METHOD/seedS`` -> ``METHOD``) of one dataset."""
    labels = {path: run_label(path) for path in paths}
    datasets = {label.split("/")[0] for label in labels.values()}
    if len(datasets) != 1 or any(label.count("/") != 2 for label in labels.values()):
        raise DataFileError(f"pass the histories of one dataset, as results/finetune/D/METHOD/"
                            f"seedS/history.csv; got {sorted(labels.values())}")
    return {label.split("/")[1]: verdict(history_rows(path)) for path, label in labels.items()}


def _decide(args: argparse.Namespace) -> None:
    primary, secondary = _method_verdicts(args.primary), _method_verdicts(args.secondary)
    table = pd.concat({"primary": pd.DataFrame.from_dict(primary, orient="index"),
                       "secondary": pd.DataFrame.from_dict(secondary, orient="index")},
                      names=["dataset", "run"])
    print_table(table[["passes", "bounded_scale", "shares", "attached", "ratio_rises",
                       "scale_min", "largest_share", "kappa_max", "ratio_first", "ratio_last"]])
    decision = decide(primary, secondary, args.base)
    print(f"rule {decision['rule']}: {decision['chosen'] or 'none'}: {decision['why']}")
    if decision["options"]:
        print("head_defaults.rmn: " + ", ".join(f"{k}: {v}"
                                                for k, v in decision["options"].items()))
    if args.out:
        table.to_csv(args.out)


if __name__ == "__main__":
    main_for(build_parser, run)
