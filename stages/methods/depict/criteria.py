"""DEPICT's label-free choices (docs/reproduction/depict-choices.md), read from the runs' files.

    python -m stages.methods.depict.criteria warmstart \
        --start authors RUN_A/results/finetune/mnist5k/depict{,-ws-*}/seed0 \
        --start seed1 RUN_B/results/finetune/mnist5k/depict{,-ws-*}/seed1 [--out CSV]

judges every warm-start reading (a fine-tuning folder with ``history.csv`` and ``labels.h5``)
on every start by the page's section 1: out if its joint phase or its warm start was ended by
a cap instead of its own rule, if a cluster holds less than 2% of the points or one is empty,
or if a code dimension is dead; then the rule: a reading replaces the default (``depict``) only
if, on every start (two at least; one start is provisional), it is in and ends at least 0.01
sharper than the default with a final agreement with the start (``nmi_start``) no more than
0.01 below it.

    python -m stages.methods.depict.criteria mda RESULTS [RESULTS ...] --reference REF \
        [--dataset D] [--seed S]

judges the MdA candidates pretrained under ``RESULTS/pretrain/D/*/seedS`` (of every folder
given: candidates run side by side in several folders) by section 2: the
best held-out MdA loss (the ``validation`` rows), out if the codes saved in
``RESULTS/embed/D/AE/seedS.h5`` are saturated (more than 5% of entries above 0.95 in magnitude)
or have a dead dimension (std below 0.01), or if the pretraining ran to its epoch cap. The
lowest replaces the recipe if it is at least 2% below ``REF``: the present recipe's best
held-out loss, a pretraining ``history.csv`` of it or a number. ACC and NMI to the true labels
are never read.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from stages.methods.depict.head import code_diagnostics
from stages.methods.shared.quick_criteria import final_held_out
from stages.plumbing.artifacts import read_arrays
from stages.plumbing.cli import main_for, print_table
from stages.plumbing.errors import DataFileError
from stages.runtime.torchfiles import load_torch

#: a reading is out if a cluster ends with less than this share of the points
MIN_SHARE = 0.02
#: the margins of the replacement rule: sharper by at least, agreement lower by at most
SHARPER_BY = 0.01
AGREEMENT_SLACK = 0.01
#: an MdA candidate replaces the recipe when its held-out loss is this fraction below it
MDA_GAIN = 0.02
#: an MdA candidate is out when more than this share of its code entries is saturated
MAX_SATURATED = 0.05


def warm_start_stopped_by_rule(history: pd.DataFrame, config: dict[str, Any]) -> bool:
    """Whether the warm start ended by its own rule rather than its ``warm_start_epochs`` cap.

    ``heldout-nmi``: the held-out NMI to the pseudo-labels (``warm-start-validation`` rows) went
    ``warm_start_patience`` evaluations without improving on its best. ``train-ce``: the last
    epoch's mean training cross-entropy (``warm-start-epoch`` rows) is below ``warm_start_ce``.
    """
    rule = str(config.get("warm_start_rule", "heldout-nmi"))
    if rule == "train-ce":
        epochs = history[history["kind"] == "warm-start-epoch"].sort_values("step")
        if epochs.empty:
            raise DataFileError("no warm-start-epoch rows: not a train-ce warm start's history")
        return float(epochs["train_ce"].iloc[-1]) < float(config.get("warm_start_ce", 0.2))
    val = history[history["kind"] == "warm-start-validation"].sort_values("step")
    if val.empty:
        raise DataFileError("no warm-start-validation rows: not a heldout-nmi warm start's "
                            "history (initial_q must be warm-start)")
    values = val["nmi_pseudo"].to_numpy()
    best = int(values.argmax())  # the first best, as EarlyStopping keeps it (strictly better)
    return len(values) - 1 - best >= int(config.get("warm_start_patience", 5))


def reading_verdict(history: pd.DataFrame, attrs: dict[str, Any]) -> dict[str, Any]:
    """Section 1's signals and exclusions for one fine-tuning run.

    Args:
        history: its ``history.csv``; the ``target`` rows are the joint phase's monitor rows.
        attrs: the attributes of its ``labels.h5`` (``info``: ``converged``; ``provenance``:
            the recipe; ``n_clusters``; ``method``).
    Returns:
        ``method``, ``warm_start_rule``, ``head_init``, ``warm_start_by_rule``, ``converged``,
        ``epochs``, the first and last ``sharpness`` and ``nmi_start``, the last
        ``smallest_share``, ``populated``, ``code_dead_dims``, ``out`` (the reasons, joined;
        empty when in) and ``passes``.
    """
    config = attrs.get("provenance", {}).get("config", {})
    info = attrs.get("info", {})
    target = history[history["kind"] == "target"].sort_values("step")
    if target.empty:
        raise DataFileError("no target rows: not a DEPICT joint phase's history")
    first, last = target.iloc[0], target.iloc[-1]
    by_rule = warm_start_stopped_by_rule(history, config)
    n_clusters = int(attrs.get("n_clusters", last["populated"]))
    reasons = []
    if not info.get("converged", False):
        reasons.append("joint phase ran to its cap")
    if not by_rule:
        reasons.append("warm start ran to its cap")
    if float(last["smallest_share"]) < MIN_SHARE or int(last["populated"]) < n_clusters:
        reasons.append(f"a cluster below {MIN_SHARE:.0%} or empty")
    if int(last["code_dead_dims"]) > 0:
        reasons.append("a dead code dimension")
    return {"method": attrs.get("method"), "warm_start_rule": config.get("warm_start_rule"),
            "head_init": config.get("head_init"), "warm_start_by_rule": by_rule,
            "converged": bool(info.get("converged", False)), "epochs": info.get("epochs"),
            "sharpness_first": float(first["sharpness"]),
            "sharpness_last": float(last["sharpness"]),
            "nmi_start_first": float(first["nmi_start"]),
            "nmi_start_last": float(last["nmi_start"]),
            "smallest_share": float(last["smallest_share"]), "populated": int(last["populated"]),
            "code_dead_dims": int(last["code_dead_dims"]), "out": "; ".join(reasons),
            "passes": not reasons}


def read_reading(folder: str | Path) -> dict[str, Any]:
    """:func:`reading_verdict` of a fine-tuning folder (``history.csv``, ``labels.h5``)."""
    folder = Path(folder)
    if not (folder / "history.csv").exists():
        raise DataFileError(f"{folder}: no history.csv: an unfinished run (wait for it, or leave "
                            "the reading out) or not a fine-tuning folder "
                            "(results/finetune/D/METHOD/seedS)")
    _, attrs = read_arrays(folder / "labels.h5")
    try:
        return reading_verdict(pd.read_csv(folder / "history.csv"), attrs)
    except DataFileError as err:
        raise DataFileError(f"{folder}: {err}; pass only the joint-phase readings (depict and "
                            "depict-ws-*, not the depict-convae-* baselines)") from err


def decide_warm_start(verdicts: dict[str, dict[str, dict[str, Any]]],
                      default: str = "depict") -> dict[str, Any]:
    """Section 1's rule over starts.

    Args:
        verdicts: start name -> method -> :func:`reading_verdict`.
        default: the method of today's reading.
    Returns:
        ``chosen`` (the default when nothing replaces it), ``qualified`` (the readings that
        beat it on every start), ``provisional`` (fewer than two starts: the outcome changes
        nothing) and ``why``.
    """
    missing = [start for start, runs in verdicts.items() if default not in runs]
    if missing:
        raise DataFileError(f"the default reading '{default}' is missing on start(s) {missing}: "
                            "every start needs it to compare against")
    readings = sorted({m for runs in verdicts.values() for m in runs} - {default})
    qualified: dict[str, float] = {}
    for method in readings:
        ok = True
        for runs in verdicts.values():
            mine, base = runs.get(method), runs[default]
            if (mine is None or not mine["passes"]
                    or mine["sharpness_last"] < base["sharpness_last"] + SHARPER_BY
                    or mine["nmi_start_last"] < base["nmi_start_last"] - AGREEMENT_SLACK):
                ok = False
                break
        if ok:
            qualified[method] = sum(r[method]["sharpness_last"] for r in verdicts.values()) / len(
                verdicts)
    provisional = len(verdicts) < 2
    if not qualified:
        return {"chosen": default, "qualified": [], "provisional": provisional,
                "why": "no reading passes and beats the default on every start"}
    best = max(qualified, key=lambda m: qualified[m])
    why = (f"{best} passes and beats {default} on every start (mean final sharpness "
           f"{qualified[best]:.3f})")
    if provisional:
        return {"chosen": default, "qualified": sorted(qualified), "provisional": True,
                "why": why + "; one start only: provisional, the default stays"}
    return {"chosen": best, "qualified": sorted(qualified), "provisional": False, "why": why}


def mda_verdict(history: pd.DataFrame, config: dict[str, Any], z: torch.Tensor) -> dict[str, Any]:
    """Section 2's measures of one MdA pretraining.

    Args:
        history: its ``history.csv`` (``validation`` rows: the held-out MdA loss per epoch).
        config: its recipe (the model's provenance): ``epochs``, the cap.
        z: its saved codes (N, d).
    Returns:
        ``best_loss``, ``epochs`` (the last evaluated), ``cap``, ``code_saturated``,
        ``code_dead_dims``, ``out`` (reasons, joined) and ``passes``.
    """
    val = history[history["kind"] == "validation"]
    if val.empty or val["loss"].isna().all():
        raise DataFileError("no validation rows: not a held-out MdA pretraining "
                            "(validation_fraction must be above 0)")
    epochs, cap = int(val["epoch"].max()), int(config.get("epochs", 0))
    codes = code_diagnostics(z)
    reasons = []
    if cap and epochs >= cap:
        reasons.append("ran to its epoch cap")
    if codes["code_saturated"] > MAX_SATURATED:
        reasons.append(f"codes saturated ({codes['code_saturated']:.1%})")
    if codes["code_dead_dims"] > 0:
        reasons.append("a dead code dimension")
    return {"best_loss": float(val["loss"].min()), "epochs": epochs, "cap": cap, **codes,
            "out": "; ".join(reasons), "passes": not reasons}


def reference_loss(reference: str) -> float:
    """The present recipe's best held-out MdA loss: a number, or read from its history.csv."""
    try:
        return float(reference)
    except ValueError:
        pass
    path = Path(reference)
    if not path.exists():
        raise DataFileError(f"--reference {reference}: neither a number nor an existing "
                            "history.csv of the present recipe's MdA pretraining")
    what, value = final_held_out(pd.read_csv(path), n_pixels=1)
    if what != "mda_loss_best":
        raise DataFileError(f"{path}: no validation rows to take the reference from")
    return value


def decide_mda(verdicts: dict[str, dict[str, Any]], reference: float) -> dict[str, Any]:
    """Section 2's rule: the lowest ``best_loss`` among the candidates that pass, if it is at
    least :data:`MDA_GAIN` below ``reference``; else the recipe stays (``chosen`` None)."""
    passing = {ae: v["best_loss"] for ae, v in verdicts.items() if v["passes"]}
    if not passing:
        return {"chosen": None, "why": "no candidate passes; the recipe stays"}
    best = min(passing, key=lambda ae: passing[ae])
    gain = 1 - passing[best] / reference
    if gain >= MDA_GAIN:
        return {"chosen": best, "why": f"{best}: {passing[best]:.5f}, {gain:.1%} below the "
                                       f"recipe's {reference:.5f}"}
    return {"chosen": None, "why": f"the best, {best} ({passing[best]:.5f}), is {gain:.1%} below "
                                   f"the recipe's {reference:.5f}, less than {MDA_GAIN:.0%}: the "
                                   "recipe stays"}


def read_mda(results: Path, dataset: str, seed: int) -> dict[str, dict[str, Any]]:
    """:func:`mda_verdict` of every DEPICT pretraining (``net: depict``) under
    ``results/pretrain/dataset/*/seedS`` with a model, a history and a saved embedding
    (``results/embed/dataset/AE/seedS.h5``)."""
    out = {}
    for folder in sorted((results / "pretrain" / dataset).glob(f"*/seed{seed}")):
        embedding = results / "embed" / dataset / folder.parent.name / f"seed{seed}.h5"
        if not ((folder / "model.pt").exists() and (folder / "history.csv").exists()
                and embedding.exists()):
            continue
        saved = load_torch(folder / "model.pt")  # the payload: no network is built
        if saved.get("net") != "depict":  # another family's autoencoder in the same run
            continue
        config = saved.get("meta", {}).get("provenance", {}).get("config", {})
        z = torch.as_tensor(read_arrays(embedding, required=["Z"])[0]["Z"])
        out[folder.parent.name] = mda_verdict(pd.read_csv(folder / "history.csv"), config, z)
    if not out:
        raise DataFileError(f"no finished MdA candidate under {results}/pretrain/{dataset}/*/"
                            f"seed{seed} with its embedding: run the selection's embed targets")
    return out


def read_mda_folders(folders: Sequence[Path], dataset: str, seed: int,
                     ) -> dict[str, dict[str, Any]]:
    """:func:`read_mda` over several results folders; an autoencoder found in two of them is an
    error (which of its runs counts would be ambiguous)."""
    out: dict[str, dict[str, Any]] = {}
    for results in folders:
        for name, verdict in read_mda(results, dataset, seed).items():
            if name in out:
                raise DataFileError(f"{name} has a finished pretraining in two of the results "
                                    f"folders (the second: {results}): give each candidate's "
                                    "folder once")
            out[name] = verdict
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.methods.depict.criteria",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    warm = sub.add_parser("warmstart", help="section 1: the warm-start readings over starts")
    warm.add_argument("--start", nargs="+", action="append", required=True,
                      metavar=("NAME", "FOLDER"),
                      help="a start's name, then its fine-tuning folders (one per reading)")
    warm.add_argument("--default", default="depict", help="the method of today's reading")
    warm.add_argument("--out", help="also write the verdicts here (CSV)")
    mda = sub.add_parser("mda", help="section 2: the MdA candidates by held-out reconstruction")
    mda.add_argument("results", type=Path, nargs="+",
                     help="the selection run's results/ folder, or several (candidates run "
                          "side by side in folders at the same commit)")
    mda.add_argument("--reference", required=True,
                     help="the present recipe's best held-out MdA loss, or its history.csv")
    mda.add_argument("--dataset", default="mnist5k")
    mda.add_argument("--seed", type=int, default=0)
    mda.add_argument("--out", help="also write the verdicts here (CSV)")
    return parser


def _warm_starts(groups: Sequence[Sequence[str]]) -> dict[str, dict[str, dict[str, Any]]]:
    verdicts: dict[str, dict[str, dict[str, Any]]] = {}
    for group in groups:
        if len(group) < 2:
            raise DataFileError(f"--start {' '.join(group)}: give a name, then at least one "
                                "fine-tuning folder")
        name, folders = group[0], group[1:]
        if name in verdicts:
            raise DataFileError(f"--start {name} given twice")
        runs = [read_reading(f) for f in folders]
        verdicts[name] = {str(r["method"]): r for r in runs}
        if len(verdicts[name]) != len(runs):
            raise DataFileError(f"--start {name}: two folders of the same method")
    return verdicts


def run(args: argparse.Namespace) -> None:
    if args.command == "warmstart":
        verdicts = _warm_starts(args.start)
        table = pd.concat({s: pd.DataFrame.from_dict(r, orient="index").drop(columns="method")
                           for s, r in verdicts.items()}, names=["start", "method"])
        print_table(table)
        decision = decide_warm_start(verdicts, args.default)
        print(f"chosen: {decision['chosen']}: {decision['why']}")
    else:
        verdicts = read_mda_folders(args.results, args.dataset, args.seed)
        table = pd.DataFrame.from_dict(verdicts, orient="index")
        table.index.name = "autoencoder"
        print_table(table)
        reference = reference_loss(args.reference)
        decision = decide_mda(verdicts, reference)
        print(f"chosen: {decision['chosen'] or 'none (the recipe stays)'}: {decision['why']}")
    if args.out:
        table.to_csv(args.out)


if __name__ == "__main__":
    main_for(build_parser, run)
